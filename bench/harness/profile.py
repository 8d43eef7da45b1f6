"""Sampling profiles of a running server with py-spy, summarised as the functions that dominated.

    with ServerProfile(server, "browsing") as prof:
        run_wrk(...)
    print(prof.summary_markdown())

py-spy samples every worker process of the server (``--nonblocking``: the workers are not
paused, so the load's figures stay close to an unprofiled run) and writes collapsed stacks
to ``bench/results/profile-<name>-<pid>.txt`` (open them with any flame graph viewer,
e.g. speedscope or ``flamegraph.pl``).
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.harness.console import markdown_table, say
from bench.harness.server import LOG_DIR, PortalServer

_LOCATION = re.compile(r" \((?P<file>[^():]+?)(?::\d+)?\)$")
#: Frames on nearly every stack (process start, event loop, thread pool): left out of the
#: inclusive list so that it shows what the requests spent their time on.
PLUMBING = ("multiprocessing/", "asyncio/runners.py", "asyncio/base_events.py", "asyncio/events.py",
            "uvicorn/_compat.py", "uvicorn/_subprocess.py", "uvicorn/server.py", "uvicorn/main.py",
            "supervisors/", "threading.py", "<module>", "uvloop/", "anyio/_backends/", "portal/cli.py",
            "main (main.py)")


@dataclass
class ProfileSummary:
    """Where the sampled time went.

    Attributes:
        samples (int): stack samples taken (all processes).
        inclusive (list[tuple[str, float]]): (function, share of samples with it on the stack).
        own (list[tuple[str, float]]): (function, share of samples with it on top).
    """

    samples: int
    inclusive: list[tuple[str, float]]
    own: list[tuple[str, float]]


def _short(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)`` with the last two path parts."""
    m = _LOCATION.search(frame)
    if not m:
        return frame
    parts = m.group("file").split("/")
    return frame[: m.start()] + f" ({'/'.join(parts[-2:])})"


def summarize_collapsed(paths: list[Path], top: int = 20) -> ProfileSummary:
    """Summarise py-spy's raw (collapsed stack) files.

    Args:
        paths (list[Path]): files written by ``py-spy record -f raw``.
        top (int): functions kept in each list.

    Returns:
        ProfileSummary: the most frequent functions, inclusive and own.
    """
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            raw = stack.split(";")
            frames = [_short(f) for f in raw]
            for f in {_short(f) for f in raw if not any(p in f for p in PLUMBING)}:
                inclusive[f] += n
            own[frames[-1]] += n
    if not total:
        return ProfileSummary(0, [], [])
    return ProfileSummary(total, [(f, n / total) for f, n in inclusive.most_common(top)],
                          [(f, n / total) for f, n in own.most_common(top)])


class ServerProfile:
    """py-spy on every worker of ``server`` while the ``with`` block runs.

    Args:
        server (PortalServer): a started server.
        name (str): part of the output file names.
        rate (int): samples per second per process.

    Attributes:
        paths (list[Path]): the collapsed-stack files written.
        summary (ProfileSummary | None): set on exit.
    """

    def __init__(self, server: PortalServer, name: str, rate: int = 100) -> None:
        self.server, self.name, self.rate = server, name, rate
        self.paths: list[Path] = []
        self.summary: ProfileSummary | None = None
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "ServerProfile":
        beside = Path(sys.executable).parent / "py-spy"  # the venv's, when its bin/ is not on PATH
        spy = shutil.which("py-spy") or (str(beside) if beside.exists() else None)
        if spy is None:
            raise SystemExit("py-spy is not installed: pip install -r requirements-bench.txt")
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        for pid in self.server.worker_pids():
            path = LOG_DIR / f"profile-{self.name}-{pid}.txt"
            self.paths.append(path)
            self._procs.append(subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--rate", str(self.rate), "--format", "raw", "--nonblocking",
                 "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        say(f"  profiling {len(self._procs)} worker(s) with py-spy ({self.rate} samples/s)...")
        return self

    def __exit__(self, *exc_info) -> None:
        for proc in self._procs:  # SIGINT: py-spy stops sampling and writes its file
            proc.send_signal(signal.SIGINT)
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.summary = summarize_collapsed(self.paths)

    def summary_markdown(self, top: int = 12) -> str:
        """Two tables: functions by inclusive share, and by own (on-CPU at the top) share."""
        s = self.summary
        if s is None or not s.samples:
            return "(no profile samples)"
        inclusive = markdown_table(["function (inclusive)", "share of samples"],
                                   [(f"`{f}`", f"{share:.0%}") for f, share in s.inclusive[:top]])
        own = markdown_table(["function (own time)", "share of samples"],
                             [(f"`{f}`", f"{share:.0%}") for f, share in s.own[:top]])
        files = ", ".join(f"`{p.relative_to(LOG_DIR.parent.parent)}`" for p in self.paths)
        return f"py-spy, {s.samples:,} samples ({files}):\n\n{inclusive}\n\n{own}"
