"""Plain-GET load with wrk (Debian's ``wrk``), its output parsed, and the ceiling of the same server.

wrk is run with ``--latency``; several paths are spread over the requests round-robin by a
small Lua script (each wrk thread starts at a different offset). What wrk prints is parsed
into a :class:`WrkResult`. Because the machine is shared and noisy, a throughput figure is
reported with the same run's *ceiling*: ``/_ping`` of the same server, a route that returns
a constant, measured the same way right before (:func:`measure_with_ceiling`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.console import say

CEILING_PATH = "/_ping"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed something that could not be parsed."""


@dataclass
class WrkResult:
    """What one wrk run measured.

    Attributes:
        requests (int): requests completed.
        seconds (float): length of the run (s).
        rps (float): requests per second (wrk's "Requests/sec").
        latency_ms (dict[int, float]): latency percentiles in milliseconds (50, 75, 90, 99).
        latency_avg_ms (float): mean latency (ms).
        latency_max_ms (float): highest latency (ms).
        socket_errors (dict[str, int]): connect, read, write and timeout errors.
        non_2xx (int): responses with a status outside 2xx and 3xx.
        connections (int): concurrent connections.
        threads (int): wrk threads.
        paths (list[str]): the paths requested.
        raw (str): wrk's output.
    """

    requests: int
    seconds: float
    rps: float
    latency_ms: dict[int, float]
    latency_avg_ms: float
    latency_max_ms: float
    socket_errors: dict[str, int] = field(default_factory=dict)
    non_2xx: int = 0
    connections: int = 0
    threads: int = 0
    paths: list[str] = field(default_factory=list)
    raw: str = ""

    @property
    def p50(self) -> float:
        """Median latency (ms)."""
        return self.latency_ms[50]

    @property
    def p90(self) -> float:
        """90th percentile latency (ms)."""
        return self.latency_ms[90]

    @property
    def p99(self) -> float:
        """99th percentile latency (ms)."""
        return self.latency_ms[99]

    @property
    def errors(self) -> int:
        """Socket errors plus non-2xx/3xx responses."""
        return sum(self.socket_errors.values()) + self.non_2xx

    def line(self) -> str:
        """One progress line: rate, percentiles, errors."""
        return (f"{self.rps:,.0f} req/s, p50 {self.p50:,.1f} ms, p90 {self.p90:,.1f} ms, p99 {self.p99:,.1f} ms, "
                f"{self.requests:,} requests, {self.errors:,} errors")


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse_wrk_output(text: str) -> WrkResult:
    """Parse what ``wrk --latency`` printed.

    Args:
        text (str): wrk's standard output.

    Returns:
        WrkResult: the figures (``connections``, ``threads`` and ``paths`` left empty).

    Raises:
        WrkError: a line wrk always prints is missing (the run failed).
    """
    num = r"([\d.]+)(us|ms|s|m|h)"
    summary = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    lat = re.search(rf"Latency\s+{num}\s+{num}\s+{num}", text)
    if not (summary and rate and lat):
        raise WrkError("could not parse wrk's output:\n" + text)
    percentiles = {int(p): _ms(v, u) for p, v, u in re.findall(rf"^\s+(\d+)%\s+{num}\s*$", text, re.M)}
    for p in (50, 75, 90, 99):
        percentiles.setdefault(p, float("nan"))
    errors = {}
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors = dict(zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(summary.group(1)), seconds=_ms(summary.group(2), summary.group(3)) / 1000,
        rps=float(rate.group(1)), latency_ms=percentiles, latency_avg_ms=_ms(lat.group(1), lat.group(2)),
        latency_max_ms=_ms(lat.group(5), lat.group(6)), socket_errors=errors,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0, raw=text,
    )


def _lua_paths(paths: Sequence[str]) -> str:
    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return (
        f"local paths = {{{', '.join(q(p) for p in paths)}}}\n"
        "local counter = 0\n"
        "function setup(thread)\n  thread:set('offset', counter)\n  counter = counter + 7\nend\n"
        "local i = 0\n"
        "local requests = {}\n"
        "function init(args)\n  for k, p in ipairs(paths) do requests[k] = wrk.format('GET', p) end\n"
        "  i = (offset or 0) % #paths\nend\n"
        "function request()\n  i = i % #paths + 1\n  return requests[i]\nend\n"
    )


