"""The benchmark harness: database, server, load generators, machine facts and the record.

=============================  ==================================================================
``ensure_database(scale)``     MariaDB ``portal_bench`` (scale 100) migrated and seeded, reused
``PortalServer(db, workers)``  ``python main.py --workers N --port P`` until ``/_ping`` answers
``run_wrk(url, paths)``        wrk ``--latency`` over the paths, parsed into ``WrkResult``
``measure_with_ceiling(...)``  ``/_ping`` then the pages, the same way: ``Throughput`` (+ ratio)
``run_locust(file, url, ...)`` a headless locustfile, its CSV statistics parsed
``ServerProfile(server, name)``  py-spy on the server's workers, summarised (``--profile``)
``MachineInfo.collect(url)``   nproc, CPU, Python, MariaDB, buffer pool, load average, commit
``section`` / ``append_section``  a Markdown section appended to ``docs/benchmarks.md``
``BenchContext`` / ``ScenarioResult`` / ``Check``  the contract of ``bench/scenarios/*``
=============================  ==================================================================
"""

from bench.harness.console import markdown_table, say
from bench.harness.database import (
    BENCH_PASSWORD,
    BenchDatabase,
    default_database_name,
    ensure_database,
    row_counts,
    wait_until_settled,
)
from bench.harness.locust_run import LocustError, LocustResult, LocustStats, run_locust
from bench.harness.machine import ROOT, MachineInfo, git_commit, load_average
from bench.harness.profile import ProfileSummary, ServerProfile, summarize_collapsed
from bench.harness.record import BENCHMARKS_MD, append_section, command_line, section
from bench.harness.scenario import BenchContext, Check, ScenarioResult
from bench.harness.server import PortalServer, free_port
from bench.harness.wrk import (
    CEILING_PATH,
    Throughput,
    WrkError,
    WrkResult,
    measure_ceiling,
    measure_with_ceiling,
    parse_wrk_output,
    run_wrk,
)

__all__ = [
    "BENCH_PASSWORD", "BENCHMARKS_MD", "CEILING_PATH", "ROOT",
    "BenchContext", "BenchDatabase", "Check", "LocustError", "LocustResult", "LocustStats", "MachineInfo",
    "PortalServer", "ProfileSummary", "ScenarioResult", "ServerProfile", "Throughput", "WrkError", "WrkResult",
    "append_section", "command_line", "default_database_name", "ensure_database", "free_port", "git_commit",
    "load_average", "markdown_table", "measure_ceiling", "measure_with_ceiling", "parse_wrk_output", "row_counts",
    "run_locust", "run_wrk", "say", "section", "summarize_collapsed", "wait_until_settled",
]
