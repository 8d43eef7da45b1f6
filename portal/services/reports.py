"""What staff look at every morning: the dashboard's figures and the reports.

Every figure is computed by the database with aggregate SQL (``COUNT``/``SUM`` with
``GROUP BY``); Python only merges a handful of already-aggregated rows. The functions are
pure queries: they take a ``Session`` and filter arguments and return small dataclasses.
Money is in the smallest currency unit (fen); quantities in dispensing units.

Definitions (the pages say the same):

* *Sessions today*: clinic sessions of the day that are not cancelled; *running* ones
  have started and not yet ended (hospital-local wall-clock time).
* *Waiting*: appointments still to be seen, i.e. pending, confirmed or checked in.
* *Pending older than a day*: still pending, booked more than 24 hours ago.
* *Usable stock* of a medicine: ``quantity_on_hand`` of its active batches whose expiry
  date is after today. A medicine is *below its reorder level* when it is active, has a
  reorder level above 0 and its usable stock is below it.
* *Expiring soon*: active batches with stock that expire after today and within
  ``EXPIRY_ALERT_DAYS`` days; *past expiry*: active batches with stock whose expiry date is
  today or earlier (they can no longer be dispensed and should be written off).
* *Waiting prescriptions*: issued or partially dispensed.
* *No-show rate*: no-shows / (completed + no-shows), the share of settled visits the
  patient missed. *Cancellation rate*: cancelled / all appointments.
* *Capacity used*: places booked (``Schedule.booked_count``: active appointments, so
  neither cancelled nor no-show) / capacity, over sessions that are not cancelled.
* *Dispensed value*: dispensed quantity x the medicine's current ``unit_price``.
* *Write-off value*: written-off quantity x the batch cost recorded on the movement.

The stock-alert conditions live here until ``portal.services.stock`` (being written)
provides ``medicines_below_reorder_level``, ``batches_expiring_within`` and
``expired_active_batches``; the admin list filters use these same conditions, so a
dashboard figure and the list it links to always agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from models import (
    Appointment,
    AppointmentStatus,
    BatchStatus,
    Department,
    Doctor,
    Medicine,
    MovementKind,
    Patient,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    Schedule,
    ScheduleStatus,
    StockBatch,
    StockMovement,
)
from portal.services._periods import (
    Grain,
    instant_label,
    period_labels,
    segments,
    utc_bounds,
)
from portal.services.errors import ValidationFailed
from portal.settings import get_settings

__all__ = [
    "EXPIRY_ALERT_DAYS", "MAX_RANGE_DAYS", "WAITING_STATUSES", "Alerts", "DaySummary",
    "DoctorLoad", "DoctorWorkload", "Grain", "InvalidFilters", "MedicineDispensed",
    "OutpatientVolume", "PeriodAmount", "PharmacyReport", "QueuedPatient", "Queues",
    "ReportFilters", "SessionQueue", "StatusCounts", "StockValue", "Totals", "alerts",
    "below_reorder_condition", "day_summary", "department_choices", "dispensed_per_day", "doctor_workload",
    "expired_active_condition", "expiring_condition", "local_now", "outpatient_volume", "parse_filters",
    "pending_cutoff", "pharmacy_report", "prescriptions_waiting_condition", "session_queues",
    "sessions_running_condition", "sessions_today_condition", "totals",
]

#: Longest range a report accepts, in days (two years).
MAX_RANGE_DAYS = 731
#: Days ahead within which an active batch counts as "expiring soon".
EXPIRY_ALERT_DAYS = 30
#: Appointment statuses of patients not yet seen, in queue order.
WAITING_STATUSES = (AppointmentStatus.pending, AppointmentStatus.confirmed, AppointmentStatus.checked_in)
#: Prescription statuses still waiting for the pharmacy.
WAITING_PRESCRIPTIONS = (PrescriptionStatus.issued, PrescriptionStatus.partially_dispensed)
#: Earliest and latest dates a report filter accepts.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2099, 12, 31)
#: Ranges up to this many days are grouped by day when the grain is "auto".
AUTO_DAY_LIMIT = 92
#: How many medicines the pharmacy report ranks.
TOP_MEDICINES = 20


def local_now() -> datetime:
    """The current time in the hospital's zone (aware datetime)."""
    return datetime.now(get_settings().tz)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _int(value) -> int:
    return int(value or 0)


