"""Inpatient care: wards, rooms, beds, admissions and their bed transfers.

Structure and constraints only; the rules (who may move a bed or an admission, and when)
are in ``portal.services.inpatient``.
"""


import enum
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, Relationship, SQLModel

from models._types import UTCDateTime, enum_type
from models.appointments import Encounter
from models.clinic import Department, Doctor, Icd10Code
from models.patients import Patient
from portal.core import clock


class SexPolicy(str, enum.Enum):
    """Which patients a ward takes: men only, women only, or both."""

    male = "male"
    female = "female"
    mixed = "mixed"


class BedStatus(str, enum.Enum):
    """Where a bed is in its cycle.

    ``free`` takes an admission; ``occupied`` holds one (admitted or discharge ordered);
    ``cleaning`` after the patient left (a transfer out or the final discharge) until
    housekeeping marks it clean; ``reserved`` and ``out_of_service`` take no admission.
    """

    free = "free"
    occupied = "occupied"
    reserved = "reserved"
    cleaning = "cleaning"
    out_of_service = "out_of_service"


class AdmissionStatus(str, enum.Enum):
    """Where an admission is in its lifecycle (see ``portal.services.inpatient``)."""

    requested = "requested"
    admitted = "admitted"
    discharge_ordered = "discharge_ordered"
    discharged = "discharged"
    cancelled = "cancelled"


#: Statuses of an active admission (at most one per patient).
ACTIVE_ADMISSION_STATUSES = (
    AdmissionStatus.requested, AdmissionStatus.admitted, AdmissionStatus.discharge_ordered,
)
#: Statuses in which an admission holds its bed (at most one per bed).
BED_HOLDING_STATUSES = (AdmissionStatus.admitted, AdmissionStatus.discharge_ordered)


class AdmittedFrom(str, enum.Enum):
    """Where the patient came from."""

    outpatient = "outpatient"
    emergency = "emergency"
    direct = "direct"


class Ward(SQLModel, table=True):
    """A nursing ward of a department, on one floor, with its sex policy."""

    __tablename__ = "ward"

    id: Optional[int] = Field(default=None, primary_key=True)
    department_id: int = Field(foreign_key="department.id", index=True)
    name: str = Field(max_length=120, unique=True)
    sex_policy: SexPolicy = Field(default=SexPolicy.mixed, sa_type=enum_type(SexPolicy))
    floor: str = Field(default="", max_length=16, description="e.g. 3, B1")
    is_active: bool = Field(default=True)

    department: Optional[Department] = Relationship()

    def __str__(self) -> str:
        return self.name


