"""Deadlocks and lock-wait timeouts between real MariaDB transactions: retried a bounded
number of times, then "busy, try again" (503 on the patient pages, a form message in the
admin), never a 500 and never half a change.

MariaDB only (real row locks); the SQLite pass skips these. The lock-wait timeout of the
portal's connections is cut to 1 s here (it is 10 s in production), so that four
attempts take seconds.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event, func, select, text, update
from starlette.testclient import TestClient

from models import Appointment, AuditEvent, ClinicSession, Patient
from portal.app import create_app
from portal.core.db import MAX_ATTEMPTS, build_engine, run_in_transaction, transaction
from tests.factories import PASSWORD, login, make_audited_patient, make_clinic_session, make_staff
from tests.portal_load import form_fields

LOCK_WAIT_SECONDS = 1


@pytest.fixture
def quick_engine(mysql_only, db_url):
    """An engine on the test database whose connections give up a lock wait after 1 s."""
    engine = build_engine(db_url, pool_size=4)

    @event.listens_for(engine, "connect")
    def _short_lock_wait(dbapi_conn, _record):
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}")

    yield engine
    engine.dispose()


class RowLock:
    """Another transaction holding one row's lock (``SELECT ... FOR UPDATE``) until released."""

    def __init__(self, engine, table: str, row_id: int) -> None:
        self.conn = engine.connect()
        self.conn.execute(text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def _lock_timeouts(engine) -> threading.Event:
    """An event set each time a statement on ``engine`` fails with a lock-wait timeout (1205)."""
    seen = threading.Event()

    @event.listens_for(engine, "handle_error")
    def _seen(ctx):
        if getattr(ctx.original_exception, "args", (None,))[0] == 1205:
            seen.set()

    return seen


def test_a_deadlock_between_two_transactions_is_retried_and_both_commit(quick_engine, caplog):
    engine = quick_engine
    first, second = make_clinic_session(engine, fee=100), make_clinic_session(engine, fee=100)
    both_hold_one = threading.Barrier(2, timeout=30)
    attempts: Counter = Counter()

    def cross(db, mine: int, theirs: int, name: str) -> int:
        attempts[name] += 1
        db.execute(update(ClinicSession).where(ClinicSession.id == mine).values(fee=ClinicSession.fee + 1))
        if attempts[name] == 1:
            both_hold_one.wait()  # each transaction now holds one row; each asks for the other's
        db.execute(update(ClinicSession).where(ClinicSession.id == theirs).values(fee=ClinicSession.fee + 1))
        return attempts[name]

    caplog.set_level(logging.INFO, logger="portal.core.db")
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(run_in_transaction, cross, first.id, second.id, "one", engine=engine)
        two = pool.submit(run_in_transaction, cross, second.id, first.id, "two", engine=engine)
        results = sorted([one.result(timeout=60), two.result(timeout=60)])
    assert results == [1, 2]  # the deadlock's victim committed on its second attempt
    assert any("Deadlock" in r.getMessage() for r in caplog.records)
    with transaction(engine, write=False) as db:
        fees = db.scalars(select(ClinicSession.fee).where(ClinicSession.id.in_((first.id, second.id)))).all()
    assert fees == [102, 102]  # both transactions' changes, each applied once


def _submit_booking(client, clinic_session_id: int):
    page = client.get(f"/book/{clinic_session_id}")
    assert page.status_code == 200, page.text[:300]
    data = form_fields(page.text) | {"full_name": "Li Na", "phone": "138 0013 8000", "birth_date": "1985-07-23",
                                      "gender": "female"}
    return client.post(f"/book/{clinic_session_id}", data=data)


def test_a_booking_that_stays_locked_out_is_busy_try_again_and_writes_nothing(quick_engine, engine, caplog):
    clinic_session = make_clinic_session(quick_engine, capacity=5)
    caplog.set_level(logging.INFO, logger="portal.core.db")
    with TestClient(create_app(quick_engine), follow_redirects=False) as client:
        holder = RowLock(engine, "clinic_session", clinic_session.id)  # e.g. a long admin transaction
        try:
            response = _submit_booking(client, clinic_session.id)
        finally:
            holder.release()
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        assert "We are very busy" in response.text and "nothing was saved" in response.text
        retries = [r for r in caplog.records if "retrying after lock conflict" in r.getMessage()]
        assert len(retries) == MAX_ATTEMPTS  # bounded: every attempt met the lock, then Busy
        with transaction(engine, write=False) as db:
            assert db.scalar(select(func.count()).select_from(Appointment)) == 0
            assert db.scalar(select(func.count()).select_from(Patient)) == 0  # no registration either
            assert db.scalar(select(ClinicSession.booked_count).where(ClinicSession.id == clinic_session.id)) == 0
        assert _submit_booking(client, clinic_session.id).status_code == 303  # the lock gone, it books


def _edit_patient(client, patient_id: int, address: str):
    page = client.get(f"/admin/patient/edit/{patient_id}")
    assert page.status_code == 200, page.text[:300]
    data = form_fields(page.text) | {"address": address, "save": "Save"}
    return client.post(f"/admin/patient/edit/{patient_id}", data=data)


def _address(engine, patient_id: int) -> str | None:
    with transaction(engine, write=False) as db:
        return db.scalar(select(Patient.address).where(Patient.id == patient_id))


def test_an_admin_edit_waits_out_a_lock_by_retrying_or_says_busy(quick_engine, engine):
    make_staff(engine, username="boss")
    patient = make_audited_patient(engine)
    timeouts = _lock_timeouts(quick_engine)
    with TestClient(create_app(quick_engine), follow_redirects=False) as client:
        assert login(client, "boss", PASSWORD).status_code == 302

        # held longer than every attempt: the form says busy, keeps the input, saves nothing
        holder = RowLock(engine, "patient", patient.id)
        try:
            response = _edit_patient(client, patient.id, "Room 1")
        finally:
            holder.release()
        assert response.status_code == 400
        assert "The system is busy; please try again in a moment. Nothing was saved." in response.text
        assert "Room 1" in response.text and "Lock wait" not in response.text
        assert _address(engine, patient.id) is None

        # released after the first attempt timed out: the retry saves it, audited once
        timeouts.clear()
        holder = RowLock(engine, "patient", patient.id)
        with ThreadPoolExecutor(1) as pool:
            try:
                edit = pool.submit(_edit_patient, client, patient.id, "Room 2")
                assert timeouts.wait(60), "the edit never waited for the lock"
            finally:
                holder.release()
            assert edit.result(timeout=60).status_code == 302
    assert _address(engine, patient.id) == "Room 2"
    with transaction(engine, write=False) as db:
        changes = db.scalars(select(AuditEvent.changes).where(
            AuditEvent.action == "update", AuditEvent.entity == "patient")).all()
    assert changes == [{"address": [None, "Room 2"]}]
