"""Appointment lifecycle: book, confirm, check in, complete, cancel, no-show; clinic
session opening, closing and cancelling.

Rules (the outpatient registration practice of the hospital):

* A place is taken with ONE conditional UPDATE of the clinic session
  (``booked_count = booked_count + 1 WHERE booked_count < capacity AND status = 'open'
  AND session_date >= today``); its row count says whether we won. Two requests can
  never overbook, on MariaDB or SQLite, and no lock is held in the process.
  The counter is updated before the appointment row is inserted (the insert's foreign
  key would otherwise take a shared lock on the clinic session first and invite deadlocks).
* Queue numbers come from ``last_queue_number``, raised in the same UPDATE, so they are
  unique, start at 1 and are never reused after a cancellation.
* One active appointment per patient per session: checked first for a clear message,
  and enforced by the unique key (clinic session, patient, active_marker).
* Transitions, and only these: pending -> confirmed; pending/confirmed -> checked_in
  (on the session's date); checked_in -> completed; pending/confirmed -> cancelled
  (releases the place); confirmed -> no_show (after the session has ended). Each is a
  conditional UPDATE on the expected status, so two clerks cannot both move one
  appointment.

Every function runs in the caller's transaction and records its AuditEvent there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    Appointment,
    AppointmentStatus,
    BookingChannel,
    ClinicSession,
    ClinicSessionStatus,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.errors import (
    ClinicSessionNotBookable,
    DuplicateBooking,
    InvalidTransition,
    NotFound,
    SlotFull,
    ValidationFailed,
)
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit
from portal.services.references import new_reference

S = AppointmentStatus
MAX_REASON = 500


@dataclass(frozen=True)
class BookingResult:
    """A booked (or, for a repeated submission, previously booked) appointment.

    Attributes:
        appointment (Appointment): the row, with ``reference`` and ``queue_number``.
        clinic_session (ClinicSession): its clinic session, as it was after booking.
        estimated_time (time): local wall-clock time the patient is expected to be
            seen: start_time + (queue_number - 1) x slot_minutes.
        repeated (bool): True when ``submission_key`` matched an earlier booking and
            nothing new was booked.
    """

    appointment: Appointment
    clinic_session: ClinicSession
    estimated_time: time
    repeated: bool = False


def estimated_time(clinic_session: ClinicSession, queue_number: int) -> time:
    """Expected consultation time (local) of ``queue_number`` in ``clinic_session``.

    Args:
        clinic_session (ClinicSession): the clinic session (start_time, slot_minutes in minutes).
        queue_number (int): 1-based position in the queue.

    Returns:
        time: start_time + (queue_number - 1) x slot_minutes, capped at 23:59.
    """
    start = datetime.combine(date(2000, 1, 1), clinic_session.start_time)
    at = start + timedelta(minutes=(queue_number - 1) * clinic_session.slot_minutes)
    return at.time() if at.date() == start.date() else time(23, 59)


def session_start(clinic_session: ClinicSession) -> datetime:
    """The session's start as an aware datetime in the hospital's zone."""
    return clock.at(clinic_session.session_date, clinic_session.start_time)


def session_end(clinic_session: ClinicSession) -> datetime:
    """The session's end as an aware datetime in the hospital's zone."""
    return clock.at(clinic_session.session_date, clinic_session.end_time)


def _clean_reason(reason: str | None, *, required: bool, what: str = "a reason", field: str = "reason") -> str | None:
    text = " ".join((reason or "").split())
    if required and not text:
        raise ValidationFailed(f"Give {what}.", field=field)
    if len(text) > MAX_REASON:
        raise ValidationFailed(f"Keep {what} under {MAX_REASON} characters.", field=field)
    return text or None


def _get_clinic_session(db: Session, clinic_session_id: int) -> ClinicSession:
    clinic_session = db.get(ClinicSession, clinic_session_id, populate_existing=True)
    if clinic_session is None:
        raise NotFound("This clinic session does not exist.", field="clinic_session_id")
    return clinic_session


def _result(db: Session, appointment: Appointment, repeated: bool) -> BookingResult:
    clinic_session = _get_clinic_session(db, appointment.clinic_session_id)
    return BookingResult(appointment, clinic_session, estimated_time(clinic_session, appointment.queue_number), repeated)


def find_by_submission_key(db: Session, submission_key: str) -> Appointment | None:
    """The appointment booked with this one-time form token, if any."""
    return db.scalars(select(Appointment).where(Appointment.submission_key == submission_key)).first()


def book(
    db: Session,
    *,
    clinic_session_id: int,
    patient_id: int,
    actor: Actor,
    channel: BookingChannel = BookingChannel.online,
    reason: str | None = None,
    submission_key: str | None = None,
    overbook_reason: str | None = None,
    now: datetime | None = None,
) -> BookingResult:
    """Book the next place of an open clinic session for a patient.

    Args:
        db (Session): open transaction.
        clinic_session_id (int): the clinic session.
        patient_id (int): the patient (must exist).
        actor (Actor): who books (staff member, or ``patient:online``).
        channel (BookingChannel): online, front_desk or phone.
        reason (str | None): the patient's reason for the visit (<= 500 characters).
        submission_key (str | None): one-time token of the submitting form; a repeat
            with the same key returns the first booking instead of booking again.
        overbook_reason (str | None): front desk only: book beyond capacity (the
            session's capacity grows by one), with this reason recorded in the audit.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        BookingResult: the appointment, its session and estimated time.

    Raises:
        NotFound: no such session or patient.
        ClinicSessionNotBookable: the session is closed, cancelled, or already ended.
        SlotFull: no place left (and no overbooking override).
        DuplicateBooking: the patient already holds an active place in this session.
        ValidationFailed: reason too long; overbooking asked online.
    """
    reason = _clean_reason(reason, required=False, what="the reason for the visit")
    if overbook_reason is not None:
        if channel is BookingChannel.online:
            raise ValidationFailed("Online bookings cannot overbook a session.", field="overbook_reason")
        overbook_reason = _clean_reason(overbook_reason, required=True, what="a reason for overbooking",
                                        field="overbook_reason")
    if submission_key:
        earlier = find_by_submission_key(db, submission_key)
        if earlier is not None:
            return _result(db, earlier, repeated=True)

    local_now = clock.local_now(now)
    today = local_now.date()
    clinic_session = _get_clinic_session(db, clinic_session_id)
    from models import Patient  # local: keeps the import list of this module about appointments

    if db.get(Patient, patient_id) is None:
        raise NotFound("This patient does not exist.", field="patient_id")
    _check_bookable(clinic_session, local_now)
    active = db.scalar(
        select(Appointment.reference).where(
            Appointment.clinic_session_id == clinic_session_id,
            Appointment.patient_id == patient_id,
            Appointment.active_marker == 1,
        )
    )
    if active:
        raise DuplicateBooking(f"This patient already has appointment {active} in this session.", field="patient_id")

    for _attempt in range(3):
        try:
            with db.begin_nested():
                overbooked = _take_place(db, clinic_session, today, overbook_reason is not None)
                queue_number = db.scalar(
                    select(ClinicSession.last_queue_number).where(ClinicSession.id == clinic_session_id)
                )
                appointment = Appointment(
                    reference=new_reference(), patient_id=patient_id, clinic_session_id=clinic_session_id,
                    doctor_id=clinic_session.doctor_id, department_id=clinic_session.department_id,
                    session_date=clinic_session.session_date, queue_number=queue_number,
                    status=S.pending, channel=channel, reason=reason, is_overbooked=overbooked,
                    active_marker=1, submission_key=submission_key or None, booked_at=clock.now(),
                )
                db.add(appointment)
                db.flush()
        except IntegrityError as exc:
            text = str(exc.orig)
            if submission_key and "submission_key" in text:
                earlier = find_by_submission_key(db, submission_key)
                if earlier is not None:
                    return _result(db, earlier, repeated=True)
            if "active" in text or "patient_id" in text:
                raise DuplicateBooking("This patient already has an appointment in this session.", field="patient_id") from None
            if "reference" in text:
                continue  # 50 random bits collided: draw another reference
            raise
        break
    else:  # pragma: no cover - three reference collisions in a row
        raise ValidationFailed("Could not allocate a booking reference; please try again.")

    clinic_session = _get_clinic_session(db, clinic_session_id)
    changes = {"clinic_session_id": clinic_session_id, "patient_id": patient_id, "queue_number": queue_number,
               "status": S.pending, "channel": channel}
    summary = f"Booked {appointment.reference}: queue no. {queue_number} in session #{clinic_session_id}"
    if overbooked:
        changes["overbook_reason"] = overbook_reason
        summary += f" (overbooked: {overbook_reason})"
    audit.record(db, actor=actor, action=AuditAction.book, entity=Entity.appointment, entity_id=appointment.id,
                 summary=summary, changes=changes)
    return BookingResult(appointment, clinic_session, estimated_time(clinic_session, queue_number))


def _check_bookable(clinic_session: ClinicSession, local_now: datetime) -> None:
    if clinic_session.status is ClinicSessionStatus.cancelled:
        raise ClinicSessionNotBookable("This clinic session has been cancelled.", field="clinic_session_id")
    if clinic_session.status is ClinicSessionStatus.closed:
        raise ClinicSessionNotBookable("This clinic session is closed for booking.", field="clinic_session_id")
    if clinic_session.session_date < local_now.date() or session_end(clinic_session) <= local_now:
        raise ClinicSessionNotBookable("This clinic session has already ended.", field="clinic_session_id")


def _take_place(db: Session, clinic_session: ClinicSession, today: date, overbook: bool) -> bool:
    """Take one place with a conditional UPDATE; returns True if it overbooked."""
    bookable = (
        ClinicSession.id == clinic_session.id,
        ClinicSession.status == ClinicSessionStatus.open,
        ClinicSession.session_date >= today,
    )
    taken = db.execute(
        update(ClinicSession)
        .where(*bookable, ClinicSession.booked_count < ClinicSession.capacity)
        .values(booked_count=ClinicSession.booked_count + 1, last_queue_number=ClinicSession.last_queue_number + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken == 1:
        return False
    current = _get_clinic_session(db, clinic_session.id)
    if current.status is not ClinicSessionStatus.open or current.session_date < today:
        raise ClinicSessionNotBookable("This clinic session is no longer open for booking.", field="clinic_session_id")
    if not overbook:
        raise SlotFull("This clinic session has just filled up.", field="clinic_session_id")
    taken = db.execute(
        update(ClinicSession)
        .where(*bookable)
        .values(capacity=ClinicSession.capacity + 1, booked_count=ClinicSession.booked_count + 1,
                last_queue_number=ClinicSession.last_queue_number + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise ClinicSessionNotBookable("This clinic session is no longer open for booking.", field="clinic_session_id")
    return True


# -- transitions --------------------------------------------------------------------

_TIMESTAMP = {
    S.confirmed: "confirmed_at",
    S.checked_in: "checked_in_at",
    S.completed: "completed_at",
    S.cancelled: "cancelled_at",
    S.no_show: "no_show_at",
}


_ACTION = {
    S.confirmed: AuditAction.confirm,
    S.checked_in: AuditAction.check_in,
    S.completed: AuditAction.complete,
    S.cancelled: AuditAction.cancel,
    S.no_show: AuditAction.no_show,
}


def get_appointment(db: Session, appointment_id: int) -> Appointment:
    """Load an appointment (fresh from the database).

    Raises:
        NotFound: no such appointment.
    """
    appointment = db.get(Appointment, appointment_id, populate_existing=True)
    if appointment is None:
        raise NotFound("This appointment does not exist.")
    return appointment


def _move(
    db: Session,
    appointment: Appointment,
    *,
    to: AppointmentStatus,
    allowed_from: tuple[AppointmentStatus, ...],
    actor: Actor,
    values: dict | None = None,
    note: str | None = None,
) -> Appointment:
    """Conditional UPDATE of the status; raises InvalidTransition if it lost."""
    current = appointment.status
    if current not in allowed_from:
        raise InvalidTransition(f"Appointment {appointment.reference}", current.value, to.value)
    stamp = clock.now()
    moved = db.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id, Appointment.status.in_(allowed_from))
        .values(status=to, **{_TIMESTAMP[to]: stamp}, **(values or {}))
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        fresh = get_appointment(db, appointment.id)
        raise InvalidTransition(f"Appointment {appointment.reference}", fresh.status.value, to.value)
    changes = {"status": [current, to]}
    changes.update({k: [None, v] for k, v in (values or {}).items() if k != "active_marker"})
    audit.record(
        db, actor=actor, action=_ACTION[to],
        entity=Entity.appointment, entity_id=appointment.id,
        summary=f"{appointment.reference}: {current.value.replace('_', ' ')} -> {to.value.replace('_', ' ')}"
        + (f" ({note})" if note else ""),
        changes=changes,
    )
    return get_appointment(db, appointment.id)


def confirm(db: Session, appointment_id: int, *, actor: Actor) -> Appointment:
    """Confirm a pending booking (pending -> confirmed).

    Raises:
        NotFound: no such appointment.
        InvalidTransition: it is not pending.
    """
    appointment = get_appointment(db, appointment_id)
    return _move(db, appointment, to=S.confirmed, allowed_from=(S.pending,), actor=actor)


def check_in(db: Session, appointment_id: int, *, actor: Actor, now: datetime | None = None) -> Appointment:
    """Register the patient's arrival (pending/confirmed -> checked_in), on the session's date only.

    Raises:
        NotFound: no such appointment.
        InvalidTransition: wrong status, or today is not the session's date.
    """
    appointment = get_appointment(db, appointment_id)
    today = clock.local_now(now).date()
    if appointment.status in (S.pending, S.confirmed) and appointment.session_date != today:
        raise InvalidTransition(
            f"Appointment {appointment.reference}", appointment.status.value, S.checked_in.value,
            why=f"check-in is only on the day of the session, {appointment.session_date.isoformat()}",
        )
    return _move(db, appointment, to=S.checked_in, allowed_from=(S.pending, S.confirmed), actor=actor)


def complete(db: Session, appointment_id: int, *, actor: Actor) -> Appointment:
    """Close a visit (checked_in -> completed).

    Raises:
        NotFound: no such appointment.
        InvalidTransition: the patient has not been checked in.
    """
    appointment = get_appointment(db, appointment_id)
    return _move(db, appointment, to=S.completed, allowed_from=(S.checked_in,), actor=actor)


def cancel(
    db: Session,
    appointment_id: int,
    *,
    actor: Actor,
    reason: str,
    by_patient: bool = False,
    now: datetime | None = None,
) -> Appointment:
    """Cancel a booking (pending/confirmed -> cancelled) and release its place.

    The clinic session's ``booked_count`` goes down by one (and, for an overbooked place,
    its capacity too), in the same transaction. the clinic session row is updated first,
    as in :func:`book`, so both take locks in the same order.

    Args:
        reason (str): why (required, <= 500 characters).
        by_patient (bool): a patient cancelling online may do so only until the
            session starts.

    Raises:
        NotFound: no such appointment.
        InvalidTransition: not pending/confirmed, or (patient) the session has started.
        ValidationFailed: no reason given.
    """
    reason = _clean_reason(reason, required=True, what="a reason for cancelling")
    appointment = get_appointment(db, appointment_id)
    if appointment.status not in (S.pending, S.confirmed):
        raise InvalidTransition(f"Appointment {appointment.reference}", appointment.status.value, S.cancelled.value)
    clinic_session = _get_clinic_session(db, appointment.clinic_session_id)
    if by_patient and clock.local_now(now) >= session_start(clinic_session):
        raise InvalidTransition(
            f"Appointment {appointment.reference}", appointment.status.value, S.cancelled.value,
            why="the session has already started; please contact the front desk",
        )
    release = {"booked_count": ClinicSession.booked_count - 1}
    if appointment.is_overbooked:
        release["capacity"] = ClinicSession.capacity - 1
    db.execute(
        update(ClinicSession).where(ClinicSession.id == clinic_session.id, ClinicSession.booked_count > 0)
        .values(**release).execution_options(synchronize_session=False)
    )
    return _move(
        db, appointment, to=S.cancelled, allowed_from=(S.pending, S.confirmed), actor=actor,
        values={"cancel_reason": reason, "active_marker": None}, note=reason,
    )


def mark_no_show(db: Session, appointment_id: int, *, actor: Actor, now: datetime | None = None) -> Appointment:
    """Record that a confirmed patient did not come (confirmed -> no_show), once the session has ended.

    The place stays used (a no-show counts in ``booked_count``).

    Raises:
        NotFound: no such appointment.
        InvalidTransition: not confirmed, or the session has not ended yet.
    """
    appointment = get_appointment(db, appointment_id)
    clinic_session = _get_clinic_session(db, appointment.clinic_session_id)
    if appointment.status is S.confirmed and clock.local_now(now) < session_end(clinic_session):
        raise InvalidTransition(
            f"Appointment {appointment.reference}", appointment.status.value, S.no_show.value,
            why=f"the session ends at {clinic_session.end_time:%H:%M} on {clinic_session.session_date.isoformat()}",
        )
    return _move(db, appointment, to=S.no_show, allowed_from=(S.confirmed,), actor=actor)


# -- clinic sessions -------------------------------------------------------------------

def _move_clinic_session(
    db: Session, clinic_session_id: int, *, to: ClinicSessionStatus, allowed_from: tuple[ClinicSessionStatus, ...],
    actor: Actor, action: AuditAction, note: str | None = None, extra_where=(),
) -> ClinicSession:
    clinic_session = _get_clinic_session(db, clinic_session_id)
    what = f"Clinic session #{clinic_session_id}"
    if clinic_session.status not in allowed_from:
        raise InvalidTransition(what, clinic_session.status.value, to.value)
    moved = db.execute(
        update(ClinicSession).where(ClinicSession.id == clinic_session_id, ClinicSession.status.in_(allowed_from), *extra_where)
        .values(status=to).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise InvalidTransition(what, _get_clinic_session(db, clinic_session_id).status.value, to.value)
    audit.record(db, actor=actor, action=action, entity=Entity.clinic_session, entity_id=clinic_session_id,
                 summary=f"{what} {clinic_session.session_date} {clinic_session.start_time:%H:%M}: "
                 f"{clinic_session.status.value} -> {to.value}" + (f" ({note})" if note else ""),
                 changes={"status": [clinic_session.status, to]} | ({"note": note} if note else {}))
    return _get_clinic_session(db, clinic_session_id)


def close_clinic_session(db: Session, clinic_session_id: int, *, actor: Actor) -> ClinicSession:
    """Stop taking bookings for a session (open -> closed); its appointments stay.

    Raises:
        NotFound, InvalidTransition: not open.
    """
    return _move_clinic_session(db, clinic_session_id, to=ClinicSessionStatus.closed, allowed_from=(ClinicSessionStatus.open,),
                          actor=actor, action=AuditAction.close)


def reopen_clinic_session(db: Session, clinic_session_id: int, *, actor: Actor, now: datetime | None = None) -> ClinicSession:
    """Take bookings again (closed -> open), unless the session has ended.

    Raises:
        NotFound, InvalidTransition: not closed, or already ended.
    """
    clinic_session = _get_clinic_session(db, clinic_session_id)
    if clinic_session.status is ClinicSessionStatus.closed and session_end(clinic_session) <= clock.local_now(now):
        raise InvalidTransition(f"Clinic session #{clinic_session_id}", "closed", "open", why="the session has ended")
    return _move_clinic_session(db, clinic_session_id, to=ClinicSessionStatus.open, allowed_from=(ClinicSessionStatus.closed,),
                          actor=actor, action=AuditAction.reopen)


def cancel_clinic_session(db: Session, clinic_session_id: int, *, actor: Actor, reason: str) -> tuple[ClinicSession, list[str]]:
    """Cancel a whole session (doctor unavailable) and every open appointment in it.

    Pending and confirmed appointments become cancelled with ``reason``; their places
    are released. A session where patients have already been seen (checked in or
    completed) cannot be cancelled.

    Returns:
        tuple[ClinicSession, list[str]]: the session and the references cancelled.

    Raises:
        NotFound; InvalidTransition: already cancelled, or patients already seen;
        ValidationFailed: no reason.
    """
    reason = _clean_reason(reason, required=True, what="a reason for cancelling the session")
    seen = db.scalar(
        select(func.count()).select_from(Appointment).where(
            Appointment.clinic_session_id == clinic_session_id, Appointment.status.in_((S.checked_in, S.completed)))
    )
    if seen:
        current = _get_clinic_session(db, clinic_session_id)
        raise InvalidTransition(f"Clinic session #{clinic_session_id}", current.status.value, "cancelled",
                                why=f"{seen} patient(s) have already been seen")
    _move_clinic_session(
        db, clinic_session_id, to=ClinicSessionStatus.cancelled,
        allowed_from=(ClinicSessionStatus.open, ClinicSessionStatus.closed), actor=actor, action=AuditAction.cancel, note=reason,
    )
    rows = db.execute(
        select(Appointment.id, Appointment.reference, Appointment.status, Appointment.is_overbooked)
        .where(Appointment.clinic_session_id == clinic_session_id, Appointment.status.in_((S.pending, S.confirmed)))
        .order_by(Appointment.queue_number)
    ).all()
    references = []
    for row in rows:
        moved = db.execute(
            update(Appointment).where(Appointment.id == row.id, Appointment.status.in_((S.pending, S.confirmed)))
            .values(status=S.cancelled, cancelled_at=clock.now(), cancel_reason=f"Session cancelled: {reason}"[:MAX_REASON],
                    active_marker=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved:
            references.append(row.reference)
            audit.record(db, actor=actor, action=AuditAction.cancel, entity=Entity.appointment, entity_id=row.id,
                         summary=f"{row.reference}: {row.status.value} -> cancelled (session cancelled: {reason})",
                         changes={"status": [row.status, S.cancelled]})
    if references:
        db.execute(
            update(ClinicSession).where(ClinicSession.id == clinic_session_id)
            .values(booked_count=ClinicSession.booked_count - len(references))
            .execution_options(synchronize_session=False)
        )
    return _get_clinic_session(db, clinic_session_id), references