# -- filters ----------------------------------------------------------------------------
class InvalidFilters(ValidationFailed):
    """A report's filter input was refused.

    Attributes:
        errors (dict[str, str]): form field name -> sentence saying what is wrong.
    """

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(" ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class ReportFilters:
    """The validated filters of a report.

    Attributes:
        start (date): first hospital-local day, inclusive.
        end (date): last hospital-local day, inclusive.
        department_id (int | None): only this department, or None for all.
        department_name (str | None): its name, for headings.
        grain (Grain): group by day or by month.
    """

    start: date
    end: date
    department_id: int | None = None
    department_name: str | None = None
    grain: Grain = Grain.day

    @property
    def days(self) -> int:
        """Number of days in the range (int, >= 1)."""
        return (self.end - self.start).days + 1


def _parse_date(raw: str | None, name: str, label: str, errors: dict[str, str]) -> date | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        value = date.fromisoformat(text)
    except ValueError:
        errors[name] = f"The {label} \u201c{text[:40]}\u201d is not a date; use YYYY-MM-DD, e.g. 2026-11-20."
        return None
    if not FIRST_DATE <= value <= LAST_DATE:
        errors[name] = f"The {label} must be between {FIRST_DATE} and {LAST_DATE}."
        return None
    return value


def parse_filters(
    session: Session,
    *,
    date_from: str | None = None,
    date_to: str | None = None,
    department: str | None = None,
    grain: str | None = None,
    today: date,
    default_days: int = 30,
) -> ReportFilters:
    """Validate a report's raw filter input (query-string text).

    Args:
        session (Session): to check that the department exists.
        date_from (str | None): first day, ``YYYY-MM-DD``; default ``today`` minus
            ``default_days - 1``.
        date_to (str | None): last day, ``YYYY-MM-DD``; default ``today``.
        department (str | None): department id; empty or ``all`` for every department.
        grain (str | None): ``day``, ``month`` or empty/``auto`` (by day up to
            ``AUTO_DAY_LIMIT`` days, else by month).
        today (date): the hospital's local date.
        default_days (int): length of the default range in days.

    Returns:
        ReportFilters: the checked filters.

    Raises:
        InvalidFilters: with one sentence per bad field (unknown date, end before start,
            range over ``MAX_RANGE_DAYS`` days, unknown department or grain).
    """
    errors: dict[str, str] = {}
    start = _parse_date(date_from, "date_from", "start date", errors)
    end = _parse_date(date_to, "date_to", "end date", errors)
    if end is None and "date_to" not in errors:
        end = today
    if start is None and "date_from" not in errors and end is not None:
        start = end - timedelta(days=default_days - 1)
    if start and end and "date_from" not in errors and "date_to" not in errors:
        if end < start:
            errors["date_to"] = "The end date is before the start date."
        elif (end - start).days + 1 > MAX_RANGE_DAYS:
            errors["date_to"] = (
                f"The range covers {(end - start).days + 1:,} days; choose at most two years "
                f"({MAX_RANGE_DAYS} days)."
            )
    department_id, department_name = None, None
    dep_text = (department or "").strip()
    if dep_text and dep_text.lower() != "all":
        if not dep_text.isdigit() or len(dep_text) > 9:
            errors["department"] = f"\u201c{dep_text[:40]}\u201d is not a department."
        else:
            department_id = int(dep_text)
            department_name = session.scalar(select(Department.name).where(Department.id == department_id))
            if department_name is None:
                errors["department"] = f"No department has the id {department_id}."
    grain_text = (grain or "").strip().lower()
    if grain_text not in ("", "auto", "day", "month"):
        errors["grain"] = "Group by day or by month."
    if errors:
        raise InvalidFilters(errors)
    assert start is not None and end is not None
    if grain_text in ("", "auto"):
        chosen = Grain.day if (end - start).days + 1 <= AUTO_DAY_LIMIT else Grain.month
    else:
        chosen = Grain(grain_text)
    return ReportFilters(start, end, department_id, department_name, chosen)


def department_choices(session: Session) -> list[tuple[int, str]]:
    """Every department as ``(id, name)``, ordered by name, for filter menus."""
    return [(r.id, r.name) for r in session.execute(select(Department.id, Department.name).order_by(Department.name))]


# -- conditions shared with the admin list filters -----------------------------------------
def sessions_today_condition(day: date) -> ColumnElement[bool]:
    """Schedule rows of local ``day`` that are not cancelled."""
    return and_(Schedule.session_date == day, Schedule.status != ScheduleStatus.cancelled)


def sessions_running_condition(day: date, now: time) -> ColumnElement[bool]:
    """Schedule rows of ``day``, not cancelled, that have started by ``now`` and not ended."""
    return and_(sessions_today_condition(day), Schedule.start_time <= now, Schedule.end_time > now)


def below_reorder_condition(today: date) -> ColumnElement[bool]:
    """Medicine rows that are active and whose usable stock is below their reorder level."""
    usable = (
        select(func.coalesce(func.sum(StockBatch.quantity_on_hand), 0))
        .where(
            StockBatch.medicine_id == Medicine.id,
            StockBatch.status == BatchStatus.active,
            StockBatch.expiry_date > today,
        )
        .correlate(Medicine)
        .scalar_subquery()
    )
    return and_(Medicine.is_active.is_(True), Medicine.reorder_level > 0, usable < Medicine.reorder_level)


def expiring_condition(today: date, days: int = EXPIRY_ALERT_DAYS) -> ColumnElement[bool]:
    """StockBatch rows that are active, hold stock and expire after today, within ``days``."""
    return and_(
        StockBatch.status == BatchStatus.active,
        StockBatch.quantity_on_hand > 0,
        StockBatch.expiry_date > today,
        StockBatch.expiry_date <= today + timedelta(days=days),
    )


def expired_active_condition(today: date) -> ColumnElement[bool]:
    """StockBatch rows still active with stock whose expiry date is today or earlier."""
    return and_(
        StockBatch.status == BatchStatus.active,
        StockBatch.quantity_on_hand > 0,
        StockBatch.expiry_date <= today,
    )


def prescriptions_waiting_condition() -> ColumnElement[bool]:
    """Prescription rows issued or partially dispensed."""
    return Prescription.status.in_(WAITING_PRESCRIPTIONS)


def pending_cutoff(now: datetime) -> datetime:
    """The booking time before which a pending appointment is overdue.

    Args:
        now (datetime): aware current time.

    Returns:
        datetime: ``now`` minus 24 hours, in UTC, truncated to the second (so a link to
        the filtered list can carry exactly the same instant).
    """
    return (now.astimezone(UTC) - timedelta(days=1)).replace(microsecond=0)


# -- dashboard ----------------------------------------------------------------------------
@dataclass
class DaySummary:
    """One day at a glance.

    Attributes:
        day (date): the hospital-local day.
        sessions (int): clinic sessions of the day, not cancelled.
        sessions_running (int | None): of those, running at ``now``; None when no time given.
        by_status (dict[str, int]): appointments of the day per status value (every
            status present, zero when none).
    """

    day: date
    sessions: int
    sessions_running: int | None
    by_status: dict[str, int]

    @property
    def appointments(self) -> int:
        """All appointments of the day, cancelled included (int)."""
        return sum(self.by_status.values())


def day_summary(session: Session, *, day: date, now: time | None = None, doctor_id: int | None = None) -> DaySummary:
    """Count the sessions and the appointments per status of one day.

    Args:
        session (Session): database session.
        day (date): hospital-local day.
        now (time | None): local wall-clock time, to count running sessions; None to skip.
        doctor_id (int | None): only this doctor's sessions and appointments.

    Returns:
        DaySummary: the counts.
    """
    running = (
        func.sum(case((and_(Schedule.start_time <= now, Schedule.end_time > now), 1), else_=0))
        if now is not None else literal_column("NULL")
    )
    stmt = select(func.count(), running).where(sessions_today_condition(day))
    if doctor_id is not None:
        stmt = stmt.where(Schedule.doctor_id == doctor_id)
    n_sessions, n_running = session.execute(stmt).one()
    by_status = {s.value: 0 for s in AppointmentStatus}
    astmt = select(Appointment.status, func.count()).where(Appointment.session_date == day)
    if doctor_id is not None:
        astmt = astmt.where(Appointment.doctor_id == doctor_id)
    for status, n in session.execute(astmt.group_by(Appointment.status)):
        by_status[AppointmentStatus(status).value] = int(n)
    return DaySummary(day, _int(n_sessions), None if now is None else _int(n_running), by_status)


@dataclass
class QueuedPatient:
    """A patient waiting in a session's queue.

    Attributes:
        appointment_id (int): the appointment.
        queue_number (int): place in the queue.
        patient_name (str): full name.
        mrn (str | None): medical record number.
        status (str): pending, confirmed or checked_in.
    """

    appointment_id: int
    queue_number: int
    patient_name: str
    mrn: str | None
    status: str


@dataclass
class SessionQueue:
    """One clinic session of the day with the next patients to be seen.

    Attributes:
        schedule_id (int): the session.
        start_time (time): local start.
        end_time (time): local end.
        doctor_name (str): e.g. ``Chief Physician Wang Wei``.
        department_name (str): the department.
        booked (int): places booked (active appointments).
        capacity (int): places offered.
        waiting (int): patients not yet seen (pending, confirmed, checked in).
        next_patients (list[QueuedPatient]): the first of them in queue order.
    """

    schedule_id: int
    start_time: time
    end_time: time
    doctor_name: str
    department_name: str
    booked: int
    capacity: int
    waiting: int = 0
    next_patients: list[QueuedPatient] = field(default_factory=list)


@dataclass
class Queues:
    """The sessions shown on the dashboard and how many there are in all.

    Attributes:
        sessions (list[SessionQueue]): at most ``max_sessions``, by start time.
        total_sessions (int): all matching sessions of the day.
    """

    sessions: list[SessionQueue]
    total_sessions: int


def _doctor_name(title: str | None, name: str) -> str:
    return f"{title} {name}" if title else name


def session_queues(
    session: Session,
    *,
    day: date,
    doctor_id: int | None = None,
    department_id: int | None = None,
    max_sessions: int = 20,
    per_session: int = 5,
) -> Queues:
    """The day's sessions (not cancelled) with their next waiting patients.

    Args:
        session (Session): database session.
        day (date): hospital-local day.
        doctor_id (int | None): only this doctor's sessions.
        department_id (int | None): only this department's sessions.
        max_sessions (int): most sessions returned (ordered by start, department, doctor).
        per_session (int): most patients listed per session (queue order).

    Returns:
        Queues: the sessions and the total number of matching sessions.
    """
    where = [sessions_today_condition(day)]
    if doctor_id is not None:
        where.append(Schedule.doctor_id == doctor_id)
    if department_id is not None:
        where.append(Schedule.department_id == department_id)
    total = _int(session.scalar(select(func.count()).select_from(Schedule).where(*where)))
    rows = session.execute(
        select(Schedule.id, Schedule.start_time, Schedule.end_time, Schedule.booked_count, Schedule.capacity,
               Doctor.title, Doctor.full_name, Department.name)
        .join(Doctor, Doctor.id == Schedule.doctor_id)
        .join(Department, Department.id == Schedule.department_id)
        .where(*where)
        .order_by(Schedule.start_time, Department.name, Doctor.full_name, Schedule.id)
        .limit(max_sessions)
    ).all()
    queues = {
        r.id: SessionQueue(r.id, r.start_time, r.end_time, _doctor_name(r.title, r.full_name), r.name,
                           int(r.booked_count), int(r.capacity))
        for r in rows
    }
    if not queues:
        return Queues([], total)
    waiting = (Appointment.schedule_id.in_(list(queues)), Appointment.status.in_(WAITING_STATUSES))
    for sid, n in session.execute(
        select(Appointment.schedule_id, func.count()).where(*waiting).group_by(Appointment.schedule_id)
    ):
        queues[sid].waiting = int(n)
    ranked = (
        select(
            Appointment.id, Appointment.schedule_id, Appointment.queue_number, Appointment.status,
            Appointment.patient_id,
            func.row_number().over(partition_by=Appointment.schedule_id, order_by=Appointment.queue_number).label("rn"),
        )
        .where(*waiting)
        .subquery()
    )
    for r in session.execute(
        select(ranked.c.id, ranked.c.schedule_id, ranked.c.queue_number, ranked.c.status,
               Patient.full_name, Patient.medical_record_number)
        .join(Patient, Patient.id == ranked.c.patient_id)
        .where(ranked.c.rn <= per_session)
        .order_by(ranked.c.schedule_id, ranked.c.queue_number)
    ):
        queues[r.schedule_id].next_patients.append(
            QueuedPatient(r.id, r.queue_number, r.full_name, r.medical_record_number, AppointmentStatus(r.status).value)
        )
    return Queues(list(queues.values()), total)


@dataclass
class Alerts:
    """Things that need someone's attention; each count matches a filtered admin list.

    Attributes:
        pending_cutoff (datetime): aware UTC instant; pending bookings made before it are overdue.
        pending_overdue (int): pending appointments booked before ``pending_cutoff``.
        prescriptions_waiting (int): prescriptions issued or partially dispensed.
        below_reorder (int | None): medicines below their reorder level (None: not computed).
        expiring_soon (int | None): active batches expiring within ``EXPIRY_ALERT_DAYS`` days.
        expired_active (int | None): active batches with stock already past expiry.
    """

    pending_cutoff: datetime
    pending_overdue: int
    prescriptions_waiting: int
    below_reorder: int | None = None
    expiring_soon: int | None = None
    expired_active: int | None = None


def alerts(
    session: Session, *, now: datetime, today: date, doctor_id: int | None = None, stock: bool = True
) -> Alerts:
    """Count the dashboard's alerts.

    Args:
        session (Session): database session.
        now (datetime): aware current time (for "pending older than a day").
        today (date): hospital-local date (for expiry and usable stock).
        doctor_id (int | None): count only this doctor's overdue pending bookings.
        stock (bool): also count the three stock alerts.

    Returns:
        Alerts: the counts.
    """
    cutoff = pending_cutoff(now)
    pending = select(func.count()).select_from(Appointment).where(
        Appointment.status == AppointmentStatus.pending, Appointment.booked_at < cutoff
    )
    if doctor_id is not None:
        pending = pending.where(Appointment.doctor_id == doctor_id)
    result = Alerts(
        pending_cutoff=cutoff,
        pending_overdue=_int(session.scalar(pending)),
        prescriptions_waiting=_int(session.scalar(
            select(func.count()).select_from(Prescription).where(prescriptions_waiting_condition())
        )),
    )
    if stock:
        result.below_reorder = _int(session.scalar(
            select(func.count()).select_from(Medicine).where(below_reorder_condition(today))
        ))
        result.expiring_soon = _int(session.scalar(
            select(func.count()).select_from(StockBatch).where(expiring_condition(today))
        ))
        result.expired_active = _int(session.scalar(
            select(func.count()).select_from(StockBatch).where(expired_active_condition(today))
        ))
    return result


@dataclass
class Totals:
    """How many rows the main lists hold (each figure matches its unfiltered list).

    Attributes:
        patients (int), doctors (int), departments (int), appointments (int),
        schedules (int): row counts.
    """

    patients: int
    doctors: int
    departments: int
    appointments: int
    schedules: int


def totals(session: Session) -> Totals:
    """Count patients, doctors, departments, appointments and clinic sessions (one query)."""
    models = (Patient, Doctor, Department, Appointment, Schedule)
    row = session.execute(
        select(*(select(func.count()).select_from(m).scalar_subquery() for m in models))
    ).one()
    return Totals(*(int(n) for n in row))


# -- outpatient volume --------------------------------------------------------------------
@dataclass
class StatusCounts:
    """Appointments of one period or department, per status.

    Attributes:
        label (str): period (``YYYY-MM-DD`` / ``YYYY-MM``) or department name.
        counts (dict[str, int]): status value -> appointments (every status present).
    """

    label: str
    counts: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in AppointmentStatus})

    @property
    def total(self) -> int:
        """All appointments, cancelled included (int)."""
        return sum(self.counts.values())

    @property
    def no_show_rate(self) -> float | None:
        """No-shows / (completed + no-shows), 0..1; None when neither occurred."""
        settled = self.counts["completed"] + self.counts["no_show"]
        return self.counts["no_show"] / settled if settled else None

    @property
    def cancellation_rate(self) -> float | None:
        """Cancelled / all appointments, 0..1; None when there are none."""
        return self.counts["cancelled"] / self.total if self.total else None

    def add(self, other: StatusCounts) -> None:
        """Add ``other``'s counts to these."""
        for key, n in other.counts.items():
            self.counts[key] += n


