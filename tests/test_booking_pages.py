"""The patient booking pages, through HTTP: every page, every refusal, both languages."""

from __future__ import annotations

import html
import re
from datetime import date, datetime, time, timedelta

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.testclient import TestClient

from models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    ClinicSession,
    ClinicSessionStatus,
    Patient,
    ThrottleBucket,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.core.errors import Busy
from portal.core.settings import get_settings
from portal.patient_pages import routes
from portal.services import appointments as appointment_service
from tests.factories import (
    login,
    make_clinic_session,
    make_department,
    make_doctor,
    make_patient,
    make_staff,
)

VALID = {"full_name": "Li Na", "phone": "138 0013 8000", "birth_date": "1985-07-23", "gender": "female"}
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}
#: A valid 18-character resident ID (GB 11643-1999 check character X).
VALID_ID = "11010519491231002X"


# -- helpers ---------------------------------------------------------------------------


def hidden(page: str) -> dict[str, str]:
    """The hidden fields of the first form on ``page`` (CSRF and submission tokens)."""
    fields = {}
    for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page):
        fields.setdefault(name, html.unescape(value))
    return fields


def main_text(page: str) -> str:
    """The text of ``<main>`` with tags removed and white space collapsed."""
    body = page.split("<main", 1)[1].split("</main>", 1)[0]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def open_form(client, clinic_session_id: int, **headers) -> dict[str, str]:
    page = client.get(f"/book/{clinic_session_id}", headers=headers)
    assert page.status_code == 200, page.text
    return hidden(page.text)


def submit(client, clinic_session_id: int, tokens: dict[str, str] | None = None, headers=None, **fields):
    tokens = tokens if tokens is not None else open_form(client, clinic_session_id)
    data = {**tokens, **VALID, **fields}
    return client.post(f"/book/{clinic_session_id}", data={k: v for k, v in data.items() if v is not None},
                       headers=headers or {})


def count(engine, model) -> int:
    with transaction(engine, write=False) as db:
        return db.scalar(select(func.count()).select_from(model))


def booked(engine, clinic_session_id: int) -> int:
    with transaction(engine, write=False) as db:
        return db.scalar(select(ClinicSession.booked_count).where(ClinicSession.id == clinic_session_id))


def only_appointment(engine) -> Appointment:
    with transaction(engine, write=False) as db:
        return db.scalars(select(Appointment)).one()


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=get_settings().tz)


def book_and_follow(client, clinic_session_id: int, **fields):
    response = submit(client, clinic_session_id, **fields)
    assert response.status_code == 303, main_text(response.text)
    confirmation = client.get(response.headers["location"])
    assert confirmation.status_code == 200
    return response.headers["location"], confirmation


def lookup(client, reference: str, phone: str, **headers):
    tokens = hidden(client.get("/booking").text)
    return client.post("/booking", data={**tokens, "reference": reference, "phone": phone}, headers=headers)


@pytest.fixture
def clinic(engine):
    """A department with one doctor and two bookable sessions (tomorrow morning and afternoon)."""
    dept = make_department(engine, code="CARD", name="Cardiology", location="Building B, 3rd floor")
    doctor = make_doctor(engine, department=dept, full_name="Wang Fang", title="Chief Physician",
                         specialty="Cardiology")
    morning = make_clinic_session(engine, doctor=doctor, department=dept, capacity=3, slot_minutes=15, fee=5000)
    afternoon = make_clinic_session(engine, doctor=doctor, department=dept, start=time(13, 30), end=time(17, 0),
                              capacity=3, fee=5000)
    return dept, doctor, morning, afternoon


# -- finding a doctor -----------------------------------------------------------------------


def test_home_lists_active_departments_with_their_free_sessions(client, engine):
    today = clock.today()
    card = make_department(engine, code="CARD", name="Cardiology", location="Building B")
    doctor = make_doctor(engine, department=card)
    make_clinic_session(engine, doctor=doctor, department=card, day=today + timedelta(days=1))
    make_clinic_session(engine, doctor=doctor, department=card, day=today + timedelta(days=13))
    make_clinic_session(engine, doctor=doctor, department=card, day=today + timedelta(days=2), capacity=1, booked_count=1)
    make_clinic_session(engine, doctor=doctor, department=card, day=today + timedelta(days=3), status=ClinicSessionStatus.closed)
    make_clinic_session(engine, doctor=doctor, department=card, day=today + timedelta(days=14))  # beyond 14 days
    make_clinic_session(engine, doctor=doctor, department=card, day=today - timedelta(days=1))  # past
    make_department(engine, code="DERM", name="Dermatology")
    make_department(engine, code="OLD", name="Closed Clinic", is_active=False)

    page = client.get("/")
    assert page.status_code == 200
    text = main_text(page.text)
    assert "Cardiology 2 sessions with free places" in text.replace("Building B ", "")
    assert "Dermatology No free places in the next 14 days" in text
    assert "Closed Clinic" not in text
    assert 'href="/departments/CARD"' in page.text


