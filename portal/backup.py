"""Consistent backups of the portal's database, and their verified restore.

A backup is a directory (or a ``.tar.gz`` / ``.tgz`` archive of one) holding the data
file and ``manifest.json``:

* SQLite: ``portal.sqlite3``, a copy made with SQLite's online backup API inside one
  read transaction, so it is a consistent snapshot while the portal keeps writing (WAL).
* MySQL/MariaDB: ``dump.sql``, written by ``mariadb-dump`` (or ``mysqldump``) with
  ``--single-transaction``, a consistent InnoDB snapshot taken without locking writers.

The manifest records the UTC time, the backend, the schema revision (``alembic_version``),
the row count of every table and the SHA-256 and size of every data file, plus the
portal's git commit when known. Row counts and revision are read from the snapshot
itself (the SQLite copy, or the dump as it streams), never from the live database, so
they describe exactly what was saved.

A backup is written under a temporary ``*.partial-*`` name and renamed into place
only when complete: an interrupted backup never looks like a finished one.

Restore goes only into an *empty* database of the same backend (SQLite to SQLite,
MySQL/MariaDB to MySQL/MariaDB; cross-backend restore is not supported). It refuses a
backup whose schema revision the code does not know (made by a newer portal), checks
every checksum before touching the target, verifies the row counts afterwards, and
upgrades an older schema to head. If loading or verifying fails, the tables it created
are dropped again, so the target is left empty rather than half-restored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, Engine, make_url

from portal import schema

MANIFEST = "manifest.json"
FORMAT = "hospital-portal-backup"
FORMAT_VERSION = 1
SQLITE_FILE = "portal.sqlite3"
MYSQL_FILE = "dump.sql"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")
#: SQLite pages copied per backup step (4 KiB pages: 16 MiB per step).
SQLITE_STEP_PAGES = 4096
#: Seconds between two progress lines of a long step.
PROGRESS_EVERY = 2.0

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


class BackupError(Exception):
    """A backup or restore was refused or failed.

    Attributes:
        message (str): what happened and what to do, written for the operator.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class BackupReport:
    """What :func:`backup` wrote.

    Attributes:
        path (Path): the finished backup (directory or archive).
        manifest (dict): the manifest written with it.
        seconds (float): wall time of the backup.
    """

    path: Path
    manifest: dict[str, Any]
    seconds: float = 0.0


@dataclass
class RestoreReport:
    """What :func:`restore` did.

    Attributes:
        manifest (dict): the manifest of the restored backup.
        counts (dict[str, int]): rows per table found in the target after loading
            (equal to the manifest's counts, or restore would have failed).
        upgraded_to (str | None): the head revision the schema was upgraded to, when
            the backup came from an older revision; None when it was already at head.
        seconds (float): wall time of the restore.
    """

    manifest: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)
    upgraded_to: str | None = None
    seconds: float = 0.0


