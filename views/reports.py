"""The "Reports" section of the admin: outpatient volume, doctor workload, pharmacy.

Each report is a page with a date range and department filter, headline figures, and
sections of chart + table; every table downloads as CSV (``?export=<table>``, audited).
The figures come from ``portal.services.reports``; this module only arranges them:
:class:`Table` columns say what kind each value is, so the screen formats and
right-aligns numbers and the CSV carries them plain.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, ClassVar

from markupsafe import Markup
from sqladmin import BaseView, expose
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from models import AppointmentStatus
from portal.core import clock
from portal.core.db import transaction
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit, census, reports
from portal.services.reports import Grain, ReportFilters
from views import _charts as charts
from views._format import csv_cell, number, percent, yuan
from views.auth import actor_for

STATUS_LABELS = {
    "pending": "Pending", "confirmed": "Confirmed", "checked_in": "Checked in",
    "completed": "Completed", "cancelled": "Cancelled", "no_show": "No-show",
}


@dataclass
class Column:
    """A table column.

    Attributes:
        header (str): heading (also the CSV header).
        kind (str): ``text``, ``day`` (ISO date), ``int``, ``money`` (fen) or
            ``percent`` (0..1); numbers are right-aligned.
    """

    header: str
    kind: str = "text"

    @property
    def numeric(self) -> bool:
        """True for columns shown right-aligned."""
        return self.kind in ("int", "money", "percent")


@dataclass
class Table:
    """Rows of raw values under typed columns, shown on the page and exported as CSV.

    Attributes:
        key (str): name in ``?export=<key>`` and in the CSV file name.
        columns (list[Column]): the columns.
        rows (list[list[Any]]): raw values (ints, fen, rates 0..1, text).
        total (list[Any] | None): a footer row, when the table has one.
        limit (int | None): at most this many rows on the page (the CSV has all).
    """

    key: str
    columns: list[Column]
    rows: list[list[Any]]
    total: list[Any] | None = None
    limit: int | None = None

    @property
    def shown_rows(self) -> list[list[Any]]:
        """The rows shown on the page."""
        return self.rows if self.limit is None else self.rows[: self.limit]

    def to_csv(self) -> str:
        """The table as CSV text (header, rows, then the total row if any)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([c.header for c in self.columns])
        for row in self.rows + ([self.total] if self.total else []):
            writer.writerow([csv_cell(v, c.kind) for v, c in zip(row, self.columns)])
        return out.getvalue()


@dataclass
class Figure:
    """A headline number above the sections.

    Attributes:
        label (str): what it counts.
        value (str): formatted value.
        note (str): a line of explanation under it.
    """

    label: str
    value: str
    note: str = ""


@dataclass
class Section:
    """A titled part of a report: a chart and its table, or a message when empty.

    Attributes:
        title (str): heading.
        chart (Markup | None): an SVG chart.
        table (Table | None): the figures behind it.
        note (str): one line on how the figures are counted.
        empty (str | None): shown instead of chart and table when there is nothing to show
            (the table, if any, still exports).
    """

    title: str
    chart: Markup | None = None
    table: Table | None = None
    note: str = ""
    empty: str | None = None


@dataclass
class Built:
    """What a report's ``build`` returns.

    Attributes:
        figures (list[Figure]): headline numbers.
        sections (list[Section]): the sections in order.
        empty (str | None): a message shown instead of the figures and sections when the
            range holds nothing (the tables are still built, so a CSV export of an empty
            range gives its header and zero rows rather than an error).
    """

    figures: list[Figure] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    empty: str | None = None


def _range_text(f: ReportFilters) -> str:
    where = f" in {f.department_name}" if f.department_name else ""
    return f"between {f.start:%Y-%m-%d} and {f.end:%Y-%m-%d}{where}"


def _short_day(label: str) -> str:
    return label[5:] if len(label) == 10 else label


