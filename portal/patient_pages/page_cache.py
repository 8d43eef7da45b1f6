"""Rendered patient pages kept in memory, valid while the database says nothing they show changed.

The home page and the department pages show reference data (departments, doctors, session
times and fees) and availability (places left, session states). Rendering them is most of
their cost, so each process keeps the HTML it rendered, and serves it again only when

* the *catalog versions* it was rendered at are still the current ones. Database triggers
  raise ``catalog_version.version`` of a department in the same transaction as any change
  to the department, its doctors, their links or its sessions, bookings and cancellations
  included (see :class:`models.CatalogVersion`). Every request reads the current versions
  (one small query, shared by the requests that arrive while it is not yet started: see
  :class:`VersionWatch`), *before* any page data is read, so what a page shows is at least
  as new as the versions it is stored under. A place taken or given back, a session closed
  or filled, a doctor renamed: the next request re-renders;
* its *time bound* has not passed: a page also changes by itself when a session it shows
  ends or the local day changes, and records the first such moment as ``valid_until``.

Nothing here is shared between processes, and no freshness window is assumed: a page
served from memory is exactly what rendering it now would give (for the same language).
Rendered HTML never holds per-visitor data (no CSRF token: a template that asks for one
while rendering for the cache fails), which is why it may be shared by every visitor.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from models import CatalogVersion
from portal.core.db import limit_reads
from portal.core.settings import get_settings

#: Rendered pages kept per process (least recently used first out).
MAX_ENTRIES = 256


#: A version reader gives its connection back to the pool after this many idle seconds.
IDLE_SECONDS = 2.0

_VERSIONS = select(CatalogVersion.department_id, CatalogVersion.version)


def read_catalog_versions(conn: Connection) -> dict[int, int]:
    """The current catalog version of every department (one query).

    Args:
        conn (Connection): an open connection; on MySQL/MariaDB in autocommit (each read sees
            every commit before it), on SQLite its read transaction is ended here.

    Returns:
        dict[int, int]: department id -> version (ids with no row are absent).

    Raises:
        sqlalchemy.exc.DBAPIError: the database cannot be reached.
    """
    rows = conn.execute(_VERSIONS).all()
    if conn.dialect.name == "sqlite":
        conn.rollback()  # a WAL read transaction would keep seeing this snapshot
    return dict(rows)


class VersionWatch:
    """Fresh reads of the catalog versions, at most one at a time per process.

    A request may use any read that *started* after the request arrived: such a read sees
    every change committed before the request. So requests arriving while a read is under
    way wait for the next one, which all of them then share. Under load this is one small
    query per round trip to the database, whatever the number of requests; alone, a
    request costs one query.

    Reads run in one thread of their own, on one connection kept from the pool while reads
    keep coming (on MySQL/MariaDB in autocommit: one round trip per read, no ping and no
    rollback), given back after :data:`IDLE_SECONDS` without a read, after an error (a read
    that fails on a kept connection is tried once more on a new one) and at shutdown.

    Args:
        engine (Engine): the portal's database.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-versions")
        self._conn: Connection | None = None  # used only in the executor's thread
        self._started = 0  # reads started so far (numbers 1, 2, ...)
        self._inflight: asyncio.Future | None = None
        self._inflight_number = 0
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- in the reader thread --
    def _read(self) -> dict[int, int]:
        kept = self._conn is not None
        try:
            return read_catalog_versions(self._connection())
        except DBAPIError:
            self._release()
            if not kept:
                raise
        # the kept connection was broken (database restarted, idle timeout): once more on a new one
        try:
            return read_catalog_versions(self._connection())
        except BaseException:
            self._release()
            raise

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.engine.connect()  # the pool pings it first
            if conn.dialect.name != "sqlite":
                conn.execution_options(isolation_level="AUTOCOMMIT")
                # one tiny read: no answer within the ping timeout means the database is
                # unavailable (a frozen server would otherwise hold every page for the
                # whole read timeout)
                limit_reads(conn, get_settings().db_ping_timeout_seconds)
            self._conn = conn
        return self._conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is discarded by the pool anyway
                pass

    # -- in the event loop --
    def _start(self) -> asyncio.Future:
        self._started += 1
        number = self._started
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._read)
        self._inflight, self._inflight_number = future, number
        if self._idle_timer is not None:
            self._idle_timer.cancel()

        def done(f: asyncio.Future) -> None:
            if self._inflight is f:
                self._inflight = None
            if not f.cancelled():
                f.exception()  # retrieved here too, so an unused failure is not logged as lost
            if self._idle_timer is not None:
                self._idle_timer.cancel()
            self._idle_timer = loop.call_later(IDLE_SECONDS, self._release_if_idle, number)

        future.add_done_callback(done)
        return future

    def _release_if_idle(self, number: int) -> None:
        if self._started == number and self._inflight is None:
            self._executor.submit(self._release)

    async def close(self) -> None:
        """Give the kept connection back to the pool (app shutdown; the app may start again)."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._release)

    async def current(self) -> Mapping[int, int]:
        """The versions as of a read started after this call (department id -> version).

        Raises:
            sqlalchemy.exc.DBAPIError: the read failed (the database cannot be reached).
        """
        arrived_after = self._started
        while True:
            future = self._inflight
            if future is None or future.done():  # (done: its callback that clears it has not run yet)
                future = self._start()
            if self._inflight_number > arrived_after:
                return await asyncio.shield(future)
            try:  # started before this request: too old for it; wait, then take the next one
                await asyncio.shield(future)
            except Exception:  # noqa: BLE001 - its own waiters get the error; this one reads again
                pass


@dataclass(frozen=True)
class Rendered:
    """A rendered page and what it is valid for.

    Attributes:
        html (bytes): the page, encoded (UTF-8).
        stamp (Hashable): the catalog versions it shows (e.g. one department's version).
        valid_until (datetime): aware; the first moment it may change by itself (a session
            it shows ends, the local day changes).
        department_id (int | None): the department a department page shows.
    """

    html: bytes
    stamp: Hashable
    valid_until: datetime
    department_id: int | None = None


class PageCache:
    """Rendered pages of one process, by (language, path and query); see the module doc.

    Renders of the same page at the same versions are shared: concurrent requests that miss
    wait for one render instead of each doing it.
    """

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._rendering: dict[tuple[Hashable, Hashable], asyncio.Future] = {}
        self._lock = threading.Lock()  # entries are also read by tests from other threads
        self.hits = 0
        self.renders = 0

    def get(self, key: Hashable, stamp_of: Callable[[Rendered], Hashable], now: datetime) -> Rendered | None:
        """The stored page for ``key`` if still valid.

        Args:
            key (Hashable): language and path.
            stamp_of (Callable[[Rendered], Hashable]): the current stamp for a stored page (it may
                depend on the page: a department page's stamp is its department's version).
            now (datetime): the current time (aware).

        Returns:
            Rendered | None: the page, or None when missing, stale or past its time bound.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.stamp != stamp_of(entry) or now >= entry.valid_until:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: Hashable, entry: Rendered) -> None:
        """Store ``entry`` for ``key`` (the least recently used page goes when full)."""
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    async def render_once(self, key: Hashable, stamp: Hashable, render: Callable[[], "asyncio.Future"]):
        """Run ``render()`` (an awaitable factory) once for concurrent misses of ``key`` at ``stamp``.

        Returns:
            what ``render()`` gives (every waiter gets the same result or error).
        """
        token = (key, stamp)
        future = self._rendering.get(token)
        if future is None:
            self.renders += 1
            future = asyncio.ensure_future(render())
            self._rendering[token] = future
            future.add_done_callback(lambda _f: self._rendering.pop(token, None))
        return await asyncio.shield(future)

    def clear(self) -> None:
        """Forget every stored page."""
        with self._lock:
            self._entries.clear()