@dataclass
class OutpatientVolume:
    """Appointments in a range, by period and by department.

    Attributes:
        filters (ReportFilters): what was asked.
        by_period (list[StatusCounts]): every period of the range in order (zeros included).
        by_department (list[StatusCounts]): departments with appointments, busiest first.
        total (StatusCounts): the whole range.
    """

    filters: ReportFilters
    by_period: list[StatusCounts]
    by_department: list[StatusCounts]
    total: StatusCounts

    @property
    def is_empty(self) -> bool:
        """True when the range holds no appointment."""
        return self.total.total == 0


def outpatient_volume(session: Session, filters: ReportFilters, *, departments: bool = True) -> OutpatientVolume:
    """Count appointments per period and status, and per department and status.

    Appointments are dated by their session date (hospital-local); every status,
    cancelled included, is counted. The database groups by the ``session_date`` column
    itself, which the index ``ix_appointment_date_status`` (date, status) delivers in
    order without a temporary table (four times faster at 100 x the demo than grouping by
    a formatted month); the at most 731 x 6 day rows are then added up into months here.

    Args:
        session (Session): database session.
        filters (ReportFilters): range, department and grain.
        departments (bool): also count per department (a second GROUP BY query);
            ``by_department`` is empty when False.

    Returns:
        OutpatientVolume: the counts.
    """
    where = [Appointment.session_date >= filters.start, Appointment.session_date <= filters.end]
    if filters.department_id is not None:
        where.append(Appointment.department_id == filters.department_id)
    periods = {p: StatusCounts(p) for p in period_labels(filters.start, filters.end, filters.grain)}
    total = StatusCounts("Total")
    for day, status, n in session.execute(
        select(Appointment.session_date, Appointment.status, func.count())
        .where(*where)
        .group_by(Appointment.session_date, Appointment.status)
    ):
        key = AppointmentStatus(status).value
        periods[day.isoformat() if filters.grain is Grain.day else f"{day:%Y-%m}"].counts[key] += int(n)
        total.counts[key] += int(n)
    if not departments:
        return OutpatientVolume(filters, list(periods.values()), [], total)
    names = {r.id: r.name for r in session.execute(select(Department.id, Department.name))}
    departments: dict[int, StatusCounts] = {}
    for dep_id, status, n in session.execute(
        select(Appointment.department_id, Appointment.status, func.count())
        .where(*where)
        .group_by(Appointment.department_id, Appointment.status)
    ):
        row = departments.setdefault(dep_id, StatusCounts(names.get(dep_id, f"Department #{dep_id}")))
        row.counts[AppointmentStatus(status).value] += int(n)
    by_department = sorted(departments.values(), key=lambda r: (-r.total, r.label))
    return OutpatientVolume(filters, list(periods.values()), by_department, total)