class ReportView(BaseView):
    """Base of the report pages: filters, rendering, CSV export.

    Subclasses set ``name``, ``icon``, ``slug``, ``summary``, ``uses_grain`` (offer day or
    month grouping) and ``offers_future`` (offer a range ahead of today), expose
    one GET route that calls :meth:`show`, and implement :meth:`build`.
    """

    category = "Reports"
    category_icon = "fa-solid fa-chart-line"
    template: ClassVar[str] = "reports/report.html"
    slug: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    uses_grain: ClassVar[bool] = False
    offers_future: ClassVar[bool] = False

    def build(self, db, filters: ReportFilters, today: date) -> Built:  # pragma: no cover - abstract
        """Compute the report for ``filters`` (in ``session``) and arrange it."""
        raise NotImplementedError

    def _load(self, engine, params: dict[str, str], today: date) -> dict[str, Any]:
        with transaction(engine, write=False) as db:
            departments = reports.department_choices(db)
            try:
                filters = reports.parse_filters(
                    db, date_from=params.get("date_from"), date_to=params.get("date_to"),
                    department=params.get("department"), grain=params.get("grain") if self.uses_grain else None,
                    today=today,
                )
            except reports.InvalidFilters as exc:
                return {"departments": departments, "errors": exc.errors, "filters": None, "built": None}
            return {"departments": departments, "errors": {}, "filters": filters,
                    "built": self.build(db, filters, today)}

    def _audit_export(self, engine, request: Request, table: Table, filters: ReportFilters) -> None:
        with transaction(engine) as db:
            audit.record(
                db, actor=actor_for(request.state.staff, request), action=AuditAction.export, entity=Entity.report,
                entity_id=f"{self.slug}/{table.key}",
                summary=f"Exported {self.name} \u2013 {table.key} ({len(table.rows)} rows) {_range_text(filters)} as CSV",
                changes={"date_from": filters.start, "date_to": filters.end,
                         "department_id": filters.department_id, "rows": len(table.rows)},
            )

    def quick_ranges(self, request: Request, today: date) -> list[tuple[str, str]]:
        """Links to common ranges (label, url), keeping the department."""
        first = today.replace(day=1)
        last_month_end = first - timedelta(days=1)
        ranges = [
            ("Last 7 days", today - timedelta(days=6), today),
            ("Last 30 days", today - timedelta(days=29), today),
            ("This month", first, today),
            ("Last month", last_month_end.replace(day=1), last_month_end),
            ("Last 12 months", (first - timedelta(days=335)).replace(day=1), today),
        ]
        if self.offers_future:
            ranges.append(("Next 14 days", today, today + timedelta(days=13)))
        base = request.url.remove_query_params(["date_from", "date_to", "export", "grain"])
        return [(label, str(base.include_query_params(date_from=a.isoformat(), date_to=b.isoformat())))
                for label, a, b in ranges]

    async def show(self, request: Request) -> Response:
        """Render the report page, or its CSV when ``export`` names one of its tables."""
        engine = self._admin_ref.engine
        today = clock.today()
        params = dict(request.query_params)
        data = await run_in_threadpool(self._load, engine, params, today)
        export = params.get("export")
        if export:
            if data["errors"]:
                return Response(" ".join(data["errors"].values()) + "\n", status_code=400, media_type="text/plain")
            tables = {s.table.key: s.table for s in data["built"].sections if s.table is not None}
            table = tables.get(export)
            if table is None:
                return Response(f"This report has no table called {export[:40]!r}.\n", status_code=404,
                                media_type="text/plain")
            await run_in_threadpool(self._audit_export, engine, request, table, data["filters"])
            f = data["filters"]
            filename = f"{self.slug}-{table.key}-{f.start:%Y-%m-%d}-to-{f.end:%Y-%m-%d}.csv"
            return Response(
                "\ufeff" + table.to_csv(),  # byte-order mark: spreadsheet programs then read UTF-8 names right
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{filename}"'},
            )
        f = data["filters"]
        form = {
            "date_from": f.start.isoformat() if f else params.get("date_from", ""),
            "date_to": f.end.isoformat() if f else params.get("date_to", ""),
            "department": str(f.department_id or "") if f else params.get("department", ""),
            "grain": (f.grain.value if f else params.get("grain", "")) if self.uses_grain else "",
        }
        context = {
            **data,
            "title": self.name,
            "subtitle": self.summary,
            "view": self,
            "form": form,
            "quick_ranges": self.quick_ranges(request, today),
            "range_text": _range_text(f) if f else "",
            "export_url": lambda key: str(request.url.include_query_params(export=key)),
        }
        return await self.templates.TemplateResponse(
            request, self.template, context, status_code=400 if data["errors"] else 200
        )


