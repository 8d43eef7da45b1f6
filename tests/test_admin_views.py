"""Every admin screen, proven through HTTP on a small known hospital.

One data set (``hospital``) with a few rows per table whose names are easy to tell
apart; each view is described once in ``CASES`` (which rows it shows, what its search
finds, what each filter leaves) and the same tests run over all of them. Then the
forms: create, edit and delete of the editable entities, the refusals (with the
sentence a user sees, and nothing written), the audit trail, exports and pickers.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.testclient import TestClient

import models
from models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    BatchStatus,
    BookingChannel,
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
    Supplier,
)
from portal.core import clock
from portal.core.db import transaction
from portal.core.settings import get_settings
from tests.admin_html import alerts, detail_fields, field_errors, row_texts
from tests.factories import (
    login,
    make_appointment,
    make_batch,
    make_clinic_session,
    make_department,
    make_doctor,
    make_encounter,
    make_icd10,
    make_medicine,
    make_movement,
    make_patient,
    make_prescription,
    make_prescription_item,
    make_staff,
    make_supplier,
)
from views import ALL_VIEWS, permissions

#: The entity screens (sqladmin ModelViews); ALL_VIEWS also holds the reports and pages.
MODEL_VIEWS = [view for view in ALL_VIEWS if getattr(view, "model", None) is not None]

TODAY = clock.today()


def _local(day: date, at: time) -> datetime:
    """An aware UTC datetime for a wall-clock time in the hospital's zone."""
    return datetime.combine(day, at, tzinfo=get_settings().tz).astimezone(UTC)


def _days(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


# -- the data set -------------------------------------------------------------------------

def build_hospital(engine) -> SimpleNamespace:
    """A small hospital in which every row can be told apart by one string."""
    h = SimpleNamespace()
    h.card = make_department(engine, code="CARD", name="Cardiology", location="Building B, 3rd floor")
    h.derm = make_department(engine, code="DERM", name="Dermatology", location="Building C")
    h.oldward = make_department(engine, code="OLDW", name="Old Ward", is_active=False)

    h.wong = make_doctor(engine, full_name="Alice Wong", title="Chief Physician", specialty="Cardiology",
                         phone="+8613911110001", department=h.card)
    h.chen = make_doctor(engine, full_name="Bob Chen", title="Attending Physician", specialty="Dermatology",
                         phone="+8613911110002", department=h.derm)
    h.retired = make_doctor(engine, full_name="Carl Retired", title=None, specialty="Surgery",
                            phone="+8613911110003", is_active=False)

    h.s_card = make_clinic_session(engine, doctor=h.wong, department=h.card, day=TODAY + timedelta(days=1),
                             fee=2500, note="Morning clinic")
    h.s_derm = make_clinic_session(engine, doctor=h.chen, department=h.derm, day=TODAY + timedelta(days=3),
                             start=time(13, 30), end=time(17, 0), fee=1500, status=ClinicSessionStatus.closed,
                             note="Afternoon clinic")
    h.s_old = make_clinic_session(engine, doctor=h.wong, department=h.card, day=TODAY + timedelta(days=10),
                            status=ClinicSessionStatus.cancelled, note="Cancelled clinic")

    h.zhang = make_patient(engine, full_name="Zhang Wei", phone="+8613800000001", birth_date=date(1980, 1, 1),
                           national_id="310101198001010011", gender=Gender.male,
                           created_at=_local(date(2026, 3, 1), time(10, 0)))
    h.li = make_patient(engine, full_name="Li Na", phone="+8613800000002", birth_date=date(1992, 5, 5),
                        gender=Gender.female, created_at=_local(date(2026, 3, 6), time(0, 30)))
    h.wang = make_patient(engine, full_name="Wang Fang", phone="+8613700000003", birth_date=date(2001, 9, 9),
                          gender=Gender.female, created_at=_local(date(2026, 3, 5), time(23, 30)))

    h.a1 = make_appointment(engine, clinic_session=h.s_card, patient=h.zhang, reference="AAAAA-11111",
                            status=AppointmentStatus.confirmed, channel=BookingChannel.front_desk, booked_at=_local(date(2026, 3, 2), time(9, 0)))
    h.a2 = make_appointment(engine, clinic_session=h.s_derm, patient=h.li, reference="BBBBB-22222",
                            status=AppointmentStatus.pending, channel=BookingChannel.online,
                            booked_at=_local(date(2026, 3, 6), time(0, 30)))
    h.a3 = make_appointment(engine, clinic_session=h.s_card, patient=h.li, reference="CCCCC-33333",
                            status=AppointmentStatus.cancelled, channel=BookingChannel.front_desk, booked_at=_local(date(2026, 3, 5), time(23, 30)))

    h.i10 = make_icd10(engine, "I10", "Essential (primary) hypertension")
    h.l30 = make_icd10(engine, "L30", "Other and unspecified dermatitis")
    h.e11 = make_icd10(engine, "E11", "Type 2 diabetes mellitus")

    h.e1 = make_encounter(engine, patient=h.zhang, doctor=h.wong, appointment=h.a1,
                          chief_complaint="Chest pain on exertion", diagnosis_code="I10",
                          created_at=_local(date(2026, 3, 5), time(23, 30)))
    h.e2 = make_encounter(engine, patient=h.li, doctor=h.chen, appointment=h.a2,
                          chief_complaint="Itchy rash on arms", diagnosis_code="L30",
                          created_at=_local(date(2026, 3, 6), time(0, 30)))

    h.amox = make_medicine(engine, name="Amoxicillin", form="Capsule", strength="500 mg", unit="capsule",
                           category="Antibacterials", unit_price=120)
    h.para = make_medicine(engine, name="Paracetamol", form="Tablet", strength="500 mg", unit="tablet",
                           category="Analgesics", unit_price=35, reorder_level=1000)
    h.morph = make_medicine(engine, name="Morphine", form="Injection", strength="10 mg/ml", unit="ampoule",
                            category="Opioid analgesics", unit_price=880, is_controlled=True)
    h.obsolete = make_medicine(engine, name="Obsoletine", form="Tablet", strength="5 mg", is_active=False)

    h.sino = make_supplier(engine, name="Sinopharm Shanghai", contact_name="Zhou Lin", phone="+862100000001")
    h.defunct = make_supplier(engine, name="Defunct Pharma")  # deactivated once it has delivered

    h.b_amox = make_batch(engine, medicine=h.amox, supplier=h.sino, lot_number="AMX-2026-01",
                          quantity=200, expiry=TODAY + timedelta(days=30), unit_cost=45, note="Received")
    h.b_para = make_batch(engine, medicine=h.para, supplier=h.sino, lot_number="PCM-2027-07",
                          quantity=500, expiry=TODAY + timedelta(days=400), note="Received")
    h.b_old = make_batch(engine, medicine=h.amox, supplier=h.defunct, lot_number="AMX-2025-09",
                         quantity=20, expiry=TODAY - timedelta(days=10), status=BatchStatus.expired,
                         note="Received")
    with transaction(engine) as db:
        db.execute(update(Supplier).where(Supplier.id == h.defunct.id).values(is_active=False))

    h.rx1 = make_prescription(engine, patient=h.zhang, doctor=h.wong, items=[], number="RX-20260301-0001",
                              appointment_id=h.a1.id, diagnosis_code="I10",
                              created_at=_local(date(2026, 3, 5), time(23, 30)))
    h.rx2 = make_prescription(engine, patient=h.li, doctor=h.chen, items=[], number="RX-20260306-0002",
                              diagnosis_code="L30", status=PrescriptionStatus.dispensed,
                              created_at=_local(date(2026, 3, 6), time(0, 30)))
    h.item1 = make_prescription_item(engine, prescription=h.rx1, medicine=h.amox, quantity=21,
                                     dosage="1 capsule three times daily")
    h.item2 = make_prescription_item(engine, prescription=h.rx2, medicine=h.para, quantity=10,
                                     dosage="1 tablet twice daily", quantity_dispensed=10)
    h.m_dispense = make_movement(engine, batch=h.b_amox, kind=MovementKind.dispense, quantity=-21,
                                 note="Dispensed for RX one", prescription_item=h.item1,
                                 created_at=_local(date(2026, 3, 6), time(0, 30)))

    h.rita = make_staff(engine, username="rita", full_name="Rita Front", role=Role.receptionist)
    h.joy = make_staff(engine, username="joy", full_name="Joy Nurse", role=Role.nurse, is_active=False)
    h.drwong = make_staff(engine, username="drwong", full_name="Alice Wong", role=Role.doctor, doctor_id=h.wong.id)

    # Inpatients: Zhang Wei admitted to 3A-301-1 after a move from 3A-301-2 (the male ward is empty).
    from models import Admission, AdmissionStatus, Bed, BedStatus, BedTransfer, InpatientNote, Room, SexPolicy, Ward
    from tests.factories import _save

    h.w3a = _save(engine, Ward(department_id=h.card.id, name="Ward 3A", sex_policy=SexPolicy.mixed, floor="3"))
    h.w2b = _save(engine, Ward(department_id=h.derm.id, name="Ward 2B", sex_policy=SexPolicy.male, floor="2"))
    h.r301 = _save(engine, Room(ward_id=h.w3a.id, number="R301"))
    h.r201 = _save(engine, Room(ward_id=h.w2b.id, number="R201"))
    h.bed1 = _save(engine, Bed(room_id=h.r301.id, code="3A-301-1", status=BedStatus.occupied, daily_rate=8000))
    h.bed2 = _save(engine, Bed(room_id=h.r301.id, code="3A-301-2", status=BedStatus.cleaning, daily_rate=8000))
    h.adm = _save(engine, Admission(
        patient_id=h.zhang.id, doctor_id=h.wong.id, department_id=h.card.id, reason="Chest pain",
        diagnosis_code="I10", status=AdmissionStatus.admitted, bed_id=h.bed1.id, bed_marker=1, active_marker=1,
        admitted_at=_local(date(2026, 3, 5), time(10, 0))))
    h.move = _save(engine, BedTransfer(admission_id=h.adm.id, from_bed_id=h.bed2.id, to_bed_id=h.bed1.id,
                                       transferred_by="joy", reason="Needs telemetry",
                                       transferred_at=_local(date(2026, 3, 5), time(12, 0))))
    h.note = _save(engine, InpatientNote(admission_id=h.adm.id, author="joy", note="Chest pain eased", pulse=88,
                                         written_at=_local(date(2026, 3, 5), time(14, 0))))

    with transaction(engine) as db:
        db.execute(insert(AuditEvent), [
            dict(occurred_at=_local(date(2026, 3, 5), time(23, 30)), actor="rita", action="confirm",
                 entity="appointment", entity_id=str(h.a1.id), summary="Confirmed appointment AAAAA-11111"),
            dict(occurred_at=_local(date(2026, 3, 6), time(0, 30)), actor="system", action="expire",
                 entity="stock_batch", entity_id=str(h.b_old.id), summary="Expired batch AMX-2025-09"),
        ])
    return h


@pytest.fixture
def hospital(engine) -> SimpleNamespace:
    """The known data set of this module."""
    return build_hospital(engine)


@pytest.fixture
def admin(engine, client, hospital):
    """``client`` logged in as the administrator ``chief`` (after the data set exists).

    The admin role may view and export every entity and create, edit and delete those
    the permission table lets anyone change (``views/permissions.py``); the tests of
    other roles are at the end of this module and in ``test_permissions.py``.
    """
    hospital.chief = make_staff(engine, username="chief", full_name="Chief Admin", role=Role.admin)
    assert login(client, "chief").status_code == 302
    return client


# -- helpers ------------------------------------------------------------------------------

def _counts(engine) -> dict[str, int]:
    with transaction(engine, write=False) as db:
        return {
            table.name: db.scalar(select(func.count()).select_from(table))
            for table in models.metadata.sorted_tables
        }


def _audit_rows(engine, **where) -> list[AuditEvent]:
    with transaction(engine, write=False) as db:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, key) == value)
        return list(db.scalars(stmt))


