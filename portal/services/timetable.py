"""What patients can book: departments, their doctors and clinic sessions, in the coming days.

Read-only queries for the booking pages. A session is *bookable* when it is open, has a
place left and has not ended (the same rule ``appointments.book`` enforces); every other
session is shown with its state (full, closed, cancelled, ended) and is not bookable.
Dates are the hospital's local dates (``PORTAL_TIMEZONE``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from models import Department, Doctor, DoctorDepartment, Schedule, ScheduleStatus
from portal.services.appointments import session_end
from portal.settings import get_settings

#: How many days ahead (today included) the pages offer sessions.
HORIZON_DAYS = 14
MAX_QUERY_LENGTH = 60


class SessionState(str, enum.Enum):
    """How a clinic session looks to a patient."""

    bookable = "bookable"
    full = "full"
    closed = "closed"
    cancelled = "cancelled"
    ended = "ended"


def local_now(now: datetime | None = None) -> datetime:
    """``now`` (default: the current time) in the hospital's zone, as an aware datetime."""
    return (now or datetime.now(UTC)).astimezone(get_settings().tz)


def horizon(now: datetime | None = None, days: int = HORIZON_DAYS) -> tuple[date, date]:
    """First and last local date (inclusive) of the booking horizon: today and ``days - 1`` after."""
    today = local_now(now).date()
    return today, today + timedelta(days=days - 1)


def session_state(schedule: Schedule, now: datetime | None = None) -> SessionState:
    """The state a patient sees for ``schedule`` at ``now`` (aware; default: the current time)."""
    if schedule.status is ScheduleStatus.cancelled:
        return SessionState.cancelled
    if session_end(schedule) <= local_now(now):
        return SessionState.ended
    if schedule.status is ScheduleStatus.closed:
        return SessionState.closed
    if schedule.booked_count >= schedule.capacity:
        return SessionState.full
    return SessionState.bookable


def _bookable(now: datetime):
    """SQL condition: the schedule is open, has a place left and has not ended at ``now``."""
    at = local_now(now)
    return and_(
        Schedule.status == ScheduleStatus.open,
        Schedule.booked_count < Schedule.capacity,
        or_(Schedule.session_date > at.date(),
            and_(Schedule.session_date == at.date(), Schedule.end_time > at.time().replace(tzinfo=None))),
    )


def departments_with_open_sessions(
    session: Session, *, query: str = "", also_names: tuple[str, ...] = (), now: datetime | None = None,
) -> list[tuple[Department, int]]:
    """Active departments, each with how many bookable sessions it has in the horizon.

    One query: the counts come from an aggregate subquery joined to the departments.

    Args:
        session (Session): open transaction.
        query (str): keep departments whose name or code contains this text
            (case-insensitive; cut to 60 characters); all when empty.
        also_names (tuple[str, ...]): department names that match too (e.g. those whose
            translated name contains the query).
        now (datetime | None): the current time (aware), for tests.

    Returns:
        list[tuple[Department, int]]: (department, bookable sessions in the next 14 days),
        by name.
    """
    first, last = horizon(now)
    counts = (
        select(Schedule.department_id.label("department_id"), func.count(Schedule.id).label("open_sessions"))
        .join(Doctor, Doctor.id == Schedule.doctor_id)
        .where(Doctor.is_active, Schedule.session_date.between(first, last), _bookable(now or datetime.now(UTC)))
        .group_by(Schedule.department_id)
        .subquery()
    )
    stmt = (
        select(Department, func.coalesce(counts.c.open_sessions, 0))
        .outerjoin(counts, counts.c.department_id == Department.id)
        .where(Department.is_active)
        .order_by(Department.name)
    )
    text = " ".join((query or "").split())[:MAX_QUERY_LENGTH]
    if text:
        wanted = [Department.name.icontains(text, autoescape=True),
                  Department.code.icontains(text, autoescape=True)]
        if also_names:
            wanted.append(Department.name.in_(also_names))
        stmt = stmt.where(or_(*wanted))
    return [(dept, int(n)) for dept, n in session.execute(stmt).all()]


@dataclass(frozen=True)
class SessionSlot:
    """One clinic session as a patient sees it.

    Attributes:
        schedule (Schedule): the session (date, times, fee in fen, places).
        state (SessionState): bookable, full, closed, cancelled or ended.
    """

    schedule: Schedule
    state: SessionState

    @property
    def places_left(self) -> int:
        """Free places (int, >= 0)."""
        return self.schedule.places_left


@dataclass(frozen=True)
class DoctorTimetable:
    """A doctor of a department and the department's sessions of that doctor in the horizon.

    Attributes:
        doctor (Doctor): the doctor (name, title, specialty).
        slots (list[SessionSlot]): sessions by date and start time.
    """

    doctor: Doctor
    slots: list[SessionSlot]


