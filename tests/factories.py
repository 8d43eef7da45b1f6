"""Small factory functions for test data: each inserts one row and returns it.

Keep arguments keyword-only with sensible defaults, so a test states only what
matters to it (``make_schedule(engine, capacity=1)``).
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta

from sqlalchemy.engine import Engine

from models import (
    Department,
    Doctor,
    Gender,
    Icd10Code,
    Medicine,
    Patient,
    Role,
    Schedule,
    ScheduleStatus,
    StaffUser,
    Supplier,
)
from portal.db import transaction
from portal.security.passwords import hash_password
from portal.settings import get_settings

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def local_today() -> date:
    """Today in the hospital's time zone."""
    return datetime.now(get_settings().tz).date()


def _save(engine: Engine, obj):
    with transaction(engine) as session:
        session.add(obj)
        session.flush()
        session.refresh(obj)
        session.expunge(obj)
    return obj


def make_department(engine: Engine, **kw) -> Department:
    n = next(_seq)
    kw.setdefault("code", f"D{n}")
    kw.setdefault("name", f"Department {n}")
    return _save(engine, Department(**kw))


def make_doctor(engine: Engine, *, department: Department | None = None, **kw) -> Doctor:
    n = next(_seq)
    kw.setdefault("full_name", f"Doctor {n}")
    kw.setdefault("title", "Attending Physician")
    kw.setdefault("specialty", "General Medicine")
    kw.setdefault("phone", f"+8613900{n:06d}")
    doctor = _save(engine, Doctor(**kw))
    if department is not None:
        from models import DoctorDepartment

        _save(engine, DoctorDepartment(doctor_id=doctor.id, department_id=department.id))
    return doctor


def make_schedule(
    engine: Engine,
    *,
    doctor: Doctor | None = None,
    department: Department | None = None,
    day: date | None = None,
    start: time = time(8, 0),
    end: time = time(12, 0),
    capacity: int = 10,
    status: ScheduleStatus = ScheduleStatus.open,
    **kw,
) -> Schedule:
    department = department or make_department(engine)
    doctor = doctor or make_doctor(engine, department=department)
    return _save(engine, Schedule(
        doctor_id=doctor.id, department_id=department.id,
        session_date=day or local_today() + timedelta(days=1), start_time=start, end_time=end,
        capacity=capacity, status=status, slot_minutes=kw.pop("slot_minutes", 10),
        fee=kw.pop("fee", 2000), **kw,
    ))


def make_patient(engine: Engine, **kw) -> Patient:
    n = next(_seq)
    kw.setdefault("full_name", f"Patient {n}")
    kw.setdefault("birth_date", date(1980, 1, 1) + timedelta(days=n))
    kw.setdefault("phone", f"+8613800{n:06d}")
    kw.setdefault("gender", Gender.female)
    return _save(engine, Patient(**kw))


def make_staff(engine: Engine, *, role: Role = Role.admin, password: str = PASSWORD, **kw) -> StaffUser:
    n = next(_seq)
    kw.setdefault("username", f"{role.value}{n}")
    kw.setdefault("full_name", f"{role.value.title()} {n}")
    return _save(engine, StaffUser(role=role, password_hash=hash_password(password), **kw))


def make_medicine(engine: Engine, **kw) -> Medicine:
    n = next(_seq)
    kw.setdefault("name", f"medicine {n}")
    kw.setdefault("form", "Tablet")
    kw.setdefault("strength", "500 mg")
    kw.setdefault("unit", "tablet")
    kw.setdefault("unit_price", 50)
    return _save(engine, Medicine(**kw))


def make_supplier(engine: Engine, **kw) -> Supplier:
    n = next(_seq)
    kw.setdefault("name", f"Supplier {n}")
    return _save(engine, Supplier(**kw))


def make_icd10(engine: Engine, code: str = "I10", title: str = "Essential (primary) hypertension") -> Icd10Code:
    return _save(engine, Icd10Code(code=code, title=title))


def login(client, username: str, password: str = PASSWORD):
    """Log ``client`` in to the admin; returns the login response (302 on success)."""
    return client.post("/admin/login", data={"username": username, "password": password})
