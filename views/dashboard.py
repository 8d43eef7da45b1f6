"""The admin's home page: the hospital's day, what needs attention, and the main counts.

What is shown depends on the staff member's role (``request.state.staff.role``):

============  ===========================================================================
role          sections, in order
============  ===========================================================================
admin         today, trend, bookings to chase, pharmacy (with stock alerts), counts
receptionist  today, trend, bookings to chase, counts (no pharmacy: no prescriptions, no stock)
doctor        their own day, their sessions' next patients, their bookings to chase, counts
              (doctors, departments: their own patients and visits are in their lists)
nurse         today, the day's sessions with next patients, trend, bookings to chase, counts
pharmacist    pharmacy (with stock alerts) first, dispensing of the last two weeks
============  ===========================================================================

A figure is shown only when the role may open the list it links to
(``views.permissions``), and a hospital-wide count only to a role that sees every row of
that list; a section left empty is not shown. Every figure links
to the admin list that holds the same rows (list filters in ``views/*.py``). The figures
come from ``portal.services.dashboard``, the trend charts from ``portal.services.reports``.
``?day=YYYY-MM-DD`` shows another day's sessions and appointments; ``?department=<id>``
limits the listed sessions to one department.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqladmin import Admin
from sqladmin.authentication import login_required
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import Response

from models import AppointmentStatus, Role
from portal.core import clock
from portal.core.db import transaction
from portal.services import dashboard as board
from portal.services import reports, stock_terms
from portal.services.reports import Grain, ReportFilters
from views import _charts as charts
from views import permissions
from views._admin import SecureAdmin
from views._format import install as install_formats
from views._forms import parse_id
from views.authorization import allowed

#: Sections of the page per role, in order.
LAYOUTS: dict[Role, tuple[str, ...]] = {
    Role.admin: ("today", "trend", "bookings", "inpatients", "pharmacy", "totals"),
    Role.receptionist: ("today", "trend", "bookings", "pharmacy", "totals"),
    Role.doctor: ("today", "queues", "bookings", "inpatients", "totals"),
    Role.nurse: ("inpatients", "today", "queues", "trend", "bookings", "totals"),
    Role.pharmacist: ("pharmacy", "dispensing", "today", "totals"),
}
#: Roles that see stock figures (reorder level, expiry).
STOCK_ROLES = frozenset({Role.admin, Role.pharmacist})
#: Statuses shown as figures for the day, with their labels.
DAY_STATUSES = (
    ("pending", "Pending to confirm"), ("confirmed", "Confirmed"), ("checked_in", "Checked in"),
    ("completed", "Completed"), ("no_show", "No-show"),
)
TREND_BACK, TREND_AHEAD = 14, 7
MAX_DAY_DISTANCE = 366


@dataclass
class Tile:
    """One figure on the dashboard, linking to the list that holds its rows.

    Attributes:
        label (str): what it counts.
        value (int): the figure.
        url (str): the filtered admin list.
        tone (str): ``danger``, ``warning``, ``ok`` or ``plain`` (colours the tile when
            ``value`` > 0; an alert at 0 shows as ``ok``).
        note (str): a line of explanation.
    """

    label: str
    value: int
    url: str
    tone: str = "plain"
    note: str = ""


def _list_url(request: Request, identity: str, **params: Any) -> str:
    url = URL(str(request.url_for("admin:list", identity=identity)))
    return str(url.include_query_params(**{k: v for k, v in params.items() if v is not None}))


def _parse_day(raw: str | None, today: date) -> tuple[date, str | None]:
    text = (raw or "").strip()
    if not text:
        return today, None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        return today, f"\u201c{text[:40]}\u201d is not a date; use YYYY-MM-DD. Showing today instead."
    if abs((day - today).days) > MAX_DAY_DISTANCE:
        return today, "Choose a day within a year of today. Showing today instead."
    return day, None


def _status_strip(by_status: dict[str, int]) -> Any:
    series = [charts.Series(label, [by_status[key]], charts.STATUS_COLOURS[key])
              for key, label in (*DAY_STATUSES, ("cancelled", "Cancelled"))]
    total = sum(by_status.values())
    return charts.strip_chart(series, title=f"{total:,} appointments by status")


def _dispensing_chart(days: list[reports.PeriodAmount] | None) -> Any:
    if not days or not any(d.quantity for d in days):
        return None
    labels = [d.label for d in days]
    return charts.line_chart(
        labels, [charts.Series("Value (yuan)", [d.value / 100 for d in days], charts.PRIMARY)],
        title="Dispensed value per day, last two weeks (yuan)", short_labels=[x[5:] for x in labels],
        value_format=lambda v: f"{v:,.2f}", height=220,
    )


def _gather(engine, *, role: Role, doctor_id: int | None, day: date, now: datetime,
            department_raw: str | None) -> dict[str, Any]:
    """Run every query of the page in one read transaction; returns template data."""
    layout = LAYOUTS.get(role, LAYOUTS[Role.receptionist])
    out: dict[str, Any] = {"layout": layout, "errors": [], "bad_input": False}
    own = doctor_id if role is Role.doctor else None
    with transaction(engine, write=False) as db:
        departments = reports.department_choices(db)
        out["departments"] = departments
        department_id = None
        if department_raw:
            if parse_id(department_raw) in dict(departments):
                department_id = parse_id(department_raw)
            else:
                out["errors"].append("Unknown department; showing every department.")
                out["bad_input"] = True
        out["department_id"] = department_id
        today = now.date()
        out["summary"] = board.day_summary(
            db, day=day, now=now.time() if day == today else None, doctor_id=own
        )
        if "queues" in layout:
            out["queues"] = board.session_queues(db, day=day, doctor_id=own, department_id=department_id)
        if "trend" in layout:
            f = ReportFilters(today - timedelta(days=TREND_BACK), today + timedelta(days=TREND_AHEAD), grain=Grain.day)
            out["trend"] = reports.outpatient_volume(db, f, departments=False)
        if "dispensing" in layout:
            f = ReportFilters(today - timedelta(days=TREND_BACK), today)
            out["dispensing"] = reports.dispensed_per_day(db, f)
        out["alerts"] = board.alerts(db, now=now, today=today, doctor_id=own, stock=role in STOCK_ROLES)
        out["totals"] = board.totals(db)
        if "inpatients" in layout:
            out["occupancy"] = board.occupancy(db)
    return out


def _tiles(request: Request, data: dict[str, Any], *, role: Role, doctor_id: int | None, day: date,
           today: date) -> dict[str, list[Tile]]:
    """Turn the figures into linked tiles, per section."""
    own = doctor_id if role is Role.doctor else None
    s: board.DaySummary = data["summary"]
    on_day = {"session_date_from": day.isoformat(), "session_date_to": day.isoformat(), "doctor_id": own}
    today_tiles = [Tile("Clinic sessions", s.sessions, _list_url(request, "clinic_session", held="yes", **on_day),
                        note="not cancelled")]
    if s.sessions_running is not None:
        today_tiles.append(Tile("Running now", s.sessions_running,
                                _list_url(request, "clinic_session", held="now", doctor_id=own)))
    for key, label in DAY_STATUSES:
        today_tiles.append(Tile(label, s.by_status[key], _list_url(request, "appointment", status=key, **on_day),
                                tone="warning" if key == "pending" and day <= today else "plain"))
    a: board.Alerts = data["alerts"]
    local_cutoff = clock.local(a.pending_cutoff).replace(tzinfo=None)
    bookings = [Tile(
        "Pending bookings older than a day", a.pending_overdue,
        _list_url(request, "appointment", status="pending", booked_at_to=local_cutoff.isoformat(timespec="seconds"),
                  doctor_id=own),
        tone="warning", note=f"booked before {local_cutoff:%Y-%m-%d %H:%M}, not yet confirmed",
    )]
    pharmacy = []
    if a.expired_active is not None:
        pharmacy += [
            Tile("Past expiry, still active", a.expired_active, _list_url(request, "stock_batch", expiry="past"),
                 tone="danger", note="batches with stock to write off"),
            Tile(f"Expiring within {stock_terms.expiry_window_days()} days", a.expiring_soon or 0,
                 _list_url(request, "stock_batch", expiry="soon"), tone="warning", note="active batches with stock"),
            Tile("Below reorder level", a.below_reorder or 0, _list_url(request, "medicine", stock="below_reorder"),
                 tone="warning", note="medicines whose usable stock is low"),
        ]
    pharmacy.insert(0, Tile("Prescriptions waiting", a.prescriptions_waiting,
                            _list_url(request, "prescription", dispensing="waiting"),
                            tone="warning", note="issued or partly dispensed"))
    t: board.Totals = data["totals"]
    totals = [
        Tile("Patients", t.patients, _list_url(request, "patient")),
        Tile("Doctors", t.doctors, _list_url(request, "doctor")),
        Tile("Departments", t.departments, _list_url(request, "department")),
        Tile("Appointments", t.appointments, _list_url(request, "appointment")),
        Tile("Clinic sessions", t.clinic_sessions, _list_url(request, "clinic_session")),
    ]
    inpatients = []
    o = data.get("occupancy")
    if o is not None and sum(o.by_status.values()):  # shown once the hospital has beds
        inpatients = [
            Tile("Beds occupied", o.by_status["occupied"], _list_url(request, "bed", status="occupied"),
                 note=f"{o.percent}% of {o.in_service} beds in service"),
            Tile("Beds free", o.by_status["free"], _list_url(request, "bed", status="free")),
            Tile("Beds being cleaned", o.by_status["cleaning"], _list_url(request, "bed", status="cleaning"),
                 tone="warning"),
            Tile("Awaiting a bed", o.awaiting_bed, _list_url(request, "admission", status="requested"),
                 tone="warning"),
        ]
    sections = {"today": today_tiles, "bookings": bookings, "inpatients": inpatients, "pharmacy": pharmacy,
                "totals": totals}
    return {name: [t for t in tiles if _may_follow(role, t, hospital_wide=name == "totals")]
            for name, tiles in sections.items()}


def _may_follow(role: Role, tile: Tile, *, hospital_wide: bool) -> bool:
    """Show a tile only when the role may open its list, and a hospital-wide count only
    when the role's list holds every row (a doctor's patient list holds their own)."""
    identity = URL(tile.url).path.rstrip("/").split("/")[-2]
    if not allowed(role.value, identity, "list"):
        return False
    return not hospital_wide or permissions.sees_all_rows(role, identity)


async def dashboard(admin: Admin, request: Request) -> Response:
    """Render the dashboard for the logged-in staff member.

    Args:
        admin (Admin): the admin (its ``engine`` and templates are used).
        request (Request): the request; ``request.state.staff`` is the StaffUser.

    Returns:
        Response: the page (status 400 when ``day`` or ``department`` was not understood,
        with a message; the page then shows today / every department).
    """
    staff = request.state.staff
    role = Role(staff.role)
    now = clock.local_now()
    today = now.date()
    day, day_error = _parse_day(request.query_params.get("day"), today)
    data = await run_in_threadpool(
        _gather, admin.engine, role=role, doctor_id=staff.doctor_id, day=day, now=now,
        department_raw=(request.query_params.get("department") or "").strip(),
    )
    if day_error:
        data["errors"].insert(0, day_error)
        data["bad_input"] = True
    if role is Role.doctor and staff.doctor_id is None:
        data["errors"].append("Your account is not linked to a doctor, so the hospital's whole day is shown. "
                              "Ask an administrator to link it.")
    summary: board.DaySummary = data["summary"]
    trend = data.get("trend")
    tiles = _tiles(request, data, role=role, doctor_id=staff.doctor_id, day=day, today=today)
    # A section left without a figure the role may follow is not shown.
    data["layout"] = tuple(s for s in data["layout"] if s not in tiles or tiles[s])
    context = {
        **data,
        "title": "Dashboard",
        "subtitle": f"{staff.full_name} \u00b7 {role.value.replace('_', ' ')}",
        "role": role.value,
        "own_day": role is Role.doctor and staff.doctor_id is not None,
        "day": day,
        "today": today,
        "now": now,
        "day_links": {
            "previous": str(request.url.include_query_params(day=(day - timedelta(days=1)).isoformat())),
            "next": str(request.url.include_query_params(day=(day + timedelta(days=1)).isoformat())),
            "today": str(request.url.remove_query_params("day")),
        },
        "tiles": tiles,
        "strip": _status_strip(summary.by_status) if summary.appointments else None,
        "trend_chart": charts.bar_chart(
            [r.label for r in trend.by_period],
            [charts.Series(label, [r.counts[key] for r in trend.by_period], charts.STATUS_COLOURS[key])
             for key, label in (("completed", "Completed"), ("no_show", "No-show"), ("checked_in", "Checked in"),
                                ("confirmed", "Confirmed"), ("pending", "Pending"), ("cancelled", "Cancelled"))],
            title="Appointments per day, last two weeks and next week",
            short_labels=[r.label[5:] for r in trend.by_period], height=220, highlight=TREND_BACK,
        ) if trend is not None and not trend.is_empty else None,
        "dispensing_chart": _dispensing_chart(data.get("dispensing")),
        "pharmacy_report_url": str(request.url_for("admin:view-pharmacy-report"))
        if allowed(role.value, "pharmacy-report", "list") else None,
        "trend_url": str(request.url_for("admin:view-outpatient-volume"))
        if allowed(role.value, "outpatient-volume", "list") else None,
        "clinic_session_day_url": _list_url(request, "clinic_session", held="yes", session_date_from=day.isoformat(),
                                      session_date_to=day.isoformat()),
        "statuses": {s.value: s.value.replace("_", " ") for s in AppointmentStatus},
    }
    return await admin.templates.TemplateResponse(
        request, "dashboard.html", context, status_code=400 if data["bad_input"] else 200
    )


class PortalAdmin(SecureAdmin):
    """The admin of the portal: role-aware menu and throttled login (``views._admin``), the
    dashboard as its home page and the number formats (``number``, ``yuan``, ``percent``,
    ``display``) in its templates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_formats(self.templates.env)

    @login_required
    async def index(self, request: Request) -> Response:
        """GET /admin/: the dashboard."""
        return await dashboard(self, request)
