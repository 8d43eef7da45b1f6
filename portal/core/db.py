"""Database engine, sessions and transactions.

One engine per process, built from ``DATABASE_URL``. SQLite gets WAL mode, a busy
timeout and foreign keys; write transactions there start with ``BEGIN IMMEDIATE``
so two writers queue instead of failing on lock upgrade. MySQL/MariaDB connections
run in READ COMMITTED with UTC session time, ping pooled connections on checkout
and time out within seconds when the server is gone or frozen (the ping and a new
connection's greeting wait ``DB_PING_TIMEOUT_SECONDS``, queries
``DB_READ_TIMEOUT_SECONDS``).

Service functions run inside :func:`transaction` (one unit of work the caller
controls) or :func:`run_in_transaction` (which also retries MySQL deadlocks and
lock-wait timeouts a bounded number of times, then raises ``Busy``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from portal.core.settings import get_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: MySQL error codes worth retrying: deadlock, lock wait timeout.
RETRYABLE_MYSQL_CODES = {1213, 1205}
MAX_ATTEMPTS = 4

class _WriteIntent:
    """Set by :func:`writing`: ``holder`` is the connection whose transaction holds
    SQLite's write lock for it (None between transactions)."""

    def __init__(self) -> None:
        self.holder: Any = None


#: Set while a write runs in sessions that :func:`transaction` did not open (the admin's
#: generic create, edit and delete).
_write_intent: ContextVar[_WriteIntent | None] = ContextVar("portal_write_intent", default=None)

_engine_lock = threading.Lock()
_engines: dict[str, Engine] = {}


