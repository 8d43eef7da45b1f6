"""Time the appointment list at a million appointments, ours next to plain sqladmin: scenario 3, run alone.

    python bench/admin_list.py                          # = python bench/run.py --only admin_list
    python bench/admin_list.py --admin-connections 4    # four admins at once
    python bench/admin_list.py --profile --no-record    # py-spy on the server during our runs

The scenario is :mod:`bench.scenarios.admin_list` (its own database, ``main.py seed --scale 334``);
the server, wrk and the record come from :mod:`bench.harness` (see ``python bench/run.py --help``).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run  # noqa: E402
from bench.harness import command_line  # noqa: E402

if __name__ == "__main__":
    sys.exit(run.main(["--only", "admin_list", *sys.argv[1:]], command=command_line()))
