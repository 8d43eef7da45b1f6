"""Small factory functions for test data: each inserts one row and returns it.

Keep arguments keyword-only with sensible defaults, so a test states only what
matters to it (``make_clinic_session(engine, capacity=1)``).
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from models import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    BatchStatus,
    ClinicSession,
    ClinicSessionStatus,
    Department,
    Doctor,
    Encounter,
    Gender,
    Icd10Code,
    Medicine,
    MovementKind,
    Patient,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    Role,
    StaffUser,
    StockBatch,
    StockMovement,
    Supplier,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.core.settings import get_settings
from tests.admin_html import csrf_token_of

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)

# A real argon2id hash with the cheapest parameters: verify_password reads the
# parameters from the hash, so logging in as a factory-made user stays real but takes
# a millisecond instead of a third of a second. Hashed once per password.
_FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
_hashes: dict[str, str] = {}


def fast_hash(password: str) -> str:
    """An argon2id hash of ``password`` with minimal cost (for test accounts only)."""
    if password not in _hashes:
        _hashes[password] = _FAST_HASHER.hash(password)
    return _hashes[password]


def _save(engine: Engine, obj):
    with transaction(engine) as db:
        db.add(obj)
        db.flush()
        db.refresh(obj)
        db.expunge(obj)
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


def make_clinic_session(
    engine: Engine,
    *,
    doctor: Doctor | None = None,
    department: Department | None = None,
    day: date | None = None,
    start: time = time(8, 0),
    end: time = time(12, 0),
    capacity: int = 10,
    status: ClinicSessionStatus = ClinicSessionStatus.open,
    **kw,
) -> ClinicSession:
    department = department or make_department(engine)
    doctor = doctor or make_doctor(engine, department=department)
    return _save(engine, ClinicSession(
        doctor_id=doctor.id, department_id=department.id,
        session_date=day or clock.today() + timedelta(days=1), start_time=start, end_time=end,
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


def make_audited_patient(engine: Engine, **kw) -> Patient:
    """A patient created as the admin creates one, with its ``create`` audit event (so
    ``portal.ops.integrity``'s audit rule holds for it)."""
    from portal.core.actor import current_actor
    from portal.core.db import session_factory
    from portal.services import change_audit

    n = next(_seq)
    kw.setdefault("full_name", f"Patient {n}")
    kw.setdefault("birth_date", date(1980, 1, 1) + timedelta(days=n))
    kw.setdefault("phone", f"+8613800{n:06d}")
    kw.setdefault("gender", Gender.female)
    change_audit.install()
    token = current_actor.set(Actor(username="factory"))
    try:
        with session_factory(engine, audit_changes=True).begin() as db:
            patient = Patient(**kw)
            db.add(patient)
            db.flush()
            db.expunge(patient)
    finally:
        current_actor.reset(token)
    return patient


def make_staff(engine: Engine, *, role: Role = Role.admin, password: str = PASSWORD, **kw) -> StaffUser:
    n = next(_seq)
    kw.setdefault("username", f"{role.value}{n}")
    kw.setdefault("full_name", f"{role.value.title()} {n}")
    return _save(engine, StaffUser(role=role, password_hash=fast_hash(password), **kw))


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


def actor_for(staff: StaffUser) -> Actor:
    """The service-layer Actor of a staff user."""
    return Actor(username=staff.username, user_id=staff.id, role=staff.role.value)


def local_datetime(day: date, at: time) -> datetime:
    """The aware UTC instant of local wall-clock ``at`` on ``day`` in the hospital's zone."""
    return datetime.combine(day, at, tzinfo=get_settings().tz).astimezone(UTC)


def make_appointment(
    engine: Engine,
    *,
    clinic_session: ClinicSession,
    patient: Patient | None = None,
    status: AppointmentStatus = AppointmentStatus.pending,
    booked_at: datetime | None = None,
    **kw,
) -> Appointment:
    """Insert an appointment in ``clinic_session`` with the next queue number.

    The clinic session's ``last_queue_number`` moves on and, for an active status, its
    ``booked_count`` grows by one, as the booking services would leave them.
    """
    patient = patient or make_patient(engine)
    active = status in ACTIVE_STATUSES
    with transaction(engine) as db:
        sched = db.get(ClinicSession, clinic_session.id)
        sched.last_queue_number += 1
        if active:
            sched.booked_count += 1
        queue = sched.last_queue_number
        db.flush()
    n = next(_seq)
    return _save(engine, Appointment(
        reference=kw.pop("reference", f"T{n:09d}"), patient_id=patient.id, clinic_session_id=clinic_session.id,
        doctor_id=clinic_session.doctor_id, department_id=clinic_session.department_id,
        session_date=clinic_session.session_date, queue_number=queue, status=status,
        active_marker=1 if active else None,
        booked_at=booked_at or clock.now() - timedelta(hours=2), **kw,
    ))


def make_batch(
    engine: Engine,
    *,
    medicine: Medicine,
    quantity: int = 100,
    expiry: date | None = None,
    lot_number: str | None = None,
    unit_cost: int = 30,
    status: BatchStatus = BatchStatus.active,
    supplier: Supplier | None = None,
    note: str | None = None,
) -> StockBatch:
    """A batch received through ``stock.receive_stock`` (so the ledger holds its receipt),
    from ``supplier`` if given, ``note`` on the receipt movement.

    ``expiry`` defaults to a year ahead; a past expiry is received "in the past" (with
    ``today`` the day before it). ``status`` other than active is then set directly.
    """
    from sqlalchemy import update

    from portal.services.stock import receive_stock

    n = next(_seq)
    expiry = expiry or clock.today() + timedelta(days=365)
    with transaction(engine) as db:
        batch = receive_stock(
            db, medicine_id=medicine.id, lot_number=lot_number or f"LOT{n:05d}", expiry_date=expiry,
            quantity=quantity, unit_cost=unit_cost, supplier_id=supplier.id if supplier else None,
            actor=Actor(username="factory"), note=note,
            today=min(clock.today(), expiry - timedelta(days=1)),
        )
        if status != BatchStatus.active:
            db.execute(update(StockBatch).where(StockBatch.id == batch.id).values(status=status))
            batch = db.get(StockBatch, batch.id, populate_existing=True)
        db.expunge(batch)
    return batch


def make_prescription(
    engine: Engine,
    *,
    patient: Patient | None = None,
    doctor: Doctor | None = None,
    items: list[tuple[Medicine, int]],
    status: PrescriptionStatus = PrescriptionStatus.issued,
    **kw,
) -> Prescription:
    """A prescription with one line per ``(medicine, quantity)``; ``items`` loaded, ordered by id."""
    from sqlalchemy.orm import selectinload

    n = next(_seq)
    patient = patient or make_patient(engine)
    doctor = doctor or make_doctor(engine)
    kw.setdefault("number", f"RX-TEST-{n:06d}")
    with transaction(engine) as db:
        rx = Prescription(patient_id=patient.id, doctor_id=doctor.id, status=status, **kw)
        db.add(rx)
        db.flush()
        for medicine, quantity in items:
            db.add(PrescriptionItem(
                prescription_id=rx.id, medicine_id=medicine.id, quantity=quantity, dosage="1 tablet twice daily",
            ))
        db.flush()
        rx = db.scalars(
            select(Prescription).where(Prescription.id == rx.id)
            .options(selectinload(Prescription.items)).execution_options(populate_existing=True)
        ).one()
        rx.items.sort(key=lambda item: item.id)
        db.expunge_all()
    return rx


def assert_ledger_consistent(engine: Engine) -> None:
    """Fail unless ``stock.check_stock_ledger`` finds every batch equal to its movements."""
    from portal.services.stock import check_stock_ledger

    with transaction(engine, write=False) as db:
        problems = check_stock_ledger(db)
    assert problems == [], [str(p) for p in problems]


def make_received_batch(
    engine: Engine,
    *,
    medicine: Medicine,
    quantity: int = 100,
    expiry: date | None = None,
    unit_cost: int = 30,
    status: BatchStatus = BatchStatus.active,
    received_at: datetime | None = None,
    **kw,
) -> StockBatch:
    """Insert a batch of ``medicine`` received at ``received_at`` and its receipt movement
    (the ledger stays exact), without the stock service: for report figures by date."""
    n = next(_seq)
    received_at = received_at or datetime(2026, 1, 1, 2, 0, tzinfo=UTC)
    batch = _save(engine, StockBatch(
        medicine_id=medicine.id, lot_number=kw.pop("lot_number", f"LOT{n}"),
        expiry_date=expiry or clock.today() + timedelta(days=365), received_at=received_at,
        quantity_received=quantity, quantity_on_hand=quantity, unit_cost=unit_cost, status=status, **kw,
    ))
    _save(engine, StockMovement(
        batch_id=batch.id, medicine_id=medicine.id, kind=MovementKind.receipt, quantity=quantity,
        balance_after=quantity, unit_cost=unit_cost, note="receipt", created_at=received_at,
    ))
    return batch


def make_movement(
    engine: Engine,
    *,
    batch: StockBatch,
    kind: MovementKind,
    quantity: int,
    created_at: datetime,
    prescription_item: PrescriptionItem | None = None,
    **kw,
) -> StockMovement:
    """Record a signed stock movement of ``batch`` and apply it to the batch's quantity.

    Further keywords (``note``, ``staff_user_id`` ...) are columns of the movement.
    """
    with transaction(engine) as db:
        db.execute(update(StockBatch).where(StockBatch.id == batch.id)
                        .values(quantity_on_hand=StockBatch.quantity_on_hand + quantity))
        balance = db.get(StockBatch, batch.id).quantity_on_hand
    return _save(engine, StockMovement(
        batch_id=batch.id, medicine_id=batch.medicine_id, kind=kind, quantity=quantity, balance_after=balance,
        unit_cost=batch.unit_cost, created_at=created_at,
        prescription_item_id=prescription_item.id if prescription_item else None, **kw,
    ))


def make_prescription_lines(
    engine: Engine,
    *,
    doctor: Doctor,
    patient: Patient | None = None,
    appointment: Appointment | None = None,
    status: PrescriptionStatus = PrescriptionStatus.issued,
    lines: list[tuple[Medicine, int]] = (),
) -> tuple[Prescription, list[PrescriptionItem]]:
    """Insert a prescription with one item per ``(medicine, quantity)`` line."""
    n = next(_seq)
    rx = _save(engine, Prescription(
        number=f"RX-T-{n:08d}", patient_id=(patient or make_patient(engine)).id if appointment is None
        else appointment.patient_id, doctor_id=doctor.id,
        appointment_id=appointment.id if appointment else None, status=status,
    ))
    items = [_save(engine, PrescriptionItem(prescription_id=rx.id, medicine_id=m.id, quantity=q, dosage="as directed"))
             for m, q in lines]
    return rx, items


def make_encounter(
    engine: Engine, *, patient: Patient, doctor: Doctor, appointment: Appointment | None = None, **kw
) -> Encounter:
    """Insert a visit record of ``patient`` with ``doctor`` (optionally for ``appointment``)."""
    kw.setdefault("chief_complaint", "Headache")
    return _save(engine, Encounter(
        patient_id=patient.id, doctor_id=doctor.id,
        appointment_id=appointment.id if appointment else None, **kw,
    ))


def make_prescription_item(
    engine: Engine, *, prescription: Prescription, medicine: Medicine, quantity: int = 10, **kw
) -> PrescriptionItem:
    """Insert one medicine line of ``prescription`` (``quantity`` in dispensing units)."""
    kw.setdefault("dosage", "1 tablet three times daily")
    return _save(engine, PrescriptionItem(
        prescription_id=prescription.id, medicine_id=medicine.id, quantity=quantity, **kw,
    ))


#: The header sqladmin's JavaScript sends the CSRF token in (``views._csrf``).
CSRF_HEADER = "X-CSRF-Token"


def login(client, username: str, password: str = PASSWORD):
    """Log ``client`` in to the admin as a browser does; returns the login response (302 on success).

    Reads the login form's pre-login CSRF token and posts it with the credentials. After
    a successful login the client sends the new login's token (read from a rendered page's
    ``<meta name="csrf-token">``, as sqladmin's JavaScript does) in the ``X-CSRF-Token``
    header of every later request, so tests may post to any admin route; a test of a
    refusal removes it (``client.headers.pop(CSRF_HEADER)``).
    """
    client.headers.pop(CSRF_HEADER, None)
    token = csrf_token_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"username": username, "password": password, "csrf_token": token})
    if response.status_code == 302:
        client.headers[CSRF_HEADER] = csrf_token_of(client.get("/admin/password").text)
    return response


