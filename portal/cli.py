"""What each command of ``main.py`` does."""

from __future__ import annotations

import argparse
import getpass
import logging
import sys

from sqlalchemy.engine import make_url

from portal.core import schema
from portal.core.db import get_engine
from portal.core.settings import get_settings


def _say(message: str) -> None:
    print(message, flush=True)


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Upgrade the schema of ``DATABASE_URL`` to head."""
    url = get_settings().database_url
    schema.upgrade(url)
    _say(f"Schema of {get_engine().url.render_as_string(hide_password=True)} is at revision {schema.head_revision(url)}.")
    return 0


def _print_report(report) -> None:
    _say("")
    _say(f"Seeded in {report.seconds:.1f} s:")
    for table, count in report.counts.items():
        _say(f"  {table:<20} {count:>10,}")
    if report.passwords:
        _say("Demo logins (shown once; set PORTAL_DEMO_PASSWORD to choose the password):")
        for user, password in report.passwords.items():
            _say(f"  {user:<12} {password}")


def cmd_seed(args: argparse.Namespace) -> int:
    """Load reference data and the demo hospital (``--scale``, ``--seed``)."""
    from portal.ops.seed.demo import seed_demo

    settings = get_settings()
    schema.upgrade(settings.database_url)
    try:
        report = seed_demo(get_engine(), scale=args.scale, seed=args.seed, progress=_say)
    except ValueError as exc:
        _say(f"Not seeded: {exc}.")
        return 2
    _print_report(report)
    return 0


def cmd_create_staff(args: argparse.Namespace) -> int:
    """Create a staff account, asking for its password twice."""
    from models import Role
    from portal.core.actor import SYSTEM
    from portal.core.db import run_in_transaction
    from portal.core.errors import DomainError
    from portal.services import staff_accounts

    schema.upgrade(get_settings().database_url)
    if args.role == "doctor" and not args.doctor_id:
        _say("A doctor's account needs --doctor-id (the Doctor it belongs to).")
        return 2
    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Repeat password: "):
        _say("The passwords differ; nothing was created.")
        return 2
    try:
        run_in_transaction(
            staff_accounts.create_account, username=args.username, full_name=args.full_name or args.username,
            role=Role(args.role), password=password, doctor_id=args.doctor_id, actor=SYSTEM,
        )
    except DomainError as exc:
        _say(f"{exc.message} Nothing was created.")
        return 2
    _say(f"Created {args.username} ({args.role}).")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    """Write a consistent backup of ``DATABASE_URL`` (``PATH`` optional) and summarise it.

    Returns:
        int: 0 when the backup is complete, 2 when it was refused or failed (nothing
        is left at the path then).
    """
    from pathlib import Path

    from portal.ops.backup import BackupError, backup

    try:
        report = backup(get_settings().database_url, Path(args.path) if args.path else None, progress=_say)
    except BackupError as exc:
        _say(f"Backup failed: {exc.message}")
        return 2
    manifest = report.manifest
    counts = manifest["row_counts"]
    _say("")
    _say(f"Backup written to {report.path} in {report.seconds:.1f} s:")
    _say(f"  backend          {manifest['backend']} ({manifest['server_version']})")
    _say(f"  schema revision  {manifest['schema_revision']}")
    _say(f"  tables           {len(counts)} ({sum(counts.values()):,} rows)")
    for name, entry in manifest["files"].items():
        _say(f"  {name:<16} {entry['bytes']:,} bytes, sha256 {entry['sha256']}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore the backup at ``PATH`` into the empty ``DATABASE_URL``, verify and summarise.

    Returns:
        int: 0 when restored and verified, 2 when refused or failed (the message says
        whether the target was left untouched or emptied again).
    """
    from portal.ops.backup import BackupError, restore

    try:
        report = restore(get_settings().database_url, args.path, progress=_say)
    except BackupError as exc:
        _say(f"Restore failed: {exc.message}")
        return 2
    manifest = report.manifest
    _say("")
    target = make_url(get_settings().database_url).render_as_string(hide_password=True)
    _say(f"Restored {args.path} into {target} "
         f"in {report.seconds:.1f} s:")
    _say(f"  made             {manifest.get('created_at')} from {manifest.get('source')}")
    _say(f"  tables verified  {len(report.counts)} ({sum(report.counts.values()):,} rows, "
         f"as in the manifest)")
    if report.upgraded_to:
        _say(f"  schema           upgraded from {manifest['schema_revision']} to {report.upgraded_to}")
    else:
        _say(f"  schema revision  {manifest['schema_revision']} (current)")
    return 0


def cmd_check(_args: argparse.Namespace) -> int:
    """Check every invariant of ``DATABASE_URL`` (``portal.ops.integrity``) and print the report.

    Returns:
        int: 0 when every rule holds, 1 when a rule is broken, 2 when the schema is not
        at head (nothing was checked).
    """
    from portal.ops.integrity import check_invariants_report, format_report

    settings = get_settings()
    engine = get_engine()
    current, head = schema.current_revision(engine), schema.head_revision(settings.database_url)
    _say(f"Database: {engine.url.render_as_string(hide_password=True)} (schema revision {current})")
    if current != head:
        _say(f"The schema is at {current}, not at the newest revision {head}: run `python main.py migrate` first.")
        return 2
    report = check_invariants_report(engine)
    for line in format_report(report):
        _say(line)
    return 0 if report.ok else 1


def cmd_housekeeping(args: argparse.Namespace) -> int:
    """Delete rate-limit and login-throttle buckets older than ``--older-than-hours`` (daily job).

    Returns:
        int: 0 (the number of deleted buckets is printed); 2 when ``--older-than-hours``
        is below 1 (nothing is deleted).
    """
    from portal.core.db import run_in_transaction
    from portal.services import rate_limits

    hours = args.older_than_hours
    if hours < 1:
        _say("--older-than-hours must be at least 1 (the longest rate-limit window is 10 minutes).")
        return 2
    deleted = run_in_transaction(rate_limits.purge, older_than_seconds=hours * 3600)
    _say(f"Housekeeping: deleted {deleted:,} throttle bucket(s) older than {hours} h.")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Upgrade the schema, seed an empty database with the demo hospital, then serve."""
    import uvicorn

    from portal.ops.seed.demo import database_is_empty, seed_demo

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    _say(f"Database: {get_engine().url.render_as_string(hide_password=True)}")
    schema.upgrade(settings.database_url)
    if not args.no_demo and database_is_empty(get_engine()):
        _say("Empty database: loading reference data and the demo hospital...")
        _print_report(seed_demo(get_engine(), progress=_say))
    get_engine().dispose()  # workers open their own connections
    _say("")
    _say(f"Staff admin:    http://{args.host}:{args.port}/admin")
    _say(f"Patient pages:  http://{args.host}:{args.port}/")
    _say("")
    uvicorn.run(
        "portal.app:create_app", factory=True, host=args.host, port=args.port,
        workers=args.workers, log_level="warning",
        # behind a reverse proxy, the client is the one the proxy names (FORWARDED_ALLOW_IPS)
        proxy_headers=bool(settings.forwarded_allow_ips), forwarded_allow_ips=settings.forwarded_allow_ips or None,
        loop="uvloop" if sys.platform != "win32" else "auto", http="httptools",
    )
    return 0


COMMANDS = {
    "serve": cmd_serve,
    "migrate": cmd_migrate,
    "seed": cmd_seed,
    "create-staff": cmd_create_staff,
    "backup": cmd_backup,
    "restore": cmd_restore,
    "check": cmd_check,
    "housekeeping": cmd_housekeeping,
}
