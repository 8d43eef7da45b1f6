"""Backup and restore on the run's backend: every row comes back; bad restores are refused.

Each test gets a brand-new database (``fresh_db_url``), migrates it, fills it, backs it
up, wipes the database (deletes the SQLite file, or drops and re-creates the MySQL
database) and restores into the empty one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

import main
from models import AuditEvent
from portal.core import clock, schema
from portal.core.db import build_engine, dispose_engines, transaction
from portal.core.settings import get_settings
from portal.ops import backup as backups
from portal.ops.backup import BackupError, DumpScanner, iter_dump_statements
from portal.ops.seed.demo import seed_demo
from tests.factories import make_clinic_session, make_patient, make_staff

# --------------------------------------------------------------------------- helpers


def snapshot(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, ordered by primary key, as raw driver values."""
    engine = build_engine(url, pool_size=1)  # one connection: the inspector reads through it too
    try:
        rows = {}
        with engine.connect() as conn:
            insp = inspect(conn)
            quote = conn.dialect.identifier_preparer.quote
            for table in sorted(insp.get_table_names()):
                key = insp.get_pk_constraint(table)["constrained_columns"] or [
                    c["name"] for c in insp.get_columns(table)
                ]
                order = ", ".join(quote(c) for c in key)
                result = conn.exec_driver_sql(f"SELECT * FROM {quote(table)} ORDER BY {order}")
                rows[table] = [tuple(r) for r in result]
        return rows
    finally:
        engine.dispose()


