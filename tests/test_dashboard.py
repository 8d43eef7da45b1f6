"""The dashboard: every figure of a known day checked by hand, each figure's link leads to
a list holding exactly that many rows, and the page is shaped by the user's role.

"Now" is frozen at 10:00 hospital time today (the ``hospital_clock`` fixture), so "running now" and "older than a day" are exact. The data set (``day``):

Department Cardiology; doctors D1 (with a doctor login) and D2. Sessions today:
  T1 D1 08:00-12:00 (running): completed, checked in, confirmed, pending, cancelled, no-show, confirmed
  T2 D2 13:30-17:00          : pending (booked 3 days ago), confirmed
  T3 D1 14:00-15:00 cancelled: cancelled
  T4 D2 tomorrow 08:00-12:00 : pending (booked 25 hours ago), pending (booked 23 hours ago)
Prescriptions: issued, partially dispensed, dispensed, cancelled.
Stock (usable = active, expiry after today):
  Med1 reorder 100: active 60 (expires in 100 days), active 50 (expired yesterday)  -> below
  Med2 reorder 10 : active 30 (expires in 10 days)                                    -> expiring
  Med3 reorder 0  : nothing
  Med4 inactive, reorder 5, nothing                                                   -> not counted
  Med5 reorder 20 : active 25 expiring today (so expired), quarantined 100            -> below
  Med6 reorder 10 : active 10 (in 30 days: expiring), active 5 (in 31 days)
  Med7            : active 0 (in 5 days), expired-status 40 (expired 3 days ago), active 0 (expired)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from types import SimpleNamespace

import pytest

from models import AppointmentStatus as S
from models import BatchStatus, ClinicSessionStatus, PrescriptionStatus, Role
from portal.core import clock
from portal.core.db import transaction
from portal.services import dashboard
from tests.factories import (
    login,
    logout,
    make_appointment,
    make_clinic_session,
    make_department,
    make_doctor,
    make_medicine,
    make_patient,
    make_prescription_lines,
    make_received_batch,
    make_staff,
)


@pytest.fixture
def now(hospital_clock) -> datetime:
    fixed = hospital_clock.at(hospital_clock.today(), time(10, 0))
    hospital_clock.freeze(fixed)
    return fixed


@pytest.fixture
def day(engine, now):
    today = clock.today()
    dept = make_department(engine, code="CARD", name="Cardiology")
    d1 = make_doctor(engine, full_name="Dora One", title="Chief Physician", department=dept)
    d2 = make_doctor(engine, full_name="Dan Two", title=None, department=dept)
    t1 = make_clinic_session(engine, doctor=d1, department=dept, day=today, start=time(8, 0), end=time(12, 0))
    t2 = make_clinic_session(engine, doctor=d2, department=dept, day=today, start=time(13, 30), end=time(17, 0))
    t3 = make_clinic_session(engine, doctor=d1, department=dept, day=today, start=time(14, 0), end=time(15, 0),
                       status=ClinicSessionStatus.cancelled)
    t4 = make_clinic_session(engine, doctor=d2, department=dept, day=today + timedelta(days=1))
    recent = now - timedelta(hours=2)

    def appt(clinic_session, status, name, booked=recent):
        return make_appointment(engine, clinic_session=clinic_session, status=status, booked_at=booked,
                                patient=make_patient(engine, full_name=name))

    for status, name in [(S.completed, "Pat Done"), (S.checked_in, "Pat Waiting"), (S.confirmed, "Pat Confirmed"),
                         (S.pending, "Pat Pending"), (S.cancelled, "Pat Cancelled"), (S.no_show, "Pat Absent"),
                         (S.confirmed, "Pat Late")]:
        appt(t1, status, name)
    appt(t2, S.pending, "Other Pending", booked=now - timedelta(days=3))
    appt(t2, S.confirmed, "Other Confirmed", booked=now - timedelta(days=9))
    appt(t3, S.cancelled, "Cancelled Session")
    appt(t4, S.pending, "Tomorrow Old", booked=now - timedelta(hours=25))
    appt(t4, S.pending, "Tomorrow New", booked=now - timedelta(hours=23))

    for status in (PrescriptionStatus.issued, PrescriptionStatus.partially_dispensed,
                   PrescriptionStatus.dispensed, PrescriptionStatus.cancelled):
        make_prescription_lines(engine, doctor=d1, status=status)

    def med(reorder, *batches, active=True):
        m = make_medicine(engine, reorder_level=reorder, is_active=active)
        for qty, days, status in batches:
            make_received_batch(engine, medicine=m, quantity=qty, expiry=today + timedelta(days=days), status=status)
        return m

    active = BatchStatus.active
    med(100, (60, 100, active), (50, -1, active))
    med(10, (30, 10, active))
    med(0)
    med(5, active=False)
    med(20, (25, 0, active), (100, 200, BatchStatus.quarantined))
    med(10, (10, 30, active), (5, 31, active))
    med(0, (0, 5, active), (40, -3, BatchStatus.expired), (0, -2, active))

    users = SimpleNamespace(**{
        role.value: make_staff(engine, role=role, doctor_id=d1.id if role is Role.doctor else None)
        for role in Role
    })
    return SimpleNamespace(today=today, dept=dept, d1=d1, d2=d2, users=users, patients=12 + 4)


def _read(engine, fn, **kw):
    with transaction(engine, write=False) as db:
        return fn(db, **kw)


# -- the figures --------------------------------------------------------------------------
def test_day_summary_and_queues(engine, day, now):
    s = _read(engine, dashboard.day_summary, day=day.today, now=now.time())
    assert (s.sessions, s.sessions_running) == (2, 1)
    assert s.by_status == {"pending": 2, "confirmed": 3, "checked_in": 1, "completed": 1, "cancelled": 2, "no_show": 1}
    mine = _read(engine, dashboard.day_summary, day=day.today, now=now.time(), doctor_id=day.d1.id)
    assert (mine.sessions, mine.sessions_running) == (1, 1)
    assert mine.by_status == {"pending": 1, "confirmed": 2, "checked_in": 1, "completed": 1, "cancelled": 2,
                              "no_show": 1}
    q = _read(engine, dashboard.session_queues, day=day.today)
    assert q.total_sessions == 2
    assert [(x.doctor_name, x.booked, x.capacity, x.waiting) for x in q.sessions] == [
        ("Chief Physician Dora One", 6, 10, 4), ("Dan Two", 2, 10, 2)]  # a no-show used its place
    assert [(p.queue_number, p.patient_name, p.status) for p in q.sessions[0].next_patients] == [
        (2, "Pat Waiting", "checked_in"), (3, "Pat Confirmed", "confirmed"), (4, "Pat Pending", "pending"),
        (7, "Pat Late", "confirmed")]
    assert [p.patient_name for p in q.sessions[1].next_patients] == ["Other Pending", "Other Confirmed"]
    short = _read(engine, dashboard.session_queues, day=day.today, max_sessions=1, per_session=2)
    assert short.total_sessions == 2 and len(short.sessions) == 1
    assert [p.queue_number for p in short.sessions[0].next_patients] == [2, 3]
    assert short.sessions[0].waiting == 4
    assert _read(engine, dashboard.session_queues, day=day.today, doctor_id=day.d2.id).sessions[0].doctor_name == "Dan Two"


def test_alerts_and_totals(engine, day, now):
    a = _read(engine, dashboard.alerts, now=now, today=day.today)
    assert a.pending_cutoff == (now - timedelta(days=1)).astimezone(UTC)
    assert (a.pending_overdue, a.prescriptions_waiting) == (2, 2)
    assert (a.below_reorder, a.expiring_soon, a.expired_active) == (2, 2, 2)
    assert _read(engine, dashboard.alerts, now=now, today=day.today, doctor_id=day.d1.id).pending_overdue == 0
    assert _read(engine, dashboard.alerts, now=now, today=day.today, doctor_id=day.d2.id).pending_overdue == 2
    no_stock = _read(engine, dashboard.alerts, now=now, today=day.today, stock=False)
    assert no_stock.below_reorder is None and no_stock.expiring_soon is None
    t = _read(engine, dashboard.totals)
    assert (t.patients, t.doctors, t.departments, t.appointments, t.clinic_sessions) == (
        day.patients, 2, 1, 12, 4)  # 12 appointments' patients + one per prescription


# -- the page ----------------------------------------------------------------------------------
TILE = re.compile(r'<a class="card card-sm report-figure[^"]*" href="([^"]+)">\s*<div class="card-body">\s*'
                  r'<div class="figure-label">([^<]+)</div>\s*<div class="figure-value">([^<]+)</div>')


def _sections(html: str) -> dict[str, list[tuple[str, str, str]]]:
    """section id -> [(label, value, url)] in page order."""
    out = {}
    for name, body in re.findall(r'<section class="mb-4" aria-labelledby="(\w+)-title">(.*?)</section>', html, re.S):
        out[name] = [(label, value, url.replace("&amp;", "&")) for url, label, value in TILE.findall(body)]
    return out


def _list_count(client, url: str) -> int:
    page = client.get(url)
    assert page.status_code == 200, url
    found = re.search(r"of (\d+) items", page.text)
    return int(found.group(1)) if found else 0


def _dashboard(client, user, query=""):
    assert login(client, user.username).status_code == 302
    page = client.get("/admin/" + query)
    return page, _sections(page.text)


def test_admin_dashboard_figures_and_links(client, day):
    page, sections = _dashboard(client, day.users.admin)
    assert page.status_code == 200
    assert list(sections) == ["today", "trend", "bookings", "pharmacy", "totals"]
    figures = {name: [(label, value) for label, value, _ in tiles] for name, tiles in sections.items()}
    assert figures["today"] == [
        ("Clinic sessions", "2"), ("Running now", "1"), ("Pending to confirm", "2"), ("Confirmed", "3"),
        ("Checked in", "1"), ("Completed", "1"), ("No-show", "1")]
    assert figures["bookings"] == [("Pending bookings older than a day", "2")]
    assert figures["pharmacy"] == [
        ("Prescriptions waiting", "2"), ("Past expiry, still active", "2"), ("Expiring within 30 days", "2"),
        ("Below reorder level", "2")]
    assert figures["totals"] == [("Patients", str(day.patients)), ("Doctors", "2"), ("Departments", "1"),
                                 ("Appointments", "12"), ("Clinic sessions", "4")]
    assert "<svg" in page.text  # the status strip and the trend chart
    # Each figure links to an admin list holding exactly that many rows.
    for tiles in sections.values():
        for label, value, url in tiles:
            assert url.startswith("http://testserver/admin/") and "/list" in url, label
            assert _list_count(client, url) == int(value), (label, url)


def test_doctor_sees_only_their_own_day(client, day):
    page, sections = _dashboard(client, day.users.doctor)
    assert list(sections) == ["today", "queues", "bookings", "totals"]
    # Hospital-wide counts only of lists that hold every row for a doctor.
    assert [label for label, _, _ in sections["totals"]] == ["Doctors", "Departments"]
    assert "Your day," in page.text and "Your sessions: next patients" in page.text
    today = dict((label, value) for label, value, _ in sections["today"])
    assert today == {"Clinic sessions": "1", "Running now": "1", "Pending to confirm": "1", "Confirmed": "2",
                     "Checked in": "1", "Completed": "1", "No-show": "1"}
    for name in ("Pat Waiting", "Pat Confirmed", "Pat Pending", "Pat Late"):
        assert name in page.text
    for name in ("Other Pending", "Other Confirmed", "Pat Done", "Pat Cancelled", "Pat Absent"):
        assert name not in page.text
    assert sections["bookings"][0][1] == "0"
    assert "Below reorder level" not in page.text and "Prescriptions waiting" not in page.text
    for tiles in (sections["today"], sections["bookings"]):
        for label, value, url in tiles:
            assert f"doctor_id={day.d1.id}" in url, label
            assert _list_count(client, url) == int(value), (label, url)


def test_nurse_sees_every_session_of_the_day(client, day):
    page, sections = _dashboard(client, day.users.nurse)
    assert list(sections) == ["today", "queues", "trend", "bookings", "totals"]
    for name in ("Pat Waiting", "Pat Late", "Other Pending", "Other Confirmed"):
        assert name in page.text
    assert "Below reorder level" not in page.text
    page = client.get(f"/admin/?department={day.dept.id}")
    assert page.status_code == 200 and "Other Pending" in page.text


def test_pharmacist_sees_pharmacy_first_and_receptionist_no_stock(client, day):
    page, sections = _dashboard(client, day.users.pharmacist)
    assert list(sections)[0] == "pharmacy"
    assert [label for label, _, _ in sections["pharmacy"]] == [
        "Prescriptions waiting", "Past expiry, still active", "Expiring within 30 days", "Below reorder level"]
    assert "Pat Waiting" not in page.text
    # Only figures whose lists the pharmacist may open (views.permissions): no appointments.
    assert list(sections) == ["pharmacy", "dispensing"]
    logout(client)
    page, sections = _dashboard(client, day.users.receptionist)
    assert list(sections) == ["today", "trend", "bookings", "totals"]
    for text in ("Prescriptions waiting", "Below reorder level", "Expiring within", "Past expiry"):
        assert text not in page.text


def test_another_day_and_bad_input(client, day):
    tomorrow = (day.today + timedelta(days=1)).isoformat()
    page, sections = _dashboard(client, day.users.admin, f"?day={tomorrow}")
    assert page.status_code == 200 and "not today" in page.text
    today = dict((label, value) for label, value, _ in sections["today"])
    assert "Running now" not in today
    assert (today["Clinic sessions"], today["Pending to confirm"]) == ("1", "2")
    bad = client.get("/admin/?day=2026-02-31")
    assert bad.status_code == 400 and "is not a date" in bad.text and "Today," in bad.text
    far = client.get("/admin/?day=1999-01-01")
    assert far.status_code == 400 and "within a year" in far.text
    logout(client)
    login(client, day.users.nurse.username)
    bad_dept = client.get("/admin/?department=nope")
    assert bad_dept.status_code == 400 and "Unknown department" in bad_dept.text


def test_dashboard_needs_a_login(client, day):
    page = client.get("/admin/")
    assert page.status_code in (302, 303) and "/admin/login" in page.headers["location"]


def test_empty_day(client, engine, now):
    admin = make_staff(engine, role=Role.admin)
    page, sections = _dashboard(client, admin)
    assert page.status_code == 200
    assert "No clinic sessions or appointments on this day." in page.text
    assert [value for _, value, _ in sections["totals"]] == ["0", "0", "0", "0", "0"]
