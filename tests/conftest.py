"""Test fixtures: one database per run, migrated by Alembic, emptied after each test.

The backend is SQLite unless ``TEST_DATABASE_URL`` names a MySQL/MariaDB server, in
which case a fresh database (``portal_test_<random>``) is created on that server for
this run and dropped at the end. ``make test`` runs the suite once each way. If
``TEST_DATABASE_URL`` is set and the server cannot be reached, the tests error out:
a missing MariaDB is a failure, never a skip.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("PORTAL_TIMEZONE", "Asia/Shanghai")
os.environ.pop("DATABASE_URL", None)

#: Where the hospital clock stands when the run begins: a Monday morning, hospital time,
#: far from midnight, so no test depends on the wall clock. Servers that tests start in
#: other processes inherit ``PORTAL_CLOCK_OFFSET_SECONDS`` and run on the same clock.
TEST_START = datetime(2026, 6, 15, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
os.environ["PORTAL_CLOCK_OFFSET_SECONDS"] = str((TEST_START - datetime.now(UTC)).total_seconds())

import pytest  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

import models  # noqa: E402
from portal.core import clock, schema  # noqa: E402
from portal.core.db import build_engine  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"


def _drop_database(admin: Engine, name: str) -> None:
    """Drop a test database, first ending any connection still open on it (a leaked
    connection would otherwise hold a metadata lock and make DROP wait forever)."""
    with admin.connect() as conn:
        ids = conn.scalars(
            text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"),
            {"db": name},
        ).all()
        for pid in ids:
            try:
                conn.exec_driver_sql(f"KILL {int(pid)}")
            except Exception:  # already gone
                pass
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))


def _mysql_server_url() -> str | None:
    return os.environ.get("TEST_DATABASE_URL") or None


def backend_name() -> str:
    """``mysql`` when the run targets MySQL/MariaDB, else ``sqlite``."""
    return "mysql" if _mysql_server_url() else "sqlite"


@pytest.fixture(autouse=True)
def hospital_clock() -> Iterator:
    """The hospital clock (``portal.core.clock``) for one test: running from where the run's
    clock stands (``TEST_START`` plus the time the run has taken); a test may ``freeze``,
    ``travel`` or ``advance`` it, and it is put back afterwards."""
    clock.reset()
    yield clock
    clock.reset()


@pytest.fixture(scope="session")
def db_url() -> Iterator[str]:
    """URL of an empty database for this test run, already migrated to head."""
    server = _mysql_server_url()
    if server:
        name = f"portal_test_{secrets.token_hex(4)}"
        admin = create_engine(server, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        try:
            schema.upgrade(url)
            yield url
        finally:
            from portal.core.db import dispose_engines

            dispose_engines()
            _drop_database(admin, name)
            admin.dispose()
    else:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/portal-test.db"
            schema.upgrade(url)
            yield url


@pytest.fixture
def fresh_db_url(tmp_path) -> Iterator[str]:
    """URL of a brand-new, empty database (no schema) on the run's backend."""
    server = _mysql_server_url()
    if not server:
        yield f"sqlite:///{tmp_path}/fresh.db"
        return
    name = f"portal_fresh_{secrets.token_hex(4)}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        from portal.core.db import dispose_engines

        dispose_engines()
        _drop_database(admin, name)
        admin.dispose()


@pytest.fixture(scope="session")
def _session_engine(db_url: str) -> Iterator[Engine]:
    engine = build_engine(db_url, pool_size=20)
    yield engine
    engine.dispose()


def _empty_all_tables(engine: Engine) -> None:
    """Delete every row the test wrote. On MySQL/MariaDB, TRUNCATE (which also restarts
    the AUTO_INCREMENT counters, as a fresh database would) only the tables that hold a
    row: a TRUNCATE recreates the table, and most tests touch few of them."""
    tables = list(reversed(models.metadata.sorted_tables))
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            for table in tables:
                conn.execute(table.delete())
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        else:
            probe = " UNION ALL ".join(f"(SELECT '{t.name}' FROM {t.name} LIMIT 1)" for t in tables)
            filled = set(conn.exec_driver_sql(probe).scalars())
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for table in tables:
                if table.name in filled:
                    conn.exec_driver_sql(f"TRUNCATE TABLE {table.name}")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")


@pytest.fixture
def engine(_session_engine: Engine) -> Iterator[Engine]:
    """The run's engine; every table is emptied after the test."""
    try:
        yield _session_engine
    finally:
        _empty_all_tables(_session_engine)


@pytest.fixture
def app(engine: Engine):
    """A portal application bound to the test database."""
    from portal.app import create_app

    return create_app(engine)


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    """An HTTP client for the app (no redirects followed)."""
    with TestClient(app, follow_redirects=False) as c:
        yield c


@pytest.fixture
def mysql_only(engine: Engine) -> Engine:
    """Skip a test that needs real row locks unless the run is on MySQL/MariaDB."""
    if engine.dialect.name == "sqlite":
        pytest.skip("needs MySQL/MariaDB (set TEST_DATABASE_URL); runs in the MariaDB pass")
    return engine


#: Test files that run for many seconds of wall clock (a soak, killed workers, a frozen
#: database server): collected first, so that under ``pytest -n`` (pytest-xdist's
#: worksteal) one worker starts them at once and the others share the rest around them.
LONG_RUNNING_FILES = ("test_soak.py", "test_kills.py", "test_db_outage.py")


def pytest_collection_modifyitems(config, items) -> None:
    """Put the long-running files (``LONG_RUNNING_FILES``) first, in that order."""
    def rank(item) -> int:
        name = item.path.name
        return LONG_RUNNING_FILES.index(name) if name in LONG_RUNNING_FILES else len(LONG_RUNNING_FILES)

    items.sort(key=rank)  # stable: the order within each group is kept