def test_home_page_counts_with_one_query_whatever_the_number_of_departments(client, engine):
    for n in range(12):
        dept = make_department(engine)
        make_clinic_session(engine, department=dept)
    statements: list[str] = []

    def remember(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", remember)
    try:
        page = client.get("/")
    finally:
        event.remove(engine, "before_cursor_execute", remember)
    assert page.status_code == 200 and page.text.count("1 session with free places") == 12
    versions = [s for s in statements if "catalog_version" in s]  # the page cache's freshness check
    assert len(versions) == 1 and len(statements) == 2, statements


def test_search_by_name_code_and_chinese_name(client, engine):
    make_department(engine, code="CARD", name="Cardiology")
    make_department(engine, code="DERM", name="Dermatology")
    make_department(engine, code="X_1", name="100% Care")

    def names(response):
        return re.findall(r'<span class="department-name">([^<]+)</span>', response.text)

    assert names(client.get("/?q=cardio")) == ["Cardiology"]
    assert names(client.get("/?q=derm")) == ["Dermatology"]
    assert names(client.get("/?q=%25")) == ["100% Care"]  # LIKE wildcards are escaped
    assert names(client.get("/?q=_")) == ["100% Care"]
    assert names(client.get("/?q=心血管", headers=ZH)) == ["心血管内科"]
    nothing = client.get("/?q=zzz")
    assert names(nothing) == [] and "No department matches your search" in nothing.text
    assert 'value="zzz"' in nothing.text


def test_department_page_shows_doctors_and_every_session_state(hospital_clock, app, client, engine):
    today = clock.today()
    dept = make_department(engine, code="CARD", name="Cardiology", location="Building B, 3rd floor")
    doctor = make_doctor(engine, department=dept, full_name="Wang Fang", title="Chief Physician",
                         specialty="Interventional cardiology")
    make_doctor(engine, department=dept, full_name="Retired Doctor", is_active=False)
    make_doctor(engine, department=make_department(engine), full_name="Other Department Doctor")
    tomorrow = today + timedelta(days=1)
    open_ = make_clinic_session(engine, doctor=doctor, department=dept, day=tomorrow, capacity=12, fee=5000)
    full = make_clinic_session(engine, doctor=doctor, department=dept, day=tomorrow, start=time(13, 30),
                         end=time(17, 0), capacity=2, booked_count=2)
    closed = make_clinic_session(engine, doctor=doctor, department=dept, day=today + timedelta(days=2),
                           status=ClinicSessionStatus.closed)
    cancelled = make_clinic_session(engine, doctor=doctor, department=dept, day=today + timedelta(days=3),
                              status=ClinicSessionStatus.cancelled)
    ended = make_clinic_session(engine, doctor=doctor, department=dept, day=today, start=time(8, 0), end=time(12, 0))
    hospital_clock.freeze(local(today, 12, 30))

    page = client.get("/departments/CARD")
    assert page.status_code == 200
    text = main_text(page.text)
    assert "Wang Fang" in text and "Chief Physician" in text and "Interventional cardiology" in text
    assert "Retired Doctor" not in text and "Other Department Doctor" not in text
    assert "Building B, 3rd floor" in text
    assert "12 places left" in text and "¥50.00" in text and "Morning 08:00–12:00" in text
    assert f'href="/book/{open_.id}"' in page.text
    for clinic_session in (full, closed, cancelled, ended):
        assert f'href="/book/{clinic_session.id}"' not in page.text
    for label in ("Full", "Closed for booking", "Cancelled", "Ended"):
        assert label in text
    assert client.get("/departments/card").status_code == 200  # codes are case-insensitive


def test_unknown_or_inactive_department_is_a_friendly_404(client, engine):
    make_department(engine, code="OLD", is_active=False)
    for url in ("/departments/NOPE", "/departments/OLD", "/book/999999", "/book/abc", "/no/such/page"):
        page = client.get(url)
        assert page.status_code == 404, url
        assert "Page not found" in page.text and "Find a doctor" in page.text


# -- booking ---------------------------------------------------------------------------------


def test_booking_registers_a_new_patient_and_confirms(client, engine, clinic):
    dept, doctor, morning, _ = clinic
    form = client.get(f"/book/{morning.id}")
    assert form.status_code == 200
    for label in ("Full name", "Mobile phone number", "Date of birth", "Gender", "Resident ID card number",
                  "Reason for the visit"):
        assert label in form.text
    assert "Wang Fang" in form.text and "¥50.00" in form.text

    location, confirmation = book_and_follow(client, morning.id, national_id=VALID_ID.lower(), reason="  chest pain ")
    assert location.startswith("/booked/")
    appointment = only_appointment(engine)
    text = main_text(confirmation.text)
    assert appointment.reference in text and "Queue number 1" in text
    assert "Estimated time about 08:00" in text
    assert "Wang Fang" in text and "Cardiology" in text and "Building B, 3rd floor" in text
    assert "¥50.00" in text and str(morning.session_date.year) in text
    for item in ("ID card", "medical insurance card", "15 minutes early", "medical records"):
        assert item in text
    assert confirmation.headers["cache-control"] == "no-store"

    with transaction(engine, write=False) as db:
        patient = db.scalars(select(Patient)).one()
        actors = db.scalars(select(AuditEvent.actor)).all()
    assert patient.full_name == "Li Na" and patient.phone == "+8613800138000"
    assert patient.birth_date == date(1985, 7, 23) and patient.national_id == VALID_ID
    assert patient.medical_record_number == f"MRN-{patient.id:08d}"
    assert appointment.patient_id == patient.id and appointment.reason == "chest pain"
    assert appointment.channel.value == "online" and appointment.submission_key
    assert set(actors) == {"patient:online"}
    assert booked(engine, morning.id) == 1


def test_booking_the_last_place_then_the_session_shows_as_full(client, engine, clinic):
    _, _, morning, _ = clinic
    with transaction(engine) as db:
        db.execute(update(ClinicSession).where(ClinicSession.id == morning.id).values(capacity=1))
    book_and_follow(client, morning.id)
    assert booked(engine, morning.id) == 1
    department = client.get("/departments/CARD")
    assert f'href="/book/{morning.id}"' not in department.text and "Full" in main_text(department.text)
    assert "1 session with free places" in client.get("/").text  # only the afternoon is left


def test_second_booking_gets_the_next_number_and_time(client, engine, clinic):
    _, _, morning, _ = clinic
    book_and_follow(client, morning.id)
    _, confirmation = book_and_follow(client, morning.id, full_name="Zhao Lei", phone="13900001111")
    text = main_text(confirmation.text)
    assert "Queue number 2" in text and "about 08:15" in text


def test_an_existing_patient_is_matched_by_phone_and_birth_date(client, engine, clinic):
    _, _, morning, _ = clinic
    known = make_patient(engine, full_name="李娜", phone="+8613800138000", birth_date=date(1985, 7, 23))
    book_and_follow(client, morning.id)
    assert count(engine, Patient) == 1
    assert only_appointment(engine).patient_id == known.id


def test_a_national_id_on_file_with_other_details_is_refused_neutrally(client, engine, clinic):
    _, _, morning, _ = clinic
    make_patient(engine, full_name="Someone Else", phone="+8613911112222", birth_date=date(1970, 1, 1),
                 national_id=VALID_ID)
    response = submit(client, morning.id, national_id=VALID_ID)
    assert response.status_code == 409
    text = main_text(response.text)
    assert "could not match these details to our records" in text and "front desk" in text
    assert "Someone Else" not in response.text and "13911112222" not in response.text
    assert 'value="Li Na"' in response.text  # what was typed is kept
    assert count(engine, Patient) == 1 and count(engine, Appointment) == 0
    assert booked(engine, morning.id) == 0


INVALID = [
    ("full_name", "", "Enter your full name."),
    ("full_name", "Li 2", "A name cannot contain digits or special characters."),
    ("full_name", "<script>alert(1)</script>", "A name cannot contain digits or special characters."),
    ("full_name", "Li\x07Na", "A name cannot contain digits or special characters."),
    ("full_name", "A" * 61, "Use at most 60 characters for the name."),
    ("phone", "", "Enter your mobile phone number."),
    ("phone", "call me", "Enter a phone number of 6 to 15 digits."),
    ("phone", "12345", "Enter a phone number of 6 to 15 digits."),
    ("birth_date", "", "Enter your date of birth."),
    ("birth_date", "23/07/1985", "Enter the date of birth as year-month-day"),
    ("birth_date", "2001-02-30", "Enter the date of birth as year-month-day"),
    ("birth_date", (date.today() + timedelta(days=400)).isoformat(), "cannot be in the future"),
    ("birth_date", "1880-01-01", "cannot be more than 130 years ago"),
    ("gender", None, "Choose your gender"),
    ("gender", "robot", "Choose your gender"),
    ("national_id", "110105194912310021", "This ID number is not valid"),
    ("national_id", "12345", "An ID number has 18 characters"),
    ("national_id", "11010519491231002Y", "An ID number has 18 characters"),
    ("reason", "x" * 301, "Keep this under 300 characters (now 301)."),
]


@pytest.mark.parametrize("field, value, message", INVALID, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(INVALID)])
def test_each_invalid_field_is_explained_and_nothing_is_written(client, engine, clinic, field, value, message):
    _, _, morning, _ = clinic
    typed = {**VALID, "national_id": "", "reason": "keep this text", field: value}
    response = submit(client, morning.id, **typed)
    assert response.status_code == 422
    assert message in html.unescape(response.text)
    # the message sits next to its field, and the summary links to it
    assert f'id="{field}-error"' in response.text and f'href="#f-{field}"' in response.text
    for name, typed_value in typed.items():
        if name != field and name in ("full_name", "phone", "birth_date", "national_id"):
            assert f'value="{html.escape(typed_value)}"' in response.text
    if field != "reason":
        assert ">keep this text</textarea>" in response.text
    if field in ("full_name", "phone", "birth_date", "national_id") and value:
        assert f'value="{html.escape(value, quote=True)}"' in response.text.replace("&#34;", "&quot;").replace("&#39;", "&#x27;")
    assert count(engine, Appointment) == 0 and count(engine, Patient) == 0
    assert booked(engine, morning.id) == 0


