"""The inpatient census: admissions, discharges, occupancy and length of stay, per ward
and month (hospital-local calendar months).

Definitions (the report page says the same):

* *Admissions*: admissions whose ``admitted_at`` falls in the month, counted in the ward of
  their first bed.
* *Discharges*: final discharges (``discharged_at``) in the month, in the ward of the last bed.
* *Bed-days*: hospital-local midnights at which a patient lay in a bed of the ward (the
  midnight that begins a day counts in that day's month): the inpatient census taken at
  midnight, and the unit of the bed-day charge. A stay still open counts up to now.
* *Occupancy*: bed-days / (the ward's beds not out of service x days of the month within
  the range), in percent.
* *Average length of stay*: over the month's discharges of the ward, the mean of (local
  discharge date - local admission date) in days, a same-day stay counting 1.

The counts come from aggregate-friendly reads of the stays that overlap the range (one
row per admission plus its transfers); a hospital's month is a few thousand stays.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models import Admission, Bed, BedStatus, BedTransfer, Room, Ward
from portal.core import clock
from portal.services._periods import local_midnight_utc, period_labels, utc_bounds
from portal.services.reports import Grain, ReportFilters

__all__ = ["CensusRow", "CensusReport", "census", "stays"]


@dataclass
class CensusRow:
    """One ward in one month.

    Attributes:
        ward (str): the ward's name.
        month (str): ``YYYY-MM`` (hospital-local).
        admissions (int): admissions begun in the month (ward of the first bed).
        discharges (int): final discharges in the month (ward of the last bed).
        bed_days (int): midnights occupied in the month.
        beds (int): beds of the ward not out of service (now).
        days (int): days of the month within the range.
        stay_days (int): total length of stay of the month's discharges, days.
    """

    ward: str
    month: str
    admissions: int = 0
    discharges: int = 0
    bed_days: int = 0
    beds: int = 0
    days: int = 0
    stay_days: int = 0

    @property
    def occupancy_percent(self) -> float:
        """bed_days / (beds x days) x 100, one decimal (0.0 without beds)."""
        capacity = self.beds * self.days
        return round(100.0 * self.bed_days / capacity, 1) if capacity else 0.0

    @property
    def average_stay_days(self) -> float | None:
        """Mean length of stay of the month's discharges, days (one decimal), or None."""
        return round(self.stay_days / self.discharges, 1) if self.discharges else None


@dataclass
class CensusReport:
    """The census over a range.

    Attributes:
        filters (ReportFilters): the range (and department) reported.
        months (list[str]): ``YYYY-MM`` labels of the range.
        rows (list[CensusRow]): one per ward and month, by ward name then month.
        totals (dict[str, CensusRow]): month -> the hospital's (or department's) figures.
    """

    filters: ReportFilters
    months: list[str]
    rows: list[CensusRow] = field(default_factory=list)
    totals: dict[str, CensusRow] = field(default_factory=dict)


@dataclass(frozen=True)
class Stay:
    """A stretch of one admission in one bed: from ``start`` to ``end`` (aware UTC;
    ``end`` None while the patient is still there)."""

    admission_id: int
    ward_id: int
    start: datetime
    end: datetime | None


def stays(db: Session, utc_from: datetime, utc_to: datetime) -> list[Stay]:
    """Every stay in a bed that overlaps ``[utc_from, utc_to)``, split at the transfers.

    Returns:
        list[Stay]: in admission order, then time order.
    """
    ward_of_bed = dict(db.execute(select(Bed.id, Room.ward_id).join(Room, Room.id == Bed.room_id)).all())
    admissions = db.execute(
        select(Admission.id, Admission.bed_id, Admission.admitted_at, Admission.discharged_at).where(
            Admission.admitted_at.is_not(None), Admission.admitted_at < utc_to,
            or_(Admission.discharged_at.is_(None), Admission.discharged_at >= utc_from),
        ).order_by(Admission.id)
    ).all()
    moves: dict[int, list] = defaultdict(list)
    ids = [a.id for a in admissions]
    for chunk in range(0, len(ids), 500):
        for t in db.execute(
            select(BedTransfer.admission_id, BedTransfer.from_bed_id, BedTransfer.to_bed_id, BedTransfer.transferred_at)
            .where(BedTransfer.admission_id.in_(ids[chunk:chunk + 500]))
            .order_by(BedTransfer.admission_id, BedTransfer.transferred_at, BedTransfer.id)
        ):
            moves[t.admission_id].append(t)
    out: list[Stay] = []
    for a in admissions:
        transfers = moves.get(a.id, [])
        bed = transfers[0].from_bed_id if transfers else a.bed_id
        start = a.admitted_at
        for t in transfers:
            out.append(Stay(a.id, ward_of_bed[bed], start, t.transferred_at))
            bed, start = t.to_bed_id, t.transferred_at
        out.append(Stay(a.id, ward_of_bed[bed], start, a.discharged_at))
    return out


