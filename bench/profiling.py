"""Where the server's CPU goes during a burst: py-spy on its worker processes.

::

    with PySpy(server.worker_pids(), name="booking-rush") as spy:
        run_burst(...)
    print(spy.table())

py-spy samples each worker (``--nonblocking``, so the workers are never paused) while the
block runs and writes its raw collapsed stacks to ``bench/results/profile-<name>-<pid>.txt``
(``flamegraph.pl`` or speedscope draw them). :meth:`PySpy.table` sums them: the portal's own
functions and the libraries' ones by the share of samples in which they are on the stack.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.harness import ROOT, markdown_table, say

RESULTS = ROOT / "bench" / "results"
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
#: Where a frame's file is, named as in the tables.
_PLACES = (("/site-packages/", "lib"), ("/portal/", "portal"), ("/views/", "views"), ("/models/", "models"))


def _py_spy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


def frame_label(frame: str) -> str:
    """``module/function`` of a py-spy frame ``func (path/to/file.py:12)``: the file's path from
    the package on (``sqlalchemy/orm/session.py``, ``portal/services/booking.py``), no line."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("/site-packages/", "/work/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/work/":
                path = path.split("/", 1)[1] if "/" in path else path
            break
    return f"{path}:{match.group('func')}"


class PySpy:
    """py-spy ``record`` on some processes for the duration of a ``with`` block.

    Args:
        pids (list[int]): processes to sample (the server's workers).
        name (str): part of the output file names.
        rate (int): samples per second per process.

    Attributes:
        paths (list[Path]): the raw output files (after the block).
    """

    def __init__(self, pids: list[int], *, name: str, rate: int = 250):
        self.pids = pids
        self.name = name
        self.rate = rate
        self.paths: list[Path] = []
        self._procs: list[subprocess.Popen] = []

    def __enter__(self) -> "PySpy":
        RESULTS.mkdir(parents=True, exist_ok=True)
        for old in RESULTS.glob(f"profile-{self.name}-*.txt"):
            old.unlink()  # an earlier run's (other process ids)
        for pid in self.pids:
            path = RESULTS / f"profile-{self.name}-{pid}.txt"
            self.paths.append(path)
            self._procs.append(subprocess.Popen(
                [_py_spy(), "record", "--pid", str(pid), "--format", "raw", "--output", str(path),
                 "--rate", str(self.rate), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        say(f"  py-spy on worker(s) {', '.join(map(str, self.pids))} ({self.rate} samples/s)")
        return self

    def __exit__(self, *exc_info) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stacks(self) -> Counter:
        """Sample counts per collapsed stack, over every process."""
        counts: Counter = Counter()
        for path in self.paths:
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                stack, _, n = line.rpartition(" ")
                if stack and n.isdigit():
                    counts[stack] += int(n)
        return counts

    def inclusive(self) -> tuple[Counter, int]:
        """Samples in which each frame (:func:`frame_label`) is on the stack, and the total."""
        per_frame: Counter = Counter()
        total = 0
        for stack, n in self.stacks().items():
            total += n
            for label in {frame_label(f) for f in stack.split(";")}:
                per_frame[label] += n
        return per_frame, total

    def own(self) -> tuple[Counter, int]:
        """Samples in which each frame (:func:`frame_label`) is the innermost one, and the total."""
        per_frame: Counter = Counter()
        total = 0
        for stack, n in self.stacks().items():
            total += n
            per_frame[frame_label(stack.split(";")[-1])] += n
        return per_frame, total

    def table(self, *, top: int = 12) -> str:
        """Two Markdown tables: the portal's own functions (``portal/``, ``views/``) by the share
        of samples in which they are on the stack, and the innermost frames grouped by package
        (where the time is actually spent: SQLAlchemy, PyMySQL, the socket, Jinja2...)."""
        per_frame, total = self.inclusive()
        if not total:
            return "No samples were taken (py-spy could not attach?)."
        ours = [(f"`{label}`", f"{n / total:.0%}") for label, n in per_frame.most_common()
                if label.startswith(("portal/", "views/")) and not label.startswith("portal/cli.py")][:top]
        own, _ = self.own()
        packages: Counter = Counter()
        for label, n in own.items():
            packages[package_of(label)] += n
        spent = [(name, f"{n / total:.0%}") for name, n in packages.most_common(top)]
        return (markdown_table([f"portal code on the stack ({total:,} samples)", "share"], ours) + "\n\n"
                + markdown_table(["innermost frame in", "share"], spent))


def package_of(label: str) -> str:
    """The package of a :func:`frame_label` (``sqlalchemy``, ``portal``), or the standard
    library module for the interpreter's own files (``socket.py`` -> ``stdlib socket``)."""
    path = label.split(":", 1)[0]
    if "/" in path and not path.startswith("/"):
        return path.split("/", 1)[0]
    name = path.rsplit("/", 1)[-1].removesuffix(".py")
    return f"stdlib {name}" if name else label