# -- outpatient volume -----------------------------------------------------------------------
class OutpatientVolumeReport(ReportView):
    """Appointments per day or month, by status and by department, with no-show and
    cancellation rates."""

    name = "Outpatient volume"
    icon = "fa-solid fa-chart-column"
    slug = "outpatient-volume"
    summary = "Appointments by session date, per status and department"
    uses_grain = True
    offers_future = True

    @expose("/reports/outpatient-volume", identity="outpatient-volume")
    async def page(self, request: Request) -> Response:
        """GET: the report (HTML, or CSV with ``export``)."""
        return await self.show(request)

    @staticmethod
    def _columns(first: Column) -> list[Column]:
        return [first, *(Column(STATUS_LABELS[s.value], "int") for s in AppointmentStatus),
                Column("Total", "int"), Column("No-show rate", "percent"), Column("Cancellation rate", "percent")]

    @staticmethod
    def _row(r: reports.StatusCounts) -> list[Any]:
        return [r.label, *(r.counts[s.value] for s in AppointmentStatus), r.total, r.no_show_rate, r.cancellation_rate]

    def build(self, db, filters: ReportFilters, today: date) -> Built:
        """Count appointments (see ``portal.services.reports.outpatient_volume``) and arrange them."""
        v = reports.outpatient_volume(db, filters)
        per = "day" if filters.grain is Grain.day else "month"
        labels = [r.label for r in v.by_period]
        series = [charts.Series(STATUS_LABELS[s.value], [r.counts[s.value] for r in v.by_period],
                                charts.STATUS_COLOURS[s.value]) for s in AppointmentStatus]
        busiest = max(v.by_period, key=lambda r: r.total, default=reports.StatusCounts("–"))
        figures = [
            Figure("Appointments", number(v.total.total), f"{number(v.total.counts['cancelled'])} cancelled"),
            Figure("Completed visits", number(v.total.counts["completed"])),
            Figure("No-show rate", percent(v.total.no_show_rate),
                   f"{number(v.total.counts['no_show'])} no-shows of "
                   f"{number(v.total.counts['completed'] + v.total.counts['no_show'])} settled visits"),
            Figure("Cancellation rate", percent(v.total.cancellation_rate), "of all appointments"),
            Figure(f"Busiest {per}", number(busiest.total), busiest.label),
        ]
        note = ("Every appointment counts on its session date, cancelled ones included. No-show rate = "
                "no-shows \u00f7 (completed + no-shows); cancellation rate = cancelled \u00f7 all appointments.")
        sections = [
            Section(
                f"Appointments per {per}",
                chart=charts.bar_chart(labels, series, title=f"Appointments per {per} by status",
                                       short_labels=[_short_day(x) for x in labels]),
                table=Table(f"by-{per}", self._columns(Column(per.title(), "day" if per == "day" else "text")),
                            [self._row(r) for r in v.by_period], total=self._row(v.total)),
                note=note,
            ),
            Section(
                "By department",
                chart=charts.hbar_chart([r.label for r in v.by_department], [r.total for r in v.by_department],
                                        title="Appointments by department"),
                table=Table("by-department", self._columns(Column("Department")),
                            [self._row(r) for r in v.by_department], total=self._row(v.total)),
            ),
        ]
        return Built(figures, sections, empty=f"No appointments {_range_text(filters)}." if v.is_empty else None)


# -- doctor workload -------------------------------------------------------------------------
class DoctorWorkloadReport(ReportView):
    """Sessions, capacity used and completed visits per doctor."""

    name = "Doctor workload"
    icon = "fa-solid fa-user-doctor"
    slug = "doctor-workload"
    summary = "Clinic sessions, places booked and visits completed, per doctor"
    offers_future = True
    #: Doctors listed on the page (the CSV lists all).
    page_rows: ClassVar[int] = 100
    chart_rows: ClassVar[int] = 20

    @expose("/reports/doctor-workload", identity="doctor-workload")
    async def page(self, request: Request) -> Response:
        """GET: the report (HTML, or CSV with ``export``)."""
        return await self.show(request)

    def build(self, db, filters: ReportFilters, today: date) -> Built:
        """Compute the workload (see ``portal.services.reports.doctor_workload``) and arrange it."""
        w = reports.doctor_workload(db, filters)

        def row(d: reports.DoctorLoad) -> list[Any]:
            return [d.doctor_name, d.sessions, d.capacity, d.booked, d.capacity_used, d.completed]

        columns = [Column("Doctor"), Column("Sessions", "int"), Column("Places", "int"), Column("Booked", "int"),
                   Column("Capacity used", "percent"), Column("Completed visits", "int")]
        top = w.rows[: self.chart_rows]
        n = len(w.rows)
        figures = [
            Figure("Doctors", number(n), "with sessions in the range"),
            Figure("Sessions", number(w.total.sessions), "not cancelled"),
            Figure("Capacity used", percent(w.total.capacity_used),
                   f"{number(w.total.booked)} of {number(w.total.capacity)} places booked"),
            Figure("Completed visits", number(w.total.completed)),
        ]
        table_note = ("Booked places are appointments still holding their place (not cancelled, not no-show); "
                      "cancelled sessions are left out.")
        if n > self.page_rows:
            table_note += f" The page lists the {self.page_rows} busiest of {n:,} doctors; the CSV lists all."
        sections = [
            Section(
                f"Completed visits, {'top ' + str(len(top)) + ' doctors' if n > len(top) else 'per doctor'}",
                chart=charts.hbar_chart([d.doctor_name for d in top], [d.completed for d in top],
                                        title="Completed visits per doctor", colour=charts.STATUS_COLOURS["completed"]),
            ),
            Section(
                "Per doctor",
                table=Table("per-doctor", columns, [row(d) for d in w.rows], total=row(w.total), limit=self.page_rows),
                note=table_note,
            ),
        ]
        return Built(figures, sections, empty=f"No clinic sessions {_range_text(filters)}." if w.is_empty else None)