@pytest.mark.parametrize("name", ["张伟", "O'Brien", "Jean-Luc Picard", "María José Ñúñez", "约翰·史密斯",
                                  "Nguyễn Văn An", "Zoë d’Arc", "Анна Каренина", "محمد علي"])
def test_names_in_any_script_are_accepted(name):
    from portal.patient_pages.forms import clean_name

    cleaned, error = clean_name(f"  {name}  ")
    assert error is None and cleaned == name


def test_national_id_checksum():
    from portal.patient_pages.forms import clean_national_id
    from portal.services.national_id import national_id_valid

    assert national_id_valid(VALID_ID) and national_id_valid("11010519491231002X")
    assert national_id_valid("440524188001010014")
    assert not national_id_valid("440524188001010015")
    assert clean_national_id(" 110105 19491231 002x ") == (VALID_ID, None)
    assert clean_national_id("110105491231002") == ("110105491231002", None)  # the old 15-digit form
    assert clean_national_id("")[0] is None and clean_national_id("")[1] is None


def test_birth_dates_in_common_formats(client):
    from portal.patient_pages.forms import parse_date

    for text in ("1985-07-23", "1985/7/23", "1985.07.23", "19850723", "1985年7月23日"):
        assert parse_date(text) == date(1985, 7, 23), text


