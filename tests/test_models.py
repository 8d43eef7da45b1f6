"""Database constraints hold on both backends, whatever the code above them does."""

from __future__ import annotations

from datetime import date, time

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from models import Appointment, ClinicSession, Patient, StockBatch
from portal.core.db import transaction
from tests.factories import make_clinic_session, make_department, make_medicine, make_patient


def _update(engine, stmt):
    with transaction(engine) as db:
        db.execute(stmt)


def test_booked_count_cannot_exceed_capacity(engine):
    s = make_clinic_session(engine, capacity=2)
    with pytest.raises(IntegrityError):
        _update(engine, update(ClinicSession).where(ClinicSession.id == s.id).values(booked_count=3))
    with pytest.raises(IntegrityError):
        _update(engine, update(ClinicSession).where(ClinicSession.id == s.id).values(booked_count=-1))
    _update(engine, update(ClinicSession).where(ClinicSession.id == s.id).values(booked_count=2))


def test_clinic_session_capacity_and_times_checked(engine):
    with pytest.raises(IntegrityError):
        make_clinic_session(engine, capacity=0)
    with pytest.raises(IntegrityError):
        make_clinic_session(engine, start=time(12, 0), end=time(8, 0))


def test_clinic_session_unique_per_doctor_start(engine):
    s = make_clinic_session(engine)
    with transaction(engine) as db:
        other = db.get(ClinicSession, s.id)
        doctor_id, dept_id = other.doctor_id, other.department_id
    with pytest.raises(IntegrityError):
        with transaction(engine) as db:
            db.add(ClinicSession(doctor_id=doctor_id, department_id=dept_id, session_date=s.session_date,
                                 start_time=s.start_time, end_time=s.end_time, capacity=5))


def test_department_code_unique(engine):
    make_department(engine, code="CARD", name="Cardiology")
    with pytest.raises(IntegrityError):
        make_department(engine, code="CARD", name="Cardiology 2")


def test_patient_gets_mrn_and_national_id_is_unique_when_present(engine):
    a = make_patient(engine, national_id=None)
    b = make_patient(engine, national_id=None)  # many patients without a national ID
    assert a.medical_record_number == f"MRN-{a.id:08d}"
    assert b.medical_record_number == f"MRN-{b.id:08d}"
    make_patient(engine, national_id="310101198001010011")
    with pytest.raises(IntegrityError):
        make_patient(engine, national_id="310101198001010011")


def test_one_active_appointment_per_patient_per_clinic_session(engine):
    s = make_clinic_session(engine)
    p = make_patient(engine)

    def add(queue, marker):
        with transaction(engine) as db:
            db.add(Appointment(reference=f"REF-{queue}", patient_id=p.id, clinic_session_id=s.id,
                                    doctor_id=s.doctor_id, department_id=s.department_id,
                                    session_date=s.session_date, queue_number=queue, active_marker=marker))

    add(1, None)  # a cancelled one
    add(2, 1)
    with pytest.raises(IntegrityError):
        add(3, 1)
    with pytest.raises(IntegrityError):
        add(2, None)  # queue number taken in this clinic session


def test_stock_never_negative(engine):
    m = make_medicine(engine)
    with transaction(engine) as db:
        batch = StockBatch(medicine_id=m.id, lot_number="L1", expiry_date=date(2099, 1, 1),
                           quantity_received=5, quantity_on_hand=5)
        db.add(batch)
        db.flush()
        batch_id = batch.id
    with pytest.raises(IntegrityError):
        _update(engine, update(StockBatch).where(StockBatch.id == batch_id).values(quantity_on_hand=-1))


def test_datetimes_round_trip_as_aware_utc(engine):
    p = make_patient(engine)
    with transaction(engine) as db:
        loaded = db.get(Patient, p.id)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset().total_seconds() == 0
    assert abs((loaded.created_at - p.created_at).total_seconds()) < 1e-3