def _get(engine, model, pk):
    with transaction(engine, write=False) as db:
        return db.get(model, pk)


def _list(client, identity: str, **params) -> list[str]:
    response = client.get(f"/admin/{identity}/list", params=params)
    assert response.status_code == 200, (identity, params, response.status_code)
    return row_texts(response.text)


def _shown(rows: list[str], keys: dict[str, str]) -> set[str]:
    """Names of the ``keys`` (name -> distinctive text) that appear in some row."""
    return {name for name, text in keys.items() if any(text in row for row in rows)}


def _form(**fields) -> dict[str, Any]:
    return {**{k: ("" if v is None else v) for k, v in fields.items()}, "save": "Save"}


# -- every view, described once ------------------------------------------------------------

@dataclass
class Case:
    """What one admin view must show for the ``hospital`` data set.

    ``keys`` maps a row name to text only that row contains; ``row`` lists, per row
    name, further texts that must appear in that same row (related rows by name,
    formatted values). ``searches`` and ``filters`` map a query to the row names
    it must leave, and no others.
    """

    identity: str
    keys: Callable[[SimpleNamespace], dict[str, str]]
    row: dict[str, list[str]] = field(default_factory=dict)
    searches: list[tuple[str, set[str]]] = field(default_factory=list)
    filters: list[tuple[Callable[[SimpleNamespace], dict[str, Any]], set[str]]] = field(default_factory=list)
    detail: tuple[str, Callable[[SimpleNamespace], Any]] | None = None
    detail_texts: list[str] = field(default_factory=list)
    read_only: bool = False


