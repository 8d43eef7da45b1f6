"""What one request costs when nothing else is queued: wall time and CPU, one request at a time.

The race scenarios measure bursts, whose latencies are mostly queueing: they depend on how
busy the (shared) machine is. Requests sent one after the other show the cost of each kind of
request instead: its wall time, the CPU seconds the portal's workers spent on it and those
the MariaDB server spent meanwhile (from ``/proc/<pid>/stat``; MariaDB's figure includes
whatever else that server did at the time). ``cores x 1000 / (portal + MariaDB CPU ms)`` is
then the most such requests per second the machine could serve with nothing else running.

:class:`Browser` drives ``bench.race_flows`` with ``requests`` (Locust's own HTTP library).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.harness import markdown_table

MARIADB_PID_FILE = Path("/run/mysqld/mysqld.pid")


class Browser:
    """A cookie-keeping HTTP client for ``bench.race_flows`` that does not follow redirects.

    Args:
        base_url (str): the server, e.g. ``http://127.0.0.1:8000``.
    """

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session = requests.Session()

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET ``path``."""
        return self.session.get(self.base_url + path, allow_redirects=False, timeout=60, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        """POST ``path`` (``data=`` a form)."""
        return self.session.post(self.base_url + path, allow_redirects=False, timeout=60, **kwargs)

    def close(self) -> None:
        """Close its connections."""
        self.session.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0.0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mariadb_pid() -> int | None:
    """The local MariaDB server's process id, or None (another machine, or not readable)."""
    try:
        return int(MARIADB_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ServiceTime:
    """Per-request cost of one kind of request, sent one at a time.

    Attributes:
        label (str): what was requested.
        requests (int): how many.
        wall_ms (float): mean wall time per request (ms).
        portal_cpu_ms (float): mean CPU of the portal's workers per request (ms).
        db_cpu_ms (float | None): mean CPU of the MariaDB server meanwhile (ms), None when unknown.
    """

    label: str
    requests: int
    wall_ms: float
    portal_cpu_ms: float
    db_cpu_ms: float | None

    def most_per_second(self, cores: int) -> float:
        """Requests per second ``cores`` idle cores could serve at most (portal + MariaDB CPU)."""
        cpu = self.portal_cpu_ms + (self.db_cpu_ms or 0.0)
        return cores * 1000 / cpu if cpu else float("inf")


def measure(label: str, request: Callable[[int], Any], n: int, worker_pids: list[int]) -> ServiceTime:
    """Call ``request(i)`` for i in 0..n-1, one after the other; return the mean costs.

    Args:
        label (str): what is measured.
        request (Callable[[int], Any]): sends the i-th request and waits for its answer.
        n (int): how many requests.
        worker_pids (list[int]): the portal's worker processes.
    """
    db = mariadb_pid()
    portal0 = sum(cpu_seconds(p) for p in worker_pids)
    db0 = cpu_seconds(db) if db else 0.0
    started = time.perf_counter()
    for i in range(n):
        request(i)
    wall = time.perf_counter() - started
    portal = sum(cpu_seconds(p) for p in worker_pids) - portal0
    db_cpu = cpu_seconds(db) - db0 if db else None
    return ServiceTime(label, n, wall * 1000 / n, portal * 1000 / n, None if db_cpu is None else db_cpu * 1000 / n)


def table(times: list[ServiceTime], cores: int) -> str:
    """The measurements as a Markdown table, with the most per second ``cores`` cores could serve."""
    return markdown_table(
        ["request, one at a time", "requests", "wall ms", "portal CPU ms", "MariaDB CPU ms",
         f"most per s on {cores} idle cores"],
        [(t.label, f"{t.requests:,}", f"{t.wall_ms:,.1f}", f"{t.portal_cpu_ms:,.1f}",
          "?" if t.db_cpu_ms is None else f"{t.db_cpu_ms:,.1f}", f"{t.most_per_second(cores):,.0f}") for t in times])