def logout(client):
    """Log ``client`` out as a browser does: the "Logout" form's POST with its CSRF token.

    Returns:
        the logout response (302 to the login page).
    """
    token = csrf_token_of(client.get("/admin/logout").text)
    response = client.post("/admin/logout", data={"csrf_token": token})
    client.headers.pop(CSRF_HEADER, None)
    return response


def make_ward(
    engine: Engine, *, department: Department | None = None, beds: int = 2, rooms: int = 1,
    sex_policy: str = "mixed", daily_rate: int = 8000, **kw,
):
    """A ward with ``rooms`` rooms of ``beds`` free beds each; returns ``(ward, [Bed, ...])``
    (beds in room then bed order, codes ``<ward>-<room>-<n>``)."""
    from models import Bed, Room, SexPolicy, Ward

    n = next(_seq)
    department = department or make_department(engine)
    kw.setdefault("name", f"Ward {n}")
    ward = _save(engine, Ward(department_id=department.id, sex_policy=SexPolicy(sex_policy),
                              floor=kw.pop("floor", "3"), **kw))
    made = []
    for r in range(1, rooms + 1):
        room = _save(engine, Room(ward_id=ward.id, number=f"{n}{r:02d}"))
        for b in range(1, beds + 1):
            made.append(_save(engine, Bed(room_id=room.id, code=f"W{n}-{r}-{b}", daily_rate=daily_rate)))
    return ward, made