# -- pharmacy --------------------------------------------------------------------------------
class PharmacyReportView(ReportView):
    """Dispensing (top medicines, per day), expiry write-offs per month, stock value."""

    name = "Pharmacy"
    icon = "fa-solid fa-prescription-bottle-medical"
    slug = "pharmacy"
    summary = "Medicines dispensed, expiry write-offs and stock value (amounts in yuan)"

    @expose("/reports/pharmacy", identity="pharmacy-report")
    async def page(self, request: Request) -> Response:
        """GET: the report (HTML, or CSV with ``export``)."""
        return await self.show(request)

    def build(self, db, filters: ReportFilters, today: date) -> Built:
        """Compute the pharmacy figures (see ``portal.services.reports.pharmacy_report``) and arrange them."""
        p = reports.pharmacy_report(db, filters, today=today)
        s = p.stock
        figures = [
            Figure("Dispensed value", yuan(p.dispensed_value), "yuan, at current sale prices"),
            Figure("Units dispensed", number(p.dispensed_quantity), f"{number(p.medicines_dispensed)} different medicines"),
            Figure("Written off (expiry)", yuan(p.write_off_value), f"yuan at cost; {number(p.write_off_quantity)} units"),
            Figure("Stock value on hand", yuan(s.value),
                   f"yuan at cost, now; {yuan(s.expired_value)} of it past expiry"),
        ]
        dept_note = (f" Dispensing counts prescriptions written in {filters.department_name} appointments; "
                     "write-offs and stock are hospital-wide." if filters.department_name else "")
        share = [m.value / p.dispensed_value if p.dispensed_value else None for m in p.top_medicines]
        top_title = (f"Top {len(p.top_medicines)} medicines by dispensed value"
                     if p.medicines_dispensed > len(p.top_medicines) else "Medicines by dispensed value")
        nothing = f"Nothing was dispensed {_range_text(filters)}." if p.is_empty else None
        labels = [d.label for d in p.per_day]
        sections = [
            Section(
                top_title,
                chart=charts.hbar_chart([m.name for m in p.top_medicines], [m.value / 100 for m in p.top_medicines],
                                        title=top_title, value_format=lambda v: f"{v:,.2f}"),
                table=Table("top-medicines",
                            [Column("Medicine"), Column("Unit"), Column("Quantity", "int"),
                             Column("Value (yuan)", "money"), Column("Share of value", "percent")],
                            [[m.name, m.unit, m.quantity, m.value, sh] for m, sh in zip(p.top_medicines, share)]),
                note="Value = quantity dispensed \u00d7 the medicine's current unit price." + dept_note,
                empty=nothing,
            ),
            Section(
                "Dispensed per day",
                chart=charts.line_chart(labels, [charts.Series("Value (yuan)", [d.value / 100 for d in p.per_day],
                                                               charts.PRIMARY)],
                                        title="Dispensed value per day (yuan)", short_labels=[_short_day(x) for x in labels],
                                        value_format=lambda v: f"{v:,.2f}"),
                table=Table("per-day", [Column("Day", "day"), Column("Quantity", "int"), Column("Value (yuan)", "money")],
                            [[d.label, d.quantity, d.value] for d in p.per_day],
                            total=["Total", p.dispensed_quantity, p.dispensed_value]),
                empty=nothing,
            ),
            Section(
                "Expiry write-offs per month",
                chart=charts.bar_chart([w.label for w in p.write_offs],
                                       [charts.Series("Value (yuan)", [w.value / 100 for w in p.write_offs], charts.SECONDARY)],
                                       title="Expiry write-offs per month (yuan at cost)", value_format=lambda v: f"{v:,.2f}"),
                table=Table("write-offs", [Column("Month"), Column("Quantity", "int"), Column("Value (yuan)", "money")],
                            [[w.label, w.quantity, w.value] for w in p.write_offs],
                            total=["Total", p.write_off_quantity, p.write_off_value]),
                note="Value = quantity written off \u00d7 the batch's unit cost recorded on the movement.",
                empty=(f"No stock was written off for expiry between {filters.start} and {filters.end}."
                       if p.write_off_quantity == 0 else None),
            ),
        ]
        sections.append(Section(
            "Stock on hand now",
            table=Table("stock", [Column("Stock"), Column("Batches", "int"), Column("Units", "int"), Column("Value (yuan)", "money")],
                        [["Usable (before expiry)", s.batches - s.expired_batches, s.units - s.expired_units,
                          s.value - s.expired_value],
                         ["Past expiry, still active", s.expired_batches, s.expired_units, s.expired_value]],
                        total=["All active batches", s.batches, s.units, s.value]),
            note="Active batches holding stock, at their unit cost; not limited by the date range or department.",
        ))
        return Built(figures, sections)


