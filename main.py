"""Command line of the hospital portal.

    python main.py                       serve on 127.0.0.1:8000 (schema upgraded, demo data on an empty database)
    python main.py --workers 4 --port 8080
    python main.py migrate               upgrade the schema to the newest revision
    python main.py seed [--scale N] [--seed S]
    python main.py create-staff USERNAME --role ROLE [--full-name NAME]
    python main.py backup [PATH]         consistent backup while the portal runs
    python main.py restore PATH          restore a backup into an empty database and verify it
    python main.py check                 check every invariant of the data (exit 1 on a violation)
"""

from __future__ import annotations

import argparse
import sys

from portal import cli


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: serving options and the subcommands."""
    parser = argparse.ArgumentParser(prog="main.py", description="Hospital admin portal")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-demo", action="store_true", help="do not seed an empty database")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the web server (the default)")
    sub.add_parser("migrate", help="upgrade the database schema to head")
    seed = sub.add_parser("seed", help="load reference data and a demo hospital into an empty database")
    seed.add_argument("--scale", type=int, default=1, help="size multiplier (100 for benchmarks)")
    seed.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    staff = sub.add_parser("create-staff", help="create a staff account (asks for the password)")
    staff.add_argument("username")
    staff.add_argument("--role", required=True, choices=["admin", "receptionist", "doctor", "nurse", "pharmacist"])
    staff.add_argument("--full-name", default=None)
    staff.add_argument("--doctor-id", type=int, default=None, help="the Doctor row of a doctor's account")
    backup = sub.add_parser("backup", help="write a consistent backup of the database (the portal may keep running)")
    backup.add_argument(
        "path", nargs="?", default=None,
        help="new directory, or archive ending .tar.gz; an existing directory gets a "
             "portal-<UTC time> backup inside (default: backups/portal-<UTC time>)",
    )
    restore = sub.add_parser("restore", help="restore a backup into an empty database, verify it, upgrade it")
    restore.add_argument("path", help="backup directory or .tar.gz archive")
    sub.add_parser(
        "check", help="check the data's invariants (booked counts, stock ledger, dispensed units, "
                      "audit trail); exit status 1 when one is broken",
    )
    housekeeping = sub.add_parser("housekeeping", help="daily clean-up: delete stale rate-limit buckets")
    housekeeping.add_argument(
        "--older-than-hours", type=int, default=24, metavar="HOURS",
        help="age beyond which a bucket is stale (default 24; the longest window in use is 10 minutes)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command given in ``argv``; return the process exit code."""
    args = build_parser().parse_args(argv)
    command = args.command or "serve"
    return cli.COMMANDS[command](args)


if __name__ == "__main__":
    sys.exit(main())