def test_last_place_then_full_session_shows_alternatives(client, engine, clinic):
    dept, doctor, morning, afternoon = clinic
    other_doctor = make_doctor(engine, department=dept, full_name="Zhou Min")
    elsewhere = make_clinic_session(engine, doctor=other_doctor, department=dept, day=clock.today() + timedelta(days=2))
    too_far = make_clinic_session(engine, doctor=other_doctor, department=dept, day=clock.today() + timedelta(days=14))
    with transaction(engine) as db:
        db.execute(update(ClinicSession).where(ClinicSession.id == morning.id).values(capacity=1))
    tokens = open_form(client, morning.id)  # the form is opened while one place is left...
    late_patient = make_patient(engine)
    with transaction(engine) as db:  # ...then someone else takes the last place
        appointment_service.book(db, clinic_session_id=morning.id, patient_id=late_patient.id,
                                 actor=Actor(username="patient:online"))

    response = submit(client, morning.id, tokens, full_name="O'Hara <b>", reason="x")
    assert response.status_code == 422  # invalid name first: validation still runs
    response = submit(client, morning.id, tokens, full_name="Mary O'Hara")
    assert response.status_code == 409 and response.headers["cache-control"] == "no-store"
    text = main_text(response.text)
    assert "Sorry, this session has just filled up" in text
    assert "Other sessions with Wang Fang" in text and "Other doctors in Cardiology" in text
    assert f'action="/book/{afternoon.id}"' in response.text and f'action="/book/{elsewhere.id}"' in response.text
    assert f'action="/book/{morning.id}"' not in response.text
    assert f'action="/book/{too_far.id}"' not in response.text  # beyond the 14 days the pages show
    assert 'name="full_name" value="Mary O&#39;Hara"' in response.text  # details carried, escaped
    assert count(engine, Appointment) == 1 and booked(engine, morning.id) == 1

    # choosing an alternative shows its form filled in, without booking anything
    carried = hidden(response.text)
    chosen = client.post(f"/book/{afternoon.id}", data=carried)
    assert chosen.status_code == 200 and 'value="Mary O&#39;Hara"' in chosen.text
    assert "Book this appointment" in chosen.text and count(engine, Appointment) == 1

    # the full session's own page says so too
    full_page = client.get(f"/book/{morning.id}")
    assert full_page.status_code == 409 and "This session is full" in full_page.text


