"""Facts about the machine, the database server and the code a benchmark ran on.

The machine is shared (other engineers run tests and benchmarks at the same time), so
every recorded figure comes with the load average before and after, the CPU, the
MariaDB version and buffer pool, and the git commit.
"""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_average() -> float | None:
    """The 1-minute load average, or None where the system does not tell."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` ("unknown CPU" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def git_commit() -> str:
    """The short commit id of the work tree, with ``+dirty`` when tracked files other than
    ``docs/benchmarks.md`` changed."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(  # the record itself (appended by the previous run) does not count
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/benchmarks.md"], cwd=ROOT,
            capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def database_facts(url: str) -> dict[str, str]:
    """MariaDB version, buffer pool size and the size of the database of ``url``.

    Args:
        url (str): SQLAlchemy URL of the benchmark database.

    Returns:
        dict[str, str]: ``version``, ``buffer_pool`` (e.g. "128 MB") and ``size`` (data and
        indexes, e.g. "226 MB"); empty when the server cannot be reached.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import DBAPIError

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.execute(text("SELECT VERSION()")).scalar_one()
            pool = int(conn.execute(text("SELECT @@innodb_buffer_pool_size")).scalar_one())
            size = conn.execute(text(
                "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                "WHERE table_schema = DATABASE()")).scalar_one()
    except DBAPIError:
        return {}
    finally:
        engine.dispose()
    return {"version": str(version), "buffer_pool": f"{pool // 2**20} MB", "size": f"{int(size or 0) // 2**20} MB"}


@dataclass
class MachineInfo:
    """What a benchmark ran on.

    Attributes:
        nproc (int): logical CPUs.
        cpu (str): CPU model.
        python (str): Python version.
        commit (str): short git commit (``+dirty`` with uncommitted changes).
        database (dict[str, str]): see :func:`database_facts`.
        load_before (float | None): 1-minute load average at the start.
        load_after (float | None): the same at the end (set by :meth:`finish`).
    """

    nproc: int
    cpu: str
    python: str
    commit: str
    database: dict[str, str] = field(default_factory=dict)
    load_before: float | None = None
    load_after: float | None = None

    @classmethod
    def collect(cls, database_url: str | None = None) -> "MachineInfo":
        """Collect the facts now (load average "before").

        Args:
            database_url (str | None): the benchmark database, for MariaDB's facts.
        """
        return cls(
            nproc=os.cpu_count() or 0, cpu=cpu_model(), python=platform.python_version(), commit=git_commit(),
            database=database_facts(database_url) if database_url else {}, load_before=load_average(),
        )

    def finish(self) -> None:
        """Record the load average at the end of the run."""
        self.load_after = load_average()

    def line(self) -> str:
        """One Markdown line: CPUs, CPU model, Python, MariaDB and the load averages."""
        def load(value: float | None) -> str:
            return "?" if value is None else f"{value:.1f}"

        parts = [f"nproc {self.nproc}, {self.cpu}, Python {self.python}"]
        if self.database:
            parts.append(f"MariaDB {self.database['version']}, buffer pool {self.database['buffer_pool']}, "
                         f"database {self.database['size']}")
        parts.append(f"load average {load(self.load_before)} at the start, {load(self.load_after)} at the end "
                     "(the machine is shared)")
        return "; ".join(parts)