def run_wrk(base_url: str, paths: Sequence[str], *, connections: int = 50, threads: int = 2, seconds: float = 10,
            headers: dict[str, str] | None = None, timeout_seconds: float = 10, script: str | None = None,
            label: str | None = None) -> WrkResult:
    """Run wrk against ``base_url`` and return its figures.

    Args:
        base_url (str): ``http://host:port``.
        paths (Sequence[str]): the paths requested, round-robin (one path: wrk requests only it).
        connections (int): concurrent connections (``-c``).
        threads (int): wrk threads (``-t``; at most ``connections``).
        seconds (float): duration (``-d``, whole seconds, at least 1).
        headers (dict[str, str] | None): request headers, e.g. ``{"Cookie": ...}``.
        timeout_seconds (float): a request slower than this counts as a timeout error (``--timeout``).
        script (str | None): a Lua script of your own instead (then ``paths`` only names the first URL).
        label (str | None): shown in the progress line.

    Returns:
        WrkResult: the parsed figures.

    Raises:
        WrkError: wrk is not installed, failed, or printed nothing parsable.
    """
    if not paths:
        raise ValueError("run_wrk needs at least one path")
    wrk = shutil.which("wrk")
    if wrk is None:
        raise WrkError("wrk is not installed (Debian: apt-get install wrk)")
    headers = headers or {}
    threads = max(1, min(threads, connections))
    lua = script if script is not None else (_lua_paths(paths) if len(paths) > 1 else None)
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
           f"--timeout={max(1, round(timeout_seconds))}s"]
    with tempfile.TemporaryDirectory() as tmp:
        if lua is not None:
            script_path = Path(tmp) / "paths.lua"
            script_path.write_text(lua)
            cmd += ["-s", str(script_path)]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(base_url + paths[0])
        say(f"  wrk {label or ' '.join(paths[:3]) + (' ...' if len(paths) > 3 else '')}: "
            f"{connections} connections, {threads} threads, {max(1, round(seconds))} s...")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + timeout_seconds + 60)
    if proc.returncode != 0:
        raise WrkError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    result = parse_wrk_output(proc.stdout)
    result.connections, result.threads, result.paths = connections, threads, list(paths)
    say(f"    {result.line()}")
    return result


@dataclass
class Throughput:
    """A page's figures next to the ceiling measured on the same server right before.

    Attributes:
        name (str): what was measured.
        result (WrkResult): the pages.
        ceiling (WrkResult): ``/_ping`` on the same server, same connections, threads and duration.
    """

    name: str
    result: WrkResult
    ceiling: WrkResult

    @property
    def ratio(self) -> float:
        """The pages' rate as a fraction of the ceiling's (0.06 = 6 %)."""
        return self.result.rps / self.ceiling.rps if self.ceiling.rps else 0.0


def measure_ceiling(base_url: str, *, connections: int = 50, threads: int = 2, seconds: float = 10,
                    headers: dict[str, str] | None = None) -> WrkResult:
    """wrk on ``/_ping`` (a constant answer) of the server: the most it can serve right now."""
    return run_wrk(base_url, [CEILING_PATH], connections=connections, threads=threads, seconds=seconds,
                   headers=headers, label=f"ceiling {CEILING_PATH}")


def measure_with_ceiling(name: str, base_url: str, paths: Sequence[str], *, connections: int = 50, threads: int = 2,
                         seconds: float = 10, headers: dict[str, str] | None = None,
                         warmup_seconds: float = 0) -> Throughput:
    """Measure the ceiling, then ``paths``, the same way, one right after the other.

    Args:
        name (str): what is measured (for tables).
        base_url (str): the server.
        paths (Sequence[str]): pages, round-robin.
        connections (int): concurrent connections for both runs.
        threads (int): wrk threads for both runs.
        seconds (float): duration of each measured run.
        headers (dict[str, str] | None): request headers for the pages (e.g. a staff cookie).
        warmup_seconds (float): an unmeasured run of ``paths`` first (fills caches and pools).

    Returns:
        Throughput: the pages' result with the ceiling.
    """
    if warmup_seconds:
        run_wrk(base_url, paths, connections=connections, threads=threads, seconds=warmup_seconds, headers=headers,
                label=f"{name} (warm-up, not measured)")
    ceiling = measure_ceiling(base_url, connections=connections, threads=threads, seconds=seconds)
    result = run_wrk(base_url, paths, connections=connections, threads=threads, seconds=seconds, headers=headers,
                     label=name)
    return Throughput(name=name, result=result, ceiling=ceiling)