def test_closed_cancelled_and_ended_sessions_are_not_bookable(hospital_clock, app, client, engine, clinic):
    dept, doctor, morning, afternoon = clinic
    tokens = open_form(client, morning.id)
    with transaction(engine) as db:
        db.execute(update(ClinicSession).where(ClinicSession.id == morning.id).values(status=ClinicSessionStatus.closed))
    response = submit(client, morning.id, tokens)
    assert response.status_code == 409 and "This session is closed for booking" in response.text
    assert count(engine, Appointment) == 0 and count(engine, Patient) == 0

    hospital_clock.freeze(local(afternoon.session_date, 17, 30))
    page = client.get(f"/book/{afternoon.id}")
    assert page.status_code == 409 and "This session has ended" in page.text


def test_a_repeated_submission_books_once(client, engine, clinic):
    _, _, morning, _ = clinic
    tokens = open_form(client, morning.id)
    first = submit(client, morning.id, tokens)
    again = submit(client, morning.id, tokens)
    assert first.status_code == again.status_code == 303
    first_page = client.get(first.headers["location"]).text
    again_page = client.get(again.headers["location"]).text
    reference = only_appointment(engine).reference
    assert reference in first_page and reference in again_page
    assert count(engine, Appointment) == 1 and count(engine, Patient) == 1
    assert booked(engine, morning.id) == 1


def test_a_session_that_filled_while_the_form_was_open_is_answered_without_writing(client, engine, clinic):
    dept, doctor, morning, _ = clinic
    tokens = open_form(client, morning.id)
    for patient in [make_patient(engine) for _ in range(3)]:  # others take the three places meanwhile
        with transaction(engine) as db:
            appointment_service.book(db, clinic_session_id=morning.id, patient_id=patient.id,
                                     actor=Actor(username="frontdesk"))
    response = submit(client, morning.id, tokens)
    assert response.status_code == 409 and "Sorry, this session has just filled up" in response.text
    assert 'value="Li Na"' in response.text  # kept for choosing another session
    assert count(engine, ThrottleBucket) == 0  # no rate-limit hit: nothing could be written
    assert count(engine, Patient) == 3 and booked(engine, morning.id) == 3


def test_repeating_the_submission_that_took_the_last_place_shows_that_booking(client, engine):
    last = make_clinic_session(engine, capacity=1)
    tokens = open_form(client, last.id)
    first = submit(client, last.id, tokens)
    again = submit(client, last.id, tokens)  # the session is full now: this form's own booking counts
    assert first.status_code == again.status_code == 303
    assert again.headers["location"] == first.headers["location"]
    assert count(engine, Appointment) == 1


def test_booking_again_with_a_new_form_is_refused_without_revealing_the_reference(client, engine, clinic):
    _, _, morning, _ = clinic
    book_and_follow(client, morning.id)
    again = submit(client, morning.id)  # a freshly opened form: a new submission token
    assert again.status_code == 409
    assert "You already have a booking in this session" in again.text
    assert only_appointment(engine).reference not in again.text
    assert count(engine, Appointment) == 1


