"""A process killed in the middle of a booking or a dispense leaves all of the change or none.

Two tests, on the run's backend:

* Under load: a real server (``python main.py --workers 2``) serves patients booking and
  cancelling and staff confirming, dispensing and receiving stock over HTTP, while its
  worker processes are SIGKILLed several times (one, or both at once); uvicorn's
  supervisor starts new ones. Afterwards every invariant holds (``portal.ops.integrity``: no
  place taken without an appointment, no stock taken without a movement, every change
  audited), every booking the server acknowledged exists and every acknowledged
  cancellation stands.
* At a known point: a separate process stops right after the UPDATE that takes a place or
  stock, before its COMMIT, synchronised by a pipe (no sleeps); while it waits, the row is
  locked and nothing of it is visible; it is SIGKILLed; the lock is then released, nothing
  of it was kept, and the same change succeeds.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import OperationalError

from models import Appointment, AuditEvent, ClinicSession, PrescriptionStatus, StockBatch, StockMovement
from portal.core import schema
from portal.core.actor import Actor
from portal.core.db import build_engine, run_in_transaction, transaction
from portal.ops.integrity import check_invariants
from portal.services import appointments, dispensing
from tests.factories import (
    actor_for,
    make_audited_patient,
    make_batch,
    make_clinic_session,
    make_medicine,
    make_prescription,
    make_staff,
)
from tests.live_server import LiveServer
from tests.portal_load import Load, build_world

#: Kill rounds under load; every third round kills both workers at once.
KILL_ROUNDS = 6
#: Answers the load must receive between two kills (the workers are busy when killed).
ANSWERS_BETWEEN_KILLS = 60


def test_workers_killed_under_load_leave_every_invariant_true(fresh_db_url, tmp_path):
    schema.upgrade(fresh_db_url)
    engine = build_engine(fresh_db_url, pool_size=2)
    world = build_world(engine, sessions=16, capacity=15, prescriptions=200)
    server = LiveServer(fresh_db_url, tmp_path / "server.log", workers=2)
    load = Load(server.base_url, world, patients=4, staff=2)
    killed = []
    try:
        server.start()
        load.start()
        for round_ in range(KILL_ROUNDS):
            target = load.tally.requests + ANSWERS_BETWEEN_KILLS
            assert load.wait_for_answers(target, timeout=300), (
                f"the load stalled at {load.tally.requests} answers: {load.tally.summary()}; "
                f"load threads failed: {load.failures!r}\n{server.log_tail()}")
            workers = server.worker_pids()
            victims = workers if round_ % 3 == 2 else {min(workers)}
            server.kill_workers(victims)
            killed.append(len(victims))
            server.wait_ready(not_pids=victims)  # uvicorn's supervisor replaced them
        assert load.wait_for_answers(load.tally.requests + ANSWERS_BETWEEN_KILLS, timeout=300)
        tally = load.finish()
    finally:
        load.stop.set()
        server.stop()
    try:
        print(f"killed {sum(killed)} workers in {len(killed)} rounds; {tally.summary()}")
        assert tally.server_errors == []
        assert sum(tally.cut.values()) > 0, "no request was in flight when a worker died"
        violations = check_invariants(engine)
        assert violations == [], "\n".join(map(str, violations))
        with transaction(engine, write=False) as db:
            rows = dict(db.execute(select(Appointment.id, Appointment.status)
                                        .where(Appointment.clinic_session_id.in_(world.clinic_session_ids))).all())
        assert set(tally.booked) <= set(rows), "an acknowledged booking was lost"
        assert {rows[a].value for a in tally.cancelled} <= {"cancelled"}, "an acknowledged cancellation was lost"
        # bookings the server made but could not acknowledge: only those whose answer a kill cut off
        assert len(set(rows) - set(tally.booked)) <= tally.cut["book"]
        assert tally.answers[("book", 303)] > 0 and tally.answers[("dispense", 303)] > 0
    finally:
        engine.dispose()


# -- killed at a known point ------------------------------------------------------------------


def _change_and_wait(url: str, operation: str, ids: dict, pipe) -> None:
    """In a child process: run ``operation`` and stop right after its place-or-stock UPDATE.

    It reports "held" through ``pipe`` when the UPDATE has matched its row (the
    transaction holds the row's lock, uncommitted), then blocks reading the pipe until
    the parent kills it. It never commits.
    """
    engine = build_engine(url, pool_size=1)
    marker = "UPDATE stock_batch SET quantity_on_hand" if operation == "dispense" else "UPDATE clinic_session SET booked_count"

    @event.listens_for(engine, "after_cursor_execute")
    def _hold(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(marker) and cursor.rowcount == 1:
            pipe.send("held")
            pipe.recv()  # the parent never answers: it kills this process

    actor = Actor(username=ids["username"], user_id=ids["user_id"])
    with transaction(engine) as db:
        if operation == "dispense":
            dispensing.dispense(db, prescription_id=ids["prescription_id"], actor=actor)
        else:
            appointments.book(db, clinic_session_id=ids["clinic_session_id"], patient_id=ids["patient_id"], actor=actor)
    pipe.send("committed")  # not reached


def _row_is_locked(engine, table: str, row_id: int) -> bool:
    """True when another transaction holds the row's lock (SQLite: the database's write lock)."""
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA busy_timeout = 0")
            try:
                raw.driver_connection.execute("BEGIN IMMEDIATE")
            except Exception as exc:  # sqlite3.OperationalError: database is locked
                assert "locked" in str(exc)
                return True
            raw.driver_connection.execute("ROLLBACK")
            return False
        finally:
            raw.driver_connection.execute("PRAGMA busy_timeout = 30000")
            raw.close()
    with engine.connect() as conn:
        try:
            conn.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE NOWAIT"), {"id": row_id})
        except OperationalError as exc:
            assert exc.orig.args[0] == 1205, exc  # lock wait timeout: NOWAIT found the row locked
            return True
        finally:
            conn.rollback()
        return False


def _wait_for_the_lock(engine, table: str, row_id: int) -> None:
    """Take the row's lock, waiting (bounded by the server's lock wait timeout, or SQLite's
    busy timeout) for the killed transaction to be rolled back; then let it go."""
    lock = "" if engine.dialect.name == "sqlite" else " FOR UPDATE"  # SQLite: BEGIN IMMEDIATE waits
    with transaction(engine) as db:
        db.execute(text(f"SELECT id FROM {table} WHERE id = :id{lock}"), {"id": row_id})


@pytest.mark.parametrize("operation", ["dispense", "booking"])
def test_a_process_killed_before_commit_keeps_nothing_and_releases_its_locks(db_url, engine, operation):
    pharmacist = make_staff(engine, username="pharm")
    medicine = make_medicine(engine)
    batch = make_batch(engine, medicine=medicine, quantity=50)
    patient = make_audited_patient(engine)
    prescription = make_prescription(engine, patient=patient, items=[(medicine, 20)])
    clinic_session = make_clinic_session(engine, capacity=5)
    ids = {"username": pharmacist.username, "user_id": pharmacist.id, "prescription_id": prescription.id,
           "clinic_session_id": clinic_session.id, "patient_id": patient.id}
    table, row_id = ("stock_batch", batch.id) if operation == "dispense" else ("clinic_session", clinic_session.id)

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    child = context.Process(target=_change_and_wait, args=(db_url, operation, ids, theirs), daemon=True)
    child.start()
    try:
        assert ours.poll(120), "the child did not reach its UPDATE"
        assert ours.recv() == "held"
        assert _row_is_locked(engine, table, row_id)
        with transaction(engine, write=False) as db:  # its change is not visible
            assert db.scalar(select(StockBatch.quantity_on_hand).where(StockBatch.id == batch.id)) == 50
            assert db.scalar(select(ClinicSession.booked_count).where(ClinicSession.id == clinic_session.id)) == 0
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
        assert child.exitcode == -signal.SIGKILL
    finally:
        if child.is_alive():
            child.kill()
            child.join(30)

    _wait_for_the_lock(engine, table, row_id)
    assert not _row_is_locked(engine, table, row_id)
    with transaction(engine, write=False) as db:
        assert db.scalar(select(StockBatch.quantity_on_hand).where(StockBatch.id == batch.id)) == 50
        assert db.scalar(select(ClinicSession.booked_count).where(ClinicSession.id == clinic_session.id)) == 0
        assert db.scalar(select(func.count()).select_from(Appointment)) == 0
        assert db.scalar(select(func.count()).select_from(StockMovement)) == 1  # the receipt
        assert db.scalar(select(func.count()).select_from(AuditEvent)
                              .where(AuditEvent.action.in_(("dispense", "book")))) == 0
    assert check_invariants(engine) == []

    # the same change now goes through, whole
    if operation == "dispense":
        result = run_in_transaction(dispensing.dispense, engine=engine, prescription_id=prescription.id,
                                    actor=actor_for(pharmacist))
        assert result.status is PrescriptionStatus.dispensed and result.units_dispensed == 20
    else:
        booked = run_in_transaction(appointments.book, engine=engine, clinic_session_id=clinic_session.id,
                                    patient_id=patient.id, actor=actor_for(pharmacist))
        assert booked.appointment.queue_number == 1
    assert check_invariants(engine) == []