# -- doctor workload ----------------------------------------------------------------------
@dataclass
class DoctorLoad:
    """One doctor's clinic work in a range.

    Attributes:
        doctor_id (int | None): the doctor (None for the total row).
        doctor_name (str): title and name.
        sessions (int): sessions held or planned (not cancelled).
        capacity (int): places offered in them.
        booked (int): places booked (active appointments).
        completed (int): completed visits.
    """

    doctor_id: int | None
    doctor_name: str
    sessions: int
    capacity: int
    booked: int
    completed: int

    @property
    def capacity_used(self) -> float | None:
        """Booked / capacity, 0..1; None when there is no capacity."""
        return self.booked / self.capacity if self.capacity else None


@dataclass
class DoctorWorkload:
    """Every doctor with sessions in the range, busiest first, and the total.

    Attributes:
        filters (ReportFilters): what was asked.
        rows (list[DoctorLoad]): by completed visits, then booked places, then name.
        total (DoctorLoad): sums over all rows.
    """

    filters: ReportFilters
    rows: list[DoctorLoad]
    total: DoctorLoad

    @property
    def is_empty(self) -> bool:
        """True when no session falls in the range."""
        return not self.rows


def doctor_workload(session: Session, filters: ReportFilters) -> DoctorWorkload:
    """Sessions, capacity, booked places and completed visits per doctor.

    Sessions are dated by their (local) session date; cancelled sessions are left out.
    The department filter applies to the session's department.

    Args:
        session (Session): database session.
        filters (ReportFilters): range and department (grain is not used).

    Returns:
        DoctorWorkload: one row per doctor (one query over two GROUP BY subqueries).
    """
    s_where = [Schedule.session_date >= filters.start, Schedule.session_date <= filters.end,
               Schedule.status != ScheduleStatus.cancelled]
    a_where = [Appointment.session_date >= filters.start, Appointment.session_date <= filters.end,
               Appointment.status == AppointmentStatus.completed]
    if filters.department_id is not None:
        s_where.append(Schedule.department_id == filters.department_id)
        a_where.append(Appointment.department_id == filters.department_id)
    sched = (
        select(Schedule.doctor_id.label("doctor_id"), func.count().label("sessions"),
               func.sum(Schedule.capacity).label("capacity"), func.sum(Schedule.booked_count).label("booked"))
        .where(*s_where).group_by(Schedule.doctor_id).subquery()
    )
    done = (
        select(Appointment.doctor_id.label("doctor_id"), func.count().label("completed"))
        .where(*a_where).group_by(Appointment.doctor_id).subquery()
    )
    completed = func.coalesce(done.c.completed, 0)
    rows = [
        DoctorLoad(r.id, _doctor_name(r.title, r.full_name), _int(r.sessions), _int(r.capacity),
                   _int(r.booked), _int(r.completed))
        for r in session.execute(
            select(Doctor.id, Doctor.title, Doctor.full_name, sched.c.sessions, sched.c.capacity,
                   sched.c.booked, completed.label("completed"))
            .select_from(sched)
            .join(Doctor, Doctor.id == sched.c.doctor_id)
            .outerjoin(done, done.c.doctor_id == sched.c.doctor_id)
            .order_by(completed.desc(), sched.c.booked.desc(), Doctor.full_name, Doctor.id)
        )
    ]
    total = DoctorLoad(None, "Total", *(sum(getattr(r, f) for r in rows)
                                        for f in ("sessions", "capacity", "booked", "completed")))
    return DoctorWorkload(filters, rows, total)


