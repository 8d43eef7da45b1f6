"""SQLite: a snapshot copy with the online backup API, and its restore into an empty file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from portal.ops.backup._common import (
    BackupError,
    Progress,
    Ticker,
    compare_counts,
    not_empty_message,
    sha256_of,
)

SQLITE_FILE = "portal.sqlite3"
#: Pages copied per backup step (4 KiB pages: 16 MiB per step).
STEP_PAGES = 4096


def backup(url: str, staging: Path, progress: Progress) -> dict[str, Any]:
    """Copy the SQLite file of ``url`` inside one read transaction (a single snapshot).

    Args:
        url (str): the source database.
        staging (Path): the unfinished backup directory to write the data file into.
        progress (Callable[[str], None]): receives progress lines.

    Returns:
        dict: ``server_version``, ``tool``, ``schema_revision``, ``row_counts`` and
        ``files`` (name -> sha256 and bytes) for the manifest, all read from the snapshot.

    Raises:
        BackupError: the database cannot be read or the copy is damaged.
    """
    source = _sqlite_file(url)
    if not source.exists():
        raise BackupError(f"There is no SQLite database at {source}.")
    copy_path = staging / SQLITE_FILE
    src = sqlite3.connect(source, timeout=30, isolation_level=None)
    try:
        # One read transaction across every step: the copy is a single snapshot and is
        # not restarted by the portal's writes (WAL lets them go on meanwhile).
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_master").fetchone()
        dst = sqlite3.connect(copy_path, isolation_level=None)
        try:
            tick = Ticker(progress)
            src.backup(
                dst, pages=STEP_PAGES,
                progress=lambda _status, remaining, total: tick(
                    f"  copied {total - remaining:,} of {total:,} pages"),
            )
        finally:
            dst.close()
        src.execute("COMMIT")
    except sqlite3.Error as exc:
        raise BackupError(f"Could not read {source}: {exc}.") from exc
    finally:
        src.close()

    copy = sqlite3.connect(copy_path, isolation_level=None)
    try:
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"The copy of {source} fails SQLite's integrity check: {check}.")
        counts, revision = _sqlite_counts(copy)
    finally:
        copy.close()
    progress(f"  snapshot: {len(counts)} tables, {sum(counts.values()):,} rows")
    return {
        "server_version": f"SQLite {sqlite3.sqlite_version}",
        "tool": "sqlite3 online backup API",
        "schema_revision": revision,
        "row_counts": counts,
        "files": {SQLITE_FILE: _file_entry(copy_path)},
    }


def _file_entry(path: Path) -> dict[str, Any]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def _sqlite_file(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise BackupError("Backups need an SQLite database file (not an in-memory database).")
    return Path(database)


def _sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    return [row[0] for row in rows]


def _quote_sqlite(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_counts(conn: sqlite3.Connection) -> tuple[dict[str, int], str | None]:
    tables = _sqlite_tables(conn)
    counts = {t: conn.execute(f"SELECT count(*) FROM {_quote_sqlite(t)}").fetchone()[0] for t in tables}
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        revision = row[0] if row else None
    return counts, revision


def refuse_non_empty(url: str) -> None:
    """Refuse an SQLite target that already holds tables (a missing or empty file is fine).

    Args:
        url (str): the target database.

    Raises:
        BackupError: the target has tables, cannot be read, or a stale write-ahead log would be replayed into it.
    """
    target = _sqlite_file(url)
    wal = target.with_name(target.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0 and (not target.exists() or target.stat().st_size == 0):
        raise BackupError(
            f"{wal} is left over from an earlier database and SQLite would replay it into the "
            f"restored one: move it away (with {target.name}-shm), then restore. Nothing was changed."
        )
    if not target.exists() or target.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"{target.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = _sqlite_tables(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{target} exists but cannot be read as SQLite ({exc}); choose a new file.") from exc
    if tables:
        raise BackupError(not_empty_message(url, tables))


def restore(url: str, folder: Path, manifest: dict[str, Any], progress: Progress) -> dict[str, int]:
    """Copy the backup's file into the target with the backup API, check and count it.

    Args:
        url (str): the (checked empty) target database.
        folder (Path): the backup directory, its checksums already verified.
        manifest (dict): its manifest.
        progress (Callable[[str], None]): receives progress lines.

    Returns:
        dict[str, int]: rows per table in the target, equal to the manifest's.

    Raises:
        BackupError: loading or the row-count check failed; the target was emptied again.
    """
    target = _sqlite_file(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{(folder / SQLITE_FILE).resolve().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target, timeout=30, isolation_level=None)
        try:
            tick = Ticker(progress)
            try:
                source.backup(
                    dst, pages=STEP_PAGES,
                    progress=lambda _status, remaining, total: tick(
                        f"  restored {total - remaining:,} of {total:,} pages"),
                )
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"The restored database fails SQLite's integrity check: {check}.")
                counts, _revision = _sqlite_counts(dst)
                compare_counts(manifest, counts)
            except BaseException as exc:
                _wipe_sqlite(dst)
                if isinstance(exc, sqlite3.Error):
                    raise BackupError(f"Restoring into {target} failed: {exc}. The target was emptied again.") from exc
                if isinstance(exc, BackupError):
                    raise BackupError(exc.message + " The target was emptied again.") from exc
                raise
        finally:
            dst.close()
    finally:
        source.close()
    progress(f"  verified {len(counts)} tables, {sum(counts.values()):,} rows")
    return counts


def _wipe_sqlite(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys=OFF")
    for name, kind in conn.execute(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'"
    ).fetchall():
        conn.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} IF EXISTS {_quote_sqlite(name)}")
    conn.execute("VACUUM")
