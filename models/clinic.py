"""Clinic structure: departments, doctors, their clinic sessions , ICD-10 codes."""


import enum
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Optional

import sqlalchemy as sa
from sqlmodel import Field, Relationship, SQLModel

from models._types import UTCDateTime, enum_type
from portal.core import clock

if TYPE_CHECKING:
    from models.appointments import Appointment


class Gender(str, enum.Enum):
    """Administrative gender, as recorded at registration."""

    female = "female"
    male = "male"
    other = "other"
    unknown = "unknown"


class ClinicSessionStatus(str, enum.Enum):
    """Whether a clinic session takes bookings.

    ``open`` takes bookings; ``closed`` keeps its appointments but takes no new
    ones; ``cancelled`` means the session will not run (its appointments are cancelled).
    """

    open = "open"
    closed = "closed"
    cancelled = "cancelled"


class DoctorDepartment(SQLModel, table=True):
    """Link row: a doctor works in a department (many-to-many)."""

    __tablename__ = "doctor_department"

    doctor_id: int = Field(foreign_key="doctor.id", primary_key=True, ondelete="CASCADE")
    department_id: int = Field(
        foreign_key="department.id", primary_key=True, ondelete="CASCADE"
    )
    created_at: Optional[datetime] = Field(
        default=None,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": sa.func.current_timestamp()},
    )


class Department(SQLModel, table=True):
    """A clinical department (e.g. Cardiology) where doctors hold clinic sessions."""

    __tablename__ = "department"

    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True, description="Short code, e.g. CARD")
    name: str = Field(max_length=120, unique=True)
    description: Optional[str] = Field(default=None, sa_type=sa.Text)
    location: Optional[str] = Field(default=None, max_length=120)
    phone: Optional[str] = Field(default=None, max_length=32)
    is_active: bool = Field(default=True, index=True)

    doctors: list["Doctor"] = Relationship(
        back_populates="departments", link_model=DoctorDepartment
    )

    def __str__(self) -> str:
        return self.name


class Doctor(SQLModel, table=True):
    """A physician who holds clinic sessions in one or more departments."""

    __tablename__ = "doctor"

    id: Optional[int] = Field(default=None, primary_key=True)
    full_name: str = Field(max_length=120, index=True)
    title: Optional[str] = Field(default=None, max_length=60, description="e.g. Chief Physician")
    gender: Gender = Field(default=Gender.unknown, sa_type=enum_type(Gender))
    specialty: Optional[str] = Field(default=None, max_length=120)
    phone: str = Field(max_length=32, unique=True)
    email: Optional[str] = Field(default=None, max_length=254)
    bio: Optional[str] = Field(default=None, sa_type=sa.Text)
    is_active: bool = Field(default=True, index=True)

    departments: list[Department] = Relationship(
        back_populates="doctors", link_model=DoctorDepartment
    )

    def __str__(self) -> str:
        return f"{self.title} {self.full_name}" if self.title else self.full_name


class ClinicSession(SQLModel, table=True):
    """One clinic session of a doctor in a department.

    Dates and times are the hospital's local wall-clock time (``PORTAL_TIMEZONE``).
    ``booked_count`` counts active appointments (not cancelled or no-show) and is
    changed only by the booking services, with a conditional UPDATE guarded by the
    CHECK ``0 <= booked_count <= capacity``. ``last_queue_number`` is the highest
    queue number handed out, so numbers are never reused after a cancellation.
    """

    __tablename__ = "clinic_session"
    __table_args__ = (
        sa.UniqueConstraint("doctor_id", "session_date", "start_time", name="uq_clinic_session_doctor_start"),
        sa.CheckConstraint("capacity >= 1", name="capacity"),
        sa.CheckConstraint(
            "booked_count >= 0 AND booked_count <= capacity", name="booked"
        ),
        sa.CheckConstraint("end_time > start_time", name="times"),
        sa.CheckConstraint("slot_minutes >= 1", name="slot"),
        sa.CheckConstraint("fee >= 0", name="fee"),
        sa.Index("ix_clinic_session_department_date_start", "department_id", "session_date", "start_time"),
        sa.Index("ix_clinic_session_date_status", "session_date", "status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    doctor_id: int = Field(foreign_key="doctor.id")
    department_id: int = Field(foreign_key="department.id")
    session_date: date
    start_time: time
    end_time: time
    slot_minutes: int = Field(default=10, description="Estimated minutes per patient")
    capacity: int = Field(default=20)
    booked_count: int = Field(default=0)
    last_queue_number: int = Field(default=0)
    fee: int = Field(default=0, description="Registration fee, smallest currency unit")
    status: ClinicSessionStatus = Field(
        default=ClinicSessionStatus.open, sa_type=enum_type(ClinicSessionStatus)
    )
    note: Optional[str] = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

    doctor: Optional[Doctor] = Relationship()
    department: Optional[Department] = Relationship()
    appointments: list["Appointment"] = Relationship(back_populates="clinic_session")

    @property
    def places_left(self) -> int:
        """Places still free (int, >= 0)."""
        return max(self.capacity - self.booked_count, 0)

    def __str__(self) -> str:
        return f"{self.session_date} {self.start_time:%H:%M} #{self.id}"


class Icd10Code(SQLModel, table=True):
    """An ICD-10-CM category (e.g. ``I10`` Essential hypertension), for diagnoses."""

    __tablename__ = "icd10_code"

    code: str = Field(primary_key=True, max_length=8, sa_type=sa.String(8))
    title: str = Field(max_length=255, index=True)

    def __str__(self) -> str:
        return f"{self.code} {self.title}"
