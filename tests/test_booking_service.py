"""Online booking service: register-or-match and book in one transaction, repeats, races."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select

from models import Appointment, Gender, Patient
from portal.core.actor import Actor
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import SlotFull
from portal.services import booking
from tests.factories import make_clinic_session, make_patient

ONLINE = Actor(username="patient:online", ip="203.0.113.5")
ID_1 = "11010519491231002X"
ID_2 = "440524188001010014"


def book(engine, clinic_session, *, key, phone="+8613800138000", birth=date(1985, 7, 23), national_id=None,
         name="Li Na"):
    return run_in_transaction(
        booking.book_online, engine=engine, clinic_session_id=clinic_session.id, full_name=name, phone=phone,
        birth_date=birth, gender=Gender.female, national_id=national_id, reason=None, submission_key=key,
        actor=ONLINE,
    )


def counts(engine):
    with transaction(engine, write=False) as db:
        return (db.scalar(select(func.count()).select_from(Patient)),
                db.scalar(select(func.count()).select_from(Appointment)))


def test_canonical_phone_and_same_phone():
    assert booking.canonical_phone("138 0013 8000") == "+8613800138000"
    assert booking.canonical_phone("0086 138-0013-8000") == "+8613800138000"
    assert booking.canonical_phone("021 6427 0000") == "02164270000"
    assert booking.same_phone("13800138000", "+8613800138000")
    assert not booking.same_phone("+8613800138000", "+8613800138001")


def test_a_refused_booking_registers_nobody(engine):
    clinic_session = make_clinic_session(engine, capacity=1)
    book(engine, clinic_session, key="a", phone="+8613900000000")
    with pytest.raises(SlotFull):
        book(engine, clinic_session, key="b")
    assert counts(engine) == (1, 1)


def test_same_phone_and_birth_date_but_another_national_id_is_another_person(engine):
    clinic_session = make_clinic_session(engine)
    twin = make_patient(engine, phone="+8613800138000", birth_date=date(1985, 7, 23), national_id=ID_1)
    result = book(engine, clinic_session, key="k", national_id=ID_2, name="Li Mei")
    assert result.appointment.patient_id != twin.id
    with transaction(engine, write=False) as db:
        assert db.get(Patient, result.appointment.patient_id).national_id == ID_2


def test_a_matched_patient_keeps_their_record(engine):
    clinic_session = make_clinic_session(engine)
    known = make_patient(engine, full_name="李娜", phone="+8613800138000", birth_date=date(1985, 7, 23))
    result = book(engine, clinic_session, key="k", national_id=ID_1, name="Li Na")
    assert result.appointment.patient_id == known.id
    with transaction(engine, write=False) as db:
        patient = db.get(Patient, known.id)
    assert patient.full_name == "李娜" and patient.national_id is None  # web input never edits a record


def test_concurrent_copies_of_one_submission_book_and_register_once(engine):
    """A double click racing itself: one appointment, one new patient, every copy gets it."""
    clinic_session = make_clinic_session(engine, capacity=5)
    barrier = threading.Barrier(6)
    results, errors = [], []
    lock = threading.Lock()

    def attempt():
        barrier.wait()
        try:
            result = book(engine, clinic_session, key="same-form-token")
            with lock:
                results.append(result.appointment.id)
        except Exception as exc:  # any error fails the test
            with lock:
                errors.append(repr(exc))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(set(results)) == 1 and len(results) == 6
    assert counts(engine) == (1, 1)


def test_find_booking_needs_reference_and_phone(engine):
    clinic_session = make_clinic_session(engine)
    result = book(engine, clinic_session, key="k")
    reference = result.appointment.reference
    with transaction(engine, write=False) as db:
        assert booking.find_booking(db, reference=reference, phone="13800138000") == result.appointment.id
        assert booking.find_booking(db, reference=reference, phone="+8613800138001") is None
        assert booking.find_booking(db, reference="ZZZZZ-ZZZZZ", phone="+8613800138000") is None