# -- pharmacy -------------------------------------------------------------------------------
@dataclass
class MedicineDispensed:
    """One medicine's dispensing in a range.

    Attributes:
        medicine_id (int): the medicine.
        name (str): name, strength and form.
        unit (str): dispensing unit.
        quantity (int): units dispensed.
        value (int): quantity x current unit price, smallest currency unit.
    """

    medicine_id: int
    name: str
    unit: str
    quantity: int
    value: int


@dataclass
class PeriodAmount:
    """A quantity and its value in one period.

    Attributes:
        label (str): ``YYYY-MM-DD`` or ``YYYY-MM``.
        quantity (int): dispensing units.
        value (int): smallest currency unit.
    """

    label: str
    quantity: int = 0
    value: int = 0


@dataclass
class StockValue:
    """Stock on hand in active batches, now.

    Attributes:
        batches (int): active batches holding stock.
        units (int): units on hand in them.
        value (int): units x batch unit cost, smallest currency unit.
        expired_batches (int): of ``batches``, those past expiry.
        expired_units (int): of ``units``, those in batches past expiry.
        expired_value (int): their value, smallest currency unit.
    """

    batches: int
    units: int
    value: int
    expired_batches: int
    expired_units: int
    expired_value: int


@dataclass
class PharmacyReport:
    """Dispensing in a range, write-offs from expiry and today's stock value.

    Attributes:
        filters (ReportFilters): what was asked (the department applies to dispensing only,
            through the appointment the prescription was written in).
        top_medicines (list[MedicineDispensed]): at most ``TOP_MEDICINES``, by value.
        medicines_dispensed (int): how many different medicines were dispensed.
        dispensed_quantity (int): all units dispensed.
        dispensed_value (int): their value, smallest currency unit.
        per_day (list[PeriodAmount]): every local day of the range (zeros included).
        write_offs (list[PeriodAmount]): every month of the range (zeros included).
        stock (StockValue): stock on hand in active batches.
    """

    filters: ReportFilters
    top_medicines: list[MedicineDispensed]
    medicines_dispensed: int
    dispensed_quantity: int
    dispensed_value: int
    per_day: list[PeriodAmount]
    write_offs: list[PeriodAmount]
    stock: StockValue

    @property
    def is_empty(self) -> bool:
        """True when nothing was dispensed in the range."""
        return self.dispensed_quantity == 0

    @property
    def write_off_quantity(self) -> int:
        """Units written off in the range (int)."""
        return sum(p.quantity for p in self.write_offs)

    @property
    def write_off_value(self) -> int:
        """Value written off in the range, smallest currency unit (int)."""
        return sum(p.value for p in self.write_offs)


