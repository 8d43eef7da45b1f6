"""Soak: minutes of mixed load on a real server end with no 5xx and every invariant true.

The demo hospital plus a load clinic (``tests.portal_load.build_world``) is served by
``python main.py --workers 2``; patients browse, book, look up and cancel, the front desk
confirms, the pharmacist dispenses and receives stock, the administrator edits sessions
and patients, all over HTTP from threads (``tests.portal_load.Load``) for
``SOAK_SECONDS`` (default: 180 s in the MariaDB pass, 30 s on SQLite). Then: not one 5xx,
no request cut, no admin form refused, every invariant of ``portal.ops.integrity`` true,
every acknowledged booking and cancellation kept, every acknowledged admin edit audited.

Each simulated person pauses ``SOAK_THINK_SECONDS`` (0.5 s) on average between tasks.
Lengthen it with ``SOAK_SECONDS=1800 make test`` (or run this file alone); run it flat
out with ``SOAK_THINK_SECONDS=0``.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from models import Appointment, AuditEvent
from portal.core import schema
from portal.core.db import build_engine, transaction
from portal.ops.integrity import check_invariants_report, format_report
from tests.live_server import LiveServer
from tests.portal_load import Load, build_world

pytestmark = pytest.mark.soak

BACKEND = "MariaDB" if os.environ.get("TEST_DATABASE_URL") else "SQLite"
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS") or (180 if BACKEND == "MariaDB" else 30))
#: Mean pause of each simulated person between two tasks: seven people at a steady pace
#: (about 30 requests a second, thousands in a run), so the soak runs beside the rest of
#: the suite instead of taking both cores; ``SOAK_THINK_SECONDS=0`` runs it flat out.
SOAK_THINK_SECONDS = float(os.environ.get("SOAK_THINK_SECONDS") or 0.5)


def test_mixed_load_for_minutes_ends_with_no_5xx_and_every_invariant_true(fresh_db_url, tmp_path, capsys):
    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=2)
    say = print
    try:
        with capsys.disabled():
            say(f"\nsoak on {BACKEND} for {SOAK_SECONDS:.0f} s (SOAK_SECONDS): seeding the demo hospital...")
            world = build_world(engine, sessions=60, capacity=20, prescriptions=600, demo=True)
            server = LiveServer(fresh_db_url, tmp_path / "server.log", workers=2)
            try:
                server.start()
                tally = Load(server.base_url, world, patients=5, staff=2, think_seconds=SOAK_THINK_SECONDS).run_for(SOAK_SECONDS, progress=say)
            finally:
                server.stop()
            say(f"  {tally.summary()}")
            report = check_invariants_report(engine)
            for line in format_report(report):
                say(f"  {line}")

        assert tally.server_errors == [], "\n".join(tally.server_errors[:20]) + "\n" + server.log_tail()
        assert sum(tally.cut.values()) == 0, f"requests cut: {dict(tally.cut)}\n{server.log_tail()}"
        assert tally.refusals == {}
        assert report.violations == [], "\n".join(map(str, report.violations))
        for task, status in (("book", 303), ("cancel", 303), ("confirm", 303), ("dispense", 303),
                             ("receive", 303), ("edit_clinic_session", 302), ("edit_patient", 302)):
            assert tally.answers[(task, status)] > 0, f"the load never completed a {task}: {tally.summary()}"

        with transaction(engine, write=False) as db:
            rows = dict(db.execute(select(Appointment.id, Appointment.status)
                                        .where(Appointment.clinic_session_id.in_(world.clinic_session_ids))).all())
            edits = dict(db.execute(
                select(AuditEvent.entity, func.count())
                .where(AuditEvent.action == "update", AuditEvent.actor == world.staff["admin"])
                .group_by(AuditEvent.entity)).all())
        assert set(rows) == set(tally.booked), "bookings made and bookings acknowledged differ"
        assert {rows[a].value for a in tally.cancelled} == {"cancelled"}
        assert edits == dict(tally.edits), "every acknowledged admin edit has its audit event, and no other"
    finally:
        engine.dispose()