def test_a_stale_or_forged_submission_token_books_nothing(client, engine, clinic):
    _, _, morning, afternoon = clinic
    tokens = open_form(client, morning.id)
    for submission in ("", "forged", hidden(client.get(f"/book/{afternoon.id}").text)["submission"]):
        response = submit(client, morning.id, {**tokens, "submission": submission})
        assert response.status_code == 400
        assert "This form was open for too long" in response.text
        assert 'value="Li Na"' in response.text
    assert count(engine, Appointment) == 0 and count(engine, Patient) == 0


# -- my booking: lookup and cancel ---------------------------------------------------------------


def test_lookup_with_right_details_shows_the_booking(client, engine, clinic):
    _, _, morning, _ = clinic
    book_and_follow(client, morning.id)
    reference = only_appointment(engine).reference
    typed = reference.lower().replace("-", " ").replace("0", "o")  # sloppy typing is fine
    response = lookup(client, typed, "+86 138-0013-8000")
    assert response.status_code == 303 and response.headers["location"].startswith("/booking/")
    page = client.get(response.headers["location"])
    text = main_text(page.text)
    assert reference in text and "Status: Booked" in text and "Cancel my appointment" in text
    assert page.headers["cache-control"] == "no-store"


def test_lookup_with_wrong_reference_or_phone_gives_one_neutral_message(client, engine, clinic):
    _, _, morning, _ = clinic
    book_and_follow(client, morning.id)
    reference = only_appointment(engine).reference
    wrong_reference = lookup(client, "ZZZZZ-ZZZZZ" if reference != "ZZZZZ-ZZZZZ" else "YYYYY-YYYYY", "13800138000")
    wrong_phone = lookup(client, reference, "13800138001")
    assert wrong_reference.status_code == wrong_phone.status_code == 404

    def alert(response):
        return re.search(r'<div class="error-summary".*?</div>', response.text, re.S).group(0)

    assert alert(wrong_reference) == alert(wrong_phone)
    assert "We could not find a booking with this reference and phone number" in alert(wrong_phone)
    assert reference not in alert(wrong_phone)

    malformed = lookup(client, "abc", "")
    assert malformed.status_code == 422
    assert "A booking reference has 10 letters and digits" in malformed.text
    assert "Enter your mobile phone number." in malformed.text


def test_cancel_releases_the_place(client, engine, clinic):
    _, _, morning, _ = clinic
    _, confirmation = book_and_follow(client, morning.id)
    manage = re.search(r'href="(/booking/[^"]+)"', confirmation.text).group(1)
    page = client.get(manage)
    response = client.post(f"{manage}/cancel", data={**hidden(page.text), "reason": "Feeling better"})
    assert response.status_code == 303 and response.headers["location"] == manage
    after = client.get(manage)
    text = main_text(after.text)
    assert "Status: Cancelled" in text and "place has been given back" in text
    assert "Cancel my appointment" not in text
    appointment = only_appointment(engine)
    assert appointment.status is AppointmentStatus.cancelled and appointment.cancel_reason == "Feeling better"
    assert booked(engine, morning.id) == 0

    again = client.post(f"{manage}/cancel", data=hidden(page.text))  # a second click changes nothing
    assert again.status_code == 409 and "can no longer be cancelled online" in again.text


def test_cancel_without_reason_records_a_default(client, engine, clinic):
    _, _, morning, _ = clinic
    location, _ = book_and_follow(client, morning.id)
    manage = location.replace("/booked/", "/booking/")
    client.post(f"{manage}/cancel", data=hidden(client.get(manage).text))
    assert only_appointment(engine).cancel_reason == "Cancelled by the patient online"


def test_cancel_after_the_session_started_is_refused(hospital_clock, app, client, engine, clinic):
    _, _, morning, _ = clinic
    location, _ = book_and_follow(client, morning.id)
    manage = location.replace("/booked/", "/booking/")
    tokens = hidden(client.get(manage).text)
    hospital_clock.freeze(local(morning.session_date, 8, 30))
    response = client.post(f"{manage}/cancel", data=tokens)
    assert response.status_code == 409
    assert "can no longer be cancelled online" in response.text and "front desk" in response.text
    assert only_appointment(engine).status is AppointmentStatus.pending
    assert booked(engine, morning.id) == 1
    page = client.get(manage)
    assert "Cancel my appointment" not in page.text and "The session has started" in page.text


