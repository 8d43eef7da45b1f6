"""What patients can book: departments, their doctors and clinic sessions, in the coming days.

Read-only queries for the booking pages. A session is *bookable* when it is open, has a
place left and has not ended (the same rule ``appointments.book`` enforces); every other
session is shown with its state (full, closed, cancelled, ended) and is not bookable.
Dates are the hospital's local dates (``PORTAL_TIMEZONE``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from models import ClinicSession, ClinicSessionStatus, Department, Doctor, DoctorDepartment
from portal.core import clock
from portal.services.appointments import session_end

#: How many days ahead (today included) the pages offer sessions.
HORIZON_DAYS = 14
MAX_QUERY_LENGTH = 60
#: Doctors per department page (a department of a large hospital has hundreds).
DOCTORS_PER_PAGE = 20


class SessionState(str, enum.Enum):
    """How a clinic session looks to a patient."""

    bookable = "bookable"
    full = "full"
    closed = "closed"
    cancelled = "cancelled"
    ended = "ended"


def horizon(now: datetime | None = None, days: int = HORIZON_DAYS) -> tuple[date, date]:
    """First and last local date (inclusive) of the booking horizon: today and ``days - 1`` after."""
    today = clock.local_now(now).date()
    return today, today + timedelta(days=days - 1)


def session_state(clinic_session: ClinicSession, now: datetime | None = None) -> SessionState:
    """The state a patient sees for ``clinic_session`` at ``now`` (aware; default: the current time)."""
    if clinic_session.status is ClinicSessionStatus.cancelled:
        return SessionState.cancelled
    if session_end(clinic_session) <= clock.local_now(now):
        return SessionState.ended
    if clinic_session.status is ClinicSessionStatus.closed:
        return SessionState.closed
    if clinic_session.booked_count >= clinic_session.capacity:
        return SessionState.full
    return SessionState.bookable


def next_local_midnight(now: datetime | None = None) -> datetime:
    """The start of the next local day (aware): the booking horizon moves on then."""
    today = clock.local_now(now).date()
    return clock.start_of_day(today + timedelta(days=1))


def _bookable(now: datetime):
    """SQL condition: the clinic session is open, has a place left and has not ended at ``now``."""
    at = clock.local_now(now)
    return and_(
        ClinicSession.status == ClinicSessionStatus.open,
        ClinicSession.booked_count < ClinicSession.capacity,
        or_(ClinicSession.session_date > at.date(),
            and_(ClinicSession.session_date == at.date(), ClinicSession.end_time > at.time().replace(tzinfo=None))),
    )


@dataclass(frozen=True)
class DepartmentListing:
    """The home page's departments and until when their counts hold.

    Attributes:
        rows (list[tuple[Department, int]]): (department, bookable sessions in the horizon), by name.
        valid_until (datetime): aware; when the counts may change by the passing of time alone
            (the first bookable session of today ends, or the next local day begins).
    """

    rows: list[tuple[Department, int]]
    valid_until: datetime


def department_listing(
    db: Session, *, query: str = "", also_names: tuple[str, ...] = (), now: datetime | None = None,
) -> DepartmentListing:
    """Active departments, each with how many bookable sessions it has in the horizon.

    One query: the counts (and the first end of a bookable session today) come from an
    aggregate subquery joined to the departments.

    Args:
        db (Session): open transaction.
        query (str): keep departments whose name or code contains this text
            (case-insensitive; cut to 60 characters); all when empty.
        also_names (tuple[str, ...]): department names that match too (e.g. those whose
            translated name contains the query).
        now (datetime | None): the current time (aware), for tests.

    Returns:
        DepartmentListing: the departments by name, with their counts and time bound.
    """
    now = now or clock.now()
    first, last = horizon(now)
    counts = (
        select(ClinicSession.department_id.label("department_id"), func.count(ClinicSession.id).label("open_sessions"),
               func.min(case((ClinicSession.session_date == first, ClinicSession.end_time))).label("first_end_today"))
        .join(Doctor, Doctor.id == ClinicSession.doctor_id)
        .where(Doctor.is_active, ClinicSession.session_date.between(first, last), _bookable(now))
        .group_by(ClinicSession.department_id)
        .subquery()
    )
    stmt = (
        select(Department, func.coalesce(counts.c.open_sessions, 0), counts.c.first_end_today)
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
    rows = db.execute(stmt).all()
    valid_until = next_local_midnight(now)
    for _dept, _n, end in rows:
        if end is not None:
            valid_until = min(valid_until, clock.at(first, _as_time(end)))
    return DepartmentListing([(dept, int(n)) for dept, n, _end in rows], valid_until)


def _as_time(value) -> time:
    """A TIME column read back (MariaDB through PyMySQL gives a timedelta for an aggregate)."""
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        return time(seconds // 3600, seconds // 60 % 60, seconds % 60)
    if isinstance(value, str):  # SQLite returns an aggregate of a TIME column as text
        return time.fromisoformat(value)
    return value


def departments_with_open_sessions(
    db: Session, *, query: str = "", also_names: tuple[str, ...] = (), now: datetime | None = None,
) -> list[tuple[Department, int]]:
    """Active departments, each with how many bookable sessions it has in the horizon.

    The rows of :func:`department_listing` (same arguments).

    Returns:
        list[tuple[Department, int]]: (department, bookable sessions in the next 14 days),
        by name.
    """
    return department_listing(db, query=query, also_names=also_names, now=now).rows


@dataclass(frozen=True)
class SessionSlot:
    """One clinic session as a patient sees it.

    Attributes:
        clinic_session (ClinicSession): the session (date, times, fee in fen, places).
        state (SessionState): bookable, full, closed, cancelled or ended.
    """

    clinic_session: ClinicSession
    state: SessionState

    @property
    def places_left(self) -> int:
        """Free places (int, >= 0)."""
        return self.clinic_session.places_left


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
    """A department's page: one page of its active doctors and their sessions in the horizon.

    Attributes:
        department (Department): the department.
        doctors (list[DoctorTimetable]): active doctors of the department on this page, by name.
        first_day (date): first local date shown (today).
        last_day (date): last local date shown.
        page (int): this page of doctors (1 = first).
        pages (int): pages of doctors (1 when the department has none).
        doctor_count (int): active doctors of the department on all pages.
        first_doctor (int): position of this page's first doctor among all (1-based; 0 when none).
        valid_until (datetime | None): aware; when a session shown may end, or the local day
            changes (the page changes by the passing of time alone then).
    """

    department: Department
    doctors: list[DoctorTimetable]
    first_day: date
    last_day: date
    page: int = 1
    pages: int = 1
    doctor_count: int = 0
    first_doctor: int = 0
    valid_until: datetime | None = None


def department_timetable(db: Session, code: str, *, now: datetime | None = None, page: int = 1,
                         per_page: int = DOCTORS_PER_PAGE) -> DepartmentTimetable | None:
    """The active department with ``code`` and one page of its doctors' sessions in the horizon.

    Four narrow queries whatever the number of doctors: the department, how many active
    doctors it has, the doctors of the page, their sessions.

    Args:
        db (Session): open transaction.
        code (str): department code (case-insensitive).
        now (datetime | None): the current time (aware), for tests.
        page (int): page of doctors (1 = first), ``per_page`` doctors each, by name.
        per_page (int): doctors per page.

    Returns:
        DepartmentTimetable | None: None when no active department has this code, or the
        page is past the last one (page 1 always exists).
    """
    now = now or clock.now()
    code = (code or "").strip().upper()[:16]
    department = db.scalars(
        select(Department).where(func.upper(Department.code) == code, Department.is_active)
    ).first()
    if department is None or page < 1:
        return None
    of_department = (
        select(Doctor)
        .join(DoctorDepartment, DoctorDepartment.doctor_id == Doctor.id)
        .where(DoctorDepartment.department_id == department.id, Doctor.is_active)
    )
    total = db.scalar(select(func.count()).select_from(of_department.subquery()))
    pages = max(1, -(-total // per_page))
    if page > pages:
        return None
    doctors = db.scalars(
        of_department.order_by(Doctor.full_name, Doctor.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    first, last = horizon(now)
    valid_until = next_local_midnight(now)
    by_doctor: dict[int, list[SessionSlot]] = {d.id: [] for d in doctors}
    if doctors:
        clinic_sessions = db.scalars(
            select(ClinicSession)
            .where(ClinicSession.department_id == department.id, ClinicSession.doctor_id.in_(list(by_doctor)),
                   ClinicSession.session_date.between(first, last))
            .order_by(ClinicSession.session_date, ClinicSession.start_time, ClinicSession.id)
        ).all()
        for clinic_session in clinic_sessions:
            state = session_state(clinic_session, now)
            if state not in (SessionState.ended, SessionState.cancelled):
                valid_until = min(valid_until, session_end(clinic_session))
            by_doctor[clinic_session.doctor_id].append(SessionSlot(clinic_session, state))
    return DepartmentTimetable(
        department, [DoctorTimetable(d, by_doctor[d.id]) for d in doctors], first, last, page=page, pages=pages,
        doctor_count=total, first_doctor=(page - 1) * per_page + 1 if doctors else 0, valid_until=valid_until)


@dataclass(frozen=True)
class BookableSession:
    """A session with its doctor and department, for the booking form and confirmations.

    Attributes:
        clinic_session (ClinicSession): the session.
        doctor (Doctor): its doctor.
        department (Department): its department.
        state (SessionState): its state now.
    """

    clinic_session: ClinicSession
    doctor: Doctor
    department: Department
    state: SessionState


def session_with_context(db: Session, clinic_session_id: int, *, now: datetime | None = None) -> BookableSession | None:
    """A session with its doctor and department, or None when it does not exist.

    Args:
        db (Session): open transaction.
        clinic_session_id (int): the session.
        now (datetime | None): the current time (aware), for tests.

    Returns:
        BookableSession | None: the session and its state, None if unknown.
    """
    row = db.execute(
        select(ClinicSession, Doctor, Department)
        .join(Doctor, Doctor.id == ClinicSession.doctor_id)
        .join(Department, Department.id == ClinicSession.department_id)
        .where(ClinicSession.id == clinic_session_id)
    ).first()
    if row is None:
        return None
    clinic_session, doctor, department = row
    return BookableSession(clinic_session, doctor, department, session_state(clinic_session, now))


def alternatives(
    db: Session, clinic_session: ClinicSession, *, now: datetime | None = None, limit: int = 5,
) -> tuple[list[BookableSession], list[BookableSession]]:
    """The nearest other bookable sessions, for a patient whose session is full or closed.

    Only sessions in the booking horizon (today and the next ``HORIZON_DAYS - 1`` days, as
    the department pages show them) are offered; the bound also keeps the query to a few
    hundred rows of the department's index on a large hospital.

    Args:
        db (Session): open transaction.
        clinic_session (ClinicSession): the session that could not be booked.
        now (datetime | None): the current time (aware), for tests.
        limit (int): at most this many of each kind.

    Returns:
        tuple[list[BookableSession], list[BookableSession]]: (other sessions of the same
        doctor in the same department, sessions of other active doctors of the department),
        each by date and start time.
    """
    now = now or clock.now()
    base = (
        select(ClinicSession, Doctor, Department)
        .join(Doctor, Doctor.id == ClinicSession.doctor_id)
        .join(Department, Department.id == ClinicSession.department_id)
        .where(ClinicSession.department_id == clinic_session.department_id, ClinicSession.id != clinic_session.id,
               ClinicSession.session_date <= horizon(now)[1], Doctor.is_active, _bookable(now))
        .order_by(ClinicSession.session_date, ClinicSession.start_time, ClinicSession.id)
        .limit(limit)
    )
    same = db.execute(base.where(ClinicSession.doctor_id == clinic_session.doctor_id)).all()
    others = db.execute(base.where(ClinicSession.doctor_id != clinic_session.doctor_id)).all()

    def wrap(rows) -> list[BookableSession]:
        return [BookableSession(s, d, dep, SessionState.bookable) for s, d, dep in rows]

    return wrap(same), wrap(others)
