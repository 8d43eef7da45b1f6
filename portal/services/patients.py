"""Patient registration rules: phone normalisation, birth-date range, MRN generation."""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from models import MRN_FORMAT, Patient
from portal.core import clock
from portal.core.errors import ValidationFailed

MAX_AGE_YEARS = 130
_PHONE_STRIP = re.compile(r"[\s\-().]")


def normalise_phone(raw: str) -> str:
    """Return ``raw`` as digits with an optional leading ``+`` (e.g. ``+8613800138000``).

    Spaces, dashes, dots and brackets are removed; a leading ``00`` becomes ``+``.

    Raises:
        ValidationFailed: fewer than 6 or more than 15 digits, or other characters.
    """
    text = _PHONE_STRIP.sub("", (raw or "").strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    digits = text[1:] if text.startswith("+") else text
    if not digits.isdigit() or not digits.isascii():
        raise ValidationFailed("Enter a phone number using digits only.")
    if not 6 <= len(digits) <= 15:
        raise ValidationFailed("A phone number has between 6 and 15 digits.")
    return text


def check_birth_date(birth_date: date, *, today: date | None = None) -> None:
    """Refuse a birth date in the future or more than 130 years ago.

    Raises:
        ValidationFailed: when out of that range.
    """
    today = today or clock.today()
    if birth_date > today:
        raise ValidationFailed("The birth date cannot be in the future.")
    try:
        oldest = today.replace(year=today.year - MAX_AGE_YEARS)
    except ValueError:  # 29 February
        oldest = today.replace(year=today.year - MAX_AGE_YEARS, day=28)
    if birth_date < oldest:
        raise ValidationFailed(f"The birth date cannot be more than {MAX_AGE_YEARS} years ago.")


@event.listens_for(Patient, "after_insert")
def _assign_mrn(_mapper, connection, target: Patient) -> None:
    """Give a new patient ``MRN-<id>`` in the INSERT's own transaction."""
    if target.medical_record_number:
        return
    mrn = MRN_FORMAT.format(target.id)
    connection.execute(
        update(Patient.__table__).where(Patient.__table__.c.id == target.id).values(medical_record_number=mrn)
    )
    target.medical_record_number = mrn


def find_patient(db: Session, *, phone: str, birth_date: date, national_id: str | None) -> Patient | None:
    """Find an existing patient by phone and birth date (and national ID when given).

    Args:
        phone (str): normalised phone.
        birth_date (date): date of birth.
        national_id (str | None): when given, a patient with that national ID matches
            only if phone and birth date agree too.

    Returns:
        Patient | None: the oldest matching registration, or None.
    """
    if national_id:
        found = db.query(Patient).filter(Patient.national_id == national_id).one_or_none()
        if found is not None:
            return found if (found.phone == phone and found.birth_date == birth_date) else None
    return (
        db.query(Patient)
        .filter(Patient.phone == phone, Patient.birth_date == birth_date)
        .order_by(Patient.id)
        .first()
    )
