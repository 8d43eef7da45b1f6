"""A small hospital for the access tests: two doctors, each with their own rows.

``build_world(engine)`` makes one staff account per role (username = role value,
password ``factories.PASSWORD``; the doctor's account is linked to ``doctor``), and for
each of two doctors a clinic session today, a patient with an appointment in it, an
encounter, a prescription and a prescription line. ``World.sample[identity]`` is a row
of each admin view that every role allowed to view it can see (the first doctor's,
today's), ``World.foreign[identity]`` the second doctor's row of the doctor-scoped
views.
"""

from __future__ import annotations

import itertools
import json
from base64 import b64encode
from dataclasses import dataclass, field
from datetime import date, timedelta

import itsdangerous
from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

import models
from models import (
    Admission,
    AdmissionStatus,
    Appointment,
    AppointmentStatus,
    AuditEvent,
    BatchStatus,
    Bed,
    BedStatus,
    BedTransfer,
    InpatientNote,
    Encounter,
    MovementKind,
    Prescription,
    PrescriptionItem,
    Role,
    Room,
    StockBatch,
    StockMovement,
)
from portal.core import clock
from portal.core.db import transaction
from portal.core.settings import get_settings
from tests.factories import (
    _save,
    make_clinic_session,
    make_department,
    make_doctor,
    make_icd10,
    make_medicine,
    make_patient,
    make_staff,
    make_supplier,
    make_ward,
)

_seq = itertools.count(1)


@dataclass
class World:
    """Ids of the rows of the access tests (see the module docstring)."""

    staff: dict[str, int] = field(default_factory=dict)
    sample: dict[str, str] = field(default_factory=dict)
    foreign: dict[str, str] = field(default_factory=dict)
    doctor_id: int = 0
    other_doctor_id: int = 0
    department_id: int = 0
    medicine_id: int = 0
    supplier_id: int = 0
    names: dict[str, str] = field(default_factory=dict)


def make_appointment(engine: Engine, *, clinic_session, patient, status=AppointmentStatus.confirmed) -> Appointment:
    """Insert an appointment of ``patient`` in ``clinic_session`` (directly, not via booking)."""
    n = next(_seq)
    return _save(engine, Appointment(
        reference=f"TST{n:02d}-{n:05d}"[:16], patient_id=patient.id, clinic_session_id=clinic_session.id,
        doctor_id=clinic_session.doctor_id, department_id=clinic_session.department_id,
        session_date=clinic_session.session_date, queue_number=n, status=status, active_marker=1,
    ))


def make_encounter(engine: Engine, *, appointment, complaint: str) -> Encounter:
    """Insert an encounter for ``appointment``."""
    return _save(engine, Encounter(
        appointment_id=appointment.id, patient_id=appointment.patient_id,
        doctor_id=appointment.doctor_id, chief_complaint=complaint, diagnosis_code="I10",
    ))


def make_prescription(engine: Engine, *, appointment, number: str) -> Prescription:
    """Insert an issued prescription for ``appointment``'s patient by its doctor."""
    return _save(engine, Prescription(
        number=number, patient_id=appointment.patient_id, doctor_id=appointment.doctor_id,
        appointment_id=appointment.id,
    ))


def make_item(engine: Engine, *, prescription, medicine, dosage: str = "1 tablet daily") -> PrescriptionItem:
    """Insert a prescription line."""
    return _save(engine, PrescriptionItem(
        prescription_id=prescription.id, medicine_id=medicine.id, quantity=10, dosage=dosage,
    ))