CASES = [
    Case(
        "appointment",
        keys=lambda h: {"a1": "AAAAA-11111", "a2": "BBBBB-22222", "a3": "CCCCC-33333"},
        row={"a1": ["Zhang Wei", "Alice Wong", "Cardiology", "Confirmed", "2026-03-02 09:00"],
             "a2": ["Li Na", "Bob Chen", "Dermatology", "Pending", "Online"]},
        searches=[("AAAAA", {"a1"}), ("Li Na", {"a2", "a3"}), ("13800000001", {"a1"}),
                  ("MRN-", {"a1", "a2", "a3"}), ("nobody-at-all", set())],
        filters=[
            (lambda h: {"status": "confirmed"}, {"a1"}),
            (lambda h: {"status": "cancelled"}, {"a3"}),
            (lambda h: {"department_id": h.card.id}, {"a1", "a3"}),
            (lambda h: {"doctor_id": h.chen.id}, {"a2"}),
            (lambda h: {"channel": "online"}, {"a2"}),
            (lambda h: {"session_date_from": _days(2)}, {"a2"}),
            (lambda h: {"session_date_to": _days(1)}, {"a1", "a3"}),
            (lambda h: {"session_date_from": _days(1), "session_date_to": _days(1)}, {"a1", "a3"}),
            (lambda h: {"booked_at_from": "2026-03-06"}, {"a2"}),
            (lambda h: {"booked_at_from": "2026-03-05", "booked_at_to": "2026-03-05"}, {"a3"}),
            # With a time of day (the dashboard's links): an instant in hospital time, "to" exclusive.
            (lambda h: {"booked_at_to": "2026-03-06T00:30:00"}, {"a1", "a3"}),
            (lambda h: {"booked_at_from": "2026-03-05T23:45:00"}, {"a2"}),
            (lambda h: {"status": "cancelled", "department_id": h.derm.id}, set()),
        ],
        detail=("a1", lambda h: h.a1.id),
        detail_texts=["AAAAA-11111", "Zhang Wei", "Confirmed"],
        read_only=True,
    ),
    Case(
        "patient",
        keys=lambda h: {"zhang": "Zhang Wei", "li": "Li Na", "wang": "Wang Fang"},
        row={"zhang": ["MRN-", "Male", "1980-01-01", "+8613800000001"]},
        searches=[("zhang", {"zhang"}), ("13800000002", {"li"}), ("+86138", {"zhang", "li"}),
                  ("310101198001010011", {"zhang"}), ("Fang", {"wang"})],
        filters=[
            (lambda h: {"gender": "female"}, {"li", "wang"}),
            (lambda h: {"birth_date_from": "1990-01-01"}, {"li", "wang"}),
            (lambda h: {"birth_date_to": "1992-05-05"}, {"zhang", "li"}),
            # 2026-03-06 00:30 in the hospital is 2026-03-05 16:30 UTC: the day is the hospital's.
            (lambda h: {"created_at_from": "2026-03-06"}, {"li"}),
            (lambda h: {"created_at_from": "2026-03-05", "created_at_to": "2026-03-05"}, {"wang"}),
        ],
        detail=("zhang", lambda h: h.zhang.id),
        detail_texts=["Zhang Wei", "310101198001010011", "2026-03-01 10:00"],
    ),
    Case(
        "encounter",
        keys=lambda h: {"e1": "Chest pain on exertion", "e2": "Itchy rash on arms"},
        row={"e1": ["Zhang Wei", "Alice Wong", "I10 Essential (primary) hypertension", "2026-03-05 23:30"]},
        searches=[("rash", {"e2"}), ("I10", {"e1"}), ("Zhang", {"e1"}), ("hypertension", {"e1"})],
        filters=[
            (lambda h: {"doctor_id": h.wong.id}, {"e1"}),
            (lambda h: {"created_at_from": "2026-03-06"}, {"e2"}),
            (lambda h: {"created_at_to": "2026-03-05"}, {"e1"}),
        ],
        detail=("e1", lambda h: h.e1.id),
        detail_texts=["Chest pain on exertion", "AAAAA-11111", "I10"],
    ),
    Case(
        "clinic_session",
        keys=lambda h: {"card": _days(1), "derm": _days(3), "old": _days(10)},
        row={"card": ["Alice Wong", "Cardiology", "25.00", "Open", "08:00", "12:00"],
             "derm": ["Bob Chen", "Dermatology", "15.00", "Closed", "13:30", "17:00"]},
        searches=[("Afternoon", {"derm"}), ("Alice Wong", {"card", "old"}), ("Dermatology", {"derm"})],
        filters=[
            (lambda h: {"status": "closed"}, {"derm"}),
            (lambda h: {"status": "open"}, {"card"}),
            (lambda h: {"department_id": h.derm.id}, {"derm"}),
            (lambda h: {"doctor_id": h.wong.id}, {"card", "old"}),
            (lambda h: {"session_date_from": _days(2), "session_date_to": _days(9)}, {"derm"}),
            (lambda h: {"session_date_to": _days(3)}, {"card", "derm"}),
            (lambda h: {"held": "yes"}, {"card", "derm"}),
            (lambda h: {"held": "now"}, set()),  # every session is on a later day
        ],
        detail=("card", lambda h: h.s_card.id),
        detail_texts=["Alice Wong", "Cardiology", "25.00", "Morning clinic"],
    ),
    Case(
        "doctor",
        keys=lambda h: {"wong": "Alice Wong", "chen": "Bob Chen", "retired": "Carl Retired"},
        row={"wong": ["Chief Physician", "Cardiology", "+8613911110001"]},
        searches=[("chen", {"chen"}), ("13911110003", {"retired"}), ("Dermatology", {"chen"})],
        filters=[
            (lambda h: {"is_active": "false"}, {"retired"}),
            (lambda h: {"is_active": "true"}, {"wong", "chen"}),
            (lambda h: {"specialty": "derma", "specialty_op": "contains"}, {"chen"}),
        ],
        detail=("wong", lambda h: h.wong.id),
        detail_texts=["Alice Wong", "Cardiology"],
    ),
    Case(
        "department",
        keys=lambda h: {"card": "Cardiology", "derm": "Dermatology", "old": "Old Ward"},
        row={"card": ["CARD", "Building B, 3rd floor"]},
        searches=[("CARD", {"card"}), ("derm", {"derm"}), ("Building C", {"derm"})],
        filters=[
            (lambda h: {"is_active": "false"}, {"old"}),
            (lambda h: {"is_active": "true"}, {"card", "derm"}),
        ],
        detail=("card", lambda h: h.card.id),
        detail_texts=["CARD", "Cardiology"],
    ),
    Case(
        "prescription",
        keys=lambda h: {"rx1": "RX-20260301-0001", "rx2": "RX-20260306-0002"},
        row={"rx1": ["Zhang Wei", "Alice Wong", "I10 Essential (primary) hypertension", "Issued"],
             "rx2": ["Li Na", "Bob Chen", "Dispensed"]},
        searches=[("0002", {"rx2"}), ("Zhang", {"rx1"}), ("RX-2026", {"rx1", "rx2"})],
        filters=[
            (lambda h: {"status": "dispensed"}, {"rx2"}),
            (lambda h: {"status": "issued"}, {"rx1"}),
            (lambda h: {"doctor_id": h.wong.id}, {"rx1"}),
            (lambda h: {"created_at_from": "2026-03-06"}, {"rx2"}),
            (lambda h: {"created_at_to": "2026-03-05"}, {"rx1"}),
            (lambda h: {"dispensing": "waiting"}, {"rx1"}),
        ],
        detail=("rx1", lambda h: h.rx1.id),
        detail_texts=["RX-20260301-0001", "Zhang Wei", "21 x Amoxicillin 500 mg Capsule", "AAAAA-11111"],
    ),
    Case(
        "prescription_item",
        keys=lambda h: {"item1": "1 capsule three times daily", "item2": "1 tablet twice daily"},
        row={"item1": ["RX-20260301-0001", "Amoxicillin 500 mg Capsule", "21"],
             "item2": ["RX-20260306-0002", "Paracetamol 500 mg Tablet", "10"]},
        searches=[("capsule three", {"item1"}), ("Paracetamol", {"item2"}), ("RX-20260301", {"item1"})],
        detail=("item1", lambda h: h.item1.id),
        detail_texts=["RX-20260301-0001", "Amoxicillin 500 mg Capsule"],
    ),
    Case(
        "medicine",
        keys=lambda h: {"amox": "Amoxicillin", "para": "Paracetamol", "morph": "Morphine", "obsolete": "Obsoletine"},
        # Usable stock counts the active batch only (the expired lot is not usable).
        row={"amox": ["Capsule", "500 mg", "179 capsule", "1.20"], "morph": ["8.80", "ampoule"]},
        searches=[("amox", {"amox"}), ("analgesics", {"para", "morph"})],
        filters=[
            (lambda h: {"is_active": "false"}, {"obsolete"}),
            (lambda h: {"is_controlled": "true"}, {"morph"}),
            (lambda h: {"category": "Analgesics", "category_op": "equals"}, {"para"}),
            (lambda h: {"form": "Tab", "form_op": "starts_with"}, {"para", "obsolete"}),
            (lambda h: {"stock": "below_reorder"}, {"para"}),  # 500 usable, reorder at 1000
            (lambda h: {"expiring": "30d"}, {"amox"}),  # its active lot expires in 30 days
        ],
        detail=("amox", lambda h: h.amox.id),
        detail_texts=["Amoxicillin", "Antibacterials", "1.20"],
    ),
    Case(
        "stock_batch",
        keys=lambda h: {"amox": "AMX-2026-01", "para": "PCM-2027-07", "old": "AMX-2025-09"},
        row={"amox": ["Amoxicillin 500 mg Capsule", "179", "200", "0.45", "Active", "Sinopharm Shanghai"],
             "old": ["Expired", "Defunct Pharma"]},
        searches=[("AMX", {"amox", "old"}), ("Paracetamol", {"para"})],
        filters=[
            (lambda h: {"status": "expired"}, {"old"}),
            (lambda h: {"status": "active"}, {"amox", "para"}),
            (lambda h: {"expiry_date_to": _days(60)}, {"amox", "old"}),
            (lambda h: {"expiry_date_from": _days(0)}, {"amox", "para"}),
            (lambda h: {"expiry_date_from": _days(0), "expiry_date_to": _days(90)}, {"amox"}),
            (lambda h: {"supplier_id": h.defunct.id}, {"old"}),
            (lambda h: {"expiry": "soon"}, {"amox"}),
            (lambda h: {"expiry": "past"}, set()),  # the lot past expiry is written off already
        ],
        detail=("amox", lambda h: h.b_amox.id),
        detail_texts=["AMX-2026-01", "Amoxicillin 500 mg Capsule", "Sinopharm Shanghai"],
        read_only=True,
    ),
    Case(
        "stock_movement",
        keys=lambda h: {"dispense": "Dispensed for RX one", "receipts": "Received"},
        row={"dispense": ["Dispense", "-21", "179", "AMX-2026-01", "2026-03-06 00:30"]},
        searches=[("RX one", {"dispense"}), ("PCM-2027", {"receipts"})],
        filters=[
            (lambda h: {"kind": "dispense"}, {"dispense"}),
            (lambda h: {"kind": "receipt"}, {"receipts"}),
            (lambda h: {"created_at_from": "2026-03-06", "created_at_to": "2026-03-06"}, {"dispense"}),
            (lambda h: {"batch_id": h.b_para.id, "batch_id_op": "equals"}, {"receipts"}),
        ],
        detail=("dispense", lambda h: h.m_dispense.id),
        detail_texts=["Dispensed for RX one", "-21"],
        read_only=True,
    ),
    Case(
        "supplier",
        keys=lambda h: {"sino": "Sinopharm Shanghai", "defunct": "Defunct Pharma"},
        row={"sino": ["Zhou Lin", "+862100000001"]},
        searches=[("sino", {"sino"}), ("Zhou", {"sino"})],
        filters=[(lambda h: {"is_active": "false"}, {"defunct"})],
        detail=("sino", lambda h: h.sino.id),
        detail_texts=["Sinopharm Shanghai", "Zhou Lin"],
    ),
    Case(
        "icd10_code",
        keys=lambda h: {"I10": "Essential (primary) hypertension", "L30": "dermatitis", "E11": "diabetes"},
        searches=[("dermatitis", {"L30"}), ("E11", {"E11"}), ("i1", {"I10"})],
        detail=("I10", lambda h: "I10"),
        detail_texts=["Essential (primary) hypertension"],
    ),
    Case(
        "staff_user",
        keys=lambda h: {"rita": "rita", "joy": "Joy Nurse", "drwong": "drwong", "chief": "Chief Admin"},
        row={"rita": ["Rita Front", "Receptionist"], "drwong": ["Alice Wong", "Doctor"]},
        searches=[("joy", {"joy"}), ("Rita Front", {"rita"})],
        filters=[
            (lambda h: {"role": "nurse"}, {"joy"}),
            (lambda h: {"is_active": "false"}, {"joy"}),
            (lambda h: {"role": "admin", "is_active": "true"}, {"chief"}),
            (lambda h: {"last_login_at_from": _days(0)}, {"chief"}),
            (lambda h: {"last_login_at_to": _days(-1)}, set()),
        ],
        detail=("rita", lambda h: h.rita.id),
        detail_texts=["rita", "Rita Front", "Receptionist"],
    ),
    Case(
        "audit_event",
        keys=lambda h: {"confirm": "Confirmed appointment AAAAA-11111", "expire": "Expired batch AMX-2025-09",
                        "login": "chief logged in"},
        row={"confirm": ["rita", "confirm", "2026-03-05 23:30"]},
        searches=[("AAAAA", {"confirm"}), ("chief", {"login"})],
        filters=[
            (lambda h: {"action": "expire"}, {"expire"}),
            (lambda h: {"entity": "appointment"}, {"confirm"}),
            (lambda h: {"actor": "rit", "actor_op": "contains"}, {"confirm"}),
            (lambda h: {"occurred_at_from": "2026-03-06", "occurred_at_to": "2026-03-06"}, {"expire"}),
            (lambda h: {"occurred_at_to": "2026-03-05"}, {"confirm"}),
            (lambda h: {"entity": "stock_batch", "entity_id": str(h.b_old.id), "entity_id_op": "equals"}, {"expire"}),
        ],
        detail=("confirm", lambda h: _audit_id(h, "confirm")),
        detail_texts=["Confirmed appointment AAAAA-11111", "rita"],
        read_only=True,
    ),
]
CASES += [
    Case(
        "ward",
        keys=lambda h: {"w3a": "Ward 3A", "w2b": "Ward 2B"},
        row={"w3a": ["Cardiology"], "w2b": ["Dermatology"]},
        searches=[("3A", {"w3a"}), ("ward", {"w3a", "w2b"})],
        filters=[(lambda h: {"sex_policy": "male"}, {"w2b"}), (lambda h: {"department_id": h.card.id}, {"w3a"}),
                 (lambda h: {"is_active": "false"}, set())],
        detail=("w3a", lambda h: h.w3a.id),
        detail_texts=["Ward 3A", "Cardiology"],
    ),
    Case(
        "room",
        keys=lambda h: {"r301": "R301", "r201": "R201"},
        row={"r301": ["Ward 3A"], "r201": ["Ward 2B"]},
        searches=[("R3", {"r301"}), ("2B", {"r201"})],
        filters=[(lambda h: {"ward_id": h.w2b.id}, {"r201"})],
        detail=("r301", lambda h: h.r301.id),
        detail_texts=["R301"],
    ),
    Case(
        "bed",
        keys=lambda h: {"b1": "3A-301-1", "b2": "3A-301-2"},
        row={"b1": ["Occupied", "80.00"], "b2": ["Cleaning"]},
        searches=[("301-2", {"b2"})],
        filters=[(lambda h: {"status": "occupied"}, {"b1"}), (lambda h: {"status": "free"}, set()),
                 (lambda h: {"room_id": h.r301.id}, {"b1", "b2"})],
        detail=("b1", lambda h: h.bed1.id),
        detail_texts=["3A-301-1", "Occupied"],
    ),
    Case(
        "admission",
        keys=lambda h: {"adm": "Zhang Wei"},
        row={"adm": ["3A-301-1", "Admitted", "Alice Wong", "Cardiology"]},
        searches=[("zhang", {"adm"}), ("I10", {"adm"}), ("nobody-at-all", set())],
        filters=[(lambda h: {"status": "admitted"}, {"adm"}), (lambda h: {"status": "discharged"}, set()),
                 (lambda h: {"department_id": h.card.id}, {"adm"}),
                 (lambda h: {"admitted_at_from": "2026-03-05", "admitted_at_to": "2026-03-05"}, {"adm"}),
                 (lambda h: {"admitted_at_from": "2026-03-06"}, set())],
        detail=("adm", lambda h: h.adm.id),
        detail_texts=["Zhang Wei", "Chest pain"],
        read_only=True,
    ),
    Case(
        "bed_transfer",
        keys=lambda h: {"move": "Needs telemetry"},
        row={"move": ["3A-301-2", "3A-301-1", "joy"]},
        searches=[("telemetry", {"move"}), ("nobody-at-all", set())],
        detail=("move", lambda h: h.move.id),
        detail_texts=["Needs telemetry"],
        read_only=True,
    ),
    Case(
        "inpatient_note",
        keys=lambda h: {"note": "Chest pain eased"},
        row={"note": ["joy", "Chest pain eased", "88"]},
        searches=[("eased", {"note"}), ("nobody-at-all", set())],
        filters=[(lambda h: {"written_at_from": "2026-03-05", "written_at_to": "2026-03-05"}, {"note"}),
                 (lambda h: {"written_at_from": "2026-03-06"}, set())],
        detail=("note", lambda h: h.note.id),
        detail_texts=["Chest pain eased"],
        read_only=True,
    ),
]
CASE_IDS = [case.identity for case in CASES]