def _month(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def census(db: Session, filters: ReportFilters, *, now: datetime | None = None) -> CensusReport:
    """The inpatient census per ward and month over ``filters``' range (see the module).

    Args:
        db (Session): a read transaction.
        filters (ReportFilters): first and last hospital-local day, and a department
            (its wards only) or None for all.
        now (datetime | None): the instant open stays run to (aware); the hospital clock's now.

    Returns:
        CensusReport: one row per ward and month, and each month's totals.
    """
    tz = clock.tz()
    now = now or clock.now()
    utc_from, utc_to = utc_bounds(filters.start, filters.end, tz)
    months = period_labels(filters.start, filters.end, Grain.month)
    ward_stmt = select(Ward.id, Ward.name).order_by(Ward.name)
    if filters.department_id is not None:
        ward_stmt = ward_stmt.where(Ward.department_id == filters.department_id)
    wards = dict(db.execute(ward_stmt).all())
    beds = dict(db.execute(
        select(Room.ward_id, func.count(Bed.id)).join(Room, Room.id == Bed.room_id)
        .where(Bed.status != BedStatus.out_of_service).group_by(Room.ward_id)
    ).all())
    days_in: dict[str, int] = defaultdict(int)
    day = filters.start
    while day <= filters.end:
        days_in[_month(day)] += 1
        day += timedelta(days=1)

    table = {(w, m): CensusRow(wards[w], m, beds=int(beds.get(w, 0)), days=days_in[m]) for w in wards for m in months}
    first_ward: dict[int, int] = {}
    last_ward: dict[int, int] = {}
    for stay in stays(db, utc_from, utc_to):
        first_ward.setdefault(stay.admission_id, stay.ward_id)
        last_ward[stay.admission_id] = stay.ward_id
        if stay.ward_id not in wards:
            continue
        end = min(stay.end or now, utc_to)
        # midnights M with start <= M < end, and utc_from <= M
        day = max(clock.local(stay.start).date(), filters.start)
        if local_midnight_utc(day, tz) < stay.start:
            day += timedelta(days=1)
        while day <= filters.end and local_midnight_utc(day, tz) < end:
            table[(stay.ward_id, _month(day))].bed_days += 1
            day += timedelta(days=1)

    admissions = db.execute(
        select(Admission.id, Admission.admitted_at, Admission.discharged_at).where(
            Admission.admitted_at.is_not(None), Admission.admitted_at < utc_to,
            or_(Admission.admitted_at >= utc_from, Admission.discharged_at >= utc_from),
        )
    ).all()
    for a in admissions:
        admitted_day = clock.local(a.admitted_at).date()
        if a.admitted_at >= utc_from and a.id in first_ward and first_ward[a.id] in wards:
            table[(first_ward[a.id], _month(admitted_day))].admissions += 1
        if a.discharged_at is not None and utc_from <= a.discharged_at < utc_to and last_ward.get(a.id) in wards:
            discharged_day = clock.local(a.discharged_at).date()
            row = table[(last_ward[a.id], _month(discharged_day))]
            row.discharges += 1
            row.stay_days += max(1, (discharged_day - admitted_day).days)

    report = CensusReport(filters, months)
    report.rows = [table[(w, m)] for w in wards for m in months]
    for m in months:
        total = CensusRow("All wards", m, days=days_in[m])
        for w in wards:
            row = table[(w, m)]
            total.admissions += row.admissions
            total.discharges += row.discharges
            total.bed_days += row.bed_days
            total.beds += row.beds
            total.stay_days += row.stay_days
        report.totals[m] = total
    return report