def build_world(engine: Engine) -> World:
    """Create the access tests' hospital; returns the ids."""
    w = World()
    make_icd10(engine)
    department = make_department(engine)
    doctor = make_doctor(engine, department=department, full_name="Dr Own")
    other = make_doctor(engine, department=department, full_name="Dr Other")
    w.department_id, w.doctor_id, w.other_doctor_id = department.id, doctor.id, other.id
    for role in Role:
        extra = {"doctor_id": doctor.id} if role is Role.doctor else {}
        w.staff[role.value] = make_staff(engine, role=role, username=role.value, **extra).id
    medicine = make_medicine(engine, name="paracetamol")
    supplier = make_supplier(engine)
    w.medicine_id, w.supplier_id = medicine.id, supplier.id
    batch = _save(engine, StockBatch(
        medicine_id=medicine.id, supplier_id=supplier.id, lot_number="LOT-1",
        expiry_date=clock.today() + timedelta(days=365), quantity_received=100, quantity_on_hand=100,
        status=BatchStatus.active,
    ))
    movement = _save(engine, StockMovement(
        batch_id=batch.id, medicine_id=medicine.id, kind=MovementKind.receipt, quantity=100, balance_after=100,
    ))
    rows = {}
    for who, doc in (("own", doctor), ("other", other)):
        clinic_session = make_clinic_session(engine, doctor=doc, department=department, day=clock.today())
        patient = make_patient(engine, full_name=f"Patient {who.title()}")
        appointment = make_appointment(engine, clinic_session=clinic_session, patient=patient)
        encounter = make_encounter(engine, appointment=appointment, complaint=f"Complaint {who}")
        prescription = make_prescription(engine, appointment=appointment, number=f"RX-{who.upper()}-{next(_seq)}")
        item = make_item(engine, prescription=prescription, medicine=medicine, dosage=f"Dosage {who}")
        rows[who] = {
            "clinic_session": clinic_session.id, "patient": patient.id, "appointment": appointment.id,
            "encounter": encounter.id, "prescription": prescription.id, "prescription_item": item.id,
        }
        w.names[f"{who}-appointment"] = appointment.reference
        w.names[f"{who}-prescription"] = prescription.number
    with transaction(engine) as db:
        db.add(AuditEvent(actor="system", action="seed", entity="department", entity_id=str(department.id), summary="Seeded"))
        db.flush()
        audit_id = db.scalar(select(func.max(AuditEvent.id)))
    ward, beds = make_ward(engine, department=department, beds=2, name="Ward Access")
    admission = _save(engine, Admission(
        patient_id=int(rows["own"]["patient"]), doctor_id=doctor.id, department_id=department.id, reason="Access",
        status=AdmissionStatus.admitted, bed_id=beds[1].id, bed_marker=1, active_marker=1,
        admitted_at=clock.now(),
    ))
    transfer = _save(engine, BedTransfer(admission_id=admission.id, from_bed_id=beds[0].id, to_bed_id=beds[1].id,
                                         transferred_by="nurse", reason="Access"))
    note = _save(engine, InpatientNote(admission_id=admission.id, author="nurse", note="Access", pulse=70))
    with transaction(engine) as db:
        db.execute(update(Bed).where(Bed.id == beds[1].id).values(status=BedStatus.occupied))
    w.sample = {k: str(v) for k, v in rows["own"].items()}
    w.sample.update({"ward": str(ward.id), "room": str(beds[0].room_id), "bed": str(beds[0].id),
                     "admission": str(admission.id), "bed_transfer": str(transfer.id),
                     "inpatient_note": str(note.id)})
    w.foreign = {k: str(v) for k, v in rows["other"].items()}
    w.sample.update({
        "doctor": str(doctor.id), "department": str(department.id), "medicine": str(medicine.id),
        "stock_batch": str(batch.id), "stock_movement": str(movement.id), "supplier": str(supplier.id),
        "icd10_code": "I10", "staff_user": str(w.staff["admin"]), "audit_event": str(audit_id),
    })
    return w


def make_disposable(engine: Engine, identity: str, w: World) -> str | None:
    """A fresh row of ``identity`` that nothing refers to (so it can be deleted), within
    the first doctor's scope; None for entities the admin never deletes."""
    n = next(_seq)
    today = clock.today()
    if identity == "department":
        return str(make_department(engine).id)
    if identity == "doctor":
        return str(make_doctor(engine).id)
    if identity == "clinic_session":
        from models import Doctor

        doctor = Doctor(id=w.doctor_id)
        return str(make_clinic_session(
            engine, doctor=doctor, department=make_department(engine), day=today + timedelta(days=30 + n)
        ).id)
    if identity == "patient":
        return str(make_patient(engine).id)
    if identity == "encounter":
        return str(_save(engine, Encounter(patient_id=int(w.sample["patient"]), doctor_id=w.doctor_id, chief_complaint=f"spare {n}")).id)
    if identity == "prescription":
        return str(_save(engine, Prescription(number=f"RX-SPARE-{n}", patient_id=int(w.sample["patient"]), doctor_id=w.doctor_id)).id)
    if identity == "prescription_item":
        return str(_save(engine, PrescriptionItem(
            prescription_id=int(w.sample["prescription"]), medicine_id=w.medicine_id, quantity=1, dosage=f"spare {n}",
        )).id)
    if identity == "medicine":
        return str(make_medicine(engine).id)
    if identity == "supplier":
        return str(make_supplier(engine).id)
    if identity == "ward":
        return str(make_ward(engine, beds=0, rooms=0)[0].id)
    if identity == "room":
        return str(_save(engine, Room(ward_id=int(w.sample["ward"]), number=f"S{n}")).id)
    if identity == "bed":
        return str(_save(engine, Bed(room_id=int(w.sample["room"]), code=f"SPARE-{n}")).id)
    return None


def fingerprint(engine: Engine) -> tuple:
    """Row counts of every table plus the newest audit id: equal before and after means
    nothing was written."""
    with transaction(engine, write=False) as db:
        counts = tuple(
            db.scalar(select(func.count()).select_from(table)) for table in models.metadata.sorted_tables
        )
        return counts + (db.scalar(select(func.max(AuditEvent.id))),)


def row_exists(engine: Engine, model, pk) -> bool:
    """True when ``model`` has a row with primary key ``pk``."""
    with transaction(engine, write=False) as db:
        return db.get(model, int(pk) if str(pk).isdigit() else pk) is not None


def session_cookie(data: dict) -> str:
    """A signed ``portal_staff`` cookie holding ``data`` (as SessionMiddleware makes it)."""
    signer = itsdangerous.TimestampSigner(get_settings().secret_key)
    return signer.sign(b64encode(json.dumps(data).encode())).decode()


def today() -> date:
    """Today in the hospital's zone."""
    return clock.today()
