"""Run the portal's benchmarks against a real server on MariaDB and record them.

    python bench/run.py                   # every scenario, scale 100 (make bench)
    python bench/run.py --quick           # smaller hospital, shorter runs: about two minutes
    python bench/run.py --only browsing,reports --reseed
    python bench/run.py --list

Each scenario is a module of ``bench/scenarios/`` (see :mod:`bench.harness.scenario`). The run
prepares the MariaDB database once (``bench.harness.ensure_database``: migrated, seeded with
``main.py seed --scale N`` or reused), runs the scenarios in the issue's order, prints a
summary table and appends everything, with the command, the commit and the machine, to
``docs/benchmarks.md``. The exit status is 1 when a full run misses a target (a quick run
only reports: its hospital is smaller and its runs short, so its figures are indicative).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import shutil
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import scenarios  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchContext,
    Check,
    MachineInfo,
    ScenarioResult,
    append_section,
    command_line,
    ensure_database,
    markdown_table,
    say,
    section,
)

FULL_SCALE, QUICK_SCALE = 100, 5
FULL_SECONDS, QUICK_SECONDS = 15, 4


def discover() -> list[ModuleType]:
    """The scenario modules of ``bench/scenarios/``, by scenario number."""
    found = []
    for info in pkgutil.iter_modules(scenarios.__path__):
        if info.name.startswith("_") or info.name.endswith("_locust"):
            continue
        module = importlib.import_module(f"bench.scenarios.{info.name}")
        if all(hasattr(module, a) for a in ("NUMBER", "NAME", "TITLE", "run")):
            found.append(module)
    return sorted(found, key=lambda m: (m.NUMBER, m.NAME))


def parse_args(argv: list[str] | None, modules: list[ModuleType]) -> argparse.Namespace:
    """The command line (``modules``: the scenarios found, for ``--only`` and their own options)."""
    names = [m.NAME for m in modules]
    p = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help=f"scale {QUICK_SCALE} and {QUICK_SECONDS} s load runs (about two minutes)")
    p.add_argument("--only", default="", help=f"comma-separated scenarios to run ({', '.join(names)})")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--scale", type=int, default=None,
                   help=f"seed size ({FULL_SCALE}; {QUICK_SCALE} with --quick)")
    p.add_argument("--db", default=None, help="MariaDB database (portal_bench for scale 100, else portal_bench_sN)")
    p.add_argument("--reseed", action="store_true", help="drop the database and seed it again")
    p.add_argument("--workers", type=int, default=2, help="uvicorn workers of the servers started (2)")
    p.add_argument("--seconds", type=float, default=None,
                   help=f"length of each measured load run ({FULL_SECONDS}; {QUICK_SECONDS} with --quick)")
    p.add_argument("--connections", type=int, default=50, help="concurrent connections of the load runs (50)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    p.add_argument("--profile", action="store_true",
                   help="sample the servers with py-spy during the measured runs; the summary is recorded")
    p.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    for module in modules:  # a scenario may add its own options (``add_arguments(parser)``)
        if hasattr(module, "add_arguments"):
            module.add_arguments(p.add_argument_group(f"scenario {module.NAME}"))
    args = p.parse_args(argv)
    unknown = [n for n in args.only.split(",") if n and n not in names]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(names)}")
    return args


def main(argv: list[str] | None = None, *, command: str | None = None) -> int:
    """Run the benchmarks; return the exit status.

    Args:
        argv (list[str] | None): the options (``sys.argv[1:]`` when omitted).
        command (str | None): the command line to record; the one that ran when omitted.
    """
    modules = discover()
    args = parse_args(argv, modules)
    if args.list:
        for m in modules:
            print(f"{m.NUMBER}. {m.NAME:<20} {m.TITLE}")
        return 0
    chosen = [m for m in modules if not args.only or m.NAME in args.only.split(",")]
    scale = args.scale or (QUICK_SCALE if args.quick else FULL_SCALE)
    seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    started = time.monotonic()
    say(f"Benchmarks ({'quick' if args.quick else 'full'}): {', '.join(m.NAME for m in chosen)}; "
        f"scale {scale}, {seconds:g} s per load run")

    if not shutil.which("wrk"):
        say("wrk is not installed: `make bench` installs it (apt-get install wrk), or install it yourself.")
        return 2
    db = ensure_database(scale, name=args.db, reseed=args.reseed, settle_seconds=20 if args.quick else 120)
    machine = MachineInfo.collect(db.url)
    say(f"Machine: {machine.line()}")
    ctx = BenchContext(db=db, machine=machine, quick=args.quick, seconds=seconds, connections=args.connections,
                       threads=args.threads, workers=args.workers, args=args, profile=args.profile)
    results: list[tuple[ModuleType, ScenarioResult]] = []
    for i, module in enumerate(chosen, start=1):
        say(f"\n[{i}/{len(chosen)}] Scenario {module.NUMBER}: {module.TITLE}")
        t0 = time.monotonic()
        try:
            result = module.run(ctx)
        except (Exception, SystemExit) as exc:  # one failing scenario must not lose the others' figures
            traceback.print_exc()
            result = ScenarioResult(body=f"The scenario failed: `{type(exc).__name__}: {exc}`.",
                                    checks=[Check("runs to the end", "failed", False)])
        say(f"  scenario {module.NAME} took {time.monotonic() - t0:.0f} s")
        results.append((module, result))
    machine.finish()

    summary_rows = [(f"{m.NUMBER}. {m.TITLE}", c.target, c.measured, "yes" if c.met else "**no**")
                    for m, r in results for c in r.checks]
    summary = markdown_table(["scenario", "target", "measured", "met"], summary_rows, align="lllc")
    body = "\n\n".join(
        f"### {m.NUMBER}. {m.TITLE}\n\n" + "".join(f"- {f}\n" for f in r.facts) + ("\n" if r.facts else "")
        + r.body.strip() for m, r in results)
    text = section(
        f"Benchmark run ({'quick' if args.quick else 'full'})", command=command or command_line(argv=argv), machine=machine,
        facts=[f"data: `main.py seed --scale {scale}` in MariaDB `{db.name}` ({db.counts_line()})",
               f"load: {args.connections} connections, {args.threads} wrk threads, {seconds:g} s per run; "
               f"servers with {args.workers} uvicorn worker(s) unless a scenario says otherwise"],
        body=body + "\n\n### Summary\n\n" + summary)
    print("\n" + text)
    if not args.no_record:
        path = append_section(text)
        say(f"Appended to {path}.")
    missed = [row for row in summary_rows if row[3] != "yes"]
    say(f"\nSummary: {len(summary_rows) - len(missed)} of {len(summary_rows)} targets met in "
        f"{time.monotonic() - started:.0f} s" + (f"; missed: {'; '.join(f'{r[0]}: {r[1]} ({r[2]})' for r in missed)}"
                                                  if missed else "."))
    print(summary)
    failed = [m for m, r in results if any(c.measured == "failed" for c in r.checks)]
    return 1 if failed or (missed and not args.quick) else 0


if __name__ == "__main__":
    sys.exit(main())
