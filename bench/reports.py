"""Time the dashboards and the report pages: scenario 5 of the benchmarks, run alone.

    python bench/reports.py                       # = python bench/run.py --only reports
    python bench/reports.py --reseed --report-requests 30
    python bench/reports.py --no-record           # print only

The scenario is :mod:`bench.scenarios.reports`; the database, the server and the record
come from :mod:`bench.harness` (see ``python bench/run.py --help`` for every option).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run  # noqa: E402
from bench.harness import command_line  # noqa: E402

if __name__ == "__main__":
    sys.exit(run.main(["--only", "reports", *sys.argv[1:]], command=command_line()))