def build_engine(url: str, *, pool_size: int | None = None) -> Engine:
    """Create an engine for ``url`` with the portal's connection settings.

    Args:
        url (str): SQLAlchemy database URL.
        pool_size (int | None): connections per process (MySQL only; ``DB_POOL_SIZE`` by
            default). The pool never opens more: requests beyond it queue for one (at most
            10 s, then the pool's TimeoutError, a 503 page), so no connection is opened and
            closed again under load (PyMySQL spends about 10 ms of CPU opening one).

    Returns:
        Engine: a configured engine; SQLite pragmas and MySQL session settings are
        applied to every new connection.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn, _record):  # pragma: no cover - driver hook
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            if parsed.database and parsed.database != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - driver hook
            mode = conn.get_execution_options().get("sqlite_begin", "")
            intent = _write_intent.get()
            if not mode and intent is not None and intent.holder is None:
                intent.holder = conn  # reads nested in its transaction begin as usual
                mode = "IMMEDIATE"
            conn.exec_driver_sql(f"BEGIN {mode}".strip())

        @event.listens_for(engine, "commit")
        @event.listens_for(engine, "rollback")
        def _sqlite_end(conn):  # pragma: no cover - driver hook
            intent = _write_intent.get()
            if intent is not None and intent.holder is conn:
                intent.holder = None

        return engine

    settings = get_settings()
    size = pool_size or settings.db_pool_size
    ping_timeout, read_timeout = settings.db_ping_timeout_seconds, settings.db_read_timeout_seconds
    engine = create_engine(
        url,
        pool_pre_ping=False,  # our own ping below, with a short timeout
        pool_recycle=1800,
        pool_size=size,
        max_overflow=0,
        pool_timeout=10,
        isolation_level="READ COMMITTED",
        connect_args={
            "connect_timeout": 3,
            # The greeting and init_command of a new connection wait at most the ping
            # timeout: a frozen server accepts TCP connections (the kernel does) but never
            # greets. Queries then get the longer read timeout (_on_connect).
            "read_timeout": ping_timeout,
            "write_timeout": 30,
            "init_command": "SET time_zone = '+00:00', innodb_lock_wait_timeout = 10",
            "charset": "utf8mb4",
        },
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # pragma: no cover - driver hook
        _set_read_timeout(dbapi_conn, read_timeout)

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, _record, _proxy):  # pragma: no cover - driver hook
        # Pessimistic disconnect handling (SQLAlchemy's "checkout" recipe) with a short
        # timeout: pool_pre_ping would wait the whole read timeout on a frozen server,
        # and again for the new connection's greeting.
        _set_read_timeout(dbapi_conn, ping_timeout)
        try:
            dbapi_conn.ping(False)
        except Exception as exc:
            raise DisconnectionError(f"the database did not answer a ping within {ping_timeout} s: {exc}") from exc
        finally:
            _set_read_timeout(dbapi_conn, read_timeout)

    event.listen(engine, "handle_error", _mariadb_check_is_integrity_error)
    return engine


def _set_read_timeout(dbapi_conn: Any, seconds: int) -> None:
    """Change a PyMySQL connection's read timeout (seconds) for the next reads.

    PyMySQL takes ``read_timeout`` only when connecting and has no public setter; its
    ``_read_timeout`` attribute is applied to the socket before every packet read
    (PyMySQL 1.x, ``Connection._read_packet``).
    """
    dbapi_conn._read_timeout = seconds


def limit_reads(conn: Connection, seconds: int) -> None:
    """Make every read on ``conn`` (MySQL/MariaDB) fail after ``seconds`` without an answer.

    For a connection kept out of the pool for tiny, frequent queries (the patient pages'
    catalog versions): such a read that takes longer than the ping timeout means the
    database is unavailable, and the page should say so (503) instead of waiting the
    full read timeout. The pool's checkout ping restores the normal read timeout when
    the connection is next taken from the pool. A no-op on SQLite.

    Args:
        conn (Connection): an open connection.
        seconds (int): read timeout in seconds (>= 1).
    """
    if conn.dialect.name == "mysql":
        _set_read_timeout(conn.connection.dbapi_connection, seconds)


def _mariadb_check_is_integrity_error(ctx):
    """MariaDB reports a failed CHECK constraint as error 4025 (an OperationalError);
    raise it as the IntegrityError it is, as SQLite and MySQL do."""
    orig = ctx.original_exception
    if getattr(orig, "args", None) and orig.args[0] == 4025:
        return IntegrityError(ctx.statement, ctx.parameters, orig)
    return None


def get_engine(url: str | None = None) -> Engine:
    """Return the process-wide engine for ``url`` (default: ``DATABASE_URL``)."""
    url = url or get_settings().database_url
    with _engine_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = build_engine(url)
        return engine


def dispose_engines() -> None:
    """Close every pooled connection of this process (after fork, in tests)."""
    with _engine_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def writing() -> Iterator[None]:
    """Mark the code inside as a write: its transactions on SQLite take the write lock up
    front (``BEGIN IMMEDIATE``), as :func:`transaction` does by default.

    For sessions made elsewhere (sqladmin's own create, edit and delete), whose read then
    write would otherwise have to upgrade a read transaction, which SQLite refuses at once
    ("database is locked") when another writer committed in between. One at a time: a
    transaction begun while another one of the same write holds the lock (a read by one
    of sqladmin's hooks in the middle of the save) begins as usual instead of waiting
    for a lock its own caller holds. Worker threads started inside inherit the mark
    (context variables are copied to them). No effect on MySQL/MariaDB.
    """
    token = _write_intent.set(_WriteIntent())
    try:
        yield
    finally:
        _write_intent.reset(token)


def session_factory(engine: Engine | None = None, **info: Any) -> sessionmaker[Session]:
    """Return a sessionmaker bound to ``engine`` (default engine when omitted).

    Args:
        engine (Engine | None): the engine to bind.
        **info: stored in ``Session.info`` of every session (e.g. ``audit_changes=True``).
    """
    return sessionmaker(
        bind=engine or get_engine(), expire_on_commit=False, autoflush=False, info=info
    )


def is_retryable(exc: BaseException) -> bool:
    """True when ``exc`` is a MySQL deadlock or lock-wait timeout, or SQLite busy."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        args = getattr(exc.orig, "args", ())
        if args and isinstance(args[0], int) and args[0] in RETRYABLE_MYSQL_CODES:
            return True
        if isinstance(exc, OperationalError) and "database is locked" in str(exc.orig):
            return True
    return False


@contextmanager
def transaction(engine: Engine | None = None, *, write: bool = True) -> Iterator[Session]:
    """Open a session in one transaction; commit on success, roll back on error.

    Args:
        engine (Engine | None): engine to use; the default engine when omitted.
        write (bool): on SQLite, start with ``BEGIN IMMEDIATE`` (take the write lock
            up front); ignored on MySQL.

    Yields:
        Session: the session; everything done through it commits together.
    """
    engine = engine or get_engine()
    db = Session(bind=engine, expire_on_commit=False, autoflush=False)
    if write and engine.dialect.name == "sqlite":
        db.connection(execution_options={"sqlite_begin": "IMMEDIATE"})
    try:
        yield db
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        db.close()


class ConflictAttempt:
    """One attempt of a transaction under :func:`conflict_retries`: a context manager that
    swallows a lock conflict (MySQL deadlock 1213, lock-wait timeout 1205, a Galera
    certification failure reported as 1213 at COMMIT, SQLite "database is locked") so
    the caller's loop runs the whole transaction again, and turns the last one into
    ``Busy``. Any other error passes through.

    Attributes:
        number (int): 1 for the first attempt.
        conflicted (bool): this attempt ended in a lock conflict (it will be retried).
    """

    def __init__(self, number: int) -> None:
        self.number = number
        self.conflicted = False

    def __enter__(self) -> "ConflictAttempt":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, DBAPIError) or not is_retryable(exc):
            return False
        from portal.core.errors import Busy

        log.info("retrying after lock conflict (attempt %d): %s", self.number, exc.orig)
        if self.number >= MAX_ATTEMPTS:
            raise Busy() from exc
        self.conflicted = True
        return True

    @property
    def backoff_seconds(self) -> float:
        """A short random pause before the next attempt (back-off, not synchronisation)."""
        return random.uniform(0.005, 0.03) * self.number


def conflict_retries() -> Iterator[ConflictAttempt]:
    """The one retry policy for lock conflicts: up to ``MAX_ATTEMPTS`` attempts.

    Use it around a whole transaction; each attempt starts from the beginning::

        for attempt in conflict_retries():
            with attempt, transaction(engine) as db:
                return change(db)

    The loop ends when an attempt finishes without a conflict (return or break inside
    it); after a conflict it pauses briefly and yields the next attempt; the last
    conflict raises ``Busy``. :func:`conflict_retries_async` is the same for coroutines.

    Yields:
        ConflictAttempt: the attempt's context manager.
    """
    for number in range(1, MAX_ATTEMPTS + 1):
        attempt = ConflictAttempt(number)
        yield attempt
        if not attempt.conflicted:
            return
        time.sleep(attempt.backoff_seconds)


async def conflict_retries_async() -> AsyncIterator[ConflictAttempt]:
    """:func:`conflict_retries` for async code (the admin's own saves): the pause awaits."""
    import asyncio

    for number in range(1, MAX_ATTEMPTS + 1):
        attempt = ConflictAttempt(number)
        yield attempt
        if not attempt.conflicted:
            return
        await asyncio.sleep(attempt.backoff_seconds)


def run_in_transaction(
    fn: Callable[..., T], *args: Any, engine: Engine | None = None, **kwargs: Any
) -> T:
    """Call ``fn(db, *args, **kwargs)`` in a transaction, retrying lock conflicts.

    The whole attempt is rolled back and run again on a lock conflict
    (:func:`conflict_retries`).

    Returns:
        T: what ``fn`` returned, after the commit.

    Raises:
        portal.core.errors.Busy: the conflict persisted after every attempt.
        DomainError: whatever ``fn`` raised (nothing is committed).
    """
    for attempt in conflict_retries():
        with attempt, transaction(engine) as db:
            return fn(db, *args, **kwargs)
    raise AssertionError("unreachable: the last conflict raises Busy")
