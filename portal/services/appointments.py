"""Appointment lifecycle: book, confirm, check in, complete, cancel, no-show; clinic
session (schedule) opening, closing and cancelling.

Rules (the outpatient registration practice of the hospital):

* A place is taken with ONE conditional UPDATE of the schedule
  (``booked_count = booked_count + 1 WHERE booked_count < capacity AND status = 'open'
  AND session_date >= today``); its row count says whether we won. Two requests can
  never overbook, on MariaDB or SQLite, and no lock is held in the process.
  The counter is updated before the appointment row is inserted (the insert's foreign
  key would otherwise take a shared lock on the schedule first and invite deadlocks).
* Queue numbers come from ``last_queue_number``, raised in the same UPDATE, so they are
  unique, start at 1 and are never reused after a cancellation.
* One active appointment per patient per session: checked first for a clear message,
  and enforced by the unique key (schedule, patient, active_marker).
* Transitions, and only these: pending -> confirmed; pending/confirmed -> checked_in
  (on the session's date); checked_in -> completed; pending/confirmed -> cancelled
  (releases the place); confirmed -> no_show (after the session has ended). Each is a
  conditional UPDATE on the expected status, so two clerks cannot both move one
  appointment.

Every function runs in the caller's transaction and records its AuditEvent there.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    Appointment,
    AppointmentStatus,
    BookingChannel,
    Schedule,
    ScheduleStatus,
)
from models._types import utcnow
from portal.services import audit
from portal.services.actor import Actor
from portal.services.errors import (
    DuplicateBooking,
    InvalidTransition,
    NotFound,
    ScheduleNotBookable,
    SlotFull,
    ValidationFailed,
)
from portal.services.references import new_reference
from portal.settings import get_settings

S = AppointmentStatus
MAX_REASON = 500


@dataclass(frozen=True)
class BookingResult:
    """A booked (or, for a repeated submission, previously booked) appointment.

    Attributes:
        appointment (Appointment): the row, with ``reference`` and ``queue_number``.
        schedule (Schedule): its clinic session, as it was after booking.
        estimated_time (time): local wall-clock time the patient is expected to be
            seen: start_time + (queue_number - 1) x slot_minutes.
        repeated (bool): True when ``submission_key`` matched an earlier booking and
            nothing new was booked.
    """

    appointment: Appointment
    schedule: Schedule
    estimated_time: time
    repeated: bool = False


def estimated_time(schedule: Schedule, queue_number: int) -> time:
    """Expected consultation time (local) of ``queue_number`` in ``schedule``.

    Args:
        schedule (Schedule): the clinic session (start_time, slot_minutes in minutes).
        queue_number (int): 1-based position in the queue.

    Returns:
        time: start_time + (queue_number - 1) x slot_minutes, capped at 23:59.
    """
    start = datetime.combine(date(2000, 1, 1), schedule.start_time)
    at = start + timedelta(minutes=(queue_number - 1) * schedule.slot_minutes)
    return at.time() if at.date() == start.date() else time(23, 59)


def _local_now(now: datetime | None) -> datetime:
    return (now or datetime.now(UTC)).astimezone(get_settings().tz)


def session_start(schedule: Schedule) -> datetime:
    """The session's start as an aware datetime in the hospital's zone."""
    return datetime.combine(schedule.session_date, schedule.start_time, tzinfo=get_settings().tz)


def session_end(schedule: Schedule) -> datetime:
    """The session's end as an aware datetime in the hospital's zone."""
    return datetime.combine(schedule.session_date, schedule.end_time, tzinfo=get_settings().tz)


def _clean_reason(reason: str | None, *, required: bool, what: str = "a reason") -> str | None:
    text = " ".join((reason or "").split())
    if required and not text:
        raise ValidationFailed(f"Give {what}.")
    if len(text) > MAX_REASON:
        raise ValidationFailed(f"Keep {what} under {MAX_REASON} characters.")
    return text or None


def _get_schedule(session: Session, schedule_id: int) -> Schedule:
    schedule = session.get(Schedule, schedule_id, populate_existing=True)
    if schedule is None:
        raise NotFound("This clinic session does not exist.")
    return schedule


def _result(session: Session, appointment: Appointment, repeated: bool) -> BookingResult:
    schedule = _get_schedule(session, appointment.schedule_id)
    return BookingResult(appointment, schedule, estimated_time(schedule, appointment.queue_number), repeated)


def find_by_submission_key(session: Session, submission_key: str) -> Appointment | None:
    """The appointment booked with this one-time form token, if any."""
    return session.scalars(select(Appointment).where(Appointment.submission_key == submission_key)).first()


def book(
    session: Session,
    *,
    schedule_id: int,
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
        session (Session): open transaction.
        schedule_id (int): the clinic session.
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
        ScheduleNotBookable: the session is closed, cancelled, or already ended.
        SlotFull: no place left (and no overbooking override).
        DuplicateBooking: the patient already holds an active place in this session.
        ValidationFailed: reason too long; overbooking asked online.
    """
    reason = _clean_reason(reason, required=False, what="the reason for the visit")
    if overbook_reason is not None:
        if channel is BookingChannel.online:
            raise ValidationFailed("Online bookings cannot overbook a session.")
        overbook_reason = _clean_reason(overbook_reason, required=True, what="a reason for overbooking")
    if submission_key:
        earlier = find_by_submission_key(session, submission_key)
        if earlier is not None:
            return _result(session, earlier, repeated=True)

    local_now = _local_now(now)
    today = local_now.date()
    schedule = _get_schedule(session, schedule_id)
    from models import Patient  # local: keeps the import list of this module about appointments

    if session.get(Patient, patient_id) is None:
        raise NotFound("This patient does not exist.")
    _check_bookable(schedule, local_now)
    active = session.scalar(
        select(Appointment.reference).where(
            Appointment.schedule_id == schedule_id,
            Appointment.patient_id == patient_id,
            Appointment.active_marker == 1,
        )
    )
    if active:
        raise DuplicateBooking(f"This patient already has appointment {active} in this session.")

    for _attempt in range(3):
        try:
            with session.begin_nested():
                overbooked = _take_place(session, schedule, today, overbook_reason is not None)
                queue_number = session.scalar(
                    select(Schedule.last_queue_number).where(Schedule.id == schedule_id)
                )
                appointment = Appointment(
                    reference=new_reference(), patient_id=patient_id, schedule_id=schedule_id,
                    doctor_id=schedule.doctor_id, department_id=schedule.department_id,
                    session_date=schedule.session_date, queue_number=queue_number,
                    status=S.pending, channel=channel, reason=reason, is_overbooked=overbooked,
                    active_marker=1, submission_key=submission_key or None, booked_at=utcnow(),
                )
                session.add(appointment)
                session.flush()
        except IntegrityError as exc:
            text = str(exc.orig)
            if submission_key and "submission_key" in text:
                earlier = find_by_submission_key(session, submission_key)
                if earlier is not None:
                    return _result(session, earlier, repeated=True)
            if "active" in text or "patient_id" in text:
                raise DuplicateBooking("This patient already has an appointment in this session.") from None
            if "reference" in text:
                continue  # 50 random bits collided: draw another reference
            raise
        break
    else:  # pragma: no cover - three reference collisions in a row
        raise ValidationFailed("Could not allocate a booking reference; please try again.")

    schedule = _get_schedule(session, schedule_id)
    changes = {"schedule_id": schedule_id, "patient_id": patient_id, "queue_number": queue_number,
               "status": S.pending, "channel": channel}
    summary = f"Booked {appointment.reference}: queue no. {queue_number} in session #{schedule_id}"
    if overbooked:
        changes["overbook_reason"] = overbook_reason
        summary += f" (overbooked: {overbook_reason})"
    audit.record(session, actor=actor, action="book", entity="appointment", entity_id=appointment.id,
                 summary=summary, changes=changes)
    return BookingResult(appointment, schedule, estimated_time(schedule, queue_number))


