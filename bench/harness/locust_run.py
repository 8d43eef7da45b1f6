"""Scripted flows with Locust (headless), its CSV statistics parsed.

A scenario writes a locustfile (``bench/scenarios/<name>_locust.py``) and runs it with
:func:`run_locust`; Locust runs as its own process (gevent), so it does not share the
benchmark's interpreter. Statistics come from Locust's ``--csv`` files.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.console import say
from bench.harness.machine import ROOT


class LocustError(RuntimeError):
    """Locust failed or wrote no statistics."""


@dataclass
class LocustStats:
    """One row of Locust's statistics (one request name, or "Aggregated").

    Attributes:
        name (str): the request's name in the locustfile.
        method (str): HTTP method ("" for the aggregated row).
        requests (int): requests made.
        failures (int): requests that failed (status or the script's own check).
        rps (float): requests per second.
        percentiles_ms (dict[str, float]): "50%", "90%", "99%"... in milliseconds.
        avg_ms (float): mean response time (ms).
        max_ms (float): slowest response (ms).
    """

    name: str
    method: str
    requests: int
    failures: int
    rps: float
    percentiles_ms: dict[str, float] = field(default_factory=dict)
    avg_ms: float = 0.0
    max_ms: float = 0.0

    @property
    def p50(self) -> float:
        """Median (ms)."""
        return self.percentiles_ms.get("50%", float("nan"))

    @property
    def p90(self) -> float:
        """90th percentile (ms)."""
        return self.percentiles_ms.get("90%", float("nan"))

    @property
    def p99(self) -> float:
        """99th percentile (ms)."""
        return self.percentiles_ms.get("99%", float("nan"))


@dataclass
class LocustResult:
    """What a Locust run measured.

    Attributes:
        stats (dict[str, LocustStats]): per request name; the total is under "Aggregated".
        failures (list[dict[str, str]]): Locust's failure rows (method, name, error, occurrences).
        exit_code (int): Locust's exit status (1 when any request failed).
        output (str): Locust's console output.
    """

    stats: dict[str, LocustStats]
    failures: list[dict[str, str]]
    exit_code: int
    output: str

    @property
    def total(self) -> LocustStats:
        """The aggregated row."""
        return self.stats["Aggregated"]


def _float(value: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def parse_locust_stats(path: Path) -> dict[str, LocustStats]:
    """Read Locust's ``<prefix>_stats.csv``.

    Returns:
        dict[str, LocustStats]: per request name, plus "Aggregated".
    """
    out = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            pct = {k: _float(v) for k, v in row.items() if k and k.endswith("%")}
            out[row["Name"]] = LocustStats(
                name=row["Name"], method=row.get("Type") or "", requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]), rps=_float(row["Requests/s"]), percentiles_ms=pct,
                avg_ms=_float(row["Average Response Time"]), max_ms=_float(row["Max Response Time"]))
    return out


def run_locust(locustfile: Path | str, base_url: str, *, users: int, spawn_rate: float, seconds: float,
               env: dict[str, str] | None = None, extra_args: list[str] | None = None) -> LocustResult:
    """Run a locustfile headless against ``base_url``.

    Args:
        locustfile (Path | str): the scenario's locustfile.
        base_url (str): ``--host``.
        users (int): simulated users (``-u``).
        spawn_rate (float): users started per second (``-r``).
        seconds (float): run time (``-t``), from the first user on.
        env (dict[str, str] | None): extra environment for the locustfile (e.g. a password, ids).
        extra_args (list[str] | None): more Locust options.

    Returns:
        LocustResult: statistics per request name and the failures.

    Raises:
        LocustError: Locust wrote no statistics (it failed to start; its output is in the message).
    """
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "locust"
        cmd = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "--host", base_url,
               "-u", str(users), "-r", str(spawn_rate), "-t", f"{max(1, round(seconds))}s", "--csv", str(prefix),
               "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10", *(extra_args or [])]
        say(f"  locust {Path(locustfile).name}: {users} users, {max(1, round(seconds))} s...")
        proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                              timeout=seconds + 180)
        stats_file = Path(f"{prefix}_stats.csv")
        if not stats_file.exists():
            raise LocustError(f"Locust wrote no statistics ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        stats = parse_locust_stats(stats_file)
        failures_file = Path(f"{prefix}_failures.csv")
        failures = list(csv.DictReader(failures_file.open(newline="", encoding="utf-8"))) \
            if failures_file.exists() else []
    result = LocustResult(stats=stats, failures=failures, exit_code=proc.returncode,
                          output=proc.stdout + proc.stderr)
    if "Aggregated" in stats:
        t = stats["Aggregated"]
        say(f"    {t.rps:,.0f} req/s, p50 {t.p50:,.0f} ms, p99 {t.p99:,.0f} ms, {t.requests:,} requests, "
            f"{t.failures:,} failures")
    return result
