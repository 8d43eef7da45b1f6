"""Appending a benchmark run to ``docs/benchmarks.md``: heading, command, commit, machine, tables."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bench.harness.machine import ROOT, MachineInfo

BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"


def command_line(script: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The command that ran, as typed (``python bench/run.py --quick``).

    Args:
        script (str | None): the script's path relative to the repository; ``sys.argv[0]`` when omitted.
        argv (Sequence[str] | None): its arguments; ``sys.argv[1:]`` when omitted.
    """
    if script is None:
        try:
            script = str(Path(sys.argv[0]).resolve().relative_to(ROOT))
        except ValueError:
            script = sys.argv[0]
    args = list(sys.argv[1:] if argv is None else argv)
    return "python " + " ".join(shlex.quote(a) for a in [script, *args])


def section(title: str, *, command: str, machine: MachineInfo, facts: Sequence[str] = (), body: str = "") -> str:
    """A Markdown section for ``docs/benchmarks.md``.

    Args:
        title (str): heading (the date and time are appended).
        command (str): the command that ran (:func:`command_line`).
        machine (MachineInfo): collected at the start, :meth:`MachineInfo.finish` called at the end.
        facts (Sequence[str]): more bullet lines (data, workers, durations...).
        body (str): tables and notes.

    Returns:
        str: the section, starting with ``## `` and ending with a newline.
    """
    lines = [f"## {title}, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}", "",
             f"- command: `{command}`", f"- commit: `{machine.commit}`", f"- machine: {machine.line()}"]
    lines += [f"- {fact}" for fact in facts]
    return "\n".join(lines) + "\n\n" + body.strip() + "\n"


def append_section(text: str, path: Path = BENCHMARKS_MD) -> Path:
    """Append a section (see :func:`section`) to ``docs/benchmarks.md``, creating it when missing.

    Returns:
        Path: the file written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", encoding="utf-8") as fh:
        if new:
            fh.write("# Benchmarks\n\nAppended by the scripts in `bench/`; newest last.\n")
        fh.write("\n" + text)
    return path
