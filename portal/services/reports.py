"""The reports: outpatient volume, doctor workload and pharmacy, over a date range.

Every figure is computed by the database with aggregate SQL (``COUNT``/``SUM`` with
``GROUP BY``); Python only merges a handful of already-aggregated rows. The functions are
pure queries: they take a ``Session`` and filter arguments and return small dataclasses.
Money is in the smallest currency unit (fen); quantities in dispensing units.

Filters (:func:`parse_filters`) are validated here, so a bad date or department is a
sentence on the form, never an error page. Definitions (the pages say the same):

* *No-show rate*: no-shows / (completed + no-shows), the share of settled visits the
  patient missed. *Cancellation rate*: cancelled / all appointments.
* *Capacity used*: places booked (``ClinicSession.booked_count``: active appointments, so
  neither cancelled nor no-show) / capacity, over sessions that are not cancelled.
* *Dispensed value*: dispensed quantity x the medicine's current ``unit_price``.
* *Write-off value*: written-off quantity x the batch cost recorded on the movement.

The dashboard's figures are in ``portal.services.dashboard``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, literal_column, select
from sqlalchemy.orm import Session

from models import (
    Appointment,
    AppointmentStatus,
    BatchStatus,
    ClinicSession,
    ClinicSessionStatus,
    Department,
    Doctor,
    Medicine,
    MovementKind,
    Prescription,
    PrescriptionItem,
    StockBatch,
    StockMovement,
)
from portal.core import clock
from portal.core.errors import ValidationFailed
from portal.services import stock_terms
from portal.services._periods import (
    Grain,
    instant_label,
    period_labels,
    segments,
    utc_bounds,
)

__all__ = [
    "MAX_RANGE_DAYS", "DoctorLoad", "DoctorWorkload", "Grain", "InvalidFilters", "MedicineDispensed",
    "OutpatientVolume", "PeriodAmount", "PharmacyReport", "ReportFilters", "StatusCounts", "StockValue",
    "department_choices", "dispensed_per_day", "doctor_name", "doctor_workload",
    "outpatient_volume", "parse_filters", "pharmacy_report",
]

#: Longest range a report accepts, in days (two years).
MAX_RANGE_DAYS = 731
#: Earliest and latest dates a report filter accepts.
FIRST_DATE, LAST_DATE = date(2000, 1, 1), date(2099, 12, 31)
#: Ranges up to this many days are grouped by day when the grain is "auto".
AUTO_DAY_LIMIT = 92
#: How many medicines the pharmacy report ranks.
TOP_MEDICINES = 20


def doctor_name(title: str | None, name: str) -> str:
    """A doctor as shown in lists: ``Chief Physician Wang Wei``, or the name alone."""
    return f"{title} {name}" if title else name


def _dialect(db: Session) -> str:
    return db.get_bind().dialect.name


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
    db: Session,
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
        db (Session): to check that the department exists.
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
            department_name = db.scalar(select(Department.name).where(Department.id == department_id))
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


def department_choices(db: Session) -> list[tuple[int, str]]:
    """Every department as ``(id, name)``, ordered by name, for filter menus."""
    return [(r.id, r.name) for r in db.execute(select(Department.id, Department.name).order_by(Department.name))]


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


def outpatient_volume(db: Session, filters: ReportFilters, *, departments: bool = True) -> OutpatientVolume:
    """Count appointments per period and status, and per department and status.

    Appointments are dated by their session date (hospital-local); every status,
    cancelled included, is counted. The database groups by the ``session_date`` column
    itself, which the index ``ix_appointment_date_status`` (date, status) delivers in
    order without a temporary table (four times faster at 100 x the demo than grouping by
    a formatted month); the at most 731 x 6 day rows are then added up into months here.

    Args:
        db (Session): database session.
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
    for day, status, n in db.execute(
        select(Appointment.session_date, Appointment.status, func.count())
        .where(*where)
        .group_by(Appointment.session_date, Appointment.status)
    ):
        key = AppointmentStatus(status).value
        periods[day.isoformat() if filters.grain is Grain.day else f"{day:%Y-%m}"].counts[key] += int(n)
        total.counts[key] += int(n)
    if not departments:
        return OutpatientVolume(filters, list(periods.values()), [], total)
    names = {r.id: r.name for r in db.execute(select(Department.id, Department.name))}
    departments: dict[int, StatusCounts] = {}
    for dep_id, status, n in db.execute(
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


def doctor_workload(db: Session, filters: ReportFilters) -> DoctorWorkload:
    """Sessions, capacity, booked places and completed visits per doctor.

    Sessions are dated by their (local) session date; cancelled sessions are left out.
    The department filter applies to the session's department.

    Args:
        db (Session): database session.
        filters (ReportFilters): range and department (grain is not used).

    Returns:
        DoctorWorkload: one row per doctor (one query over two GROUP BY subqueries).
    """
    s_where = [ClinicSession.session_date >= filters.start, ClinicSession.session_date <= filters.end,
               ClinicSession.status != ClinicSessionStatus.cancelled]
    a_where = [Appointment.session_date >= filters.start, Appointment.session_date <= filters.end,
               Appointment.status == AppointmentStatus.completed]
    if filters.department_id is not None:
        s_where.append(ClinicSession.department_id == filters.department_id)
        a_where.append(Appointment.department_id == filters.department_id)
    sched = (
        select(ClinicSession.doctor_id.label("doctor_id"), func.count().label("sessions"),
               func.sum(ClinicSession.capacity).label("capacity"), func.sum(ClinicSession.booked_count).label("booked"))
        .where(*s_where).group_by(ClinicSession.doctor_id).subquery()
    )
    done = (
        select(Appointment.doctor_id.label("doctor_id"), func.count().label("completed"))
        .where(*a_where).group_by(Appointment.doctor_id).subquery()
    )
    completed = func.coalesce(done.c.completed, 0)
    rows = [
        DoctorLoad(r.id, doctor_name(r.title, r.full_name), _int(r.sessions), _int(r.capacity),
                   _int(r.booked), _int(r.completed))
        for r in db.execute(
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
    """A SELECT of ``columns`` over dispensing movements in ``[utc_from, utc_to)``, limited
    to the filter's department if any.

    The movements are not joined to their Medicine: callers group them (by medicine, by day
    and medicine) first and join the few groups to the medicines for their prices, so the
    whole-hospital query is a range scan of the covering index ``ix_movement_kind_created_cover``
    alone (a join per movement cost as much again as the scan at 100 x the demo).

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
        return select(*columns).select_from(StockMovement).where(*in_range)
    return (
        select(*columns)
        .select_from(Appointment)
        .join(Prescription, Prescription.appointment_id == Appointment.id)
        .join(PrescriptionItem, PrescriptionItem.prescription_id == Prescription.id)
        .join(StockMovement, StockMovement.prescription_item_id == PrescriptionItem.id)
        .where(Appointment.department_id == filters.department_id, Appointment.session_date <= filters.end,
               *in_range)
        .prefix_with("STRAIGHT_JOIN", dialect="mysql")
        .prefix_with("STRAIGHT_JOIN", dialect="mariadb")
    )


def dispensed_per_day(db: Session, filters: ReportFilters) -> list[PeriodAmount]:
    """Units dispensed and their value per hospital-local day.

    Args:
        db (Session): database session.
        filters (ReportFilters): range and department (as in :func:`pharmacy_report`).

    Returns:
        list[PeriodAmount]: every day of the range in order, zeros included; value in fen
        (quantity x the medicine's current unit price).
    """
    tz = clock.tz()
    dialect = _dialect(db)
    qty = (-func.sum(StockMovement.quantity)).label("quantity")
    per_day = {p: PeriodAmount(p) for p in period_labels(filters.start, filters.end, Grain.day)}
    for seg in segments(filters.start, filters.end, tz):
        day = instant_label(dialect, StockMovement.created_at, Grain.day, seg).label("period")
        groups = (
            _dispensed([day, StockMovement.medicine_id.label("medicine_id"), qty], filters, seg.utc_start, seg.utc_end)
            .group_by(literal_column("period"), StockMovement.medicine_id)
            .subquery()
        )
        for period, q, v in db.execute(
            select(groups.c.period, func.sum(groups.c.quantity), func.sum(groups.c.quantity * Medicine.unit_price))
            .join(Medicine, Medicine.id == groups.c.medicine_id)
            .group_by(groups.c.period)
        ):
            per_day[period].quantity += _int(q)
            per_day[period].value += _int(v)
    return list(per_day.values())


def pharmacy_report(db: Session, filters: ReportFilters, *, today: date) -> PharmacyReport:
    """Dispensed quantity and value (top medicines, per day), expiry write-offs per month
    and stock value on hand.

    Movements are dated by the hospital-local day of ``created_at``. Dispensing is read
    twice: grouped by medicine (at most one row per medicine; the totals are their sums)
    and grouped by day.

    Args:
        db (Session): database session.
        filters (ReportFilters): range and department (grain is not used: dispensing is
            per day, write-offs per month).
        today (date): hospital-local date, to tell expired stock apart.

    Returns:
        PharmacyReport: the figures.
    """
    tz = clock.tz()
    dialect = _dialect(db)
    utc_from, utc_to = utc_bounds(filters.start, filters.end, tz)
    qty = (-func.sum(StockMovement.quantity)).label("quantity")
    per_med = (
        _dispensed([StockMovement.medicine_id.label("medicine_id"), qty], filters, utc_from, utc_to)
        .group_by(StockMovement.medicine_id)
        .subquery()
    )
    value = (per_med.c.quantity * Medicine.unit_price).label("value")
    medicines = [
        MedicineDispensed(r.id, " ".join(p for p in (r.name, r.strength, r.form) if p), r.unit,
                          _int(r.quantity), _int(r.value))
        for r in db.execute(
            select(Medicine.id, Medicine.name, Medicine.strength, Medicine.form, Medicine.unit,
                   per_med.c.quantity, value)
            .join(per_med, per_med.c.medicine_id == Medicine.id)
            .order_by(value.desc(), per_med.c.quantity.desc(), Medicine.name, Medicine.id)
        )
    ]

    write_offs = {p: PeriodAmount(p) for p in period_labels(filters.start, filters.end, Grain.month)}
    wo_qty = (-func.sum(StockMovement.quantity)).label("quantity")
    wo_value = (-func.sum(StockMovement.quantity * StockMovement.unit_cost)).label("value")
    for seg in segments(filters.start, filters.end, tz):
        month = instant_label(dialect, StockMovement.created_at, Grain.month, seg).label("period")
        for period, q, v in db.execute(
            select(month, wo_qty, wo_value)
            .where(StockMovement.kind == MovementKind.expiry_write_off,
                   StockMovement.created_at >= seg.utc_start, StockMovement.created_at < seg.utc_end)
            .group_by(literal_column("period"))
        ):
            write_offs[period].quantity += _int(q)
            write_offs[period].value += _int(v)

    past = stock_terms.batch_expired_but_active(today)
    held = StockBatch.quantity_on_hand * StockBatch.unit_cost
    stock = StockValue(*(_int(v) for v in db.execute(
        select(func.count(), func.sum(StockBatch.quantity_on_hand), func.sum(held),
               func.sum(case((past, 1), else_=0)),
               func.sum(case((past, StockBatch.quantity_on_hand), else_=0)),
               func.sum(case((past, held), else_=0)))
        .where(StockBatch.status == BatchStatus.active, StockBatch.quantity_on_hand > 0)
    ).one()))
    return PharmacyReport(
        filters, medicines[:TOP_MEDICINES], len(medicines),
        sum(m.quantity for m in medicines), sum(m.value for m in medicines),
        dispensed_per_day(db, filters), list(write_offs.values()), stock,
    )
