"""Bookings racing for the last places never overbook (real threads on MariaDB)."""

from __future__ import annotations

import threading
from collections import Counter

from sqlalchemy import func, select

from models import Appointment, ClinicSession
from portal.core.actor import Actor
from portal.core.db import run_in_transaction
from portal.core.errors import SlotFull
from portal.services import appointments as svc
from tests.factories import make_clinic_session, make_patient

PATIENT = Actor(username="patient:online")


def test_200_bookings_race_for_20_places(mysql_only):
    engine = mysql_only
    clinic_session = make_clinic_session(engine, capacity=20)
    patients = [make_patient(engine) for _ in range(200)]
    barrier = threading.Barrier(len(patients))
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def attempt(patient_id: int) -> None:
        barrier.wait()
        try:
            run_in_transaction(
                svc.book, engine=engine, clinic_session_id=clinic_session.id, patient_id=patient_id, actor=PATIENT
            )
            result = "booked"
        except SlotFull:
            result = "full"
        except Exception as exc:  # any other outcome is a failure of the test
            result = f"error: {type(exc).__name__}: {exc}"
        with lock:
            outcomes[result] += 1

    threads = [threading.Thread(target=attempt, args=(p.id,)) for p in patients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert outcomes == Counter({"booked": 20, "full": 180})
    with engine.connect() as conn:
        numbers = sorted(conn.scalars(select(Appointment.queue_number).where(Appointment.clinic_session_id == clinic_session.id)))
        booked = conn.scalar(select(ClinicSession.booked_count).where(ClinicSession.id == clinic_session.id))
        total = conn.scalar(select(func.count()).select_from(Appointment))
    assert numbers == list(range(1, 21))
    assert booked == 20 and total == 20
