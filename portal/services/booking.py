"""Online booking by patients: register-or-match the patient and book, look a booking up,
cancel it.

Rules:

* An online patient is matched by phone and birth date (and national ID when given)
  with :func:`portal.services.patients.find_patient`; otherwise a new Patient is
  registered (its MRN comes from the insert hook), in the SAME transaction as the
  booking, so a refused booking registers nobody.
* A national ID already on file under another phone or birth date is refused with a
  neutral message (:class:`IdentityMismatch`): the web page must not reveal whose it is.
* A repeated submission (same one-time ``submission_key``) returns the first booking and
  writes nothing, not even a second registration.
* A booking is found again only with its reference AND the phone it was booked with.
* Patients cancel through :func:`portal.services.appointments.cancel` with
  ``by_patient=True`` (until the session starts).

Every function runs in the caller's transaction (``run_in_transaction``).
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime, time

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Appointment, AppointmentStatus, ClinicSession, Department, Doctor, Gender, Patient
from portal.core import clock
from portal.core.actor import Actor
from portal.core.errors import DomainError
from portal.core.vocabulary import AuditAction, Entity
from portal.services import appointments, audit
from portal.services.appointments import BookingResult
from portal.services.patients import find_patient, normalise_phone

#: An 11-digit mainland China mobile number typed without its country code.
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
#: Reason recorded when a patient cancels online without giving one.
DEFAULT_CANCEL_REASON = "Cancelled by the patient online"


class IdentityMismatch(DomainError):
    """The national ID given is on file with another phone number or birth date.

    The message does not say which part differs nor whose the ID is.
    """

    status_code = 409

    def __init__(self) -> None:
        super().__init__(
            "We could not match these details to our records. Please contact the front desk."
        )


def canonical_phone(raw: str) -> str:
    """Normalise a typed phone number the way patient records keep it.

    :func:`~portal.services.patients.normalise_phone` is applied first; an 11-digit
    mainland mobile number typed without country code (``13800138000``) then gets
    ``+86`` in front, as the hospital's records have it.

    Args:
        raw (str): what the patient typed.

    Returns:
        str: e.g. ``+8613800138000``.

    Raises:
        ValidationFailed: not a phone number (see ``normalise_phone``).
    """
    phone = normalise_phone(raw)
    if _CN_MOBILE.fullmatch(phone):
        return "+86" + phone
    return phone


def same_phone(a: str, b: str) -> bool:
    """True when two normalised phone numbers are the same line.

    ``+86`` in front is ignored on either side, so a record kept as ``13800138000``
    matches ``+8613800138000``. Compared in constant time.
    """

    def key(phone: str) -> str:
        return phone[3:] if phone.startswith("+86") else phone

    return hmac.compare_digest(key(a).encode(), key(b).encode())


def _match_or_register(
    db: Session, *, full_name: str, phone: str, birth_date: date, gender: Gender,
    national_id: str | None, actor: Actor,
) -> tuple[Patient, bool]:
    """The patient these details belong to, registering a new one if none matches.

    Returns:
        tuple[Patient, bool]: the patient and whether it was registered just now.
    """
    patient = find_patient(db, phone=phone, birth_date=birth_date, national_id=national_id)
    if patient is None and national_id:
        holder = db.scalar(select(Patient.id).where(Patient.national_id == national_id))
        if holder is not None:
            raise IdentityMismatch()
    if patient is not None and national_id and patient.national_id and patient.national_id != national_id:
        patient = None  # same phone and birth date, another ID on file: another person (twins)
    if patient is not None:
        return patient, False
    patient = Patient(full_name=full_name, phone=phone, birth_date=birth_date, gender=gender,
                      national_id=national_id or None)
    try:
        with db.begin_nested():
            db.add(patient)
            db.flush()
    except IntegrityError:
        # Another request registered this national ID a moment ago: use it if it is the same person.
        again = find_patient(db, phone=phone, birth_date=birth_date, national_id=national_id)
        if again is None:
            raise IdentityMismatch() from None
        return again, False
    audit.record(db, actor=actor, action=AuditAction.register, entity=Entity.patient, entity_id=patient.id,
                 summary=f"Registered online: {patient.medical_record_number}",
                 changes={"full_name": full_name, "gender": gender, "birth_date": birth_date})
    return patient, True


def book_online(
    db: Session,
    *,
    clinic_session_id: int,
    full_name: str,
    phone: str,
    birth_date: date,
    gender: Gender,
    national_id: str | None,
    reason: str | None,
    submission_key: str,
    actor: Actor,
    now: datetime | None = None,
) -> BookingResult:
    """Register or match the patient and book a place in a clinic session, in one transaction.

    Args:
        db (Session): open transaction.
        clinic_session_id (int): the clinic session.
        full_name (str): the patient's name, already validated.
        phone (str): canonical phone (:func:`canonical_phone`).
        birth_date (date): date of birth, already validated.
        gender (Gender): administrative gender.
        national_id (str | None): resident ID number, validated, or None.
        reason (str | None): reason for the visit, or None.
        submission_key (str): the form's one-time token; a repeat returns the first booking.
        actor (Actor): ``patient:online`` with the client's address.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        BookingResult: the appointment, its session, the estimated time; ``repeated`` is
        True when this submission had already booked (nothing new was written).

    Raises:
        IdentityMismatch: the national ID is on file with another phone or birth date.
        NotFound: no such session.
        ClinicSessionNotBookable: closed, cancelled or ended.
        SlotFull: no place left.
        DuplicateBooking: this patient already holds a place in the session.
        ValidationFailed: reason too long.
    """
    earlier = appointments.find_by_submission_key(db, submission_key)
    if earlier is not None:
        return appointments.book(db, clinic_session_id=earlier.clinic_session_id, patient_id=earlier.patient_id,
                                 actor=actor, submission_key=submission_key, now=now)
    savepoint = db.begin_nested()
    patient, registered = _match_or_register(
        db, full_name=full_name, phone=phone, birth_date=birth_date, gender=gender,
        national_id=national_id, actor=actor,
    )
    result = appointments.book(db, clinic_session_id=clinic_session_id, patient_id=patient.id, actor=actor,
                               reason=reason, submission_key=submission_key, now=now)
    if result.repeated and registered:
        # A concurrent copy of this submission booked first: undo our registration.
        savepoint.rollback()
        earlier = appointments.find_by_submission_key(db, submission_key)
        return appointments.book(db, clinic_session_id=earlier.clinic_session_id, patient_id=earlier.patient_id,
                                 actor=actor, submission_key=submission_key, now=now)
    savepoint.commit()
    return result


@dataclass(frozen=True)
class BookingDetails:
    """Everything a patient's booking page shows.

    Attributes:
        appointment (Appointment): the booking (status, reference, queue number).
        clinic_session (ClinicSession): its clinic session.
        doctor (Doctor): the doctor.
        department (Department): the department (``location`` is where to go).
        patient (Patient): whose booking it is.
        estimated_time (time): expected consultation time, local wall clock.
        cancellable (bool): the patient may still cancel it online (pending or
            confirmed, and the session has not started).
    """

    appointment: Appointment
    clinic_session: ClinicSession
    doctor: Doctor
    department: Department
    patient: Patient
    estimated_time: time
    cancellable: bool


def booking_details(db: Session, appointment_id: int, *, now: datetime | None = None) -> BookingDetails | None:
    """Load a booking with its session, doctor, department and patient.

    Args:
        db (Session): open transaction.
        appointment_id (int): the appointment.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        BookingDetails | None: None when no such appointment exists.
    """
    row = db.execute(
        select(Appointment, ClinicSession, Doctor, Department, Patient)
        .join(ClinicSession, ClinicSession.id == Appointment.clinic_session_id)
        .join(Doctor, Doctor.id == Appointment.doctor_id)
        .join(Department, Department.id == Appointment.department_id)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(Appointment.id == appointment_id)
    ).first()
    if row is None:
        return None
    appointment, clinic_session, doctor, department, patient = row
    local_now = clock.local_now(now)
    cancellable = (
        appointment.status in (AppointmentStatus.pending, AppointmentStatus.confirmed)
        and local_now < appointments.session_start(clinic_session)
    )
    return BookingDetails(appointment, clinic_session, doctor, department, patient,
                          appointments.estimated_time(clinic_session, appointment.queue_number), cancellable)


def find_booking(db: Session, *, reference: str, phone: str) -> int | None:
    """The id of the appointment with this reference booked with this phone number.

    Args:
        db (Session): open transaction.
        reference (str): canonical reference (``normalise_reference``).
        phone (str): canonical phone (:func:`canonical_phone`).

    Returns:
        int | None: the appointment id, or None when the reference is unknown OR the phone
        differs (the caller must not tell the two apart).
    """
    row = db.execute(
        select(Appointment.id, Patient.phone)
        .join(Patient, Patient.id == Appointment.patient_id)
        .where(Appointment.reference == reference)
    ).first()
    if row is None:
        same_phone(phone, phone)  # the same work as a found row, so timing tells nothing
        return None
    return row.id if same_phone(row.phone, phone) else None


def cancel_online(
    db: Session, appointment_id: int, *, reason: str | None, actor: Actor, now: datetime | None = None,
) -> Appointment:
    """Cancel a booking on the patient's behalf (allowed until the session starts).

    Args:
        db (Session): open transaction.
        appointment_id (int): the appointment.
        reason (str | None): the patient's reason; :data:`DEFAULT_CANCEL_REASON` when empty.
        actor (Actor): ``patient:online`` with the client's address.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        Appointment: the cancelled appointment.

    Raises:
        NotFound: no such appointment.
        InvalidTransition: not pending/confirmed, or the session has started.
        ValidationFailed: reason too long.
    """
    text = " ".join((reason or "").split()) or DEFAULT_CANCEL_REASON
    return appointments.cancel(db, appointment_id, actor=actor, reason=text, by_patient=True, now=now)