def test_signed_links_cannot_be_forged_or_guessed(client, engine, clinic):
    _, _, morning, _ = clinic
    location, _ = book_and_follow(client, morning.id)
    token = location.rsplit("/", 1)[1]
    for url in (f"/booking/{token}x", "/booking/1", "/booked/MQ", f"/booking/{routes.tokens.sign(1, purpose='other')}"):
        page = client.get(url)
        assert page.status_code == 404 and "This link no longer works" in page.text
    cancel = client.post("/booking/1/cancel", data=hidden(client.get("/booking").text))
    assert cancel.status_code == 404
    assert only_appointment(engine).status is AppointmentStatus.pending


# -- CSRF, rate limits, failures -------------------------------------------------------------------


def test_posts_without_a_valid_csrf_token_are_refused(client, engine, clinic):
    _, _, morning, _ = clinic
    tokens = open_form(client, morning.id)
    for bad in ({}, {"csrf_token": "forged"}, {"csrf_token": routes.tokens.csrf_token("another-browser-value!")}):
        data = {**VALID, "submission": tokens["submission"], **bad}
        response = client.post(f"/book/{morning.id}", data=data)
        assert response.status_code == 403 and "This form has expired" in response.text
    stranger = TestClient(client.app, follow_redirects=False)  # no CSRF cookie at all
    assert stranger.post(f"/book/{morning.id}", data={**tokens, **VALID}).status_code == 403
    assert count(engine, Appointment) == 0 and count(engine, Patient) == 0

    assert client.post("/booking", data={"reference": "ZZZZZ-ZZZZZ", "phone": "13800138000"}).status_code == 403
    location, _ = book_and_follow(client, morning.id)
    manage = location.replace("/booked/", "/booking/")
    assert client.post(f"{manage}/cancel", data={"csrf_token": "x"}).status_code == 403
    assert only_appointment(engine).status is AppointmentStatus.pending


