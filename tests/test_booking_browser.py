"""A patient books, looks up and cancels in a real browser (Chromium, phone-sized, JavaScript off);
then a staff member sees the cancelled appointment in the admin.

Needs Debian's Chromium at /usr/bin/chromium (``playwright install`` cannot run here), and a CJK
font (fonts-wqy-microhei) for the Chinese screenshots to be readable.
Screenshots of every step are written to ``tests/artifacts/`` (git-ignored) for review.
"""

from __future__ import annotations

import re
import socket
import threading
import time as _time
from collections.abc import Iterator
from datetime import time, timedelta
from pathlib import Path

import pytest

from portal.core import clock
from tests.factories import PASSWORD, make_clinic_session, make_department, make_doctor, make_staff

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"
PHONE = {"width": 390, "height": 844}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = _time.monotonic() + timeout
    while _time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            _time.sleep(0.05)  # polling interval, not a fixed wait
    raise RuntimeError(f"the server did not start on port {port}")


@pytest.fixture
def server(engine) -> Iterator[str]:
    """A real uvicorn server for the portal on a free port, against the test database."""
    import uvicorn

    from portal.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(engine), host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def chromium():
    """A headless Debian Chromium driven by Playwright."""
    if not CHROMIUM.exists():
        pytest.fail("Chromium is missing at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def hospital(engine):
    """Two departments; Cardiology has a doctor with sessions tomorrow and the day after."""
    cardiology = make_department(engine, code="CARD", name="Cardiology", location="Building B, 3rd floor")
    make_department(engine, code="DERM", name="Dermatology", location="Building C, 1st floor")
    doctor = make_doctor(engine, department=cardiology, full_name="王芳", title="Chief Physician",
                         specialty="Cardiology")
    tomorrow = clock.today() + timedelta(days=1)
    make_clinic_session(engine, doctor=doctor, department=cardiology, day=tomorrow, capacity=12, fee=5000, slot_minutes=12)
    make_clinic_session(engine, doctor=doctor, department=cardiology, day=tomorrow, start=time(13, 30), end=time(17, 0),
                  capacity=2, booked_count=2, fee=5000)
    make_clinic_session(engine, doctor=doctor, department=cardiology, day=tomorrow + timedelta(days=1), capacity=12,
                  fee=5000)
    return make_staff(engine)


TEXT = {
    "en": {"locale": "en-US", "search": "cardio", "department": "Cardiology", "book": "Book this appointment",
           "booked": "Your appointment is booked", "lookup": "Find my booking", "cancel": "Cancel my appointment",
           "cancelled": "Cancelled", "error": "Enter your full name.", "name": "Li Na", "my_booking": "My booking",
           "gender": "Female"},
    "zh": {"locale": "zh-CN", "search": "心血管", "department": "心血管内科", "book": "确认预约",
           "booked": "预约成功", "lookup": "查询我的预约", "cancel": "取消我的预约", "cancelled": "已取消",
           "error": "请填写姓名。", "name": "李娜", "my_booking": "我的预约", "gender": "女"},
}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_patient_books_looks_up_and_cancels_on_a_phone(server, chromium, hospital, engine, lang):
    t = TEXT[lang]
    ARTIFACTS.mkdir(exist_ok=True)
    context = chromium.new_context(viewport=PHONE, locale=t["locale"], java_script_enabled=False,
                                   is_mobile=True, has_touch=True, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(10_000)

    def shot(step: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"booking-{lang}-{step}.png"), full_page=True)

    # 1. find the department by searching
    page.goto(server + "/")
    assert page.locator("html").get_attribute("lang") == ("zh-Hans" if lang == "zh" else "en")
    shot("01-home")
    page.get_by_role("searchbox").fill(t["search"])
    page.get_by_role("searchbox").press("Enter")
    page.wait_for_url(re.compile(r"\?q="))
    shot("02-search")
    page.get_by_role("link", name=re.compile(t["department"])).first.click()
    page.wait_for_url(re.compile(r"/departments/CARD$"))
    shot("03-department")

    # 2. open the first bookable session; send it empty once to see the errors
    page.locator("a.slot-action").first.click()
    page.wait_for_url(re.compile(r"/book/\d+$"))
    shot("04-form")
    page.get_by_role("button", name=t["book"]).click()
    page.wait_for_load_state()
    assert page.locator(".error-summary").is_visible()
    assert t["error"] in page.locator(".error-summary").inner_text()
    shot("05-form-errors")

    # 3. book
    page.locator("#f-full_name").fill(t["name"])
    page.locator("#f-phone").fill("138 0013 8000")
    page.locator("#f-birth_date").fill("1985-07-23")
    page.get_by_label(t["gender"], exact=True).check()
    page.locator("#f-reason").fill("胸闷两周" if lang == "zh" else "Chest tightness for two weeks")
    page.get_by_role("button", name=t["book"]).click()
    page.wait_for_url(re.compile(r"/booked/"))
    assert t["booked"] in page.locator("h1").inner_text()
    reference = page.locator(".reference").inner_text().strip()
    assert re.fullmatch(r"[0-9A-Z]{5}-[0-9A-Z]{5}", reference)
    shot("06-confirmation")

    # 4. look it up (from the menu), in lower case as a patient might type it
    page.get_by_role("link", name=t["my_booking"], exact=True).click()
    page.wait_for_url(re.compile(r"/booking$"))
    page.locator("#f-reference").fill(reference.lower().replace("-", ""))
    page.locator("#f-phone").fill("13800138000")
    shot("07-lookup")
    page.get_by_role("button", name=t["lookup"]).click()
    page.wait_for_url(re.compile(r"/booking/[^/]+$"))
    assert reference in page.locator(".reference").inner_text()
    shot("08-my-booking")

    # 5. cancel
    page.locator("#f-reason").fill("有事不能来" if lang == "zh" else "Cannot come")
    page.get_by_role("button", name=t["cancel"]).click()
    page.wait_for_load_state()
    assert t["cancelled"] in page.locator(".status-badge").inner_text()
    shot("09-cancelled")
    context.close()

    # 6. a staff member sees the appointment as cancelled in the admin
    staff = chromium.new_context(viewport={"width": 1600, "height": 900}, locale="en-US")  # staff use desktops
    admin = staff.new_page()
    admin.goto(server + "/admin/login")
    admin.locator("input[name=username]").fill(hospital.username)
    admin.locator("input[name=password]").fill(PASSWORD)
    admin.locator("button[type=submit]").click()
    admin.wait_for_url(re.compile(r"/admin/?$"))
    admin.goto(server + "/admin/appointment/list")
    row = admin.locator("tr", has_text=reference)
    assert row.count() == 1
    assert "cancelled" in row.inner_text().lower()
    admin.screenshot(path=str(ARTIFACTS / f"booking-{lang}-10-admin.png"), full_page=True)
    staff.close()


def test_a_session_that_fills_up_while_the_form_is_open_offers_other_sessions(server, chromium, hospital, engine):
    """Someone takes the last place between opening the form and sending it."""
    from sqlalchemy import select, update

    from models import ClinicSession
    from portal.core.actor import Actor
    from portal.core.db import transaction
    from portal.services import appointments
    from tests.factories import make_patient

    ARTIFACTS.mkdir(exist_ok=True)
    with transaction(engine) as db:
        first = db.scalars(select(ClinicSession).order_by(ClinicSession.session_date, ClinicSession.start_time)).first()
        db.execute(update(ClinicSession).where(ClinicSession.id == first.id).values(capacity=1))
    context = chromium.new_context(viewport=PHONE, locale="en-US", java_script_enabled=False, is_mobile=True)
    page = context.new_page()
    page.goto(f"{server}/book/{first.id}")
    page.locator("#f-full_name").fill("Chen Jing")
    page.locator("#f-phone").fill("13900001111")
    page.locator("#f-birth_date").fill("1990-03-15")
    page.get_by_label("Male", exact=True).check()
    someone_else = make_patient(engine)
    with transaction(engine) as db:
        appointments.book(db, clinic_session_id=first.id, patient_id=someone_else.id,
                          actor=Actor(username="patient:online"))
    page.get_by_role("button", name="Book this appointment").click()
    page.wait_for_load_state()
    assert "just filled up" in page.locator("h1").inner_text()
    page.screenshot(path=str(ARTIFACTS / "booking-en-11-just-filled.png"), full_page=True)
    page.get_by_role("button", name=re.compile("^Choose")).first.click()
    page.wait_for_load_state()
    assert page.locator("#f-full_name").input_value() == "Chen Jing"
    assert page.locator("#f-phone").input_value() == "13900001111"
    page.screenshot(path=str(ARTIFACTS / "booking-en-12-alternative-prefilled.png"), full_page=True)
    page.get_by_role("button", name="Book this appointment").click()
    page.wait_for_url(re.compile(r"/booked/"))
    context.close()
