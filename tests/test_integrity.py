"""The invariant checker: silent on what the services write, and it names every broken rule.

A small hospital is made through the services (bookings, a cancellation, a confirmation,
deliveries, whole and partial dispenses, a stocktake, a write-off); the checker must find
nothing. Then each test breaks one rule with a direct SQL statement, as a bug or a crash
half-way through a change would, and the checker must report that rule on that row.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.engine import Engine

from models import (
    Appointment,
    AuditEvent,
    ClinicSession,
    Gender,
    MovementKind,
    Prescription,
    PrescriptionItem,
    StockBatch,
    StockMovement,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import run_in_transaction, transaction
from portal.ops.integrity import RULES, check_invariants, check_invariants_report, format_report
from portal.services import appointments, booking, dispensing, stock
from tests.factories import (
    actor_for,
    make_audited_patient,
    make_batch,
    make_clinic_session,
    make_medicine,
    make_prescription,
    make_staff,
)

ROOT = Path(__file__).resolve().parent.parent
DESK = Actor(username="desk")


@dataclass
class Hospital:
    clinic_session_id: int
    confirmed_id: int  # appointment: booked at the desk, then confirmed
    cancelled_id: int  # appointment: booked online (patient registered), then cancelled
    online_patient_id: int
    batch_id: int  # received, then topped up by a second delivery of the same lot
    dispensed_rx_id: int
    partial_rx_id: int


def _hospital(engine: Engine) -> Hospital:
    pharmacist = actor_for(make_staff(engine, username="pharm"))
    clinic_session = make_clinic_session(engine, capacity=3)
    patient = make_audited_patient(engine)
    confirmed = run_in_transaction(appointments.book, engine=engine, clinic_session_id=clinic_session.id, patient_id=patient.id,
                                   actor=DESK).appointment
    run_in_transaction(appointments.confirm, confirmed.id, engine=engine, actor=DESK)
    online = run_in_transaction(
        booking.book_online, engine=engine, clinic_session_id=clinic_session.id, full_name="Li Na", phone="+8613912345678",
        birth_date=date(1985, 7, 23), gender=Gender.female, national_id=None, reason=None, submission_key="k1",
        actor=Actor(username="patient:online"),
    ).appointment
    run_in_transaction(booking.cancel_online, online.id, engine=engine, reason="Feeling better",
                       actor=Actor(username="patient:online"))

    medicine = make_medicine(engine)
    first = make_batch(engine, medicine=medicine, quantity=100, lot_number="A1",
                       expiry=clock.today() + timedelta(days=100))
    make_batch(engine, medicine=medicine, quantity=50, lot_number="A2", expiry=clock.today() + timedelta(days=200))
    whole = make_prescription(engine, patient=patient, items=[(medicine, 120)])
    partial = make_prescription(engine, patient=patient, items=[(medicine, 60)])
    run_in_transaction(dispensing.dispense, engine=engine, prescription_id=whole.id, actor=pharmacist)
    run_in_transaction(dispensing.dispense, engine=engine, prescription_id=partial.id, actor=pharmacist, partial=True)
    run_in_transaction(stock.receive_stock, engine=engine, medicine_id=medicine.id, lot_number="A1",
                       expiry_date=first.expiry_date, quantity=40, unit_cost=30, actor=pharmacist)
    run_in_transaction(stock.adjust_stock, engine=engine, batch_id=first.id, counted_quantity=38,
                       reason="2 broken", actor=pharmacist)
    old = make_batch(engine, medicine=make_medicine(engine), quantity=10, expiry=clock.today() + timedelta(days=3))
    run_in_transaction(stock.mark_batch_expired, engine=engine, batch_id=old.id, actor=pharmacist)
    return Hospital(
        clinic_session_id=clinic_session.id, confirmed_id=confirmed.id, cancelled_id=online.id,
        online_patient_id=online.patient_id, batch_id=first.id, dispensed_rx_id=whole.id, partial_rx_id=partial.id,
    )


@pytest.fixture
def hospital(engine) -> Hospital:
    return _hospital(engine)


def _sql(engine: Engine, *statements, unchecked: bool = False) -> None:
    """Run statements in one transaction, optionally with CHECK constraints off (the
    checker must also see what the database would have refused)."""
    with transaction(engine) as db:
        if unchecked:
            if engine.dialect.name == "sqlite":
                db.execute(text("PRAGMA ignore_check_constraints = ON"))
            else:
                db.execute(text("SET SESSION check_constraint_checks = 0"))
        try:
            for statement in statements:
                db.execute(statement)
        finally:
            if unchecked:
                if engine.dialect.name == "sqlite":
                    db.execute(text("PRAGMA ignore_check_constraints = OFF"))
                else:
                    db.execute(text("SET SESSION check_constraint_checks = 1"))


def _found(engine: Engine, rule: str) -> list[str]:
    return [str(v) for v in check_invariants(engine) if v.rule == rule]


def test_what_the_services_write_breaks_no_rule(engine, hospital):
    report = check_invariants_report(engine)
    assert report.violations == [], [str(v) for v in report.violations]
    assert report.counts["appointment"] == 2 and report.counts["stock_movement"] >= 8
    # the same holds when read inside a caller's session
    with transaction(engine, write=False) as db:
        assert check_invariants(db) == []
    # the dispense audit event names its movements, and so does the delivery's
    with transaction(engine, write=False) as db:
        event = db.scalars(select(AuditEvent).where(
            AuditEvent.action == "dispense", AuditEvent.entity_id == str(hospital.dispensed_rx_id))).one()
        ids = db.scalars(select(StockMovement.id).join(PrescriptionItem).where(
            PrescriptionItem.prescription_id == hospital.dispensed_rx_id).order_by(StockMovement.id)).all()
    assert event.changes["movement_ids"] == ids and len(ids) == 2  # FEFO over both batches


def test_a_place_taken_without_an_appointment(engine, hospital):
    _sql(engine, update(ClinicSession).where(ClinicSession.id == hospital.clinic_session_id)
         .values(booked_count=ClinicSession.booked_count + 1))
    assert _found(engine, "booked_count") == [
        f"clinic session #{hospital.clinic_session_id}: booked_count is 2 but 1 appointment(s) are active [booked_count]"]


def test_more_booked_than_capacity(engine, hospital):
    _sql(engine, update(ClinicSession).where(ClinicSession.id == hospital.clinic_session_id).values(capacity=0), unchecked=True)
    assert _found(engine, "capacity") == [
        f"clinic session #{hospital.clinic_session_id}: booked_count 1 outside 0..capacity 0 [capacity]"]


def test_queue_number_beyond_the_last_handed_out(engine, hospital):
    _sql(engine, update(ClinicSession).where(ClinicSession.id == hospital.clinic_session_id).values(last_queue_number=1))
    [found] = _found(engine, "queue_number")
    assert "queue number 2 outside 1..1" in found


def test_active_marker_out_of_step_with_the_status(engine, hospital):
    _sql(engine, update(Appointment).where(Appointment.id == hospital.confirmed_id).values(active_marker=None))
    [found] = _found(engine, "active_marker")
    assert found.startswith(f"appointment #{hospital.confirmed_id} ") and "status confirmed with active_marker None" in found


def test_appointment_left_behind_when_its_session_moved(engine, hospital):
    with transaction(engine, write=False) as db:
        day = db.scalar(select(ClinicSession.session_date).where(ClinicSession.id == hospital.clinic_session_id))
    _sql(engine, update(ClinicSession).where(ClinicSession.id == hospital.clinic_session_id).values(session_date=day + timedelta(days=1)))
    found = _found(engine, "clinic_session_copy")
    assert len(found) == 2 and f"date {day} but the session's is {day + timedelta(days=1)}" in found[0]


def test_stock_taken_without_a_movement(engine, hospital):
    _sql(engine, update(StockBatch).where(StockBatch.id == hospital.batch_id)
         .values(quantity_on_hand=StockBatch.quantity_on_hand - 5))
    [found] = _found(engine, "stock_ledger")
    assert found.startswith(f"batch #{hospital.batch_id} (lot A1): on hand 33 but the movements add up to 38")


def test_a_balance_in_the_middle_of_the_ledger(engine, hospital):
    with transaction(engine, write=False) as db:
        first = db.scalar(select(func.min(StockMovement.id)).where(StockMovement.batch_id == hospital.batch_id))
    _sql(engine, update(StockMovement).where(StockMovement.id == first).values(balance_after=99))
    assert _found(engine, "stock_ledger") == []  # the total and the newest balance still agree
    assert _found(engine, "ledger_chain") == [
        f"movement #{first} of batch #{hospital.batch_id}: balance_after 99 but the batch's movements up to it "
        "add up to 100 [ledger_chain]"]


def test_dispensed_units_without_their_movements(engine, hospital):
    _sql(engine, update(PrescriptionItem).where(PrescriptionItem.prescription_id == hospital.partial_rx_id)
         .values(quantity_dispensed=PrescriptionItem.quantity_dispensed + 1))
    [found] = _found(engine, "dispensed_units")
    assert "quantity_dispensed 31 of 60 but its dispense movements took 30" in found


def test_prescription_status_that_its_lines_contradict(engine, hospital):
    _sql(engine, update(Prescription).where(Prescription.id == hospital.dispensed_rx_id).values(status="issued"))
    [found] = _found(engine, "prescription_status")
    assert "status issued but 120 unit(s) dispensed and 0 line(s) still owed" in found


def test_unaudited_booking_status_change_registration_and_movements(engine, hospital):
    _sql(
        engine,
        delete(AuditEvent).where(AuditEvent.entity == "appointment", AuditEvent.action == "book",
                                 AuditEvent.entity_id == str(hospital.cancelled_id)),
        delete(AuditEvent).where(AuditEvent.entity == "appointment", AuditEvent.action == "confirm"),
        delete(AuditEvent).where(AuditEvent.action == "register"),
        delete(AuditEvent).where(AuditEvent.action == "dispense", AuditEvent.entity_id == str(hospital.partial_rx_id)),
    )
    assert [v.split(": ", 1)[1] for v in _found(engine, "audit_booking")] == ["no book (or create) audit event [audit_booking]"]
    assert _found(engine, "audit_status") == [
        f"appointment #{hospital.confirmed_id} ({_reference(engine, hospital.confirmed_id)}): status confirmed but "
        "its newest status event is 'book' [audit_status]"]
    assert [v.startswith(f"patient #{hospital.online_patient_id} ") for v in _found(engine, "audit_patient")] == [True]
    [found] = _found(engine, "audit_movement")
    assert "(dispense) of batch #" in found and found.endswith(": no audit event names it [audit_movement]")


def test_a_movement_named_twice_or_by_another_batch(engine, hospital):
    with transaction(engine) as db:
        receipt = db.scalars(select(AuditEvent).where(AuditEvent.action == "receive").order_by(AuditEvent.id)).first()
        other = db.scalar(select(StockMovement.id).where(StockMovement.batch_id != int(receipt.entity_id),
                                                              StockMovement.kind == MovementKind.receipt))
        own = receipt.changes["movement_ids"][0]
        db.execute(update(AuditEvent).where(AuditEvent.id == receipt.id)
                        .values(changes={**receipt.changes, "movement_ids": [own, other, 10**6]}))
    found = _found(engine, "audit_movement")
    assert any(f"named by audit event #{receipt.id} (receive of stock_batch #{receipt.entity_id}), not of its own" in f
               for f in found)
    assert any(f"names movement #{10**6}, which does not exist" in f for f in found)
    assert any(f.startswith(f"movement #{other} ") and "named by 2 audit events" in f for f in found)


def _reference(engine, appointment_id: int) -> str:
    with transaction(engine, write=False) as db:
        return db.scalar(select(Appointment.reference).where(Appointment.id == appointment_id))


def test_the_report_names_every_broken_rule(engine, hospital):
    _sql(engine, update(ClinicSession).where(ClinicSession.id == hospital.clinic_session_id).values(booked_count=0))
    lines = format_report(check_invariants_report(engine))
    assert lines[0].startswith(f"Checked {len(RULES)} rules in ")
    assert "1 violation(s) of 1 rule(s):" in lines
    assert f"  booked_count (1): {RULES['booked_count']}" in lines


def _check_command(db_url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"} | {"DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "main.py", "check"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_check_command_exit_status_and_report(db_url, engine, hospital):
    clean = _check_command(db_url)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No violations: every invariant holds." in clean.stdout
    _sql(engine, update(StockBatch).where(StockBatch.id == hospital.batch_id).values(quantity_on_hand=0))
    broken = _check_command(db_url)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"batch #{hospital.batch_id} (lot A1): on hand 0 but the movements add up to 38" in broken.stdout