def _audit_id(h, action):
    return next(e.id for e in _audit_rows(h.engine, action=action))


def test_every_view_has_a_case():
    assert sorted(CASE_IDS) == sorted(view.identity for view in MODEL_VIEWS)


@pytest.fixture
def h(engine, hospital, admin):
    """The data set, with the engine attached, once the admin is logged in."""
    hospital.engine = engine
    return hospital


# -- list, search, filters, sorting, detail ------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_list_shows_every_row_with_related_rows_by_name(admin, h, case):
    keys = case.keys(h)
    rows = _list(admin, case.identity)
    assert _shown(rows, keys) == set(keys)
    for name, texts in case.row.items():
        [row] = [r for r in rows if keys[name] in r]
        for text in texts:
            assert text in row, (case.identity, name, text, row)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_search_finds_the_right_rows_and_no_others(admin, h, case):
    keys = case.keys(h)
    assert case.searches or not VIEW[case.identity].column_searchable_list
    for term, expected in case.searches:
        assert _shown(_list(admin, case.identity, search=term), keys) == expected, term


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_each_filter_narrows_to_the_expected_rows(admin, h, case):
    keys = case.keys(h)
    used: set[str] = set()
    for params_of, expected in case.filters:
        params = params_of(h)
        used.update(params)
        assert _shown(_list(admin, case.identity, **params), keys) == expected, params
    declared = {f.parameter_name for f in VIEW[case.identity].column_filters}
    assert declared <= used, f"filters without a test: {declared - used}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_sorting_by_every_sortable_column_works_both_ways(admin, h, case):
    keys = case.keys(h)
    view = VIEW[case.identity]
    assert view.column_sortable_list
    for column in view.column_sortable_list:
        for direction in ("asc", "desc"):
            rows = _list(admin, case.identity, sortBy=column.key, sort=direction)
            assert _shown(rows, keys) == set(keys), (column.key, direction)
    assert admin.get(f"/admin/{case.identity}/list", params={"sortBy": "password_hash"}).status_code == 400


def test_sorting_orders_the_rows(admin, h):
    names = ["Li Na", "Wang Fang", "Zhang Wei"]

    def order(**params):
        return [n for row in _list(admin, "patient", **params) for n in names if n in row]

    assert order(sortBy="full_name", sort="asc") == names
    assert order(sortBy="full_name", sort="desc") == names[::-1]
    assert order(sortBy="birth_date", sort="asc") == ["Zhang Wei", "Li Na", "Wang Fang"]
    assert order(sortBy="created_at", sort="desc") == ["Li Na", "Wang Fang", "Zhang Wei"]
    assert order() == ["Wang Fang", "Li Na", "Zhang Wei"]  # newest registration first


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_detail_page_shows_the_row(admin, h, case):
    name, pk_of = case.detail
    response = admin.get(f"/admin/{case.identity}/details/{pk_of(h)}")
    assert response.status_code == 200
    text = " ".join(f"{k}: {v}" for k, v in detail_fields(response.text).items())
    for expected in case.detail_texts:
        assert expected in text, (case.identity, expected)
    assert admin.get(f"/admin/{case.identity}/details/999999").status_code == 404


def test_detail_labels_are_words_not_column_names(admin, h):
    labels = set(detail_fields(admin.get(f"/admin/patient/details/{h.zhang.id}").text))
    assert {"Full name", "Birth date", "National ID", "Emergency contact phone"} <= labels
    assert not any("_" in label for label in labels), labels