def _dispensed(columns: list, filters: ReportFilters, utc_from: datetime, utc_to: datetime):
    """A SELECT of ``columns`` over dispensing movements (joined to their Medicine) in
    ``[utc_from, utc_to)``, limited to the filter's department if any.

    With a department, a movement counts when its prescription was written in one of the
    department's appointments. Such an appointment is on or before the day the medicine
    was dispensed, so ``session_date <= end`` holds, and the query starts from the
    department's appointments (index ``ix_appointment_dept_date``) and follows the keys
    down to the movements. MariaDB is told this join order (``STRAIGHT_JOIN``): left to
    its table statistics, which are rough after a bulk load, it started from every
    movement of the range or from the medicines instead, 7 to 20 times slower at 100 x the
    demo. The cost then grows with the department's appointment history up to ``end``;
    see the report of issue #6 for the index that would bound it.
    """
    in_range = (
        StockMovement.kind == MovementKind.dispense,
        StockMovement.created_at >= utc_from,
        StockMovement.created_at < utc_to,
    )
    if filters.department_id is None:
        return (select(*columns).select_from(StockMovement)
                .join(Medicine, Medicine.id == StockMovement.medicine_id).where(*in_range))
    return (
        select(*columns)
        .select_from(Appointment)
        .join(Prescription, Prescription.appointment_id == Appointment.id)
        .join(PrescriptionItem, PrescriptionItem.prescription_id == Prescription.id)
        .join(StockMovement, StockMovement.prescription_item_id == PrescriptionItem.id)
        .join(Medicine, Medicine.id == StockMovement.medicine_id)
        .where(Appointment.department_id == filters.department_id, Appointment.session_date <= filters.end,
               *in_range)
        .prefix_with("STRAIGHT_JOIN", dialect="mysql")
        .prefix_with("STRAIGHT_JOIN", dialect="mariadb")
    )