def wipe(url: str) -> None:
    """Lose the database: delete the SQLite file, or drop and re-create the MySQL database."""
    dispose_engines()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(parsed.database + suffix).unlink(missing_ok=True)
        return
    server = create_engine(parsed.set(database=""), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE {parsed.database}"))
            conn.execute(text(f"CREATE DATABASE {parsed.database} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    finally:
        server.dispose()


def table_names(url: str) -> list[str]:
    """The tables of the database at ``url`` (empty list: an empty database)."""
    engine = build_engine(url, pool_size=1)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


@pytest.fixture
def small_db(fresh_db_url):
    """A migrated database with a few rows in several tables."""
    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=2)
    try:
        make_clinic_session(engine)
        make_patient(engine, full_name="O'Brien \\ (test), \"quoted\"; 患者")
        make_staff(engine)
    finally:
        engine.dispose()
    return fresh_db_url


def data_file(folder: Path, manifest: dict) -> Path:
    """The backup's data file (``portal.sqlite3`` or ``dump.sql``)."""
    return folder / next(iter(manifest["files"]))


# --------------------------------------------------------------------------- round trips


def test_backup_and_restore_give_back_every_row(fresh_db_url, tmp_path):
    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=2)
    try:
        seed_demo(engine, scale=1, seed=7, demo_password="x" * 12)
    finally:
        engine.dispose()
    before = snapshot(fresh_db_url)
    assert len(before["appointment"]) > 1000

    lines: list[str] = []
    report = backups.backup(fresh_db_url, tmp_path / "daily", progress=lines.append)
    assert report.path == tmp_path / "daily" and (report.path / "manifest.json").is_file()
    manifest = json.loads((report.path / "manifest.json").read_text())
    assert manifest == report.manifest
    assert manifest["row_counts"] == {table: len(rows) for table, rows in before.items()}
    assert manifest["schema_revision"] == schema.head_revision(fresh_db_url)
    assert manifest["created_at"].endswith("Z")
    file = data_file(report.path, manifest)
    assert backups.sha256_of(file) == manifest["files"][file.name]["sha256"]
    assert lines, "a backup reports progress"
    assert not list(tmp_path.glob("*partial*"))

    wipe(fresh_db_url)
    assert table_names(fresh_db_url) == []

    restored = backups.restore(fresh_db_url, report.path)
    assert restored.counts == manifest["row_counts"]
    assert restored.upgraded_to is None
    after = snapshot(fresh_db_url)
    assert after.keys() == before.keys()
    for table in before:
        assert after[table] == before[table], f"{table} differs after restore"


def test_archive_backup_restores(small_db, tmp_path):
    before = snapshot(small_db)
    report = backups.backup(small_db, tmp_path / "nightly.tar.gz")
    assert report.path.is_file()
    assert report.path.stat().st_mode & 0o077 == 0, "patient data: owner-only permissions"
    wipe(small_db)
    backups.restore(small_db, report.path)
    assert snapshot(small_db) == before


def test_backup_into_an_existing_directory_makes_a_timestamped_one(small_db, tmp_path):
    report = backups.backup(small_db, tmp_path)
    assert report.path.parent == tmp_path
    assert report.path.name.startswith("portal-") and report.path.name.endswith("Z")
    with pytest.raises(BackupError, match="already exists"):
        backups.backup(small_db, report.path / "manifest.json")
    with pytest.raises(BackupError, match="is a backup itself"):
        backups.backup(small_db, report.path)


def test_backup_is_consistent_while_the_portal_writes(small_db, tmp_path):
    base = len(snapshot(small_db)["audit_event"])
    engine = build_engine(small_db, pool_size=2)
    stop = threading.Event()
    written: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            with transaction(engine) as db:
                db.add(AuditEvent(occurred_at=clock.now(), actor="load", action="test",
                                       entity="none", summary="written during a backup"))
            written.append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 20:
            stop.wait(0.005)
        first = len(written)
        report = backups.backup(small_db, tmp_path / "hot")
        last = len(written)
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    saved = report.manifest["row_counts"]["audit_event"]
    assert base + first <= saved <= base + last + 1  # +1: a commit racing the counter

    wipe(small_db)
    restored = backups.restore(small_db, report.path)  # verifies every count against the manifest
    assert restored.counts["audit_event"] == saved


def test_restore_of_an_older_revision_upgrades_to_head(small_db, tmp_path, monkeypatch):
    # Only one migration exists yet: pretend the code's head moved on since the backup.
    from portal.ops.backup import _api

    report = backups.backup(small_db, tmp_path / "b")
    wipe(small_db)
    upgraded = []
    monkeypatch.setattr(_api, "check_revision", lambda manifest, url: "0002_newer")
    monkeypatch.setattr(_api.schema, "upgrade", lambda url: upgraded.append(url))
    restored = backups.restore(small_db, report.path)
    assert upgraded == [small_db]
    assert restored.upgraded_to == "0002_newer"


# --------------------------------------------------------------------------- refusals


def test_restore_refuses_a_non_empty_database(small_db, tmp_path):
    report = backups.backup(small_db, tmp_path / "b")
    before = snapshot(small_db)
    with pytest.raises(BackupError, match="not empty") as refused:
        backups.restore(small_db, report.path)
    assert "Nothing was changed" in refused.value.message
    assert snapshot(small_db) == before


def test_restore_refuses_a_tampered_backup(small_db, tmp_path):
    report = backups.backup(small_db, tmp_path / "b")
    wipe(small_db)
    file = data_file(report.path, report.manifest)
    content = bytearray(file.read_bytes())
    content[len(content) // 2] ^= 0x01
    file.write_bytes(bytes(content))
    with pytest.raises(BackupError, match="checksum"):
        backups.restore(small_db, report.path)
    assert table_names(small_db) == []


def test_restore_refuses_a_newer_schema_revision(small_db, tmp_path):
    report = backups.backup(small_db, tmp_path / "b")
    wipe(small_db)
    manifest = dict(report.manifest, schema_revision="9999_from_the_future")
    (report.path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BackupError, match="does not know") as refused:
        backups.restore(small_db, report.path)
    assert schema.head_revision(small_db) in refused.value.message
    assert table_names(small_db) == []


def test_restore_refuses_another_backend(small_db, tmp_path):
    report = backups.backup(small_db, tmp_path / "b")
    wipe(small_db)
    other = "mysql" if report.manifest["backend"] == "sqlite" else "sqlite"
    (report.path / "manifest.json").write_text(json.dumps(dict(report.manifest, backend=other)))
    with pytest.raises(BackupError, match="cross-backend restore is not supported"):
        backups.restore(small_db, report.path)
    assert table_names(small_db) == []


def test_a_restore_that_fails_verification_leaves_the_target_empty(small_db, tmp_path):
    report = backups.backup(small_db, tmp_path / "b")
    wipe(small_db)
    counts = dict(report.manifest["row_counts"], patient=report.manifest["row_counts"]["patient"] + 1)
    (report.path / "manifest.json").write_text(json.dumps(dict(report.manifest, row_counts=counts)))
    with pytest.raises(BackupError, match="do not match the manifest.*emptied again"):
        backups.restore(small_db, report.path)
    assert table_names(small_db) == []


def test_backup_refuses_a_database_that_was_never_migrated(fresh_db_url, tmp_path):
    if make_url(fresh_db_url).get_backend_name() == "sqlite":
        Path(make_url(fresh_db_url).database).touch()
    with pytest.raises(BackupError, match="not a migrated portal database"):
        backups.backup(fresh_db_url, tmp_path / "out" / "b")
    assert list((tmp_path / "out").iterdir()) == [], "a failed backup leaves nothing behind"


def test_restore_loads_through_pymysql_when_no_client_is_installed(small_db, tmp_path, monkeypatch):
    if make_url(small_db).get_backend_name() == "sqlite":
        pytest.skip("MySQL/MariaDB only; runs in the MariaDB pass")
    before = snapshot(small_db)
    report = backups.backup(small_db, tmp_path / "b")
    wipe(small_db)
    real = backups.find_tool
    monkeypatch.setattr(backups._mysql, "find_tool", lambda *names: None if names == backups.CLIENT_TOOLS else real(*names))
    lines: list[str] = []
    backups.restore(small_db, report.path, progress=lines.append)
    assert any("PyMySQL" in line for line in lines)
    assert snapshot(small_db) == before


# --------------------------------------------------------------------------- command line


def test_backup_and_restore_commands(small_db, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", small_db)
    get_settings.cache_clear()
    try:
        before = snapshot(small_db)
        assert main.main(["backup", str(tmp_path / "cli")]) == 0
        out = capsys.readouterr().out
        assert "Backup written to" in out and "schema revision" in out

        assert main.main(["restore", str(tmp_path / "cli")]) == 2
        assert "Restore failed: The target" in capsys.readouterr().out

        wipe(small_db)
        assert main.main(["restore", str(tmp_path / "cli")]) == 0
        assert "tables verified" in capsys.readouterr().out
        assert snapshot(small_db) == before
    finally:
        get_settings.cache_clear()


# --------------------------------------------------------------------------- dump parsing


MARIADB_DUMP = rb"""-- MariaDB dump 10.19
CREATE TABLE `alembic_version` (
  `version_num` varchar(32) NOT NULL
);
CREATE TABLE `empty` (
  `id` int(11) NOT NULL
);
LOCK TABLES `t` WRITE;
INSERT INTO `t` VALUES
(1,'it\'s (tricky), isn\'t it?',NULL),
(2,'back\\slash\\',0x00FF),
(3,'),(;',-1.5);
UNLOCK TABLES;
INSERT INTO `alembic_version` VALUES
('0001');
-- Dump completed
"""

MYSQL_DUMP = rb"""INSERT INTO `t` VALUES (1,'a'),(2,'(b)'),(3,'c;');
INSERT INTO `t` (`id`, `name`) VALUES (4,'d');
-- Dump completed on 2026-11-21
"""


def test_dump_scanner_counts_rows_in_both_dump_styles():
    scanner = DumpScanner()
    for line in MARIADB_DUMP.splitlines(keepends=True):
        scanner.feed(line)
    assert scanner.counts == {"alembic_version": 1, "empty": 0, "t": 3}
    assert scanner.revisions == ["0001"] and scanner.complete

    scanner = DumpScanner()
    for line in MYSQL_DUMP.splitlines(keepends=True):
        scanner.feed(line)
    assert scanner.counts == {"t": 4} and scanner.complete


def test_dump_statements_split_on_the_current_delimiter():
    dump = b"""/*M!999999\\- enable the sandbox mode */
-- comment
/*!40101 SET NAMES utf8mb4 */;
INSERT INTO `t` VALUES
(1,'x;'),
(2,'y');
DELIMITER ;;
CREATE PROCEDURE p() BEGIN
  SELECT 1;
END ;;
DELIMITER ;
SELECT 2;
"""
    statements = list(iter_dump_statements(iter(dump.splitlines(keepends=True))))
    assert statements == [
        "/*!40101 SET NAMES utf8mb4 */",
        "INSERT INTO `t` VALUES\n(1,'x;'),\n(2,'y')",
        "CREATE PROCEDURE p() BEGIN\n  SELECT 1;\nEND ",
        "SELECT 2",
    ]