# -- inpatient census -------------------------------------------------------------------------
class InpatientCensusReport(ReportView):
    """Admissions, discharges, bed-days, occupancy and average length of stay per ward and month."""

    name = "Inpatient census"
    icon = "fa-solid fa-bed"
    slug = "inpatient-census"
    summary = "Admissions, discharges, occupancy and length of stay, per ward and month"

    @expose("/reports/inpatient-census", identity="inpatient-census")
    async def page(self, request: Request) -> Response:
        """GET: the report (HTML, or CSV with ``export``)."""
        return await self.show(request)

    @staticmethod
    def _row(first: list[Any], r: census.CensusRow) -> list[Any]:
        stay = r.average_stay_days
        return [*first, r.admissions, r.discharges, r.bed_days, r.beds,
                r.occupancy_percent / 100, "" if stay is None else f"{stay:.1f}"]

    def build(self, db, filters: ReportFilters, today: date) -> Built:
        """Count the census (see ``portal.services.census``) and arrange it."""
        c = census.census(db, filters)
        totals = [c.totals[m] for m in c.months]
        whole = census.CensusRow("All wards", "all")
        for t in totals:
            for attr in ("admissions", "discharges", "bed_days", "stay_days", "days"):
                setattr(whole, attr, getattr(whole, attr) + getattr(t, attr))
        whole.beds = totals[0].beds if totals else 0
        figures = [
            Figure("Admissions", number(whole.admissions)),
            Figure("Discharges", number(whole.discharges)),
            Figure("Bed-days", number(whole.bed_days), "midnights occupied"),
            Figure("Occupancy", percent(whole.occupancy_percent / 100), f"of {number(whole.beds)} beds in service"),
            Figure("Average stay", "–" if whole.average_stay_days is None else f"{whole.average_stay_days:.1f} days",
                   "of the patients discharged"),
        ]
        stats = [Column("Admissions", "int"), Column("Discharges", "int"), Column("Bed-days", "int"),
                 Column("Beds", "int"), Column("Occupancy", "percent"), Column("Average stay (days)")]
        note = ("Admissions count in the ward of the first bed, discharges in the ward of the last one. A bed-day "
                "is a midnight (hospital time) a patient spent in a bed; occupancy = bed-days \u00f7 (beds in "
                "service \u00d7 days); average stay = days from admission to discharge of the patients "
                "discharged, a same-day stay counting 1.")
        sections = [
            Section(
                "Per month",
                chart=charts.bar_chart(
                    c.months, [charts.Series("Admissions", [t.admissions for t in totals], charts.PRIMARY),
                               charts.Series("Discharges", [t.discharges for t in totals], charts.SECONDARY)],
                    title="Admissions and discharges per month"),
                table=Table("by-month", [Column("Month"), *stats], [self._row([t.month], t) for t in totals],
                            total=self._row(["Total"], whole)),
                note=note,
            ),
            Section(
                "By ward and month",
                chart=charts.hbar_chart(
                    [w for w in dict.fromkeys(r.ward for r in c.rows)],
                    [sum(r.bed_days for r in c.rows if r.ward == w) for w in dict.fromkeys(r.ward for r in c.rows)],
                    title="Bed-days by ward"),
                table=Table("by-ward", [Column("Ward"), Column("Month"), *stats],
                            [self._row([r.ward, r.month], r) for r in c.rows]),
            ),
        ]
        empty = None if c.rows else f"No wards {_range_text(filters)}."
        return Built(figures, sections, empty=empty)


#: The report pages, in menu order.
REPORT_VIEWS = [OutpatientVolumeReport, DoctorWorkloadReport, PharmacyReportView, InpatientCensusReport]
