"""The front desk's booking page: the form, its two search pickers, and the call to
``portal.services.appointments.book``. The page itself is ``AppointmentView.page_book``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from wtforms import BooleanField, Form, SelectField, TextAreaField, ValidationError
from wtforms.validators import InputRequired, Length, Optional

from models import BookingChannel, ClinicSession, ClinicSessionStatus, Department, Doctor, Patient
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.core.errors import DomainError, SlotFull
from portal.services import appointments
from views._forms import LookupField, attach_service_error

#: Most choices one search returns.
LOOKUP_LIMIT = 20


class BookForm(Form):
    """Book a patient into a clinic session from the front desk or the phone.

    Overbooking is honoured only when the box is ticked AND a reason is given.
    """

    clinic_session_id = LookupField(
        "Clinic session", [InputRequired("Choose a clinic session.")],
        placeholder="Type a department, a doctor, a date (2026-11-20), today or tomorrow",
        description="Sessions still taking bookings, with the places left.",
    )
    patient_id = LookupField(
        "Patient", [InputRequired("Choose a patient.")],
        placeholder="Type a name, MRN, phone or national ID",
        description="Not registered yet? Register the patient under Patients first.",
    )
    channel = SelectField(
        "Booked", choices=[(BookingChannel.front_desk.value, "At the front desk"), (BookingChannel.phone.value, "By phone")],
        default=BookingChannel.front_desk.value,
    )
    reason = TextAreaField(
        "Reason for the visit", [Optional(), Length(max=500, message="Keep the reason under 500 characters.")],
        render_kw={"rows": 2},
    )
    overbook = BooleanField("Overbook: if the session is full, add one place beyond its capacity")
    overbook_reason = TextAreaField(
        "Reason for overbooking", [Length(max=500, message="Keep the reason under 500 characters.")],
        description="Needed when overbooking; recorded in the audit log.", render_kw={"rows": 2},
    )

    def validate_overbook_reason(self, field: TextAreaField) -> None:
        """Overbooking needs a reason."""
        if self.overbook.data and not (field.data or "").strip():
            raise ValidationError("Give a reason for overbooking, or untick Overbook.")

    def attach_service_error(self, exc: DomainError) -> None:
        """Show a refusal of the booking service next to the field it names."""
        if isinstance(exc, SlotFull):
            exc = SlotFull(exc.message + " Choose another session, or tick Overbook and give a reason.",
                           field=exc.field)
        attach_service_error(self, exc)


def book_from_form(db: Session, *, actor: Actor, data: dict[str, Any]) -> tuple[int, str]:
    """Call ``appointments.book`` with the form's values; return (appointment id, message)."""
    overbook_reason = (data.get("overbook_reason") or "").strip() if data.get("overbook") else ""
    result = appointments.book(
        db, clinic_session_id=data["clinic_session_id"], patient_id=data["patient_id"], actor=actor,
        channel=BookingChannel(data["channel"]), reason=data.get("reason") or None,
        overbook_reason=overbook_reason or None,
    )
    appointment, clinic_session = result.appointment, result.clinic_session
    patient = db.get(Patient, appointment.patient_id)
    doctor = db.get(Doctor, clinic_session.doctor_id)
    department = db.get(Department, clinic_session.department_id)
    message = (
        f"Booked {appointment.reference} for {patient.full_name}: queue no. {appointment.queue_number}, "
        f"expected around {result.estimated_time:%H:%M} on {clinic_session.session_date.isoformat()} "
        f"({department.name}, {doctor})."
    )
    if appointment.is_overbooked:
        message += " The session was full: this place is overbooked."
    return appointment.id, message


def clinic_session_text(clinic_session: ClinicSession, doctor: str, department: str) -> str:
    """How a clinic session reads in the picker: when, where, who, places left."""
    left = clinic_session.capacity - clinic_session.booked_count
    places = f"{left} of {clinic_session.capacity} places left" if left > 0 else "full (overbooking only)"
    return (
        f"{clinic_session.session_date:%a %Y-%m-%d} {clinic_session.start_time:%H:%M}-{clinic_session.end_time:%H:%M}"
        f" · {department} · {doctor} · {places}"
    )