@dataclass(frozen=True)
class DepartmentTimetable:
    """A department's page: its active doctors and their sessions in the horizon.

    Attributes:
        department (Department): the department.
        doctors (list[DoctorTimetable]): active doctors of the department, by name.
        first_day (date): first local date shown (today).
        last_day (date): last local date shown.
    """

    department: Department
    doctors: list[DoctorTimetable]
    first_day: date
    last_day: date


def department_timetable(session: Session, code: str, *, now: datetime | None = None) -> DepartmentTimetable | None:
    """The active department with ``code`` and its doctors' sessions in the horizon.

    Three queries whatever the number of doctors: the department, its doctors, their sessions.

    Args:
        session (Session): open transaction.
        code (str): department code (case-insensitive).
        now (datetime | None): the current time (aware), for tests.

    Returns:
        DepartmentTimetable | None: None when no active department has this code.
    """
    code = (code or "").strip().upper()[:16]
    department = session.scalars(
        select(Department).where(func.upper(Department.code) == code, Department.is_active)
    ).first()
    if department is None:
        return None
    doctors = session.scalars(
        select(Doctor)
        .join(DoctorDepartment, DoctorDepartment.doctor_id == Doctor.id)
        .where(DoctorDepartment.department_id == department.id, Doctor.is_active)
        .order_by(Doctor.full_name, Doctor.id)
    ).all()
    first, last = horizon(now)
    by_doctor: dict[int, list[SessionSlot]] = {d.id: [] for d in doctors}
    if doctors:
        schedules = session.scalars(
            select(Schedule)
            .where(Schedule.department_id == department.id, Schedule.doctor_id.in_(list(by_doctor)),
                   Schedule.session_date.between(first, last))
            .order_by(Schedule.session_date, Schedule.start_time, Schedule.id)
        ).all()
        for schedule in schedules:
            by_doctor[schedule.doctor_id].append(SessionSlot(schedule, session_state(schedule, now)))
    return DepartmentTimetable(department, [DoctorTimetable(d, by_doctor[d.id]) for d in doctors], first, last)


@dataclass(frozen=True)
class BookableSession:
    """A session with its doctor and department, for the booking form and confirmations.

    Attributes:
        schedule (Schedule): the session.
        doctor (Doctor): its doctor.
        department (Department): its department.
        state (SessionState): its state now.
    """

    schedule: Schedule
    doctor: Doctor
    department: Department
    state: SessionState


def session_with_context(session: Session, schedule_id: int, *, now: datetime | None = None) -> BookableSession | None:
    """A session with its doctor and department, or None when it does not exist.

    Args:
        session (Session): open transaction.
        schedule_id (int): the session.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        BookableSession | None: the session and its state, None if unknown.
    """
    row = session.execute(
        select(Schedule, Doctor, Department)
        .join(Doctor, Doctor.id == Schedule.doctor_id)
        .join(Department, Department.id == Schedule.department_id)
        .where(Schedule.id == schedule_id)
    ).first()
    if row is None:
        return None
    schedule, doctor, department = row
    return BookableSession(schedule, doctor, department, session_state(schedule, now))


def alternatives(
    session: Session, schedule: Schedule, *, now: datetime | None = None, limit: int = 5,
) -> tuple[list[BookableSession], list[BookableSession]]:
    """The nearest other bookable sessions, for a patient whose session is full or closed.

    Only sessions in the booking horizon (today and the next ``HORIZON_DAYS - 1`` days, as
    the department pages show them) are offered; the bound also keeps the query to a few
    hundred rows of the department's index on a large hospital.

    Args:
        session (Session): open transaction.
        schedule (Schedule): the session that could not be booked.
        now (datetime | None): the current time (aware), for tests.
        limit (int): at most this many of each kind.

    Returns:
        tuple[list[BookableSession], list[BookableSession]]: (other sessions of the same
        doctor in the same department, sessions of other active doctors of the department),
        each by date and start time.
    """
    now = now or datetime.now(UTC)
    base = (
        select(Schedule, Doctor, Department)
        .join(Doctor, Doctor.id == Schedule.doctor_id)
        .join(Department, Department.id == Schedule.department_id)
        .where(Schedule.department_id == schedule.department_id, Schedule.id != schedule.id,
               Schedule.session_date <= horizon(now)[1], Doctor.is_active, _bookable(now))
        .order_by(Schedule.session_date, Schedule.start_time, Schedule.id)
        .limit(limit)
    )
    same = session.execute(base.where(Schedule.doctor_id == schedule.doctor_id)).all()
    others = session.execute(base.where(Schedule.doctor_id != schedule.doctor_id)).all()

    def wrap(rows) -> list[BookableSession]:
        return [BookableSession(s, d, dep, SessionState.bookable) for s, d, dep in rows]

    return wrap(same), wrap(others)
