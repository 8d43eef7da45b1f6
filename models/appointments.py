"""Appointments (a patient's place in a clinic session) and encounters (the visit record)."""


import enum
from datetime import date, datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, Relationship, SQLModel

from models._types import UTCDateTime, enum_type
from models.clinic import ClinicSession, Department, Doctor, Icd10Code
from models.patients import Patient
from portal.core import clock


class AppointmentStatus(str, enum.Enum):
    """Where an appointment is in its lifecycle (see ``portal.services.appointments``)."""

    pending = "pending"
    confirmed = "confirmed"
    checked_in = "checked_in"
    completed = "completed"
    cancelled = "cancelled"
    no_show = "no_show"


#: Statuses that hold a place in the session (count towards ``booked_count``).
#: Only cancelling releases a place; a no-show used its place.
ACTIVE_STATUSES = (
    AppointmentStatus.pending,
    AppointmentStatus.confirmed,
    AppointmentStatus.checked_in,
    AppointmentStatus.completed,
    AppointmentStatus.no_show,
)


class BookingChannel(str, enum.Enum):
    """How the appointment was made."""

    online = "online"
    front_desk = "front_desk"
    phone = "phone"


class Appointment(SQLModel, table=True):
    """A patient's booked place, with a queue number, in one clinic session.

    ``doctor_id``, ``department_id`` and ``session_date`` are copied from the clinic session
    at booking time so the busiest lists filter on one indexed table.
    ``active_marker`` is 1 (set by the booking service) while the appointment holds its place and NULL once
    cancelled; the unique key (clinic session, patient, active_marker) lets the
    database itself refuse a second active booking of one patient in one session.
    ``submission_key`` is the one-time form token of an online booking, so a repeated
    submission finds the first result instead of booking twice.
    """

    __tablename__ = "appointment"
    __table_args__ = (
        sa.UniqueConstraint("clinic_session_id", "queue_number", name="uq_appointment_queue"),
        sa.UniqueConstraint(
            "clinic_session_id", "patient_id", "active_marker", name="uq_appointment_active_patient"
        ),
        sa.CheckConstraint("queue_number >= 1", name="queue"),
        sa.Index("ix_appointment_status_dept", "status", "department_id", "id"),
        sa.Index("ix_appointment_dept_date", "department_id", "session_date"),
        sa.Index("ix_appointment_doctor_date", "doctor_id", "session_date"),
        # Covers the outpatient-volume and doctor-workload reports (range on date, group by the rest).
        sa.Index("ix_appointment_date_status_cover", "session_date", "status", "department_id", "doctor_id"),
        sa.Index("ix_appointment_status_booked", "status", "booked_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    reference: str = Field(max_length=16, unique=True, description="e.g. K7MX9-3QD2A")
    patient_id: int = Field(foreign_key="patient.id", index=True)
    clinic_session_id: int = Field(foreign_key="clinic_session.id")
    doctor_id: int = Field(foreign_key="doctor.id")
    department_id: int = Field(foreign_key="department.id")
    session_date: date
    queue_number: int
    status: AppointmentStatus = Field(
        default=AppointmentStatus.pending, sa_type=enum_type(AppointmentStatus)
    )
    channel: BookingChannel = Field(
        default=BookingChannel.online, sa_type=enum_type(BookingChannel)
    )
    reason: Optional[str] = Field(default=None, max_length=500)
    cancel_reason: Optional[str] = Field(default=None, max_length=500)
    is_overbooked: bool = Field(default=False)
    active_marker: Optional[int] = Field(default=None)
    submission_key: Optional[str] = Field(default=None, max_length=64, unique=True)
    booked_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    confirmed_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    checked_in_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    completed_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    no_show_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)

    patient: Optional[Patient] = Relationship()
    clinic_session: Optional[ClinicSession] = Relationship(back_populates="appointments")
    doctor: Optional[Doctor] = Relationship()
    department: Optional[Department] = Relationship()

    def __str__(self) -> str:
        return self.reference


class Encounter(SQLModel, table=True):
    """The clinical record of one visit: complaint, ICD-10 diagnosis, notes."""

    __tablename__ = "encounter"
    __table_args__ = (sa.Index("ix_encounter_doctor_created", "doctor_id", "created_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    appointment_id: Optional[int] = Field(
        default=None, foreign_key="appointment.id", unique=True
    )
    patient_id: int = Field(foreign_key="patient.id", index=True)
    doctor_id: int = Field(foreign_key="doctor.id")
    chief_complaint: str = Field(max_length=500)
    diagnosis_code: Optional[str] = Field(default=None, foreign_key="icd10_code.code")
    notes: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

    appointment: Optional[Appointment] = Relationship()
    patient: Optional[Patient] = Relationship()
    doctor: Optional[Doctor] = Relationship()
    diagnosis: Optional[Icd10Code] = Relationship()

    def __str__(self) -> str:
        return f"Encounter #{self.id}"