class Room(SQLModel, table=True):
    """A room of a ward (its beds share the ward's sex policy)."""

    __tablename__ = "room"
    __table_args__ = (sa.UniqueConstraint("ward_id", "number", name="uq_room_ward_number"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    ward_id: int = Field(foreign_key="ward.id", index=True)
    number: str = Field(max_length=16, description="e.g. 301")

    ward: Optional[Ward] = Relationship()

    def __str__(self) -> str:
        ward = self.__dict__.get("ward")  # never lazy-load inside __str__
        return f"{ward} {self.number}" if ward else f"Room {self.number}"


class Bed(SQLModel, table=True):
    """A bed in a room. ``status`` changes only through the inpatient services, with
    conditional UPDATEs; ``daily_rate`` is charged per midnight occupied, in fen."""

    __tablename__ = "bed"
    __table_args__ = (
        sa.CheckConstraint("daily_rate >= 0", name="daily_rate"),
        sa.Index("ix_bed_room_status", "room_id", "status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    room_id: int = Field(foreign_key="room.id")
    code: str = Field(max_length=16, unique=True, description="e.g. 3A-301-1")
    status: BedStatus = Field(default=BedStatus.free, sa_type=enum_type(BedStatus))
    daily_rate: int = Field(default=0, description="Charge per midnight occupied, fen")
    status_note: Optional[str] = Field(default=None, max_length=255)

    room: Optional[Room] = Relationship()

    def __str__(self) -> str:
        return self.code


class Admission(SQLModel, table=True):
    """A patient's inpatient stay, from the request to the final discharge.

    ``active_marker`` is 1 while the admission is requested, admitted or discharge ordered
    and NULL afterwards; the unique key (patient, active_marker) lets the database refuse a
    second active admission of one patient. ``bed_marker`` is 1 while the admission holds
    its bed (admitted, discharge ordered); the unique key (bed, bed_marker) refuses a
    second patient in one bed. ``bed_id`` stays set after discharge (the last bed).
    """

    __tablename__ = "admission"
    __table_args__ = (
        sa.UniqueConstraint("patient_id", "active_marker", name="uq_admission_active_patient"),
        sa.UniqueConstraint("bed_id", "bed_marker", name="uq_admission_bed_holder"),
        sa.CheckConstraint("active_marker IS NULL OR active_marker = 1", name="active_marker"),
        sa.CheckConstraint("bed_marker IS NULL OR (bed_marker = 1 AND bed_id IS NOT NULL)", name="bed_marker"),
        sa.Index("ix_admission_status_admitted", "status", "admitted_at"),
        sa.Index("ix_admission_discharged", "discharged_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    patient_id: int = Field(foreign_key="patient.id", index=True)
    doctor_id: int = Field(foreign_key="doctor.id", index=True, description="Admitting doctor")
    department_id: int = Field(foreign_key="department.id")
    reason: str = Field(max_length=500)
    diagnosis_code: Optional[str] = Field(default=None, foreign_key="icd10_code.code")
    admitted_from: AdmittedFrom = Field(default=AdmittedFrom.direct, sa_type=enum_type(AdmittedFrom))
    encounter_id: Optional[int] = Field(default=None, foreign_key="encounter.id")
    bed_id: Optional[int] = Field(default=None, foreign_key="bed.id", index=True)
    status: AdmissionStatus = Field(default=AdmissionStatus.requested, sa_type=enum_type(AdmissionStatus))
    active_marker: Optional[int] = Field(default=None)
    bed_marker: Optional[int] = Field(default=None)
    requested_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    admitted_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    discharge_ordered_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    discharged_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    cancelled_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    discharge_note: Optional[str] = Field(default=None, max_length=500)
    cancel_reason: Optional[str] = Field(default=None, max_length=500)

    patient: Optional[Patient] = Relationship()
    doctor: Optional[Doctor] = Relationship()
    department: Optional[Department] = Relationship()
    diagnosis: Optional[Icd10Code] = Relationship()
    encounter: Optional[Encounter] = Relationship()
    bed: Optional[Bed] = Relationship()

    def __str__(self) -> str:
        return f"Admission #{self.id}"


class BedTransfer(SQLModel, table=True):
    """One move of an admitted patient from a bed to another (append-only history)."""

    __tablename__ = "bed_transfer"
    __table_args__ = (sa.Index("ix_bed_transfer_admission_at", "admission_id", "transferred_at"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    admission_id: int = Field(foreign_key="admission.id")
    from_bed_id: int = Field(foreign_key="bed.id")
    to_bed_id: int = Field(foreign_key="bed.id")
    transferred_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    transferred_by: str = Field(max_length=80, description="Username of who moved the patient")
    reason: str = Field(max_length=500)

    admission: Optional[Admission] = Relationship()
    from_bed: Optional[Bed] = Relationship(sa_relationship_kwargs={"foreign_keys": "BedTransfer.from_bed_id"})
    to_bed: Optional[Bed] = Relationship(sa_relationship_kwargs={"foreign_keys": "BedTransfer.to_bed_id"})

    def __str__(self) -> str:
        return f"Transfer #{self.id}"


class InpatientNote(SQLModel, table=True):
    """A ward note on an admission, with optional vitals (append-only).

    Units: ``temperature_dc`` in 0.1 °C (368 = 36.8 °C), ``pulse`` and ``respiratory_rate``
    per minute, ``systolic``/``diastolic`` in mmHg, ``spo2`` in %. The CHECKs keep each
    vital within a range a living patient can show (typing slips are refused).
    """

    __tablename__ = "inpatient_note"
    __table_args__ = (
        sa.CheckConstraint("temperature_dc IS NULL OR temperature_dc BETWEEN 300 AND 440", name="temperature_dc"),
        sa.CheckConstraint("pulse IS NULL OR pulse BETWEEN 20 AND 250", name="pulse"),
        sa.CheckConstraint("systolic IS NULL OR systolic BETWEEN 50 AND 260", name="systolic"),
        sa.CheckConstraint("diastolic IS NULL OR diastolic BETWEEN 20 AND 160", name="diastolic"),
        sa.CheckConstraint("systolic IS NULL OR diastolic IS NULL OR diastolic < systolic", name="blood_pressure"),
        sa.CheckConstraint("respiratory_rate IS NULL OR respiratory_rate BETWEEN 4 AND 60", name="respiratory_rate"),
        sa.CheckConstraint("spo2 IS NULL OR spo2 BETWEEN 50 AND 100", name="spo2"),
        sa.Index("ix_inpatient_note_admission_at", "admission_id", "written_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    admission_id: int = Field(foreign_key="admission.id")
    written_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    author: str = Field(max_length=80, description="Username of who wrote it")
    note: str = Field(max_length=2000)
    temperature_dc: Optional[int] = Field(default=None, description="Temperature, 0.1 °C")
    pulse: Optional[int] = Field(default=None, description="Pulse, per minute")
    systolic: Optional[int] = Field(default=None, description="Systolic pressure, mmHg")
    diastolic: Optional[int] = Field(default=None, description="Diastolic pressure, mmHg")
    respiratory_rate: Optional[int] = Field(default=None, description="Respiratory rate, per minute")
    spo2: Optional[int] = Field(default=None, description="SpO2, %")

    admission: Optional[Admission] = Relationship()

    def __str__(self) -> str:
        return f"Note #{self.id}"
