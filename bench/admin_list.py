"""Scenario 3 alone: the appointment list at a million appointments, ours next to plain sqladmin.

    python bench/admin_list.py                 # scale 334 (1,002,000 appointments), recorded
    python bench/admin_list.py --quick         # scale 34, short runs: indicative only
    python bench/admin_list.py --workers 1 --no-record

The same as ``python bench/run.py --only admin_list ...``: see ``bench/scenarios/admin_list.py``
for what is measured and ``bench/run.py`` for the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run  # noqa: E402

if __name__ == "__main__":
    sys.exit(run.main(["--only", "admin_list", *sys.argv[1:]]))
