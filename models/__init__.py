"""SQLModel entities of the portal. Importing this package registers every table.

Models hold structure and constraints only: no business rules and nothing of the web.
"""

from sqlmodel import SQLModel

from models.appointments import (
    ACTIVE_STATUSES,
    Appointment,
    AppointmentStatus,
    BookingChannel,
    Encounter,
)
from models.audit import AuditEvent
from models.catalog import CatalogVersion
from models.clinic import (
    ClinicSession,
    ClinicSessionStatus,
    Department,
    Doctor,
    DoctorDepartment,
    Gender,
    Icd10Code,
)
from models.inpatient import (
    ACTIVE_ADMISSION_STATUSES,
    BED_HOLDING_STATUSES,
    Admission,
    AdmissionStatus,
    AdmittedFrom,
    Bed,
    BedStatus,
    BedTransfer,
    InpatientNote,
    Room,
    SexPolicy,
    Ward,
)
from models.patients import MRN_FORMAT, Patient
from models.pharmacy import (
    BatchStatus,
    Medicine,
    MovementKind,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    StockBatch,
    StockMovement,
    Supplier,
)
from models.staff import Role, StaffUser
from models.throttle import ThrottleBucket

metadata = SQLModel.metadata

__all__ = [
    "ACTIVE_STATUSES", "MRN_FORMAT", "Appointment", "AppointmentStatus", "AuditEvent",
    "BatchStatus", "BookingChannel", "CatalogVersion", "Department", "Doctor", "DoctorDepartment", "Encounter",
    "Gender", "Icd10Code", "Medicine", "MovementKind", "Patient", "Prescription",
    "PrescriptionItem", "PrescriptionStatus", "Role", "ClinicSession", "ClinicSessionStatus",
    "StaffUser", "StockBatch", "StockMovement", "Supplier", "ThrottleBucket", "metadata",
    "ACTIVE_ADMISSION_STATUSES", "BED_HOLDING_STATUSES", "Admission", "AdmissionStatus", "AdmittedFrom",
    "Bed", "BedStatus", "BedTransfer", "InpatientNote", "Room", "SexPolicy", "Ward",
]