def patient_text(patient: Patient) -> str:
    """How a patient reads in the picker: name, MRN, birth date, phone."""
    return (
        f"{patient.full_name} · {patient.medical_record_number or 'new'} · "
        f"born {patient.birth_date.isoformat()} · {patient.phone}"
    )


def _doctor_name(full_name: str, title: str | None) -> str:
    return f"{title} {full_name}" if title else full_name


def _clinic_session_rows(db: Session, term: str, clinic_session_id: int | None = None) -> list[dict[str, str]]:
    stmt = (
        select(ClinicSession, Doctor.full_name, Doctor.title, Department.name)
        .join(Doctor, Doctor.id == ClinicSession.doctor_id)
        .join(Department, Department.id == ClinicSession.department_id)
    )
    if clinic_session_id is not None:
        stmt = stmt.where(ClinicSession.id == clinic_session_id)
    else:
        now = clock.local_now()
        today = now.date()
        not_ended = or_(ClinicSession.session_date > today,
                        and_(ClinicSession.session_date == today, ClinicSession.end_time > now.time().replace(microsecond=0)))
        stmt = stmt.where(ClinicSession.status == ClinicSessionStatus.open, not_ended)
        words = {"today": today, "tomorrow": today + timedelta(days=1)}
        day = words.get(term.lower())
        if day is None:
            try:
                day = date.fromisoformat(term)
            except ValueError:
                day = None
        if day is not None:
            stmt = stmt.where(ClinicSession.session_date == day)
        elif term:
            stmt = stmt.where(or_(
                Doctor.full_name.icontains(term, autoescape=True),
                Department.name.icontains(term, autoescape=True),
                Department.code.icontains(term, autoescape=True),
            ))
        stmt = stmt.order_by(ClinicSession.session_date, ClinicSession.start_time, Department.name).limit(LOOKUP_LIMIT)
    return [
        {"id": str(s.id), "text": clinic_session_text(s, _doctor_name(name, title), dept)}
        for s, name, title, dept in db.execute(stmt).all()
    ]


def _patient_rows(db: Session, term: str, patient_id: int | None = None) -> list[dict[str, str]]:
    stmt = select(Patient)
    if patient_id is not None:
        stmt = stmt.where(Patient.id == patient_id)
    else:
        stmt = stmt.where(or_(
            Patient.full_name.icontains(term, autoescape=True),
            Patient.medical_record_number.icontains(term, autoescape=True),
            Patient.phone.icontains(term, autoescape=True),
            Patient.national_id.icontains(term, autoescape=True),
        )).order_by(Patient.full_name, Patient.id).limit(LOOKUP_LIMIT)
    return [{"id": str(p.id), "text": patient_text(p)} for p in db.scalars(stmt)]


def lookup_results(engine: Engine, name: str, term: str) -> list[dict[str, str]]:
    """Picker choices for field ``name`` (``clinic_session_id`` or ``patient_id``) matching ``term``."""
    with transaction(engine, write=False) as db:
        if name == "clinic_session_id":
            return _clinic_session_rows(db, term)
        if name == "patient_id" and term:
            return _patient_rows(db, term)
    return []


def selection_texts(engine: Engine, form: BookForm) -> None:
    """Fill the pickers' display texts for the values already chosen (re-shown form)."""
    with transaction(engine, write=False) as db:
        if form.clinic_session_id.data is not None:
            rows = _clinic_session_rows(db, "", form.clinic_session_id.data)
            form.clinic_session_id.display = rows[0]["text"] if rows else ""
        if form.patient_id.data is not None:
            rows = _patient_rows(db, "", form.patient_id.data)
            form.patient_id.display = rows[0]["text"] if rows else ""