def test_the_csrf_cookie_is_httponly_and_strict(client):
    response = client.get("/booking")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{routes.CSRF_COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "set-cookie" not in client.get("/booking").headers  # set once per browser


def test_too_many_lookups_get_429_with_retry_after(client, engine):
    for _ in range(get_settings().lookup_rate_limit):
        assert lookup(client, "ZZZZZ-ZZZZZ", "13800138000").status_code == 404
    refused = lookup(client, "ZZZZZ-ZZZZZ", "13800138000")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert "Please wait a moment" in refused.text
    other_client = TestClient(client.app, follow_redirects=False, client=("203.0.113.9", 50000))
    assert lookup(other_client, "ZZZZZ-ZZZZZ", "13800138000").status_code == 404  # per client address


def test_too_many_bookings_get_429(client, engine, clinic):
    _, _, morning, _ = clinic
    tokens = open_form(client, morning.id)
    for _ in range(get_settings().booking_rate_limit):
        assert submit(client, morning.id, tokens).status_code == 303
    refused = submit(client, morning.id, tokens)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert count(engine, Appointment) == 1


def test_the_booking_limit_per_address_comes_from_the_setting(client, engine, clinic, monkeypatch):
    monkeypatch.setenv("BOOKING_RATE_LIMIT", "2")
    from portal.core.settings import Settings

    assert Settings().booking_rate_limit == 2 and Settings(_env_file=None).lookup_rate_limit == 10
    monkeypatch.setattr(get_settings(), "booking_rate_limit", 2)
    _, _, morning, _ = clinic
    tokens = open_form(client, morning.id)
    assert [submit(client, morning.id, tokens).status_code for _ in range(3)] == [303, 303, 429]


def test_busy_database_gives_503_and_surprises_give_a_plain_apology(client, engine, clinic, monkeypatch):
    _, _, morning, _ = clinic
    tokens = open_form(client, morning.id)

    def busy(*args, **kwargs):
        raise Busy()

    monkeypatch.setattr(routes.booking, "book_online", busy)
    response = submit(client, morning.id, tokens)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert "We are very busy" in response.text

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    def no_connection(*args, **kwargs):
        raise PoolTimeout("QueuePool limit of size 10 overflow 0 reached, connection timed out, timeout 10.00")

    monkeypatch.setattr(routes.booking, "book_online", no_connection)
    response = submit(client, morning.id, tokens)
    assert response.status_code == 503 and "We are very busy" in response.text

    monkeypatch.setattr(routes.booking, "book_online", broken)
    response = submit(client, morning.id, tokens)
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert count(engine, Appointment) == 0


# -- languages, escaping, headers, admin -------------------------------------------------------------


def test_accept_language_chinese_and_the_cookie_overrides_it(client, engine, clinic):
    _, _, morning, _ = clinic
    zh = client.get("/", headers=ZH)
    assert '<html lang="zh-Hans">' in zh.text and "预约挂号" in zh.text and "心血管内科" in zh.text
    assert zh.headers["content-language"] == "zh-Hans"
    assert '<html lang="en">' in client.get("/", headers={"Accept-Language": "en-GB,en;q=0.9"}).text
    assert '<html lang="zh-Hans">' in client.get("/", headers={"Accept-Language": "fr, zh-TW;q=0.5"}).text

    switch = client.get("/language/en?next=/booking")
    assert switch.status_code == 303 and switch.headers["location"] == "/booking"
    assert "lang=en" in switch.headers["set-cookie"]
    client.cookies.set("lang", "en")
    assert '<html lang="en">' in client.get("/", headers=ZH).text
    client.cookies.set("lang", "zh")
    page = client.get(f"/departments/{clinic[0].code}")
    assert "主任医师" in page.text and "上午" in page.text and "周" in page.text  # weekday in Chinese
    assert "English" in page.text and 'href="/language/en?next=%2Fdepartments%2FCARD"' in page.text


def test_the_language_switch_only_returns_to_this_site(client):
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = client.get("/language/zh", params={"next": target})
        assert response.headers["location"] == "/"


def test_booking_in_chinese_end_to_end(client, engine, clinic):
    _, _, morning, _ = clinic
    client.cookies.set("lang", "zh")
    bad = submit(client, morning.id, full_name="")
    assert bad.status_code == 422 and "请填写姓名。" in bad.text
    _, confirmation = book_and_follow(client, morning.id, full_name="李娜")
    text = main_text(confirmation.text)
    assert "预约成功" in text and "排队号 1" in text and "约 08:00" in text and "星期" in text
    assert "请提前 15 分钟到达" in text


def test_output_is_escaped_everywhere(client, engine):
    dept = make_department(engine, code="ESC", name="<i>Dept</i>", location="<b>here</b>")
    doctor = make_doctor(engine, department=dept, full_name="<script>alert(1)</script>", title="<u>t</u>")
    clinic_session = make_clinic_session(engine, doctor=doctor, department=dept)
    make_patient(engine, full_name="<script>alert(2)</script>", phone="+8613800138000", birth_date=date(1985, 7, 23))
    for url in ("/", "/departments/ESC", f"/book/{clinic_session.id}", "/?q=%3Cscript%3E"):
        page = client.get(url)
        assert "<script>" not in page.text and "<i>Dept" not in page.text and "<b>here" not in page.text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/departments/ESC").text
    _, confirmation = book_and_follow(client, clinic_session.id)  # matches the patient named <script>
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in confirmation.text and "<script>" not in confirmation.text
    typed = submit(client, clinic_session.id, full_name='"><script>alert(3)</script>')
    assert typed.status_code == 422 and "<script>" not in typed.text


def test_security_headers_on_patient_pages_and_the_admins_own_policy(client, engine, clinic):
    for url in ("/", "/booking", "/departments/CARD", "/no-such-page", "/static/booking.css"):
        response = client.get(url)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp and "base-uri 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")
        assert response.headers["x-frame-options"] == "DENY"
    assert client.get("/static/booking.css").headers["content-type"].startswith("text/css")
    # The admin has its own policy (inline scripts with a nonce: tests/test_admin_hardening.py).
    admin = client.get("/admin/login")
    assert admin.status_code == 200 and "'nonce-" in admin.headers["content-security-policy"]


def test_pages_have_no_inline_scripts_or_styles(client, engine, clinic):
    _, _, morning, _ = clinic
    pages = [client.get(u).text for u in ("/", "/departments/CARD", f"/book/{morning.id}", "/booking")]
    pages.append(submit(client, morning.id, full_name="").text)
    for page in pages:
        assert "<script" not in page and "<style" not in page and " style=" not in page
        assert re.search(r"\son[a-z]+=", page) is None  # no inline event handlers


def test_a_booking_made_online_appears_in_the_admin_list(client, engine, clinic):
    _, _, morning, _ = clinic
    book_and_follow(client, morning.id)
    reference = only_appointment(engine).reference
    staff = make_staff(engine)
    assert login(client, staff.username).status_code == 302
    listing = client.get("/admin/appointment/list")
    assert listing.status_code == 200 and reference in listing.text
