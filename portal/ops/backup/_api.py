"""The backup and restore procedures: manifest, staging, archive, checks, backend dispatch."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portal.core import clock, schema
from portal.ops.backup import _mysql, _sqlite
from portal.ops.backup._common import (
    BackupError,
    BackupReport,
    Progress,
    RestoreReport,
    backend_of,
    display_url,
    portal_commit,
    quiet,
    sha256_of,
    size_text,
    utc_iso,
)
from portal.ops.backup._mysql import MYSQL_FILE
from portal.ops.backup._sqlite import SQLITE_FILE

MANIFEST = "manifest.json"
FORMAT = "hospital-portal-backup"
FORMAT_VERSION = 1
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def default_backup_path(now: datetime | None = None) -> Path:
    """The default place of a backup: ``backups/portal-<UTC timestamp>``.

    Args:
        now (datetime | None): the moment to name it after (default: now).

    Returns:
        Path: relative to the working directory, e.g. ``backups/portal-20261121T021500Z``.
    """
    now = now or clock.now()
    return Path("backups") / f"portal-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def backup(url: str, path: Path | str | None = None, *, progress: Progress = quiet) -> BackupReport:
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
    created = clock.now()
    backend = backend_of(url)
    final = _backup_target(Path(path) if path is not None else None, created)
    archive = final.name.endswith(ARCHIVE_SUFFIXES)
    final.parent.mkdir(parents=True, exist_ok=True)
    progress(f"Backing up {display_url(url)} to {final}")

    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        if backend == "sqlite":
            snapshot = _sqlite.backup(url, staging, progress)
        else:
            snapshot = _mysql.backup(url, staging, progress)
        if not snapshot["schema_revision"]:
            raise BackupError(
                "The database has no schema revision (alembic_version is missing or empty): "
                "it is not a migrated portal database, so there is nothing to back up."
            )
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": utc_iso(created),
            "finished_at": utc_iso(clock.now()),
            "backend": backend,
            "source": display_url(url),
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


def verify_files(folder: Path, manifest: dict[str, Any], progress: Progress = quiet) -> None:
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
        progress(f"Verifying {name} ({size_text(path.stat().st_size)})...")
        if path.stat().st_size != entry.get("bytes") or sha256_of(path) != entry.get("sha256"):
            raise BackupError(
                f"{name} does not match its checksum in the manifest: the backup is damaged "
                f"or was altered. Nothing was restored; use another backup."
            )


def restore(url: str, path: Path | str, *, progress: Progress = quiet) -> RestoreReport:
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
                 f"{manifest.get('created_at')}) into {display_url(url)}")
        if backend == "sqlite":
            _sqlite.refuse_non_empty(url)
            verify_files(folder, manifest, progress)
            counts = _sqlite.restore(url, folder, manifest, progress)
        else:
            _mysql.refuse_non_empty(url)
            verify_files(folder, manifest, progress)
            counts = _mysql.restore(url, folder, manifest, progress)
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