def dispensed_per_day(session: Session, filters: ReportFilters) -> list[PeriodAmount]:
    """Units dispensed and their value per hospital-local day.

    Args:
        session (Session): database session.
        filters (ReportFilters): range and department (as in :func:`pharmacy_report`).

    Returns:
        list[PeriodAmount]: every day of the range in order, zeros included; value in fen
        (quantity x the medicine's current unit price).
    """
    tz = get_settings().tz
    dialect = _dialect(session)
    qty = (-func.sum(StockMovement.quantity)).label("quantity")
    value = (-func.sum(StockMovement.quantity * Medicine.unit_price)).label("value")
    per_day = {p: PeriodAmount(p) for p in period_labels(filters.start, filters.end, Grain.day)}
    for seg in segments(filters.start, filters.end, tz):
        day = instant_label(dialect, StockMovement.created_at, Grain.day, seg).label("period")
        for period, q, v in session.execute(
            _dispensed([day, qty, value], filters, seg.utc_start, seg.utc_end).group_by(literal_column("period"))
        ):
            per_day[period].quantity += _int(q)
            per_day[period].value += _int(v)
    return list(per_day.values())


def pharmacy_report(session: Session, filters: ReportFilters, *, today: date) -> PharmacyReport:
    """Dispensed quantity and value (top medicines, per day), expiry write-offs per month
    and stock value on hand.

    Movements are dated by the hospital-local day of ``created_at``. Dispensing is read
    twice: grouped by medicine (at most one row per medicine; the totals are their sums)
    and grouped by day.

    Args:
        session (Session): database session.
        filters (ReportFilters): range and department (grain is not used: dispensing is
            per day, write-offs per month).
        today (date): hospital-local date, to tell expired stock apart.

    Returns:
        PharmacyReport: the figures.
    """
    tz = get_settings().tz
    dialect = _dialect(session)
    utc_from, utc_to = utc_bounds(filters.start, filters.end, tz)
    qty = (-func.sum(StockMovement.quantity)).label("quantity")
    value = (-func.sum(StockMovement.quantity * Medicine.unit_price)).label("value")
    per_med = (
        _dispensed([StockMovement.medicine_id.label("medicine_id"), qty, value], filters, utc_from, utc_to)
        .group_by(StockMovement.medicine_id)
        .subquery()
    )
    medicines = [
        MedicineDispensed(r.id, " ".join(p for p in (r.name, r.strength, r.form) if p), r.unit,
                          _int(r.quantity), _int(r.value))
        for r in session.execute(
            select(Medicine.id, Medicine.name, Medicine.strength, Medicine.form, Medicine.unit,
                   per_med.c.quantity, per_med.c.value)
            .join(per_med, per_med.c.medicine_id == Medicine.id)
            .order_by(per_med.c.value.desc(), per_med.c.quantity.desc(), Medicine.name, Medicine.id)
        )
    ]

    write_offs = {p: PeriodAmount(p) for p in period_labels(filters.start, filters.end, Grain.month)}
    wo_qty = (-func.sum(StockMovement.quantity)).label("quantity")
    wo_value = (-func.sum(StockMovement.quantity * StockMovement.unit_cost)).label("value")
    for seg in segments(filters.start, filters.end, tz):
        month = instant_label(dialect, StockMovement.created_at, Grain.month, seg).label("period")
        for period, q, v in session.execute(
            select(month, wo_qty, wo_value)
            .where(StockMovement.kind == MovementKind.expiry_write_off,
                   StockMovement.created_at >= seg.utc_start, StockMovement.created_at < seg.utc_end)
            .group_by(literal_column("period"))
        ):
            write_offs[period].quantity += _int(q)
            write_offs[period].value += _int(v)

    past = StockBatch.expiry_date <= today
    held = StockBatch.quantity_on_hand * StockBatch.unit_cost
    stock = StockValue(*(_int(v) for v in session.execute(
        select(func.count(), func.sum(StockBatch.quantity_on_hand), func.sum(held),
               func.sum(case((past, 1), else_=0)),
               func.sum(case((past, StockBatch.quantity_on_hand), else_=0)),
               func.sum(case((past, held), else_=0)))
        .where(StockBatch.status == BatchStatus.active, StockBatch.quantity_on_hand > 0)
    ).one()))
    return PharmacyReport(
        filters, medicines[:TOP_MEDICINES], len(medicines),
        sum(m.quantity for m in medicines), sum(m.value for m in medicines),
        dispensed_per_day(session, filters), list(write_offs.values()), stock,
    )
