"""The MariaDB database the benchmarks run against: created, migrated and seeded once, then reused.

A database is reused when the seed's own audit event ("Demo hospital seeded (scale N, seed S)")
names the wanted scale, is younger than ``max_age_days`` (the demo hospital's sessions are
laid out around the day of the seed, so an old seed has few future sessions left) and its
schema is at a revision this code knows (then it is upgraded to head). Otherwise,
or with ``reseed=True``, it is dropped and seeded again with ``python main.py seed --scale N``,
and the harness waits for InnoDB to write out what the load left dirty. Two benchmark runs
preparing the same database at once queue on a MariaDB named lock instead of seeding twice.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.harness.console import say
from bench.harness.machine import ROOT

#: MariaDB server of the benchmarks (no database in the URL).
DEFAULT_SERVER = os.environ.get("BENCH_DATABASE_SERVER", "mysql+pymysql://root@127.0.0.1:3306")
#: Password of every demo staff account in a benchmark database.
BENCH_PASSWORD = "bench-portal-pass-1"
#: SECRET_KEY of the servers the benchmarks start.
BENCH_SECRET_KEY = "bench-secret-key-not-for-production"
#: Tables whose row counts are recorded with the figures.
COUNTED_TABLES = ("patient", "doctor", "clinic_session", "appointment", "prescription", "stock_movement")

_SEED_MARK = re.compile(r"Demo hospital seeded \(scale (\d+), seed (\d+)\)")


def default_database_name(scale: int) -> str:
    """``portal_bench`` for scale 100, ``portal_bench_s<scale>`` for any other scale."""
    return "portal_bench" if scale == 100 else f"portal_bench_s{scale}"


@dataclass
class BenchDatabase:
    """A seeded benchmark database.

    Attributes:
        url (str): SQLAlchemy URL (``mysql+pymysql://.../portal_bench``).
        name (str): database name.
        scale (int): the seed's ``--scale``.
        counts (dict[str, int]): rows of :data:`COUNTED_TABLES`.
        seeded_now (bool): this run seeded it (False: reused).
        seeded_at (datetime | None): when the seed ran (aware UTC).
        password (str): password of the demo staff accounts (admin, receptionist, doctor,
            nurse, pharmacist).
    """

    url: str
    name: str
    scale: int
    counts: dict[str, int] = field(default_factory=dict)
    seeded_now: bool = False
    seeded_at: datetime | None = None
    password: str = BENCH_PASSWORD

    def env(self) -> dict[str, str]:
        """Environment for a portal process on this database (``DATABASE_URL``, secret, password)."""
        return {"DATABASE_URL": self.url, "SECRET_KEY": BENCH_SECRET_KEY, "PORTAL_DEMO_PASSWORD": self.password}

    def counts_line(self) -> str:
        """The row counts as one line, e.g. "50,000 patient, 4,000 doctor, ..."."""
        return ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in self.counts.items())


def ensure_database(scale: int, *, name: str | None = None, server: str = DEFAULT_SERVER, reseed: bool = False,
                    max_age_days: float = 3.0, settle: bool = True, settle_seconds: float = 120) -> BenchDatabase:
    """Make sure a MariaDB database holds the demo hospital at ``scale``, migrated to head.

    Args:
        scale (int): ``main.py seed --scale`` (100 = the issue's benchmark size).
        name (str | None): database name; :func:`default_database_name` when omitted.
        server (str): server URL without a database.
        reseed (bool): drop and seed again even when a matching seed exists.
        max_age_days (float): a seed older than this (days) is redone.
        settle (bool): after seeding, wait for InnoDB's dirty pages to be written.
        settle_seconds (float): at most this long.

    Returns:
        BenchDatabase: the database, with its row counts.

    Raises:
        SystemExit: the seed or the migration failed (their output was printed).
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = name or default_database_name(scale)
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            say(f"Database {name}: waiting for other benchmark runs preparing it...")
            conn.execute(text("SELECT GET_LOCK(:n, 3600)"), {"n": f"bench-prepare-{name}"})
            try:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}` "
                                  "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
                mark = seed_mark(url)
                why = _reason_to_seed(mark, scale, reseed, max_age_days) or _unknown_revision(url)
                if why:
                    say(f"Database {name}: {why}; seeding at scale {scale}...")
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                    conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
                    seed(url, scale)
                    if settle:
                        wait_until_settled(url, settle_seconds)
                    mark = seed_mark(url)
                else:
                    run_main(["migrate"], url, label="migrate")
                db = BenchDatabase(url=url, name=name, scale=scale, counts=row_counts(url), seeded_now=bool(why),
                                   seeded_at=mark[2] if mark else None)
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:n)"), {"n": f"bench-prepare-{name}"})
    finally:
        admin.dispose()
    say(f"Database {name} ({'seeded now' if db.seeded_now else 'reused'}): {db.counts_line()}")
    return db


def _reason_to_seed(mark: tuple[int, int, datetime] | None, scale: int, reseed: bool, max_age_days: float) -> str:
    if reseed:
        return "--reseed"
    if mark is None:
        return "no demo hospital in it"
    if mark[0] != scale:
        return f"seeded at scale {mark[0]}, not {scale}"
    age = (datetime.now(UTC) - mark[2]).total_seconds() / 86400
    if age > max_age_days:
        return f"seeded {age:.1f} days ago (sessions are laid out around the seed's day)"
    return ""


def _unknown_revision(url: str) -> str:
    """Why the database cannot be migrated by this code (another branch's revision), or ""."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from portal.core import schema

    engine = create_engine(url)
    try:
        current = schema.current_revision(engine)
    finally:
        engine.dispose()
    if current is None:
        return ""
    known = {rev.revision for rev in ScriptDirectory.from_config(schema.alembic_config(url)).walk_revisions()}
    return "" if current in known else f"its schema is at revision {current}, unknown to this code"


def seed_mark(url: str) -> tuple[int, int, datetime] | None:
    """The (scale, seed, time) of the demo seed recorded in the audit trail, or None.

    Args:
        url (str): database URL.

    Returns:
        tuple[int, int, datetime] | None: None when the database has no schema or no seed event.
    """
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        if "audit_event" not in inspect(engine).get_table_names():
            return None
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT summary, occurred_at FROM audit_event WHERE action = 'seed' AND entity = 'hospital' "
                "ORDER BY id DESC LIMIT 1")).first()
    finally:
        engine.dispose()
    if row is None or not (m := _SEED_MARK.search(row[0] or "")):
        return None
    at = row[1] if row[1].tzinfo else row[1].replace(tzinfo=UTC)
    return int(m.group(1)), int(m.group(2)), at


def run_main(args: list[str], url: str, *, label: str) -> None:
    """Run ``python main.py ARGS`` on ``url``, printing its output as progress lines.

    Raises:
        SystemExit: the command failed.
    """
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": BENCH_SECRET_KEY, "PORTAL_DEMO_PASSWORD": BENCH_PASSWORD}
    proc = subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip() and BENCH_PASSWORD not in line:
            say(f"  {label} | {line.rstrip()}")
    if proc.wait() != 0:
        raise SystemExit(f"python main.py {' '.join(args)} failed (see above).")


def seed(url: str, scale: int) -> None:
    """Seed the empty database ``url`` with ``python main.py seed --scale N`` (schema upgraded first)."""
    started = time.perf_counter()
    run_main(["seed", "--scale", str(scale)], url, label="seed")
    say(f"Seeded in {time.perf_counter() - started:.0f} s.")


def wait_until_settled(url: str, limit_seconds: float = 120) -> None:
    """Wait until InnoDB's dirty buffer-pool pages stop falling (at most ``limit_seconds``).

    A benchmark started right after a bulk load measures the load's aftermath (page flushing
    competes for the disk and the 2 cores), not the portal.
    """
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    started, previous = time.monotonic(), None
    try:
        with engine.connect() as conn:
            while time.monotonic() - started < limit_seconds:
                dirty = int(conn.execute(text("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")).one()[1])
                if dirty < 200 or (previous is not None and dirty >= previous):
                    break
                say(f"  waiting for the database to settle: {dirty:,} dirty pages...")
                previous = dirty
                time.sleep(5)  # polling an outside process's progress, not synchronising threads
    finally:
        engine.dispose()


def row_counts(url: str) -> dict[str, int]:
    """Rows of each of :data:`COUNTED_TABLES` present in the database of ``url``."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        present = set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in COUNTED_TABLES
                    if t in present}
    finally:
        engine.dispose()
