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

from portal.ops.backup._api import (
    ARCHIVE_SUFFIXES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    backup,
    check_revision,
    default_backup_path,
    read_manifest,
    restore,
    verify_files,
)
from portal.ops.backup._common import BackupError, BackupReport, RestoreReport, backend_of, find_tool, sha256_of
from portal.ops.backup._mysql import CLIENT_TOOLS, DUMP_TOOLS, MYSQL_FILE, DumpScanner, iter_dump_statements
from portal.ops.backup._sqlite import SQLITE_FILE

__all__ = [
    "ARCHIVE_SUFFIXES", "CLIENT_TOOLS", "DUMP_TOOLS", "FORMAT", "FORMAT_VERSION", "MANIFEST",
    "MYSQL_FILE", "SQLITE_FILE", "BackupError", "BackupReport", "DumpScanner", "RestoreReport",
    "backend_of", "backup", "check_revision", "default_backup_path", "find_tool",
    "iter_dump_statements", "read_manifest", "restore", "sha256_of", "verify_files",
]