class _Ticker:
    """Pass a progress line on at most every ``PROGRESS_EVERY`` seconds."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = time.monotonic()

    def __call__(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.progress(message)


# --------------------------------------------------------------------------- helpers


def backend_of(url: str | URL) -> str:
    """The backup backend of a database URL.

    Args:
        url (str | URL): SQLAlchemy database URL.

    Returns:
        str: ``"sqlite"`` or ``"mysql"`` (MariaDB counts as ``"mysql"``).

    Raises:
        BackupError: the URL names a backend backups do not support.
    """
    name = make_url(url).get_backend_name()
    if name == "sqlite":
        return "sqlite"
    if name in ("mysql", "mariadb"):
        return "mysql"
    raise BackupError(f"Backups support SQLite and MySQL/MariaDB, not {name}.")


def find_tool(*names: str) -> str | None:
    """Find a client program.

    Args:
        *names (str): program names in order of preference (``"mariadb-dump", "mysqldump"``).

    Returns:
        str | None: the full path of the first one found on ``PATH``; None if none is.
    """
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def default_backup_path(now: datetime | None = None) -> Path:
    """The default place of a backup: ``backups/portal-<UTC timestamp>``.

    Args:
        now (datetime | None): the moment to name it after (default: now).

    Returns:
        Path: relative to the working directory, e.g. ``backups/portal-20261121T021500Z``.
    """
    now = now or datetime.now(UTC)
    return Path("backups") / f"portal-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def sha256_of(path: Path) -> str:
    """Checksum a file.

    Args:
        path (Path): the file (read in 1 MiB blocks).

    Returns:
        str: the hex SHA-256 of its contents.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _size(num: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            return f"{num:,} {unit}" if unit == "bytes" else f"{num:.1f} {unit}"
        num /= 1024
    raise AssertionError("unreachable")


def portal_commit() -> str | None:
    """The git commit of the running code.

    Returns:
        str | None: ``<sha>``, or ``<sha>-dirty`` when tracked files were changed; None
        when the code is not a git checkout or git is missing.
    """
    try:
        sha = subprocess.run(
            ["git", "-C", str(schema.ROOT), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(schema.ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha or None


def _display_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _short_engine(url: str) -> Engine:
    from portal.db import build_engine

    return build_engine(url, pool_size=1)


# --------------------------------------------------------------------------- backup


def backup(url: str, path: Path | str | None = None, *, progress: Progress = _quiet) -> BackupReport:
    """Write a consistent backup of the database at ``url`` while it stays in use.

    Args:
        url (str): SQLAlchemy URL of the database (SQLite or MySQL/MariaDB).
        path (Path | str | None): where to write. A new path ending in ``.tar.gz`` or
            ``.tgz`` becomes an archive, any other new path a directory; an existing
            directory receives a new ``portal-<UTC timestamp>`` directory inside it.
            Default: ``backups/portal-<UTC timestamp>``.
        progress (Callable[[str], None]): receives progress lines.

    Returns:
        BackupReport: the finished backup's path and manifest.

    Raises:
        BackupError: the database cannot be read, is not a migrated portal database,
            the dump tool is missing or failed, or ``path`` is taken. Nothing is left
            at ``path`` then.
    """
    started = time.perf_counter()
    created = datetime.now(UTC)
    backend = backend_of(url)
    final = _backup_target(Path(path) if path is not None else None, created)
    archive = final.name.endswith(ARCHIVE_SUFFIXES)
    final.parent.mkdir(parents=True, exist_ok=True)
    progress(f"Backing up {_display_url(url)} to {final}")

    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        if backend == "sqlite":
            snapshot = _backup_sqlite(url, staging, progress)
        else:
            snapshot = _backup_mysql(url, staging, progress)
        if not snapshot["schema_revision"]:
            raise BackupError(
                "The database has no schema revision (alembic_version is missing or empty): "
                "it is not a migrated portal database, so there is nothing to back up."
            )
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": _utc_iso(created),
            "finished_at": _utc_iso(datetime.now(UTC)),
            "backend": backend,
            "source": _display_url(url),
            "server_version": snapshot["server_version"],
            "tool": snapshot["tool"],
            "schema_revision": snapshot["schema_revision"],
            "code_head": schema.head_revision(url),
            "portal_commit": portal_commit(),
            "row_counts": snapshot["row_counts"],
            "files": snapshot["files"],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if archive:
            progress("Writing the archive...")
            partial = staging.with_name(staging.name + ".tar.gz")
            with tarfile.open(partial, "w:gz") as tar:
                for item in sorted(staging.iterdir()):
                    tar.add(item, arcname=f"{_archive_root(final)}/{item.name}")
            shutil.rmtree(staging)
            partial.chmod(0o600)  # patient data: readable by the owner only, like the directory
            os.replace(partial, final)
        else:
            os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        staging.with_name(staging.name + ".tar.gz").unlink(missing_ok=True)
        raise
    return BackupReport(path=final, manifest=manifest, seconds=time.perf_counter() - started)


def _archive_root(final: Path) -> str:
    name = final.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _backup_target(path: Path | None, created: datetime) -> Path:
    if path is None:
        path = default_backup_path(created)
    elif path.is_dir():
        if (path / MANIFEST).exists():
            raise BackupError(f"{path} is a backup itself; name a new path or the directory that holds backups.")
        path = path / default_backup_path(created).name
    if path.exists():
        raise BackupError(f"{path} already exists; choose a new name (a backup never overwrites one).")
    return path


def _backup_sqlite(url: str, staging: Path, progress: Progress) -> dict[str, Any]:
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
            tick = _Ticker(progress)
            src.backup(
                dst, pages=SQLITE_STEP_PAGES,
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


# MySQL/MariaDB ---------------------------------------------------------------------


_CREATE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)` \(")
_INSERT = re.compile(rb"^(?:INSERT(?: IGNORE)?|REPLACE) INTO `((?:[^`]|``)+)`(?: \([^)]*\))? VALUES ?")
_STRING = re.compile(rb"'(?:[^'\\]|\\.)*'", re.S)
_DONE = re.compile(rb"^-- Dump completed")


class DumpScanner:
    """Count the rows of every table in a mysqldump/mariadb-dump stream, line by line.

    The dump's ``INSERT INTO `t` VALUES (...),(...);`` statements hold one tuple per
    row (MariaDB puts each on its own line, MySQL all on one). Literals cannot hold a
    raw newline (the dump escapes it), so after removing the quoted strings of a line
    every remaining ``(`` opens one row.

    Attributes:
        counts (dict[str, int]): rows seen per table (tables without rows count 0).
        revisions (list[str]): the rows of ``alembic_version``.
        complete (bool): the dump's closing ``-- Dump completed`` line was seen.
    """

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.revisions: list[str] = []
        self.complete = False
        self._table: str | None = None

    def feed(self, line: bytes) -> None:
        """Account for one line of the dump.

        Args:
            line (bytes): the next line, with or without its newline.
        """
        if self._table is None:
            insert = _INSERT.match(line)
            if insert is None:
                create = _CREATE.match(line)
                if create:
                    self.counts.setdefault(self._name(create.group(1)), 0)
                elif _DONE.match(line):
                    self.complete = True
                return
            self._table = self._name(insert.group(1))
            self.counts.setdefault(self._table, 0)
            line = line[insert.end():]
        if self._table == "alembic_version":
            self.revisions += [s[1:-1].decode() for s in _STRING.findall(line)]
        bare = _STRING.sub(b"''", line).rstrip()
        self.counts[self._table] += bare.count(b"(")
        if bare.endswith(b";"):
            self._table = None

    @staticmethod
    def _name(raw: bytes) -> str:
        return raw.replace(b"``", b"`").decode()


@contextmanager
def _options_file(url: str) -> Iterator[Path]:
    """A private client option file with the URL's credentials (kept off the command line)."""
    parsed = make_url(url)
    query = parsed.query
    lines = ["[client]"]

    def put(key: str, value: Any) -> None:
        value = str(value).replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{key}="{value}"')

    if parsed.username:
        put("user", parsed.username)
    if parsed.password is not None:
        put("password", parsed.password)
    if query.get("unix_socket"):
        put("socket", query["unix_socket"])
    else:
        put("host", parsed.host or "127.0.0.1")
        put("port", parsed.port or 3306)
        lines.append("protocol=TCP")  # like PyMySQL: "localhost" means TCP, not the socket
    for ours, theirs in (("ssl_ca", "ssl-ca"), ("ssl_cert", "ssl-cert"), ("ssl_key", "ssl-key")):
        if query.get(ours):
            put(theirs, query[ours])
    folder = Path(tempfile.mkdtemp(prefix="portal-db-"))
    cnf = folder / "client.cnf"
    try:
        fd = os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        yield cnf
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _mysql_database(url: str) -> str:
    database = make_url(url).database
    if not database:
        raise BackupError("The database URL names no database (…/DATABASE at the end).")
    return database


def _mysql_server_version(url: str) -> str:
    engine = _short_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT VERSION()").scalar_one()
    except Exception as exc:
        raise BackupError(f"Cannot reach {_display_url(url)}: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()


def _tail(path: Path, limit: int = 2000) -> str:
    text_ = path.read_text(errors="replace").strip()
    return text_[-limit:] if text_ else "(no message)"


def _backup_mysql(url: str, staging: Path, progress: Progress) -> dict[str, Any]:
    database = _mysql_database(url)
    version = _mysql_server_version(url)
    tool = find_tool(*DUMP_TOOLS)
    if tool is None:
        raise BackupError(
            "Neither mariadb-dump nor mysqldump is installed: install the MariaDB client "
            "(apt-get install mariadb-client)."
        )
    tool_version = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.strip()
    dump_path = staging / MYSQL_FILE
    errors = staging / "dump.err"
    scanner = DumpScanner()
    digest = hashlib.sha256()
    tick = _Ticker(progress)
    written = 0
    progress(f"  {Path(tool).name} --single-transaction ({version})")
    with _options_file(url) as cnf, open(dump_path, "wb") as out, open(errors, "wb") as err:
        proc = subprocess.Popen(
            [tool, f"--defaults-extra-file={cnf}", "--single-transaction", "--routines",
             "--triggers", "--no-tablespaces", "--hex-blob", "--default-character-set=utf8mb4",
             "--comments", "--skip-dump-date", database],
            stdout=subprocess.PIPE, stderr=err,
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                digest.update(line)
                scanner.feed(line)
                written += len(line)
                tick(f"  dumped {_size(written)}, {sum(scanner.counts.values()):,} rows")
        finally:
            proc.stdout.close()
            code = proc.wait()
    if code != 0:
        raise BackupError(f"{Path(tool).name} failed (exit {code}): {_tail(errors)}")
    if not scanner.complete:
        raise BackupError(f"{Path(tool).name} stopped before the end of the dump: {_tail(errors)}")
    errors.unlink()
    progress(f"  dump: {_size(written)}, {len(scanner.counts)} tables, {sum(scanner.counts.values()):,} rows")
    return {
        "server_version": version,
        "tool": tool_version,
        "schema_revision": scanner.revisions[0] if len(scanner.revisions) == 1 else None,
        "row_counts": dict(sorted(scanner.counts.items())),
        "files": {MYSQL_FILE: {"sha256": digest.hexdigest(), "bytes": written}},
    }


# --------------------------------------------------------------------------- restore


def read_manifest(path: Path | str) -> dict[str, Any]:
    """Read and check the manifest of a backup directory.

    Args:
        path (Path | str): the backup directory.

    Returns:
        dict: the manifest.

    Raises:
        BackupError: no manifest, not JSON, or not a portal backup of a known format.
    """
    manifest_path = Path(path) / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{path} holds no {MANIFEST}: it is not a portal backup.") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{manifest_path} cannot be read: {exc}.") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{manifest_path} is not the manifest of a portal backup.")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path} uses backup format {manifest.get('format_version')!r}; this code reads "
            f"format {FORMAT_VERSION}. Restore it with the portal version that made it."
        )
    for key in ("backend", "schema_revision", "row_counts", "files"):
        if key not in manifest:
            raise BackupError(f"{manifest_path} lacks {key!r}.")
    return manifest


@contextmanager
def _opened(path: Path) -> Iterator[Path]:
    """The backup directory of ``path``, unpacking an archive into a temporary one."""
    if path.is_dir():
        yield path
        return
    if path.is_file() and path.name == MANIFEST:
        yield path.parent
        return
    if not path.is_file():
        raise BackupError(f"There is no backup at {path}.")
    with tempfile.TemporaryDirectory(prefix="portal-restore-") as tmp:
        try:
            with tarfile.open(path, "r:*") as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise BackupError(f"{path} is not a readable backup archive: {exc}.") from exc
        found = sorted(Path(tmp).rglob(MANIFEST))
        if not found:
            raise BackupError(f"The archive {path} holds no {MANIFEST}: it is not a portal backup.")
        yield found[0].parent


def check_revision(manifest: dict[str, Any], url: str) -> str:
    """Refuse a backup whose schema revision this code does not know.

    Args:
        manifest (dict): the backup's manifest.
        url (str): the target URL (only to find the migrations).

    Returns:
        str: the code's head revision.

    Raises:
        BackupError: the revision is missing, newer than the code, or otherwise unknown.
    """
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(schema.alembic_config(url))
    head = script.get_current_head()
    revision = manifest.get("schema_revision")
    known = False
    if revision:
        try:
            known = script.get_revision(revision) is not None
        except Exception:  # alembic raises CommandError / ResolutionError for unknown ids
            known = False
    if not known:
        made_by = manifest.get("portal_commit") or "unknown"
        raise BackupError(
            f"The backup is at schema revision {revision!r}, which this code does not know "
            f"(its newest revision is {head}). It was made by a newer or different portal "
            f"version (commit {made_by}): restore it with that version. Nothing was changed."
        )
    return head


def verify_files(folder: Path, manifest: dict[str, Any], progress: Progress = _quiet) -> None:
    """Check the size and SHA-256 of every data file listed in the manifest.

    Args:
        folder (Path): the backup directory.
        manifest (dict): its manifest.
        progress (Callable[[str], None]): receives a line per file.

    Raises:
        BackupError: a file is missing, has another size, or another checksum.
    """
    files = manifest["files"]
    if not isinstance(files, dict) or not files:
        raise BackupError("The manifest lists no data files.")
    for name, entry in files.items():
        if Path(name).name != name:
            raise BackupError(f"The manifest names a file outside the backup: {name!r}.")
        path = folder / name
        if not path.is_file():
            raise BackupError(f"{name} is missing from the backup.")
        progress(f"Verifying {name} ({_size(path.stat().st_size)})...")
        if path.stat().st_size != entry.get("bytes") or sha256_of(path) != entry.get("sha256"):
            raise BackupError(
                f"{name} does not match its checksum in the manifest: the backup is damaged "
                f"or was altered. Nothing was restored; use another backup."
            )


def restore(url: str, path: Path | str, *, progress: Progress = _quiet) -> RestoreReport:
    """Restore a backup into the empty database at ``url`` and verify it.

    Steps: read the manifest; refuse another backend, an unknown (newer) schema
    revision, or a target that already has tables; verify every checksum; load; compare
    the row count of every table with the manifest; upgrade an older schema to head.

    Args:
        url (str): SQLAlchemy URL of the target database, which must exist (MySQL) and
            hold no tables. An SQLite file that does not exist yet is created.
        path (Path | str): a backup directory, its manifest, or a ``.tar.gz`` archive.
        progress (Callable[[str], None]): receives progress lines.

    Returns:
        RestoreReport: the verified counts and whether the schema was upgraded.

    Raises:
        BackupError: refused (nothing was changed) or failed while loading or verifying
            (the target was emptied again); the message says which and why.
    """
    started = time.perf_counter()
    backend = backend_of(url)
    with _opened(Path(path)) as folder:
        manifest = read_manifest(folder)
        if manifest["backend"] != backend:
            raise BackupError(
                f"This is a {manifest['backend']} backup and the target is {backend}: restore "
                f"it into a {manifest['backend']} database (cross-backend restore is not supported)."
            )
        head = check_revision(manifest, url)
        expected = SQLITE_FILE if backend == "sqlite" else MYSQL_FILE
        if expected not in manifest["files"]:
            raise BackupError(f"The manifest does not list {expected}, the data file of a {backend} backup.")
        progress(f"Restoring {path} (revision {manifest['schema_revision']}, made "
                 f"{manifest.get('created_at')}) into {_display_url(url)}")
        if backend == "sqlite":
            _refuse_non_empty_sqlite(url)
            verify_files(folder, manifest, progress)
            counts = _restore_sqlite(url, folder, manifest, progress)
        else:
            _refuse_non_empty_mysql(url)
            verify_files(folder, manifest, progress)
            counts = _restore_mysql(url, folder, manifest, progress)
    upgraded_to = None
    if manifest["schema_revision"] != head:
        progress(f"Upgrading the schema from {manifest['schema_revision']} to {head}...")
        try:
            schema.upgrade(url)
        except Exception as exc:
            raise BackupError(
                f"The data was restored and verified at revision {manifest['schema_revision']}, "
                f"but upgrading it to {head} failed: {exc}. Fix the cause and run `python main.py migrate`."
            ) from exc
        upgraded_to = head
    return RestoreReport(manifest=manifest, counts=counts, upgraded_to=upgraded_to,
                         seconds=time.perf_counter() - started)


def _compare_counts(manifest: dict[str, Any], counts: dict[str, int]) -> None:
    expected = manifest["row_counts"]
    wrong = [
        f"{table}: {counts.get(table, 'missing')} instead of {want}"
        for table, want in sorted(expected.items()) if counts.get(table) != want
    ]
    extra = sorted(set(counts) - set(expected))
    if wrong or extra:
        detail = "; ".join(wrong + [f"{t}: not in the backup" for t in extra])
        raise BackupError(f"The restored rows do not match the manifest ({detail}).")


def _not_empty_message(url: str, tables: list[str]) -> str:
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    return (
        f"The target {_display_url(url)} is not empty ({len(tables)} tables: {shown}). "
        f"Restore only into an empty database: create a new one and point DATABASE_URL at it. "
        f"Nothing was changed."
    )


# SQLite ------------------------------------------------------------------------------


def _refuse_non_empty_sqlite(url: str) -> None:
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
        raise BackupError(_not_empty_message(url, tables))


def _restore_sqlite(url: str, folder: Path, manifest: dict[str, Any], progress: Progress) -> dict[str, int]:
    target = _sqlite_file(url)
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{(folder / SQLITE_FILE).resolve().as_uri()}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target, timeout=30, isolation_level=None)
        try:
            tick = _Ticker(progress)
            try:
                source.backup(
                    dst, pages=SQLITE_STEP_PAGES,
                    progress=lambda _status, remaining, total: tick(
                        f"  restored {total - remaining:,} of {total:,} pages"),
                )
                check = dst.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"The restored database fails SQLite's integrity check: {check}.")
                counts, _revision = _sqlite_counts(dst)
                _compare_counts(manifest, counts)
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


# MySQL/MariaDB ------------------------------------------------------------------------


def _mysql_tables(url: str) -> list[str]:
    engine = _short_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"
            )).scalars())
    except Exception as exc:
        orig = getattr(exc, "orig", exc)
        if getattr(orig, "args", (None,))[0] == 1049:
            raise BackupError(
                f"The database {_mysql_database(url)!r} does not exist: create it empty first, e.g. "
                f"CREATE DATABASE {_mysql_database(url)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            ) from exc
        raise BackupError(f"Cannot reach {_display_url(url)}: {orig}") from exc
    finally:
        engine.dispose()


def _refuse_non_empty_mysql(url: str) -> None:
    tables = _mysql_tables(url)
    if tables:
        raise BackupError(_not_empty_message(url, tables))


def _mysql_counts(url: str) -> dict[str, int]:
    engine = _short_engine(url)
    try:
        with engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            names = list(conn.execute(text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
            )).scalars())
            return {n: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {quote(n)}").scalar_one() for n in sorted(names)}
    finally:
        engine.dispose()


def _restore_mysql(url: str, folder: Path, manifest: dict[str, Any], progress: Progress) -> dict[str, int]:
    dump = folder / MYSQL_FILE
    try:
        client = find_tool(*CLIENT_TOOLS)
        if client:
            _load_with_client(url, client, dump, progress)
        else:
            progress("  no mariadb/mysql client found: loading the dump through PyMySQL")
            _load_with_pymysql(url, dump, progress)
        counts = _mysql_counts(url)
        _compare_counts(manifest, counts)
    except BaseException as exc:
        try:
            _wipe_mysql(url)
        except Exception:  # the server may be gone: say so instead of hiding the cause
            raise BackupError(
                f"Restoring failed ({exc}) and the target could not be emptied again: "
                f"drop and re-create {_mysql_database(url)} before another attempt."
            ) from exc
        if isinstance(exc, BackupError):
            raise BackupError(exc.message + " The target was emptied again.") from exc
        if isinstance(exc, Exception):
            raise BackupError(f"Restoring failed: {exc}. The target was emptied again.") from exc
        raise
    progress(f"  verified {len(counts)} tables, {sum(counts.values()):,} rows")
    return counts


def _load_with_client(url: str, client: str, dump: Path, progress: Progress) -> None:
    total = dump.stat().st_size
    tick = _Ticker(progress)
    progress(f"  loading with {Path(client).name}...")
    with _options_file(url) as cnf, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [client, f"--defaults-extra-file={cnf}", "--default-character-set=utf8mb4",
             "--batch", _mysql_database(url)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
        )
        assert proc.stdin is not None
        sent = 0
        try:
            with open(dump, "rb") as fh:
                while block := fh.read(1 << 20):
                    proc.stdin.write(block)
                    sent += len(block)
                    tick(f"  loaded {_size(sent)} of {_size(total)} ({100 * sent // max(total, 1)}%)")
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the client stopped early; its exit code and message tell why
        code = proc.wait()
        if code != 0:
            err.seek(0)
            message = err.read().decode(errors="replace").strip()[-2000:]
            raise BackupError(f"{Path(client).name} failed (exit {code}): {message or '(no message)'}")


def iter_dump_statements(lines: Iterator[bytes]) -> Iterator[str]:
    """Split a mysqldump/mariadb-dump file into statements (honouring ``DELIMITER``).

    Args:
        lines (Iterator[bytes]): the dump's lines.

    Yields:
        str: one SQL statement at a time, without its delimiter.
    """
    delimiter = b";"
    buffer: list[bytes] = []
    for line in lines:
        bare = line.rstrip(b"\r\n")
        if not buffer:
            stripped = bare.strip()
            if not stripped or stripped.startswith(b"--") or stripped.startswith(b"/*M!999999\\-"):
                continue  # blank, comment, or the client-only "sandbox mode" marker
            if stripped.upper().startswith(b"DELIMITER "):
                delimiter = stripped.split(None, 1)[1]
                continue
        buffer.append(line)
        if bare.rstrip().endswith(delimiter):
            statement = b"".join(buffer).rstrip()[: -len(delimiter)]
            buffer = []
            if statement.strip():
                yield statement.decode("utf-8")
    if b"".join(buffer).strip():
        yield b"".join(buffer).decode("utf-8")


def _load_with_pymysql(url: str, dump: Path, progress: Progress) -> None:
    engine = _short_engine(url)
    tick = _Ticker(progress)
    total = dump.stat().st_size
    try:
        raw = engine.raw_connection()
        try:
            driver = raw.driver_connection
            driver.autocommit(True)
            with driver.cursor() as cur, open(dump, "rb") as fh:
                for number, statement in enumerate(iter_dump_statements(iter(fh)), 1):
                    cur.execute(statement)
                    tick(f"  {number:,} statements, {100 * fh.tell() // max(total, 1)}% of the dump")
        finally:
            raw.close()
    finally:
        engine.dispose()


def _wipe_mysql(url: str) -> None:
    engine = _short_engine(url)
    try:
        with engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            rows = conn.execute(text(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE()"
            )).all()
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
            for name, kind in rows:
                conn.exec_driver_sql(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} IF EXISTS {quote(name)}")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
            conn.commit()
    finally:
        engine.dispose()
