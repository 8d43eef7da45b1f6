"""Pharmacy: medicines, suppliers, stock batches, the stock ledger, prescriptions."""


import enum
from datetime import date, datetime
from typing import Optional

import sqlalchemy as sa
from sqlmodel import Field, Relationship, SQLModel

from models._types import UTCDateTime, enum_type
from models.appointments import Appointment
from models.clinic import Doctor, Icd10Code
from models.patients import Patient
from portal.core import clock


class Medicine(SQLModel, table=True):
    """A stock item: one generic medicine in one form and strength.

    Quantities are counted in ``unit`` (the dispensing unit, e.g. tablet, ampoule);
    ``unit_price`` is the sale price of one unit in the smallest currency unit.
    """

    __tablename__ = "medicine"
    __table_args__ = (
        sa.UniqueConstraint("name", "form", "strength", name="uq_medicine_name_form_strength"),
        sa.CheckConstraint("reorder_level >= 0", name="reorder"),
        sa.CheckConstraint("unit_price >= 0", name="price"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, index=True, description="Generic name")
    form: str = Field(max_length=60, description="e.g. Tablet, Oral liquid, Injection")
    strength: str = Field(default="", max_length=120, description="e.g. 500 mg")
    unit: str = Field(default="unit", max_length=30, description="Dispensing unit")
    category: Optional[str] = Field(default=None, max_length=200, index=True)
    is_controlled: bool = Field(default=False)
    reorder_level: int = Field(default=0)
    unit_price: int = Field(default=0)
    is_active: bool = Field(default=True, index=True)

    def __str__(self) -> str:
        return " ".join(p for p in (self.name, self.strength, self.form) if p)


class Supplier(SQLModel, table=True):
    """A company that delivers stock."""

    __tablename__ = "supplier"

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    contact_name: Optional[str] = Field(default=None, max_length=120)
    phone: Optional[str] = Field(default=None, max_length=32)
    email: Optional[str] = Field(default=None, max_length=254)
    address: Optional[str] = Field(default=None, max_length=255)
    is_active: bool = Field(default=True)

    def __str__(self) -> str:
        return self.name


class BatchStatus(str, enum.Enum):
    """Whether a batch may be dispensed from.

    Only ``active`` batches whose expiry date is after today are usable (FEFO).
    """

    active = "active"
    quarantined = "quarantined"
    expired = "expired"
    recalled = "recalled"
    depleted = "depleted"


class StockBatch(SQLModel, table=True):
    """A lot of one medicine received from a supplier, with its expiry date.

    ``quantity_on_hand`` (dispensing units) is changed only by the stock services
    with conditional UPDATEs, and always equals the sum of the batch's movements.
    """

    __tablename__ = "stock_batch"
    __table_args__ = (
        sa.UniqueConstraint("medicine_id", "lot_number", name="uq_batch_medicine_lot"),
        sa.CheckConstraint("quantity_on_hand >= 0", name="on_hand"),
        sa.CheckConstraint("quantity_received >= 0", name="received"),
        sa.CheckConstraint("unit_cost >= 0", name="cost"),
        sa.Index("ix_batch_fefo", "medicine_id", "status", "expiry_date"),
        sa.Index("ix_batch_expiry", "expiry_date", "status"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    medicine_id: int = Field(foreign_key="medicine.id")
    supplier_id: Optional[int] = Field(default=None, foreign_key="supplier.id")
    lot_number: str = Field(max_length=40, index=True)
    expiry_date: date
    received_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    quantity_received: int = Field(default=0)
    quantity_on_hand: int = Field(default=0)
    unit_cost: int = Field(default=0, description="Cost of one unit, smallest currency unit")
    status: BatchStatus = Field(default=BatchStatus.active, sa_type=enum_type(BatchStatus))

    medicine: Optional[Medicine] = Relationship()
    supplier: Optional[Supplier] = Relationship()

    def __str__(self) -> str:
        return f"{self.lot_number} (exp. {self.expiry_date})"


class MovementKind(str, enum.Enum):
    """Why stock moved. Quantities are signed: receipts add, dispenses take."""

    receipt = "receipt"
    dispense = "dispense"
    expiry_write_off = "expiry_write_off"
    adjustment = "adjustment"
    return_ = "return"


class PrescriptionStatus(str, enum.Enum):
    """Dispensing state of a prescription."""

    issued = "issued"
    partially_dispensed = "partially_dispensed"
    dispensed = "dispensed"
    cancelled = "cancelled"


class Prescription(SQLModel, table=True):
    """Medicines a doctor prescribed to a patient, to be dispensed by the pharmacy."""

    __tablename__ = "prescription"
    __table_args__ = (
        sa.Index("ix_prescription_status_created", "status", "created_at"),
        sa.Index("ix_prescription_doctor_created", "doctor_id", "created_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    number: str = Field(max_length=24, unique=True, description="e.g. RX-20261120-0001")
    patient_id: int = Field(foreign_key="patient.id", index=True)
    doctor_id: int = Field(foreign_key="doctor.id")
    appointment_id: Optional[int] = Field(default=None, foreign_key="appointment.id", index=True)
    diagnosis_code: Optional[str] = Field(default=None, foreign_key="icd10_code.code")
    status: PrescriptionStatus = Field(
        default=PrescriptionStatus.issued, sa_type=enum_type(PrescriptionStatus)
    )
    notes: Optional[str] = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)
    dispensed_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)

    patient: Optional[Patient] = Relationship()
    doctor: Optional[Doctor] = Relationship()
    appointment: Optional[Appointment] = Relationship()
    diagnosis: Optional[Icd10Code] = Relationship()
    items: list["PrescriptionItem"] = Relationship(back_populates="prescription")

    def __str__(self) -> str:
        return self.number


class PrescriptionItem(SQLModel, table=True):
    """One medicine line of a prescription; quantities in dispensing units."""

    __tablename__ = "prescription_item"
    __table_args__ = (
        sa.CheckConstraint("quantity >= 1", name="quantity"),
        sa.CheckConstraint(
            "quantity_dispensed >= 0 AND quantity_dispensed <= quantity",
            name="dispensed",
        ),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    prescription_id: int = Field(foreign_key="prescription.id", index=True)
    medicine_id: int = Field(foreign_key="medicine.id", index=True)
    quantity: int
    dosage: str = Field(max_length=120, description='e.g. "1 tablet three times daily"')
    duration_days: Optional[int] = Field(default=None)
    quantity_dispensed: int = Field(default=0)

    prescription: Optional[Prescription] = Relationship(back_populates="items")
    medicine: Optional[Medicine] = Relationship()

    def __str__(self) -> str:
        medicine = self.__dict__.get("medicine")  # never lazy-load inside __str__
        return f"{self.quantity} x {medicine or f'medicine #{self.medicine_id}'}"


class StockMovement(SQLModel, table=True):
    """Append-only stock ledger row: one signed change of one batch.

    For every batch, ``quantity_on_hand`` equals the sum of its movements'
    ``quantity``; ``balance_after`` is the batch's quantity right after this row.
    """

    __tablename__ = "stock_movement"
    __table_args__ = (
        sa.Index("ix_movement_batch", "batch_id", "id"),
        # Covers the pharmacy report (dispensed and written off per period and medicine).
        sa.Index("ix_movement_kind_created_cover", "kind", "created_at", "medicine_id", "quantity", "unit_cost"),
        sa.Index("ix_movement_medicine_created", "medicine_id", "created_at"),
        sa.CheckConstraint("balance_after >= 0", name="balance"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="stock_batch.id")
    medicine_id: int = Field(foreign_key="medicine.id")
    kind: MovementKind = Field(sa_type=enum_type(MovementKind))
    quantity: int = Field(description="Signed change, dispensing units")
    balance_after: int
    prescription_item_id: Optional[int] = Field(
        default=None, foreign_key="prescription_item.id", index=True
    )
    staff_user_id: Optional[int] = Field(default=None, foreign_key="staff_user.id")
    witness_user_id: Optional[int] = Field(default=None, foreign_key="staff_user.id")
    unit_cost: int = Field(default=0, description="Batch unit cost at the time, smallest currency unit")
    note: Optional[str] = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

    batch: Optional[StockBatch] = Relationship()
    medicine: Optional[Medicine] = Relationship()
    prescription_item: Optional[PrescriptionItem] = Relationship()

    def __str__(self) -> str:
        return f"{self.kind.value} {self.quantity:+d} (batch {self.batch_id})"
