"""Rendered patient pages kept in memory are never stale: every change shows on the next request.

The pages are cached per process, keyed by catalog versions that database triggers raise in
the same transaction as any change (portal/patient_pages/page_cache.py, migration 0003). These
tests change the data the way other processes would (another connection, plain SQL, the
booking service) and read the pages again through HTTP.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import threading
from datetime import datetime, time, timedelta
from time import monotonic

import pytest
from jinja2 import UndefinedError
from sqlalchemy import delete, event, select, text, update

from models import Appointment, CatalogVersion, ClinicSession, ClinicSessionStatus, Department, Doctor, DoctorDepartment
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import run_in_transaction, transaction
from portal.core.settings import get_settings
from portal.patient_pages.page_cache import VersionWatch
from portal.patient_pages.routes import Page
from portal.services import appointments
from portal.services.timetable import DOCTORS_PER_PAGE
from tests.factories import make_clinic_session, make_department, make_doctor, make_patient

MIGRATION = importlib.import_module("migrations.versions.20261121_0003_catalog_version")
#: The catalog triggers at head: revision 0003's, those on the clinic session table renamed by 0005.
HEAD_TRIGGERS = {name.replace("_schedule_", "_clinic_session_") for name, *_ in MIGRATION.TRIGGERS}
STAFF = Actor(username="frontdesk", role="receptionist")


def versions(engine) -> dict[int, int]:
    with transaction(engine, write=False) as db:
        return dict(db.execute(select(CatalogVersion.department_id, CatalogVersion.version)).all())


def run_sql(engine, statement) -> None:
    with transaction(engine) as db:
        db.execute(statement)


def book_link(clinic_session: ClinicSession) -> str:
    return f'href="/book/{clinic_session.id}"'


def fill(engine, clinic_session: ClinicSession) -> None:
    """Book every free place of ``clinic_session`` through the booking service (as the front desk would)."""
    for _ in range(clinic_session.capacity - clinic_session.booked_count):
        patient = make_patient(engine)
        run_in_transaction(appointments.book, clinic_session_id=clinic_session.id, patient_id=patient.id, actor=STAFF,
                           engine=engine)


@pytest.fixture
def clinic(engine):
    dept = make_department(engine, code="CARD", name="Cardiology", location="Building B")
    other = make_department(engine, code="DERM", name="Dermatology")
    doctor = make_doctor(engine, department=dept, full_name="Wang Fang")
    clinic_session = make_clinic_session(engine, doctor=doctor, department=dept, capacity=2)
    return dept, other, doctor, clinic_session


# -- the triggers ----------------------------------------------------------------------------


def test_every_trigger_exists_at_head(engine):
    if engine.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
    with engine.connect() as conn:
        found = {row[0] for row in conn.execute(text(sql))}
    assert HEAD_TRIGGERS <= found  # a batch migration may drop them on SQLite


def test_each_kind_of_change_raises_the_version_of_the_departments_concerned(engine, clinic):
    dept, other, doctor, clinic_session = clinic
    also = make_department(engine, code="ALSO")
    run_sql(engine, DoctorDepartment.__table__.insert().values(doctor_id=doctor.id, department_id=also.id))
    changes = [
        ({dept.id}, update(Department).where(Department.id == dept.id).values(location="Building C")),
        ({dept.id}, update(ClinicSession).where(ClinicSession.id == clinic_session.id).values(booked_count=1)),
        ({dept.id}, update(ClinicSession).where(ClinicSession.id == clinic_session.id).values(fee=9900)),
        ({dept.id, other.id}, update(ClinicSession).where(ClinicSession.id == clinic_session.id).values(department_id=other.id)),
        ({other.id}, delete(ClinicSession).where(ClinicSession.id == clinic_session.id)),
        ({dept.id, also.id}, update(Doctor).where(Doctor.id == doctor.id).values(title="Chief Physician")),
        ({also.id}, delete(DoctorDepartment).where(DoctorDepartment.department_id == also.id)),
        ({dept.id}, delete(Doctor).where(Doctor.id == doctor.id)),  # its links go by cascade
    ]
    for concerned, statement in changes:
        before = versions(engine)
        run_sql(engine, statement)
        after = versions(engine)
        raised = {d for d in after if after[d] != before.get(d)}
        assert raised == concerned, statement
        assert all(after[d] > before[d] for d in raised)
    newcomer = make_department(engine, code="NEW")
    assert versions(engine)[newcomer.id] >= 1


# -- the pages -------------------------------------------------------------------------------


def test_a_cached_page_is_served_without_reading_its_data_again(client, engine, clinic):
    statements: list[str] = []

    def remember(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    assert client.get("/departments/CARD").status_code == 200
    event.listen(engine, "before_cursor_execute", remember)
    try:
        again = client.get("/departments/CARD")
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert again.status_code == 200 and "Wang Fang" in again.text
    assert len(statements) == 1 and "catalog_version" in statements[0], statements


def test_a_change_to_a_department_shows_on_the_next_request(client, engine, clinic):
    dept, *_ = clinic
    assert "Building B" in client.get("/departments/CARD").text
    assert "Cardiology" in client.get("/").text
    run_sql(engine, update(Department).where(Department.id == dept.id).values(location="Building C, 2nd floor",
                                                                               name="Heart Centre"))
    assert "Building C, 2nd floor" in client.get("/departments/CARD").text
    home = client.get("/").text
    assert "Heart Centre" in home and "Cardiology" not in home
    run_sql(engine, update(Department).where(Department.id == dept.id).values(is_active=False))
    assert client.get("/departments/CARD").status_code == 404
    assert "Heart Centre" not in client.get("/").text


def test_a_change_to_a_clinic_session_or_doctor_shows_on_the_next_request(client, engine, clinic):
    dept, _, doctor, clinic_session = clinic
    page = client.get("/departments/CARD").text
    assert "¥20.00" in page and "08:00–12:00" in page
    run_sql(engine, update(ClinicSession).where(ClinicSession.id == clinic_session.id).values(fee=5000, start_time=time(9, 0)))
    page = client.get("/departments/CARD").text
    assert "¥50.00" in page and "09:00–12:00" in page
    added = make_clinic_session(engine, doctor=doctor, department=dept, start=time(13, 30), end=time(17, 0))
    assert book_link(added) in client.get("/departments/CARD").text
    run_sql(engine, update(Doctor).where(Doctor.id == doctor.id).values(full_name="Wang Fang-Li"))
    assert "Wang Fang-Li" in client.get("/departments/CARD").text
    run_sql(engine, update(ClinicSession).where(ClinicSession.id == added.id).values(status=ClinicSessionStatus.closed))
    page = client.get("/departments/CARD").text
    assert book_link(added) not in page and "Closed for booking" in page


def test_a_filled_session_never_shows_as_bookable(client, engine, clinic):
    _, _, _, clinic_session = clinic
    assert book_link(clinic_session) in client.get("/departments/CARD").text
    assert "1 session with free places" in client.get("/").text
    fill(engine, clinic_session)
    page = client.get("/departments/CARD").text
    assert book_link(clinic_session) not in page and "Full" in page
    assert "No free places in the next 14 days" in client.get("/").text
    with transaction(engine, write=False) as db:
        appointment_id = db.scalars(select(Appointment.id)).first()
    run_in_transaction(appointments.cancel, appointment_id, reason="patient called", actor=STAFF, engine=engine)
    assert book_link(clinic_session) in client.get("/departments/CARD").text  # a place given back shows too


def test_pages_read_while_a_session_fills_never_show_it_bookable_after_the_fill(client, engine, clinic):
    """Readers in threads hammer the page while the last places are booked: no read that
    started after the booking committed may offer the session."""
    _, _, _, clinic_session = clinic
    committed_at: list[float] = []
    seen: list[tuple[float, bool]] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            started = monotonic()
            body = client.get("/departments/CARD").text
            seen.append((started, book_link(clinic_session) in body))

    failures: list[BaseException] = []

    def guarded_reader():
        try:
            reader()
        except BaseException as exc:  # a dead reader fails the test instead of hanging it
            failures.append(exc)
            stop.set()

    def wait_for_reads(count: int) -> None:
        deadline = monotonic() + 60
        while len(seen) < count and not stop.is_set():
            assert monotonic() < deadline, f"the readers made {len(seen)} of {count} reads in 60 s"
            stop.wait(0.01)
        assert not failures, f"a reader failed: {failures[0]!r}"

    readers = [threading.Thread(target=guarded_reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        wait_for_reads(8)  # let the readers fill the cache first
        fill(engine, clinic_session)
        committed_at.append(monotonic())
        wait_for_reads(len(seen) + 20)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=60)
    assert not any(t.is_alive() for t in readers), "a reader never returned"
    after = [offered for started, offered in seen if started > committed_at[0]]
    assert after and not any(after)
    assert any(offered for started, offered in seen if started < committed_at[0])


def test_a_page_changes_by_itself_when_a_session_ends_or_the_day_changes(hospital_clock, app, client, engine, clinic):
    dept, _, doctor, _ = clinic
    today = clock.today()
    tz = get_settings().tz
    later_today = make_clinic_session(engine, doctor=doctor, department=dept, day=today, start=time(14, 0),
                                end=time(17, 0))
    hospital_clock.freeze(datetime.combine(today, time(16, 59), tzinfo=tz))
    assert book_link(later_today) in client.get("/departments/CARD").text
    assert "2 sessions with free places" in client.get("/").text
    hospital_clock.freeze(datetime.combine(today, time(17, 0), tzinfo=tz))
    page = client.get("/departments/CARD").text
    assert book_link(later_today) not in page and "Ended" in page
    assert "1 session with free places" in client.get("/").text
    hospital_clock.freeze(datetime.combine(today + timedelta(days=1), time(0, 0), tzinfo=tz))
    page = client.get("/departments/CARD").text
    assert book_link(later_today) not in page and "Ended" not in page  # yesterday is off the timetable


def test_a_shared_page_cannot_carry_a_csrf_token(app, client):
    from starlette.requests import Request

    request = Request({"type": "http", "method": "GET", "path": "/booking", "query_string": b"", "headers": [],
                       "app": app})
    page = Page.of(request)
    assert "csrf_token" in page.html("lookup.html", form=_empty_lookup(), problem=None)
    with pytest.raises(UndefinedError):
        page.html("lookup.html", shared=True, form=_empty_lookup(), problem=None)


def test_shared_pages_set_no_cookie_and_the_booking_form_sets_the_csrf_cookie(client, clinic):
    *_, clinic_session = clinic
    for url in ("/", "/departments/CARD"):
        assert "set-cookie" not in client.get(url).headers, url  # the same bytes for every visitor
    form = client.get(f"/book/{clinic_session.id}")
    assert form.headers["set-cookie"].startswith("portal_csrf=") and 'name="csrf_token"' in form.text


def _empty_lookup():
    from portal.patient_pages.forms import LookupForm

    return LookupForm.empty()


# -- pages of doctors ----------------------------------------------------------------------------


def test_a_large_department_shows_its_doctors_page_by_page(client, engine):
    dept = make_department(engine, code="BIG", name="Big Department")
    doctors = [make_doctor(engine, department=dept, full_name=f"Doctor {i:03d}") for i in range(DOCTORS_PER_PAGE + 5)]
    first = client.get("/departments/BIG")
    names = re.findall(r'<h2 id="doctor-\d+">([^<]+)</h2>', first.text)
    assert names == [d.full_name for d in doctors[:DOCTORS_PER_PAGE]]
    assert f"Doctors 1–{DOCTORS_PER_PAGE} of {DOCTORS_PER_PAGE + 5}" in first.text
    assert 'href="/departments/BIG?page=2"' in first.text
    second = client.get("/departments/BIG?page=2")
    assert re.findall(r'<h2 id="doctor-\d+">([^<]+)</h2>', second.text) == [d.full_name for d in doctors[20:]]
    assert 'href="/departments/BIG"' in second.text and "?page=3" not in second.text
    for bad in ("3", "0", "abc", "-1"):
        assert client.get(f"/departments/BIG?page={bad}").status_code == 404, bad


# -- the version watch ---------------------------------------------------------------------------


def test_a_version_read_that_started_before_a_request_is_not_used_for_it(engine, clinic):
    """A request arriving while a read is under way waits for the next read: it sees a change
    committed between the two, although the earlier read's answer is older."""
    dept, *_ = clinic
    watch = VersionWatch(engine)
    first_read_done = threading.Event()
    release = threading.Event()

    def hold_the_first_read(conn, cursor, statement, *args):
        if "catalog_version" in statement and not first_read_done.is_set():
            first_read_done.set()
            release.wait(30)

    async def scenario():
        loop = asyncio.get_running_loop()
        early = asyncio.ensure_future(watch.current())
        await loop.run_in_executor(None, first_read_done.wait, 30)  # its answer is taken, not yet returned
        await loop.run_in_executor(None, run_sql, engine,
                                   update(Department).where(Department.id == dept.id).values(location="Moved"))
        late = asyncio.ensure_future(watch.current())
        await asyncio.sleep(0)  # one loop step: `late` arrives while the first read is under way
        release.set()
        return await early, await late

    event.listen(engine, "after_cursor_execute", hold_the_first_read)
    try:
        early, late = asyncio.run(scenario())
    finally:
        event.remove(engine, "after_cursor_execute", hold_the_first_read)
        release.set()
    assert late[dept.id] == early[dept.id] + 1


def test_pages_survive_the_loss_of_the_kept_version_connection(client, engine, clinic, mysql_only):
    """The version reader keeps one connection; when the server drops it (restart, idle
    timeout), the next request reads again on a new connection instead of failing."""
    assert client.get("/departments/CARD").status_code == 200
    with engine.connect() as conn:
        others = conn.execute(text("SELECT id FROM information_schema.processlist "
                                   "WHERE db = DATABASE() AND id <> CONNECTION_ID()")).scalars().all()
        for connection_id in others:
            conn.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    assert others  # the kept one among them
    page = client.get("/departments/CARD")
    assert page.status_code == 200 and "Wang Fang" in page.text


def test_an_app_started_twice_serves_its_pages_both_times(app, clinic):
    from starlette.testclient import TestClient

    for _ in range(2):  # the version reader gives its connection back at shutdown and reads again after
        with TestClient(app) as client:
            assert "Wang Fang" in client.get("/departments/CARD").text
