"""What backup and restore share: errors, reports, progress, checksums, small helpers."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, Engine, make_url

from portal.core import schema

#: Seconds between two progress lines of a long step.
PROGRESS_EVERY = 2.0

Progress = Callable[[str], None]


def quiet(_message: str) -> None:
    """A progress callback that shows nothing (the default of the library functions)."""


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


class Ticker:
    """Pass a progress line on at most every ``PROGRESS_EVERY`` seconds.

    Args:
        progress (Callable[[str], None]): where lines go.
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = time.monotonic()

    def __call__(self, message: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= PROGRESS_EVERY:
            self.last = now
            self.progress(message)


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


def utc_iso(moment: datetime) -> str:
    """``moment`` in UTC as ``2026-11-21T02:15:00Z``."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def size_text(num: int) -> str:
    """A byte count for people: ``812 bytes``, ``3.0 MiB``."""
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


def display_url(url: str) -> str:
    """``url`` with its password masked, fit for progress lines and manifests."""
    return make_url(url).render_as_string(hide_password=True)


def short_engine(url: str) -> Engine:
    """A one-connection engine with the portal's settings; the caller disposes of it."""
    from portal.core.db import build_engine

    return build_engine(url, pool_size=1)


def compare_counts(manifest: dict[str, Any], counts: dict[str, int]) -> None:
    """Check restored row counts against the manifest.

    Args:
        manifest (dict): the backup's manifest (``row_counts``).
        counts (dict[str, int]): rows per table found in the target.

    Raises:
        BackupError: a table has another count, is missing, or is not in the backup.
    """
    expected = manifest["row_counts"]
    wrong = [
        f"{table}: {counts.get(table, 'missing')} instead of {want}"
        for table, want in sorted(expected.items()) if counts.get(table) != want
    ]
    extra = sorted(set(counts) - set(expected))
    if wrong or extra:
        detail = "; ".join(wrong + [f"{t}: not in the backup" for t in extra])
        raise BackupError(f"The restored rows do not match the manifest ({detail}).")


def not_empty_message(url: str, tables: list[str]) -> str:
    """The refusal for a target that already has ``tables``."""
    shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
    return (
        f"The target {display_url(url)} is not empty ({len(tables)} tables: {shown}). "
        f"Restore only into an empty database: create a new one and point DATABASE_URL at it. "
        f"Nothing was changed."
    )
