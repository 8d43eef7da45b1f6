"""Staff accounts that log in to the admin."""


import enum
from datetime import datetime
from typing import Optional

from sqlmodel import Field, Relationship, SQLModel

from models._types import UTCDateTime, enum_type
from models.clinic import Doctor
from portal.core import clock


class Role(str, enum.Enum):
    """What a staff member does; decides what they may see and do (``views/permissions``)."""

    admin = "admin"
    receptionist = "receptionist"
    doctor = "doctor"
    nurse = "nurse"
    pharmacist = "pharmacist"
    lab_technician = "lab_technician"
    cashier = "cashier"


class StaffUser(SQLModel, table=True):
    """A staff login.

    ``password_hash`` is an argon2 hash (never shown, exported or audited).
    ``login_epoch`` is stamped into each signed login cookie; raising it
    (deactivation, password reset) ends every login of the user at its next request.
    ``failed_logins`` and ``locked_until`` throttle password guessing per username.
    """

    __tablename__ = "staff_user"

    id: Optional[int] = Field(default=None, primary_key=True)
    username: str = Field(max_length=60, unique=True)
    full_name: str = Field(max_length=120)
    role: Role = Field(sa_type=enum_type(Role))
    password_hash: str = Field(max_length=255)
    is_active: bool = Field(default=True)
    doctor_id: Optional[int] = Field(default=None, foreign_key="doctor.id")
    login_epoch: int = Field(default=0)
    failed_logins: int = Field(default=0)
    locked_until: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    last_login_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    password_changed_at: Optional[datetime] = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime)

    doctor: Optional[Doctor] = Relationship()

    def __str__(self) -> str:
        return f"{self.full_name} ({self.username})"
