"""Patients: the people who book and attend appointments."""


from datetime import date, datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models._types import UTCDateTime, enum_type
from models.clinic import Gender
from portal.core import clock

MRN_FORMAT = "MRN-{:08d}"


class Patient(SQLModel, table=True):
    """A registered patient.

    ``medical_record_number`` is generated from the row id (``MRN-00000123``) in the
    same transaction that inserts the row (see ``portal.services.patients``), so it
    is unique and never reused. ``national_id`` is optional and unique when present.
    """

    __tablename__ = "patient"
    __table_args__ = (sa.Index("ix_patient_phone_birth", "phone", "birth_date"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    medical_record_number: Optional[str] = Field(default=None, max_length=20, unique=True)
    full_name: str = Field(max_length=120, index=True)
    gender: Gender = Field(default=Gender.unknown, sa_type=enum_type(Gender))
    birth_date: date
    phone: str = Field(max_length=32)
    email: Optional[str] = Field(default=None, max_length=254)
    national_id: Optional[str] = Field(default=None, max_length=32, unique=True)
    address: Optional[str] = Field(default=None, max_length=255)
    emergency_contact_name: Optional[str] = Field(default=None, max_length=120)
    emergency_contact_phone: Optional[str] = Field(default=None, max_length=32)
    allergies: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

    def __str__(self) -> str:
        return f"{self.full_name} ({self.medical_record_number or 'new'})"
