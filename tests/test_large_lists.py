"""Admin lists on large tables (``views._large_lists``): bounded counts that say so, deep pages
with the right rows, filters and search unchanged, doctors' row scope kept; the doctor
filter that lists a few names; sqladmin's plain list only when the benchmark asks for it."""

from __future__ import annotations

import random
import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, select

from models import Appointment, AppointmentStatus, Role
from portal.core import clock
from portal.core.db import transaction
from portal.services.references import new_reference
from tests.factories import login, make_clinic_session, make_department, make_doctor, make_patient, make_staff
from views._large_lists import CountAtLeast

STATUSES = [AppointmentStatus.pending, AppointmentStatus.confirmed, AppointmentStatus.cancelled]
_REF = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}\b")


class Hospital:
    """Two departments with a doctor each; 36 appointments with real references, statuses
    in turn, doctor A's in the even places and doctor B's in the odd ones."""

    def __init__(self, engine):
        self.departments = [make_department(engine), make_department(engine)]
        self.doctors = [make_doctor(engine, department=d) for d in self.departments]
        self.clinic_sessions = [make_clinic_session(engine, doctor=doc, department=dep, capacity=40)
                          for doc, dep in zip(self.doctors, self.departments, strict=True)]
        patients = [make_patient(engine) for _ in range(18)]
        rng = random.Random(7)
        rows, now = [], clock.now()
        for i in range(36):
            s = self.clinic_sessions[i % 2]
            status = STATUSES[i % 3]
            rows.append({
                "reference": new_reference(rng), "patient_id": patients[i // 2].id, "clinic_session_id": s.id,
                "doctor_id": s.doctor_id, "department_id": s.department_id, "session_date": s.session_date,
                "queue_number": i // 2 + 1, "status": status, "channel": "online",
                "active_marker": None if status is AppointmentStatus.cancelled else 1,
                "booked_at": now - timedelta(minutes=i),
            })
        with transaction(engine) as db:
            db.execute(insert(Appointment), rows)
        with transaction(engine, write=False) as db:
            self.all = db.execute(
                select(Appointment.id, Appointment.reference, Appointment.status, Appointment.doctor_id,
                       Appointment.department_id).order_by(Appointment.id.desc())).all()

    def references(self, *, where=lambda row: True) -> list[str]:
        """References of the rows matching ``where``, newest first (the list's default order)."""
        return [r.reference for r in self.all if where(r)]


@pytest.fixture
def hospital(engine):
    return Hospital(engine)


@pytest.fixture
def admin_client(client, engine):
    make_staff(engine, role=Role.admin, username="boss")
    assert login(client, "boss").status_code == 302
    return client


def shown(html: str) -> list[str]:
    """References in a list page's table (or an export), in order."""
    if "<tbody" in html:
        html = html[html.index("<tbody"): html.index("</tbody>")]
    seen: list[str] = []
    for ref in _REF.findall(html):
        if ref not in seen:
            seen.append(ref)
    return seen


def footer(html: str) -> str:
    m = re.search(r"Showing\s+(\d+)\s+to\s+(\d+)\s+of\s+(.+?)\s+items", html)
    assert m, "no list footer"
    return f"{m.group(1)}-{m.group(2)} of {m.group(3)}"


@pytest.fixture
def small_bound(monkeypatch):
    """Count at most 10 rows past the page's offset (10,000 in production)."""
    from views.appointments import AppointmentView

    monkeypatch.setattr(AppointmentView, "count_limit", 10)


@pytest.fixture
def five_a_page(monkeypatch):
    """The appointment list also offers 5 rows a page (a list takes only the page sizes it
    offers: views._list_params), so 36 rows make several pages."""
    from views.appointments import AppointmentView

    monkeypatch.setattr(AppointmentView, "page_size_options", [5, *AppointmentView.page_size_options])


def test_count_is_exact_below_the_bound_and_labelled_above_it(hospital, admin_client, small_bound):
    every = hospital.references()
    page = admin_client.get("/admin/appointment/list", params={"pageSize": 25})
    assert page.status_code == 200
    # 10 rows past the offset, but at least one page: 25 + 1 counted, 36 exist.
    assert footer(page.text) == "1-25 of more than 25"
    assert shown(page.text) == every[:25]
    assert 'page=2"' in page.text  # the next page is offered

    last = admin_client.get("/admin/appointment/list", params={"pageSize": 25, "page": 2})
    assert footer(last.text) == "26-36 of 36"  # offset 25 + 25 counted > 36 rows: exact
    assert shown(last.text) == every[25:]

    filtered = admin_client.get("/admin/appointment/list", params={"status": "cancelled"})
    assert footer(filtered.text) == "1-12 of 12"
    assert shown(filtered.text) == hospital.references(where=lambda r: r.status is AppointmentStatus.cancelled)


def test_every_page_holds_the_right_rows_and_the_bound_moves_with_the_page(hospital, admin_client, small_bound,
                                                                           five_a_page):
    every = hospital.references()
    seen = []
    for number in range(1, 9):
        page = admin_client.get("/admin/appointment/list", params={"pageSize": 5, "page": number})
        assert page.status_code == 200
        assert shown(page.text) == every[(number - 1) * 5: number * 5]
        seen += shown(page.text)
        offset = (number - 1) * 5
        expected = f"of more than {offset + 10}" if offset + 10 < 36 else "of 36"
        assert footer(page.text).endswith(expected), (number, footer(page.text))
    assert seen == every[:40]
    # Past the end: sent to the last page, which the count found exactly.
    beyond = admin_client.get("/admin/appointment/list", params={"pageSize": 5, "page": 50})
    assert beyond.status_code == 302 and beyond.headers["location"].endswith("page=8")


def test_ties_are_ordered_by_key_so_pages_neither_repeat_nor_skip(hospital, admin_client, five_a_page):
    # Sorting by status: 12 rows share each value; ties go by id, in the sort's direction.
    for direction in ("asc", "desc"):
        rows = []
        for number in range(1, 9):
            page = admin_client.get("/admin/appointment/list", params={
                "sortBy": "status", "sort": direction, "pageSize": 5, "page": number})
            rows += shown(page.text)
        ordered = sorted(hospital.all, key=lambda r: (r.status.value, r.id), reverse=direction == "desc")
        assert rows == [r.reference for r in ordered]


def test_filters_and_search_still_find_the_same_rows(hospital, admin_client):
    dept = hospital.departments[1]
    page = admin_client.get("/admin/appointment/list",
                            params={"status": "confirmed", "department_id": dept.id}).text
    assert shown(page) == hospital.references(
        where=lambda r: r.status is AppointmentStatus.confirmed and r.department_id == dept.id)
    assert footer(page) == "1-6 of 6"

    target = hospital.all[20].reference
    for typed in (target, target.lower(), f"  {target} "):
        found = admin_client.get("/admin/appointment/list", params={"search": typed}).text
        assert shown(found) == [target] and footer(found) == "1-1 of 1", typed
    patient_name = admin_client.get("/admin/appointment/list", params={"search": "Patient"}).text
    assert footer(patient_name) == "1-25 of 36"  # the patient's name is searched as before
    part = target[:3]
    found = admin_client.get("/admin/appointment/list", params={"search": part, "pageSize": 100}).text
    assert shown(found) == hospital.references(where=lambda r: part in r.reference)

    export = admin_client.get("/admin/appointment/export/csv",
                              params={"status": "confirmed", "department_id": dept.id})
    assert export.status_code == 200
    assert shown(export.text) == hospital.references(
        where=lambda r: r.status is AppointmentStatus.confirmed and r.department_id == dept.id)


def test_a_doctor_still_sees_only_their_own_appointments(hospital, client, engine, small_bound, five_a_page):
    mine = hospital.doctors[0]
    make_staff(engine, role=Role.doctor, username="dr", doctor_id=mine.id)
    assert login(client, "dr").status_code == 302
    own = hospital.references(where=lambda r: r.doctor_id == mine.id)
    page = client.get("/admin/appointment/list", params={"pageSize": 5, "page": 2}).text
    assert shown(page) == own[5:10]
    assert footer(page) == "6-10 of more than 15"
    last = client.get("/admin/appointment/list", params={"pageSize": 5, "page": 4}).text
    assert shown(last) == own[15:] and footer(last) == "16-18 of 18"
    other = hospital.references(where=lambda r: r.doctor_id != mine.id)[0]
    searched = client.get("/admin/appointment/list", params={"search": other}).text
    assert shown(searched) == [] and "of 0 items" in searched


def test_the_doctor_filter_lists_a_few_names_and_finds_the_others(hospital, admin_client, engine, monkeypatch):
    from views.appointments import AppointmentView

    extra = [make_doctor(engine, full_name=f"Zhang {n}") for n in range(4)]
    (doctor_filter,) = [f for f in AppointmentView.column_filters if getattr(f, "parameter_name", "") == "doctor_id"]
    monkeypatch.setattr(doctor_filter, "max_choices", 3)

    page = admin_client.get("/admin/appointment/list").text
    assert page.count("doctor_id=") == 4  # "All" and the first three doctors by name
    assert 'name="doctor_id_search"' in page and "First 3 by name" in page
    assert "Zhang 1" not in page

    narrowed = admin_client.get("/admin/appointment/list", params={"doctor_id_search": "zhang 2"}).text
    assert f"doctor_id={extra[2].id}\"" in narrowed and f"doctor_id={extra[1].id}\"" not in narrowed

    picked = admin_client.get("/admin/appointment/list", params={"doctor_id": extra[3].id}).text
    assert "Zhang 3" in picked and shown(picked) == []  # the choice is shown though not among the three
    chosen = hospital.doctors[1]
    picked = admin_client.get("/admin/appointment/list", params={"doctor_id": chosen.id}).text
    assert shown(picked) == hospital.references(where=lambda r: r.doctor_id == chosen.id)


def test_plain_sqladmin_list_is_mounted_only_when_the_benchmark_asks(hospital, engine, monkeypatch):
    from starlette.testclient import TestClient

    from portal.app import create_app
    from portal.core.settings import get_settings

    make_staff(engine, role=Role.admin, username="boss")
    make_staff(engine, role=Role.nurse, username="nurse1")
    with TestClient(create_app(engine), follow_redirects=False) as c:
        assert login(c, "boss").status_code == 302
        assert c.get("/plain-admin/appointment/list").status_code == 404

    monkeypatch.setattr(get_settings(), "portal_bench_plain_admin", True)
    with TestClient(create_app(engine), follow_redirects=False) as c:
        assert c.get("/plain-admin/appointment/list").status_code in (302, 303)  # not logged in
        assert login(c, "boss").status_code == 302
        plain = c.get("/plain-admin/appointment/list", params={"page": 2})
        ours = c.get("/admin/appointment/list", params={"page": 2})
        assert plain.status_code == ours.status_code == 200
        assert shown(plain.text) == shown(ours.text) == hospital.references()[25:]
    with TestClient(create_app(engine), follow_redirects=False) as c:
        assert login(c, "nurse1").status_code == 302
        assert c.get("/plain-admin/appointment/list").status_code == 403


def test_count_at_least_reads_as_more_than():
    count = CountAtLeast(10_000)
    assert int(count) == 10_001 and count.bound == 10_000
    assert str(count) == "more than 10,000" and "%(c)s items" % {"c": count} == "more than 10,000 items"
    assert min(25, count) == 25
