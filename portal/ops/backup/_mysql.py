"""MySQL/MariaDB: a ``--single-transaction`` dump, and its restore into an empty database."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from portal.ops.backup._common import (
    BackupError,
    Progress,
    Ticker,
    compare_counts,
    display_url,
    find_tool,
    not_empty_message,
    short_engine,
    size_text,
)

MYSQL_FILE = "dump.sql"
DUMP_TOOLS = ("mariadb-dump", "mysqldump")
CLIENT_TOOLS = ("mariadb", "mysql")

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
    engine = short_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT VERSION()").scalar_one()
    except Exception as exc:
        raise BackupError(f"Cannot reach {display_url(url)}: {getattr(exc, 'orig', exc)}") from exc
    finally:
        engine.dispose()


def _tail(path: Path, limit: int = 2000) -> str:
    text_ = path.read_text(errors="replace").strip()
    return text_[-limit:] if text_ else "(no message)"


def backup(url: str, staging: Path, progress: Progress) -> dict[str, Any]:
    """Dump the database of ``url`` with mariadb-dump/mysqldump ``--single-transaction``.

    The dump is hashed and its rows counted as it streams (:class:`DumpScanner`), so
    the counts describe the dump's own snapshot.

    Args:
        url (str): the source database.
        staging (Path): the unfinished backup directory to write the data file into.
        progress (Callable[[str], None]): receives progress lines.

    Returns:
        dict: ``server_version``, ``tool``, ``schema_revision``, ``row_counts`` and
        ``files`` (name -> sha256 and bytes) for the manifest, all read from the snapshot.

    Raises:
        BackupError: the database cannot be reached, the dump tool is missing, failed
            or stopped before the end of the dump.
    """
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
    tick = Ticker(progress)
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
                tick(f"  dumped {size_text(written)}, {sum(scanner.counts.values()):,} rows")
        finally:
            proc.stdout.close()
            code = proc.wait()
    if code != 0:
        raise BackupError(f"{Path(tool).name} failed (exit {code}): {_tail(errors)}")
    if not scanner.complete:
        raise BackupError(f"{Path(tool).name} stopped before the end of the dump: {_tail(errors)}")
    errors.unlink()
    progress(f"  dump: {size_text(written)}, {len(scanner.counts)} tables, {sum(scanner.counts.values()):,} rows")
    return {
        "server_version": version,
        "tool": tool_version,
        "schema_revision": scanner.revisions[0] if len(scanner.revisions) == 1 else None,
        "row_counts": dict(sorted(scanner.counts.items())),
        "files": {MYSQL_FILE: {"sha256": digest.hexdigest(), "bytes": written}},
    }


def _mysql_tables(url: str) -> list[str]:
    engine = short_engine(url)
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
        raise BackupError(f"Cannot reach {display_url(url)}: {orig}") from exc
    finally:
        engine.dispose()


def refuse_non_empty(url: str) -> None:
    """Refuse a MySQL/MariaDB target database that already holds tables.

    Args:
        url (str): the target database.

    Raises:
        BackupError: the target has tables, does not exist, or cannot be reached.
    """
    tables = _mysql_tables(url)
    if tables:
        raise BackupError(not_empty_message(url, tables))


def _mysql_counts(url: str) -> dict[str, int]:
    engine = short_engine(url)
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


def restore(url: str, folder: Path, manifest: dict[str, Any], progress: Progress) -> dict[str, int]:
    """Load the dump with the mariadb/mysql client (PyMySQL without one), then count rows.

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
    dump = folder / MYSQL_FILE
    try:
        client = find_tool(*CLIENT_TOOLS)
        if client:
            _load_with_client(url, client, dump, progress)
        else:
            progress("  no mariadb/mysql client found: loading the dump through PyMySQL")
            _load_with_pymysql(url, dump, progress)
        counts = _mysql_counts(url)
        compare_counts(manifest, counts)
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
    tick = Ticker(progress)
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
                    tick(f"  loaded {size_text(sent)} of {size_text(total)} ({100 * sent // max(total, 1)}%)")
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
    engine = short_engine(url)
    tick = Ticker(progress)
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
    engine = short_engine(url)
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