@pytest.mark.parametrize("case", [c for c in CASES if c.read_only], ids=[c.identity for c in CASES if c.read_only])
def test_read_only_entities_refuse_create_edit_and_delete(engine, admin, h, case):
    pk = case.detail[1](h)
    before = _counts(engine)
    assert admin.get(f"/admin/{case.identity}/create").status_code == 403
    assert admin.post(f"/admin/{case.identity}/create", data={"save": "Save"}).status_code == 403
    assert admin.get(f"/admin/{case.identity}/edit/{pk}").status_code == 403
    assert admin.post(f"/admin/{case.identity}/edit/{pk}", data={"save": "Save"}).status_code == 403
    assert admin.delete(f"/admin/{case.identity}/delete", params={"pks": pk}).status_code == 403
    assert _counts(engine) == before


def test_icd10_codes_cannot_be_deleted(engine, admin, h):
    assert admin.delete("/admin/icd10_code/delete", params={"pks": "E11"}).status_code == 403
    assert _get(engine, Icd10Code, "E11") is not None


# -- export --------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_csv_export_contains_every_row(admin, h, case):
    response = admin.get(f"/admin/{case.identity}/export/csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    body = [" | ".join(r) for r in rows[1:]]
    assert _shown(body, case.keys(h)) == set(case.keys(h))
    assert "$argon2" not in response.text


def test_export_never_contains_a_password_hash_or_session_data(admin, h):
    with transaction(h.engine, write=False) as db:
        hashes = list(db.scalars(select(StaffUser.password_hash)))
    for export_type in ("csv", "json"):
        text = admin.get(f"/admin/staff_user/export/{export_type}").text
        assert "rita" in text
        assert not any(hash_ in text for hash_ in hashes)
        assert "password_hash" not in text and "login_epoch" not in text
    detail = admin.get(f"/admin/staff_user/details/{h.rita.id}").text
    assert not any(hash_ in detail for hash_ in hashes)
    assert "$argon2" not in admin.get(f"/admin/staff_user/edit/{h.rita.id}").text


def test_export_shows_money_in_yuan(admin, h):
    rows = list(csv.DictReader(io.StringIO(admin.get("/admin/clinic_session/export/csv").text)))
    assert sorted(r["fee"] for r in rows) == ["15.00", "20.00", "25.00"]
    medicines = json.loads(admin.get("/admin/medicine/export/json").text)
    assert {m["name"]: m["unit_price"] for m in medicines}["Amoxicillin"] == 1.2


def test_export_shows_enum_values_and_hospital_time(admin, h):
    rows = list(csv.DictReader(io.StringIO(admin.get("/admin/appointment/export/csv").text)))
    [a1] = [r for r in rows if "AAAAA-11111" in r.values()]
    assert "confirmed" in a1.values()
    assert any(v.startswith("2026-03-02 09:00") and v.endswith("+08:00") for v in a1.values()), a1


# -- create / edit / delete ------------------------------------------------------------------

@dataclass
class Crud:
    """A create, an edit and (unless ``delete`` is False) a delete through the forms."""

    identity: str
    model: type
    create: Callable[[SimpleNamespace], dict[str, Any]]
    created: dict[str, Any]
    edit: Callable[[SimpleNamespace], dict[str, Any]]
    edited: dict[str, Any]
    delete: bool = True


CRUDS = [
    Crud("department", Department,
         create=lambda h: _form(code="NEUR", name="Neurology", location="Building B, 5th floor", phone="+862155550000",
                                description="Brain and nerves", is_active="y"),
         created={"code": "NEUR", "name": "Neurology", "is_active": True},
         edit=lambda h: _form(code="NEUR", name="Neurology and Stroke", location="Building B, 5th floor",
                              phone="+862155550000", description="Brain and nerves"),
         edited={"name": "Neurology and Stroke", "is_active": False}),
    Crud("doctor", Doctor,
         create=lambda h: _form(full_name="Dana Li", title="Resident Physician", gender="female",
                                specialty="Cardiology", departments=[str(h.card.id)], phone="+8613911119999",
                                email="dana@example.org", bio=None, is_active="y"),
         created={"full_name": "Dana Li", "gender": Gender.female, "phone": "+8613911119999"},
         edit=lambda h: _form(full_name="Dana Li", title="Attending Physician", gender="female",
                              specialty="Cardiology", departments=[str(h.card.id), str(h.derm.id)],
                              phone="+8613911119999", email="dana@example.org", bio=None, is_active="y"),
         edited={"title": "Attending Physician"}),
    Crud("clinic_session", ClinicSession,
         create=lambda h: _form(doctor=str(h.chen.id), department=str(h.derm.id), session_date=_days(5),
                                start_time="08:00", end_time="11:30", slot_minutes="15", capacity="12",
                                fee="18.50", note="Extra clinic"),
         created={"capacity": 12, "fee": 1850, "booked_count": 0, "status": ClinicSessionStatus.open,
                  "end_time": time(11, 30)},
         edit=lambda h: _form(doctor=str(h.chen.id), department=str(h.derm.id), session_date=_days(5),
                              start_time="08:00", end_time="11:30", slot_minutes="15", capacity="16",
                              fee="20", note="Extra clinic, more places"),
         edited={"capacity": 16, "fee": 2000, "note": "Extra clinic, more places"}),
    Crud("patient", Patient,
         create=lambda h: _form(full_name="Sun Li", gender="female", birth_date="1975-07-07",
                                phone="138 0000 0099", email=None, national_id="310101197507070022",
                                address="1 Nanjing Road", emergency_contact_name=None,
                                emergency_contact_phone=None, allergies="Penicillin"),
         created={"full_name": "Sun Li", "phone": "13800000099", "allergies": "Penicillin"},
         edit=lambda h: _form(full_name="Sun Li", gender="female", birth_date="1975-07-07",
                              phone="13800000099", email="sun@example.org", national_id="310101197507070022",
                              address="2 Nanjing Road", emergency_contact_name=None,
                              emergency_contact_phone=None, allergies="Penicillin"),
         edited={"address": "2 Nanjing Road", "email": "sun@example.org"}),
    Crud("medicine", Medicine,
         create=lambda h: _form(name="Ibuprofen", form="Tablet", strength="200 mg", unit="tablet",
                                category="Analgesics", reorder_level="100", unit_price="0.45", is_active="y"),
         created={"name": "Ibuprofen", "unit_price": 45, "reorder_level": 100, "is_controlled": False},
         edit=lambda h: _form(name="Ibuprofen", form="Tablet", strength="200 mg", unit="tablet",
                              category="Analgesics", reorder_level="150", unit_price="0.5", is_active="y"),
         edited={"unit_price": 50, "reorder_level": 150}),
    Crud("supplier", Supplier,
         create=lambda h: _form(name="Huadong Medicine", contact_name="Xu Ming", phone="+862100000009",
                                email=None, address=None, is_active="y"),
         created={"name": "Huadong Medicine", "contact_name": "Xu Ming"},
         edit=lambda h: _form(name="Huadong Medicine", contact_name="Xu Hong", phone="+862100000009",
                              email=None, address=None, is_active="y"),
         edited={"contact_name": "Xu Hong"}),
    Crud("icd10_code", Icd10Code,
         create=lambda h: _form(code="J45", title="Asthma"),
         created={"code": "J45", "title": "Asthma"},
         edit=lambda h: _form(code="J45", title="Asthma (all types)"),
         edited={"title": "Asthma (all types)"},
         delete=False),
    Crud("encounter", Encounter,
         create=lambda h: _form(appointment=None, patient=str(h.wang.id), doctor=str(h.chen.id),
                                chief_complaint="Sugar check", diagnosis="E11", notes="Fasting glucose high"),
         created={"chief_complaint": "Sugar check", "diagnosis_code": "E11"},
         edit=lambda h: _form(appointment=None, patient=str(h.wang.id), doctor=str(h.chen.id),
                              chief_complaint="Sugar check", diagnosis="E11", notes="HbA1c ordered"),
         edited={"notes": "HbA1c ordered"}),
    Crud("prescription", Prescription,
         create=lambda h: _form(number="RX-20260310-0003", patient=str(h.wang.id), doctor=str(h.chen.id),
                                appointment=None, diagnosis="E11", notes=None),
         created={"number": "RX-20260310-0003", "status": PrescriptionStatus.issued, "diagnosis_code": "E11"},
         edit=lambda h: _form(number="RX-20260310-0003", patient=str(h.wang.id), doctor=str(h.chen.id),
                              appointment=None, diagnosis="E11", notes="Review in 2 weeks"),
         edited={"notes": "Review in 2 weeks"}),
    Crud("prescription_item", PrescriptionItem,
         create=lambda h: _form(prescription=str(h.rx1.id), medicine=str(h.para.id), quantity="12",
                                dosage="1 tablet when needed", duration_days="4"),
         created={"quantity": 12, "quantity_dispensed": 0},
         edit=lambda h: _form(prescription=str(h.rx1.id), medicine=str(h.para.id), quantity="8",
                              dosage="1 tablet when needed", duration_days="4"),
         edited={"quantity": 8}),
    Crud("staff_user", StaffUser,
         create=lambda h: _form(username="nina", full_name="Nina Pharma", role="pharmacist", doctor=None,
                                is_active="y", new_password="a-long-enough-secret"),
         created={"username": "nina", "role": Role.pharmacist, "is_active": True},
         edit=lambda h: _form(username="nina", full_name="Nina Pharmacist", role="pharmacist", doctor=None,
                              is_active="y", new_password=None),
         edited={"full_name": "Nina Pharmacist"},
         delete=False),  # staff accounts are deactivated, never deleted (views/permissions.py)
]
CRUD_IDS = [c.identity for c in CRUDS]


def _new_pk(engine, model, before_ids):
    with transaction(engine, write=False) as db:
        pk = model.__mapper__.primary_key[0]
        ids = set(db.scalars(select(pk)))
    [new] = ids - before_ids
    return new


def _ids(engine, model):
    with transaction(engine, write=False) as db:
        return set(db.scalars(select(model.__mapper__.primary_key[0])))


@pytest.mark.parametrize("crud", CRUDS, ids=CRUD_IDS)
def test_create_edit_delete_through_the_forms_are_audited(engine, admin, h, crud):
    table = crud.model.__tablename__
    assert admin.get(f"/admin/{crud.identity}/create").status_code == 200
    before = _ids(engine, crud.model)

    response = admin.post(f"/admin/{crud.identity}/create", data=crud.create(h))

    assert response.status_code == 302, (alerts(response.text), field_errors(response.text))
    pk = _new_pk(engine, crud.model, before)
    row = _get(engine, crud.model, pk)
    for key, value in crud.created.items():
        assert getattr(row, key) == value, key
    [created] = _audit_rows(engine, action="create", entity=table)
    assert (created.actor, created.actor_id, created.entity_id) == ("chief", h.chief.id, str(pk))
    assert created.ip == "testclient"
    for key, value in crud.created.items():
        if key in created.changes:
            assert created.changes[key] == (value.value if hasattr(value, "value") else
                                            value.isoformat() if hasattr(value, "isoformat") else value), key
    assert set(crud.created) - {"booked_count", "quantity_dispensed", "status", "is_controlled"} <= set(created.changes)

    assert admin.get(f"/admin/{crud.identity}/edit/{pk}").status_code == 200
    response = admin.post(f"/admin/{crud.identity}/edit/{pk}", data=crud.edit(h))

    assert response.status_code == 302, (alerts(response.text), field_errors(response.text))
    row = _get(engine, crud.model, pk)
    for key, value in crud.edited.items():
        assert getattr(row, key) == value, key
    [edited] = _audit_rows(engine, action="update", entity=table)
    assert edited.actor == "chief" and edited.entity_id == str(pk)
    for key, value in crud.edited.items():
        old, new = edited.changes[key]
        assert new == (value.value if hasattr(value, "value") else value), key
        assert old != new

    response = admin.delete(f"/admin/{crud.identity}/delete", params={"pks": pk})
    if not crud.delete:
        assert response.status_code == 403
        return
    assert response.status_code == 200
    assert "error" not in parse_qs(urlsplit(response.text).query)
    assert _get(engine, crud.model, pk) is None
    [deleted] = _audit_rows(engine, action="delete", entity=table)
    assert deleted.actor == "chief" and deleted.entity_id == str(pk)
    for key, value in crud.edited.items():
        assert key in deleted.changes


def test_staff_password_is_hashed_and_never_audited(engine, admin, h):
    response = admin.post("/admin/staff_user/create", data=_form(
        username="nina", full_name="Nina Pharma", role="pharmacist", doctor=None, is_active="y",
        new_password="a-long-enough-secret"))
    assert response.status_code == 302, alerts(response.text)
    with transaction(engine, write=False) as db:
        nina = db.scalars(select(StaffUser).where(StaffUser.username == "nina")).one()
    first_hash = nina.password_hash
    assert first_hash.startswith("$argon2")
    assert login(TestClient(admin.app, follow_redirects=False), "nina", "a-long-enough-secret").status_code == 302

    response = admin.post(f"/admin/staff_user/edit/{nina.id}", data=_form(
        username="nina", full_name="Nina Pharma", role="pharmacist", doctor=None, is_active="y",
        new_password="another-long-secret"))
    assert response.status_code == 302, alerts(response.text)
    second_hash = _get(engine, StaffUser, nina.id).password_hash
    assert second_hash != first_hash

    events = [e for e in _audit_rows(engine, entity="staff_user", entity_id=str(nina.id)) if e.action != "login"]
    assert [e.action for e in events] == ["create", "password_reset"]  # an administrator's reset
    dumped = json.dumps([e.changes for e in events]) + " ".join(e.summary for e in events)
    for secret in (first_hash, second_hash, "a-long-enough-secret", "another-long-secret"):
        assert secret not in dumped
    assert events[0].changes["password_hash"] == "(changed)"
    assert events[1].changes["password_hash"] == "(changed)"


def test_staff_form_does_not_offer_service_fields(admin, h):
    page = admin.get(f"/admin/staff_user/edit/{h.rita.id}").text
    for name in ("password_hash", "login_epoch", "failed_logins", "locked_until", "last_login_at",
                 "password_changed_at", "created_at"):
        assert f'name="{name}"' not in page, name


@pytest.mark.parametrize("identity, forbidden", [
    ("clinic_session", ["booked_count", "last_queue_number", "status", "created_at"]),
    ("prescription", ["status", "dispensed_at", "created_at"]),
    ("prescription_item", ["quantity_dispensed"]),
    ("patient", ["medical_record_number", "created_at"]),
])
def test_service_owned_fields_are_not_in_the_forms(admin, h, identity, forbidden):
    page = admin.get(f"/admin/{identity}/create").text
    for name in forbidden:
        assert f'name="{name}"' not in page, name


def test_posting_a_service_owned_field_changes_nothing(engine, admin, h):
    data = _form(doctor=str(h.wong.id), department=str(h.card.id), session_date=_days(1), start_time="08:00",
                 end_time="12:00", slot_minutes="10", capacity="10", fee="25.00", note="Morning clinic")
    data.update(booked_count="0", status="cancelled", last_queue_number="0")
    response = admin.post(f"/admin/clinic_session/edit/{h.s_card.id}", data=data)
    assert response.status_code == 302
    clinic_session = _get(engine, ClinicSession, h.s_card.id)
    assert (clinic_session.booked_count, clinic_session.status, clinic_session.last_queue_number) == (1, ClinicSessionStatus.open, 2)


# -- delete refused where unsafe -----------------------------------------------------------

@pytest.mark.parametrize("identity, pk_of, model, message", [
    ("patient", lambda h: h.zhang.id, Patient,
     "Zhang Wei (MRN-{id:08d}) cannot be deleted: it still has 1 appointment, 1 encounter and 1 prescription."),
    ("department", lambda h: h.card.id, Department,
     "Cardiology cannot be deleted: it still has 2 clinic sessions and 2 appointments."),
    ("doctor", lambda h: h.wong.id, Doctor,
     "Chief Physician Alice Wong cannot be deleted: it still has 2 clinic sessions, 2 appointments, "
     "1 encounter, 1 prescription and 1 staff account."),
    ("prescription_item", lambda h: h.item1.id, PrescriptionItem, "cannot be deleted: it still has 1 stock movement."),
    ("clinic_session", lambda h: h.s_card.id, ClinicSession, "cannot be deleted: it still has 2 appointments."),
    ("medicine", lambda h: h.amox.id, Medicine,
     "Amoxicillin 500 mg Capsule cannot be deleted: it still has 2 stock batches and 1 prescription line."),
    ("supplier", lambda h: h.sino.id, Supplier, "Sinopharm Shanghai cannot be deleted: it still has 2 stock batches."),
    ("prescription", lambda h: h.rx1.id, Prescription, "cannot be deleted: it still has 1 medicine line."),
])
def test_delete_of_a_row_still_in_use_is_refused_with_a_sentence(engine, admin, h, identity, pk_of, model, message):
    pk = pk_of(h)
    before = _counts(engine)

    response = admin.delete(f"/admin/{identity}/delete", params={"pks": pk})

    assert response.status_code == 200
    shown = alerts(admin.get(response.text).text)
    assert len(shown) == 1 and shown[0].endswith(message.format(id=pk)), shown
    assert _get(engine, model, pk) is not None
    assert _counts(engine) == before


def test_patient_without_history_can_be_deleted(engine, admin, h):
    response = admin.delete("/admin/patient/delete", params={"pks": h.wang.id})
    assert "error" not in parse_qs(urlsplit(response.text).query)
    assert _get(engine, Patient, h.wang.id) is None



# -- form errors: a sentence on the form, nothing written ------------------------------------

def _clinic_session_form(h, **over):
    data = dict(doctor=str(h.chen.id), department=str(h.derm.id), session_date=_days(5), start_time="08:00",
                end_time="12:00", slot_minutes="10", capacity="10", fee="15.00", note="Extra")
    data.update(over)
    return _form(**data)


FORM_ERRORS = [
    ("duplicate department code", "department",
     lambda h: _form(code="CARD", name="Cardiology Two", is_active="y"),
     "Another department already has this code."),
    ("duplicate department name", "department",
     lambda h: _form(code="CAR2", name="Cardiology", is_active="y"),
     "Another department already has this name."),
    ("session end before start", "clinic_session", lambda h: _clinic_session_form(h, start_time="12:00", end_time="08:00"),
     "The session must end after it starts."),
    ("session capacity 0", "clinic_session", lambda h: _clinic_session_form(h, capacity="0"), "Capacity must be at least 1."),
    ("session negative fee", "clinic_session", lambda h: _clinic_session_form(h, fee="-1"), "The fee cannot be negative."),
    ("session twice at one time", "clinic_session",
     lambda h: _clinic_session_form(h, doctor=str(h.wong.id), department=str(h.card.id), session_date=_days(1)),
     "This doctor already has a session starting at that date and time."),
    ("missing department name", "department", lambda h: _form(code="NONAME", is_active="y"),
     "This field is required."),
    ("missing patient birth date", "patient", lambda h: _form(full_name="No Birthday", gender="female",
                                                                phone="13800000077"),
     "This field is required."),
    ("patient born in the future", "patient",
     lambda h: _form(full_name="Future Kid", gender="male", birth_date=_days(3), phone="13800000088"),
     "The birth date cannot be in the future."),
    ("patient phone with letters", "patient",
     lambda h: _form(full_name="Bad Phone", gender="male", birth_date="1990-01-01", phone="call me"),
     "Enter a phone number using digits only."),
    ("duplicate national ID", "patient",
     lambda h: _form(full_name="Copy Cat", gender="male", birth_date="1990-01-01", phone="13800000066",
                     national_id="310101198001010011"),
     "Another patient already has this national ID."),
    ("staff password too short", "staff_user",
     lambda h: _form(username="shorty", full_name="Short Pw", role="nurse", is_active="y", new_password="short"),
     "The password must be at least 10 characters long."),
    ("staff without password", "staff_user",
     lambda h: _form(username="nopass", full_name="No Pw", role="nurse", is_active="y"),
     "Set a password for the new account."),
    ("duplicate username", "staff_user",
     lambda h: _form(username="rita", full_name="Other Rita", role="nurse", is_active="y",
                     new_password="a-long-enough-secret"),
     "This username is taken."),
    ("doctor account without doctor", "staff_user",
     lambda h: _form(username="drnone", full_name="Dr None", role="doctor", is_active="y",
                     new_password="a-long-enough-secret"),
     "A doctor's account must be linked to a doctor."),
    ("duplicate medicine", "medicine",
     lambda h: _form(name="Amoxicillin", form="Capsule", strength="500 mg", unit="capsule", reorder_level="0",
                     unit_price="1.00", is_active="y"),
     "This medicine already exists in that form and strength."),
    ("negative price", "medicine",
     lambda h: _form(name="Cheapo", form="Tablet", strength="1 mg", unit="tablet", reorder_level="0",
                     unit_price="-0.01", is_active="y"),
     "Unit price cannot be negative."),
    ("duplicate ICD-10 code", "icd10_code", lambda h: _form(code="I10", title="Again"),
     "This ICD-10 code already exists."),
    ("duplicate doctor phone", "doctor",
     lambda h: _form(full_name="Copy Doc", gender="male", phone="+8613911110001", is_active="y"),
     "Another doctor already has this phone number."),
    ("prescription quantity 0", "prescription_item",
     lambda h: _form(prescription=str(h.rx1.id), medicine=str(h.para.id), quantity="0", dosage="none"),
     "The quantity must be at least 1."),
    ("encounter for an appointment that has one", "encounter",
     lambda h: _form(appointment=str(h.a1.id), patient=str(h.zhang.id), doctor=str(h.wong.id),
                     chief_complaint="Again"),
     "This appointment already has an encounter."),
    ("encounter without complaint", "encounter",
     lambda h: _form(patient=str(h.zhang.id), doctor=str(h.wong.id), chief_complaint="   "),
     "Enter the chief complaint."),
    ("duplicate prescription number", "prescription",
     lambda h: _form(number="RX-20260301-0001", patient=str(h.li.id), doctor=str(h.chen.id)),
     "Another prescription already has this number."),
]


@pytest.mark.parametrize("identity, data_of, message", [c[1:] for c in FORM_ERRORS],
                         ids=[c[0] for c in FORM_ERRORS])
def test_create_form_errors_are_sentences_and_nothing_is_written(engine, admin, h, identity, data_of, message):
    before = _counts(engine)

    response = admin.post(f"/admin/{identity}/create", data=data_of(h))

    assert response.status_code == 400
    assert message in alerts(response.text) + field_errors(response.text), (
        alerts(response.text), field_errors(response.text))
    assert _counts(engine) == before


EDIT_ERRORS = [
    ("capacity 0 on edit", "clinic_session", lambda h: h.s_card.id,
     lambda h: _form(doctor=str(h.wong.id), department=str(h.card.id), session_date=_days(1), start_time="08:00",
                     end_time="12:00", slot_minutes="10", capacity="0", fee="25.00"),
     "Capacity must be at least 1."),
    ("session with bookings moves doctor", "clinic_session", lambda h: h.s_card.id,
     lambda h: _form(doctor=str(h.chen.id), department=str(h.card.id), session_date=_days(1), start_time="08:00",
                     end_time="12:00", slot_minutes="10", capacity="10", fee="25.00"),
     "A session with bookings cannot move to another doctor, department or date."),
    ("session with bookings moves date", "clinic_session", lambda h: h.s_card.id,
     lambda h: _form(doctor=str(h.wong.id), department=str(h.card.id), session_date=_days(2), start_time="08:00",
                     end_time="12:00", slot_minutes="10", capacity="10", fee="25.00"),
     "A session with bookings cannot move to another doctor, department or date."),
    ("department code taken", "department", lambda h: h.derm.id,
     lambda h: _form(code="CARD", name="Dermatology", is_active="y"),
     "Another department already has this code."),
    ("quantity below dispensed", "prescription_item", lambda h: h.item2.id,
     lambda h: _form(prescription=str(h.rx2.id), medicine=str(h.para.id), quantity="5", dosage="x"),
     "The quantity cannot be lower than what was already dispensed."),
    ("new password too short", "staff_user", lambda h: h.rita.id,
     lambda h: _form(username="rita", full_name="Rita Front", role="receptionist", is_active="y",
                     new_password="short"),
     "The password must be at least 10 characters long."),
    ("password containing the username", "staff_user", lambda h: h.rita.id,
     lambda h: _form(username="rita", full_name="Rita Front", role="receptionist", is_active="y",
                     new_password="my-name-is-rita-ok"),
     "The password must not contain the username."),
]


@pytest.mark.parametrize("identity, pk_of, data_of, message", [c[1:] for c in EDIT_ERRORS],
                         ids=[c[0] for c in EDIT_ERRORS])
def test_edit_form_errors_are_sentences_and_nothing_is_written(engine, admin, h, identity, pk_of, data_of, message):
    before = _counts(engine)
    model = VIEW[identity].model
    old = _get(engine, model, pk_of(h))

    response = admin.post(f"/admin/{identity}/edit/{pk_of(h)}", data=data_of(h))

    assert response.status_code == 400
    assert message in alerts(response.text) + field_errors(response.text), (
        alerts(response.text), field_errors(response.text))
    assert _counts(engine) == before
    assert _get(engine, model, pk_of(h)).model_dump() == old.model_dump()


# -- database messages on both backends -----------------------------------------------------

def _integrity_error(engine, stmt) -> IntegrityError:
    with pytest.raises(IntegrityError) as info:
        with transaction(engine) as db:
            db.execute(stmt)
    return info.value


def test_database_refusals_become_sentences_on_this_backend(engine, h):
    from views.clinic import ClinicSessionView, DepartmentView, Icd10CodeView

    clinic_session = dict(doctor_id=h.chen.id, department_id=h.derm.id, session_date=TODAY + timedelta(days=20),
                    start_time=time(8), end_time=time(12), slot_minutes=10, booked_count=0,
                    last_queue_number=0, fee=0, status="open", created_at=clock.now())
    clinic_session_view, department_view, icd_view = ClinicSessionView(), DepartmentView(), Icd10CodeView()
    cases = [
        (clinic_session_view, insert(ClinicSession).values(**clinic_session, capacity=0), "Capacity must be at least 1."),
        (clinic_session_view, insert(ClinicSession).values(**{**clinic_session, "end_time": time(7)}, capacity=5),
         "The session must end after it starts."),
        (clinic_session_view, insert(ClinicSession).values(**{**clinic_session, "booked_count": 9}, capacity=5),
         "Capacity cannot be lower than the places already booked."),
        (department_view, insert(Department).values(code="CARD", name="X", is_active=True),
         "Another department already has this code."),
        (department_view, insert(Department).values(code="XX", name="Cardiology", is_active=True),
         "Another department already has this name."),
        (icd_view, insert(Icd10Code).values(code="I10", title="again"), "This ICD-10 code already exists."),
        (department_view, insert(ClinicSession).values(**{**clinic_session, "doctor_id": 999999}, capacity=5),
         "A related record is missing or is still in use."),
    ]
    for view, stmt, message in cases:
        assert view.describe_integrity_error(_integrity_error(engine, stmt)) == message


# -- relation pickers ------------------------------------------------------------------------

BIG_TABLES = (Patient, Icd10Code, Medicine, Appointment, Prescription)


@pytest.mark.parametrize("view", MODEL_VIEWS, ids=[v.identity for v in MODEL_VIEWS])
def test_relations_to_big_tables_use_ajax_pickers(view):
    if not (view.can_create or view.can_edit):
        return
    mapper = view.model.__mapper__
    form_names = [c if isinstance(c, str) else c.key for c in view.form_columns] or list(mapper.relationships.keys())
    for name in form_names:
        rel = mapper.relationships.get(name)
        if rel is not None and rel.mapper.class_ in BIG_TABLES:
            assert name in view.form_ajax_refs, f"{view.identity}.{name} would load the whole table"


@pytest.mark.parametrize("identity, name, term, expected, absent", [
    ("prescription", "patient", "zhang", "Zhang Wei", "Li Na"),
    ("prescription", "patient", "13800000002", "Li Na", "Zhang Wei"),
    ("encounter", "patient", "MRN-", "Zhang Wei", None),
    ("encounter", "diagnosis", "dermat", "L30 Other and unspecified dermatitis", "I10"),
    ("encounter", "diagnosis", "E11", "E11 Type 2 diabetes mellitus", "L30"),
    ("prescription", "diagnosis", "hypertension", "I10 Essential (primary) hypertension", "E11"),
    ("prescription_item", "medicine", "amox", "Amoxicillin 500 mg Capsule", "Paracetamol"),
    ("prescription_item", "prescription", "0002", "RX-20260306-0002", "RX-20260301-0001"),
    ("staff_user", "doctor", "Wong", "Chief Physician Alice Wong", "Bob Chen"),
])
def test_ajax_lookups_find_by_name_and_code(admin, h, identity, name, term, expected, absent):
    response = admin.get(f"/admin/{identity}/ajax/lookup", params={"name": name, "term": term})
    assert response.status_code == 200
    texts = [r["text"] for r in response.json()["results"]]
    assert any(expected in t for t in texts), texts
    if absent:
        assert not any(absent in t for t in texts), texts


def test_ajax_lookup_refuses_unknown_pickers_and_read_only_views(admin, h):
    assert admin.get("/admin/prescription/ajax/lookup", params={"name": "nope", "term": "a"}).status_code == 400
    assert admin.get("/admin/appointment/ajax/lookup", params={"name": "patient", "term": "a"}).status_code == 403


def test_forms_with_patient_pickers_do_not_list_patients(admin, h):
    for identity in ("encounter", "prescription"):
        page = admin.get(f"/admin/{identity}/create").text
        assert "Wang Fang" not in page and "Zhang Wei" not in page
        assert f"/admin/{identity}/ajax/lookup" in page
    page = admin.get(f"/admin/encounter/edit/{h.e1.id}").text
    assert "Zhang Wei" in page and "Li Na" not in page  # only the current choice is rendered


VIEW = {view.identity: view for view in MODEL_VIEWS}


@pytest.mark.parametrize("view", MODEL_VIEWS, ids=[v.identity for v in MODEL_VIEWS])
def test_no_filter_loads_a_big_table(view):
    from sqladmin.filters import ForeignKeyFilter

    for f in view.column_filters:
        if isinstance(f, ForeignKeyFilter):
            target = next(iter(f.foreign_key.property.columns[0].foreign_keys)).column.table
            assert target.name not in {m.__tablename__ for m in BIG_TABLES}, (view.identity, f.title)


@pytest.mark.parametrize("view", [v for v in MODEL_VIEWS if v.can_create or v.can_edit],
                         ids=[v.identity for v in MODEL_VIEWS if v.can_create or v.can_edit])
def test_no_form_edits_a_timestamp(view):
    columns = view.model.__table__.columns
    for item in view.form_columns:
        name = item if isinstance(item, str) else item.key
        if name in columns:
            assert columns[name].type.python_type is not datetime, (view.identity, name)


def test_an_icd10_code_cannot_be_renamed(engine, admin, h):
    response = admin.post("/admin/icd10_code/edit/I10", data=_form(code="I11", title="Renamed"))
    assert response.status_code == 400
    assert "The code of an existing ICD-10 entry cannot change; add a new one." in alerts(response.text)
    assert _get(engine, Icd10Code, "I10").title == "Essential (primary) hypertension"
    assert _get(engine, Icd10Code, "I11") is None


def test_local_datetime_filter_reads_days_in_hospital_time(engine, h):
    from views._base import LocalDateTimeFilter

    async def summaries(operation, value):
        stmt = await LocalDateTimeFilter(AuditEvent.occurred_at).get_filtered_query(
            select(AuditEvent), operation, value, AuditEvent)
        with transaction(engine, write=False) as db:
            return {e.summary for e in db.scalars(stmt) if e.summary in (confirm, expire)}

    import asyncio

    confirm, expire = "Confirmed appointment AAAAA-11111", "Expired batch AMX-2025-09"
    assert asyncio.run(summaries("equals", "2026-03-06")) == {expire}
    assert asyncio.run(summaries("greater_than", "2026-03-06")) == {expire}
    assert asyncio.run(summaries("less_than", "2026-03-06")) == {confirm}
    assert asyncio.run(summaries("equals", "not a date")) == {confirm, expire}


# -- other roles: the same requests, refused where the permission table says so ---------------

def _client_as(app, engine, h, role: Role) -> TestClient:
    """A new client logged in as a new account of ``role`` (a doctor's is Alice Wong's)."""
    user = make_staff(engine, role=role, doctor_id=h.wong.id if role is Role.doctor else None)
    client = TestClient(app, follow_redirects=False)
    assert login(client, user.username).status_code == 302
    return client


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_roles_without_the_entity_are_refused_its_list_search_filters_detail_and_export(app, engine, h, case):
    refused = [role for role in permissions.ROLES if not permissions.may(role, case.identity, "v")]
    assert refused, f"every role may view {case.identity}"
    base = f"/admin/{case.identity}"
    requests = [(f"{base}/list", {}), (f"{base}/details/{case.detail[1](h)}", {}), (f"{base}/export/csv", {})]
    requests += [(f"{base}/list", {"search": term}) for term, _ in case.searches[:1]]
    requests += [(f"{base}/list", params_of(h)) for params_of, _ in case.filters[:1]]
    for role in refused:
        with _client_as(app, engine, h, role) as client:
            for path, params in requests:
                response = client.get(path, params=params)
                assert response.status_code == 403, (role.value, path, params, response.status_code)
                assert not _shown([response.text], case.keys(h)), (role.value, path, params)


@pytest.mark.parametrize("crud", CRUDS, ids=CRUD_IDS)
def test_roles_without_the_right_are_refused_a_valid_create_edit_or_delete(app, engine, h, crud):
    case = next(c for c in CASES if c.identity == crud.identity)
    pk = case.detail[1](h)
    base = f"/admin/{crud.identity}"
    checked = 0
    for role in permissions.ROLES:
        rights = permissions.rights(role, crud.identity)
        attempts = [
            (right, send) for right, send in (
                ("c", lambda c: c.post(f"{base}/create", data=crud.create(h))),
                ("e", lambda c: c.post(f"{base}/edit/{pk}", data=crud.edit(h))),
                ("d", lambda c: c.delete(f"{base}/delete", params={"pks": pk})),
            ) if right not in rights
        ]
        if not attempts:
            continue
        with _client_as(app, engine, h, role) as client:
            before, old = _counts(engine), _get(engine, crud.model, pk).model_dump()
            for right, send in attempts:
                response = send(client)
                assert response.status_code == 403, (role.value, right, response.status_code)
                checked += 1
            assert _counts(engine) == before, role.value
            assert _get(engine, crud.model, pk).model_dump() == old, role.value
    assert checked, f"no role is refused anything on {crud.identity}"