def _check_bookable(schedule: Schedule, local_now: datetime) -> None:
    if schedule.status is ScheduleStatus.cancelled:
        raise ScheduleNotBookable("This clinic session has been cancelled.")
    if schedule.status is ScheduleStatus.closed:
        raise ScheduleNotBookable("This clinic session is closed for booking.")
    if schedule.session_date < local_now.date() or session_end(schedule) <= local_now:
        raise ScheduleNotBookable("This clinic session has already ended.")


def _take_place(session: Session, schedule: Schedule, today: date, overbook: bool) -> bool:
    """Take one place with a conditional UPDATE; returns True if it overbooked."""
    bookable = (
        Schedule.id == schedule.id,
        Schedule.status == ScheduleStatus.open,
        Schedule.session_date >= today,
    )
    taken = session.execute(
        update(Schedule)
        .where(*bookable, Schedule.booked_count < Schedule.capacity)
        .values(booked_count=Schedule.booked_count + 1, last_queue_number=Schedule.last_queue_number + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken == 1:
        return False
    current = _get_schedule(session, schedule.id)
    if current.status is not ScheduleStatus.open or current.session_date < today:
        raise ScheduleNotBookable("This clinic session is no longer open for booking.")
    if not overbook:
        raise SlotFull("This clinic session has just filled up.")
    taken = session.execute(
        update(Schedule)
        .where(*bookable)
        .values(capacity=Schedule.capacity + 1, booked_count=Schedule.booked_count + 1,
                last_queue_number=Schedule.last_queue_number + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if taken != 1:
        raise ScheduleNotBookable("This clinic session is no longer open for booking.")
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
    S.confirmed: "confirm",
    S.checked_in: "check_in",
    S.completed: "complete",
    S.cancelled: "cancel",
    S.no_show: "no_show",
}


def get_appointment(session: Session, appointment_id: int) -> Appointment:
    """Load an appointment (fresh from the database).

    Raises:
        NotFound: no such appointment.
    """
    appointment = session.get(Appointment, appointment_id, populate_existing=True)
    if appointment is None:
        raise NotFound("This appointment does not exist.")
    return appointment


def _move(
    session: Session,
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
    stamp = utcnow()
    moved = session.execute(
        update(Appointment)
        .where(Appointment.id == appointment.id, Appointment.status.in_(allowed_from))
        .values(status=to, **{_TIMESTAMP[to]: stamp}, **(values or {}))
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        fresh = get_appointment(session, appointment.id)
        raise InvalidTransition(f"Appointment {appointment.reference}", fresh.status.value, to.value)
    changes = {"status": [current, to]}
    changes.update({k: [None, v] for k, v in (values or {}).items() if k != "active_marker"})
    audit.record(
        session, actor=actor, action=_ACTION[to],
        entity="appointment", entity_id=appointment.id,
        summary=f"{appointment.reference}: {current.value.replace('_', ' ')} -> {to.value.replace('_', ' ')}"
        + (f" ({note})" if note else ""),
        changes=changes,
    )
    return get_appointment(session, appointment.id)


def confirm(session: Session, appointment_id: int, *, actor: Actor) -> Appointment:
    """Confirm a pending booking (pending -> confirmed).

    Raises:
        NotFound: no such appointment.
        InvalidTransition: it is not pending.
    """
    appointment = get_appointment(session, appointment_id)
    return _move(session, appointment, to=S.confirmed, allowed_from=(S.pending,), actor=actor)


def check_in(session: Session, appointment_id: int, *, actor: Actor, now: datetime | None = None) -> Appointment:
    """Register the patient's arrival (pending/confirmed -> checked_in), on the session's date only.

    Raises:
        NotFound: no such appointment.
        InvalidTransition: wrong status, or today is not the session's date.
    """
    appointment = get_appointment(session, appointment_id)
    today = _local_now(now).date()
    if appointment.status in (S.pending, S.confirmed) and appointment.session_date != today:
        raise InvalidTransition(
            f"Appointment {appointment.reference}", appointment.status.value, S.checked_in.value,
            why=f"check-in is only on the day of the session, {appointment.session_date.isoformat()}",
        )
    return _move(session, appointment, to=S.checked_in, allowed_from=(S.pending, S.confirmed), actor=actor)


def complete(session: Session, appointment_id: int, *, actor: Actor) -> Appointment:
    """Close a visit (checked_in -> completed).

    Raises:
        NotFound: no such appointment.
        InvalidTransition: the patient has not been checked in.
    """
    appointment = get_appointment(session, appointment_id)
    return _move(session, appointment, to=S.completed, allowed_from=(S.checked_in,), actor=actor)


def cancel(
    session: Session,
    appointment_id: int,
    *,
    actor: Actor,
    reason: str,
    by_patient: bool = False,
    now: datetime | None = None,
) -> Appointment:
    """Cancel a booking (pending/confirmed -> cancelled) and release its place.

    The schedule's ``booked_count`` goes down by one (and, for an overbooked place,
    its capacity too), in the same transaction. The schedule row is updated first,
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
    appointment = get_appointment(session, appointment_id)
    if appointment.status not in (S.pending, S.confirmed):
        raise InvalidTransition(f"Appointment {appointment.reference}", appointment.status.value, S.cancelled.value)
    schedule = _get_schedule(session, appointment.schedule_id)
    if by_patient and _local_now(now) >= session_start(schedule):
        raise InvalidTransition(
            f"Appointment {appointment.reference}", appointment.status.value, S.cancelled.value,
            why="the session has already started; please contact the front desk",
        )
    release = {"booked_count": Schedule.booked_count - 1}
    if appointment.is_overbooked:
        release["capacity"] = Schedule.capacity - 1
    session.execute(
        update(Schedule).where(Schedule.id == schedule.id, Schedule.booked_count > 0)
        .values(**release).execution_options(synchronize_session=False)
    )
    return _move(
        session, appointment, to=S.cancelled, allowed_from=(S.pending, S.confirmed), actor=actor,
        values={"cancel_reason": reason, "active_marker": None}, note=reason,
    )


def mark_no_show(session: Session, appointment_id: int, *, actor: Actor, now: datetime | None = None) -> Appointment:
    """Record that a confirmed patient did not come (confirmed -> no_show), once the session has ended.

    The place stays used (a no-show counts in ``booked_count``).

    Raises:
        NotFound: no such appointment.
        InvalidTransition: not confirmed, or the session has not ended yet.
    """
    appointment = get_appointment(session, appointment_id)
    schedule = _get_schedule(session, appointment.schedule_id)
    if appointment.status is S.confirmed and _local_now(now) < session_end(schedule):
        raise InvalidTransition(
            f"Appointment {appointment.reference}", appointment.status.value, S.no_show.value,
            why=f"the session ends at {schedule.end_time:%H:%M} on {schedule.session_date.isoformat()}",
        )
    return _move(session, appointment, to=S.no_show, allowed_from=(S.confirmed,), actor=actor)


# -- clinic sessions -------------------------------------------------------------------

def _move_schedule(
    session: Session, schedule_id: int, *, to: ScheduleStatus, allowed_from: tuple[ScheduleStatus, ...],
    actor: Actor, action: str, note: str | None = None, extra_where=(),
) -> Schedule:
    schedule = _get_schedule(session, schedule_id)
    what = f"Clinic session #{schedule_id}"
    if schedule.status not in allowed_from:
        raise InvalidTransition(what, schedule.status.value, to.value)
    moved = session.execute(
        update(Schedule).where(Schedule.id == schedule_id, Schedule.status.in_(allowed_from), *extra_where)
        .values(status=to).execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        raise InvalidTransition(what, _get_schedule(session, schedule_id).status.value, to.value)
    audit.record(session, actor=actor, action=action, entity="schedule", entity_id=schedule_id,
                 summary=f"{what} {schedule.session_date} {schedule.start_time:%H:%M}: "
                 f"{schedule.status.value} -> {to.value}" + (f" ({note})" if note else ""),
                 changes={"status": [schedule.status, to]} | ({"note": note} if note else {}))
    return _get_schedule(session, schedule_id)


def close_schedule(session: Session, schedule_id: int, *, actor: Actor) -> Schedule:
    """Stop taking bookings for a session (open -> closed); its appointments stay.

    Raises:
        NotFound, InvalidTransition: not open.
    """
    return _move_schedule(session, schedule_id, to=ScheduleStatus.closed, allowed_from=(ScheduleStatus.open,),
                          actor=actor, action="close")


def reopen_schedule(session: Session, schedule_id: int, *, actor: Actor, now: datetime | None = None) -> Schedule:
    """Take bookings again (closed -> open), unless the session has ended.

    Raises:
        NotFound, InvalidTransition: not closed, or already ended.
    """
    schedule = _get_schedule(session, schedule_id)
    if schedule.status is ScheduleStatus.closed and session_end(schedule) <= _local_now(now):
        raise InvalidTransition(f"Clinic session #{schedule_id}", "closed", "open", why="the session has ended")
    return _move_schedule(session, schedule_id, to=ScheduleStatus.open, allowed_from=(ScheduleStatus.closed,),
                          actor=actor, action="reopen")


def cancel_schedule(session: Session, schedule_id: int, *, actor: Actor, reason: str) -> tuple[Schedule, list[str]]:
    """Cancel a whole session (doctor unavailable) and every open appointment in it.

    Pending and confirmed appointments become cancelled with ``reason``; their places
    are released. A session where patients have already been seen (checked in or
    completed) cannot be cancelled.

    Returns:
        tuple[Schedule, list[str]]: the session and the references cancelled.

    Raises:
        NotFound; InvalidTransition: already cancelled, or patients already seen;
        ValidationFailed: no reason.
    """
    reason = _clean_reason(reason, required=True, what="a reason for cancelling the session")
    seen = session.scalar(
        select(func.count()).select_from(Appointment).where(
            Appointment.schedule_id == schedule_id, Appointment.status.in_((S.checked_in, S.completed)))
    )
    if seen:
        current = _get_schedule(session, schedule_id)
        raise InvalidTransition(f"Clinic session #{schedule_id}", current.status.value, "cancelled",
                                why=f"{seen} patient(s) have already been seen")
    _move_schedule(
        session, schedule_id, to=ScheduleStatus.cancelled,
        allowed_from=(ScheduleStatus.open, ScheduleStatus.closed), actor=actor, action="cancel", note=reason,
    )
    rows = session.execute(
        select(Appointment.id, Appointment.reference, Appointment.status, Appointment.is_overbooked)
        .where(Appointment.schedule_id == schedule_id, Appointment.status.in_((S.pending, S.confirmed)))
        .order_by(Appointment.queue_number)
    ).all()
    references = []
    for row in rows:
        moved = session.execute(
            update(Appointment).where(Appointment.id == row.id, Appointment.status.in_((S.pending, S.confirmed)))
            .values(status=S.cancelled, cancelled_at=utcnow(), cancel_reason=f"Session cancelled: {reason}"[:MAX_REASON],
                    active_marker=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved:
            references.append(row.reference)
            audit.record(session, actor=actor, action="cancel", entity="appointment", entity_id=row.id,
                         summary=f"{row.reference}: {row.status.value} -> cancelled (session cancelled: {reason})",
                         changes={"status": [row.status, S.cancelled]})
    if references:
        session.execute(
            update(Schedule).where(Schedule.id == schedule_id)
            .values(booked_count=Schedule.booked_count - len(references))
            .execution_options(synchronize_session=False)
        )
    return _get_schedule(session, schedule_id), references
