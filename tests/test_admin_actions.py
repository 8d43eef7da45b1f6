"""Workflow actions in the admin, through HTTP: confirmation pages, CSRF, per-row
outcomes, flash messages, and the custom pages (booking, stock)."""

from __future__ import annotations

import html
import re
import time as _time
from datetime import time, timedelta

import itsdangerous
from sqlalchemy import func, select, update

from models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    BatchStatus,
    ClinicSession,
    ClinicSessionStatus,
    MovementKind,
    Prescription,
    PrescriptionStatus,
    Role,
    StockBatch,
    StockMovement,
)
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.services import appointments as svc
from tests.admin_html import csrf_token_of
from tests.factories import (
    PASSWORD,
    assert_ledger_consistent,
    login,
    make_batch,
    make_clinic_session,
    make_medicine,
    make_patient,
    make_prescription,
    make_staff,
    make_supplier,
)

S = AppointmentStatus
CLERK = Actor(username="setup")


# -- helpers ---------------------------------------------------------------------------

def staff_login(client, engine, role: Role = Role.admin, **kw):
    """Create a staff member, log ``client`` in as them, return the user."""
    user = make_staff(engine, role=role, **kw)
    assert login(client, user.username, PASSWORD).status_code == 302
    return user


def token_from(page_text: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page_text)
    assert match, "no CSRF token on the page"
    return match.group(1)


def action_url(identity: str, slug: str) -> str:
    return f"/admin/{identity}/action/{slug}"


def open_action(client, identity, slug, pks):
    """GET the confirmation page; returns (response, token)."""
    response = client.get(action_url(identity, slug), params={"pks": ",".join(map(str, pks))})
    assert response.status_code == 200, response.text
    return response, token_from(response.text)


def do_action(client, identity, slug, pks, **fields):
    """Open the confirmation page, then submit it with ``fields``; returns the POST response."""
    _, token = open_action(client, identity, slug, pks)
    data = {"csrf_token": token, "pks": ",".join(map(str, pks)), "next": f"/admin/{identity}/list", **fields}
    return client.post(action_url(identity, slug), data=data)


def flashes(client, response) -> list[tuple[str, str]]:
    """Follow a redirect and return the (category, text) flash messages it shows."""
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    found = re.findall(r'text-bg-(\w+)".*?<div class="toast-body"[^>]*>(.*?)</div>', page.text, re.S)
    return [(category, html.unescape(" ".join(text.split()))) for category, text in found]


def book(engine, clinic_session, patient=None):
    patient = patient or make_patient(engine)
    with transaction(engine) as db:
        return svc.book(db, clinic_session_id=clinic_session.id, patient_id=patient.id, actor=CLERK).appointment


def status_of(engine, appointment_id):
    with transaction(engine, write=False) as db:
        return db.get(Appointment, appointment_id).status


def audit_rows(engine, action=None):
    with transaction(engine, write=False) as db:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        return db.scalars(stmt).all()


def todays_clinic_session(engine, **kw):
    return make_clinic_session(engine, day=clock.today(), start=time(0, 0), end=time(23, 59), **kw)


def move(engine, fn, appointment_id, **kw):
    with transaction(engine) as db:
        return fn(db, appointment_id, actor=CLERK, **kw)


# -- the confirmation page ----------------------------------------------------------------

def test_get_shows_what_will_happen_and_changes_nothing(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    a, b = book(engine, s), book(engine, s)
    before = len(audit_rows(engine))
    response, _ = open_action(client, "appointment", "confirm", [a.id, b.id])
    assert "Confirm 2 appointments" in response.text
    assert a.reference in response.text and b.reference in response.text
    assert 'method="POST"' in response.text
    assert status_of(engine, a.id) is S.pending and status_of(engine, b.id) is S.pending
    assert len(audit_rows(engine)) == before


def test_nothing_selected_says_so(client, engine):
    staff_login(client, engine)
    response = client.get(action_url("appointment", "confirm"), params={"pks": ""})
    assert response.status_code == 200
    assert "No appointments are selected" in response.text


def test_buttons_on_list_and_detail_pages(client, engine):
    staff_login(client, engine)
    a = book(engine, make_clinic_session(engine))
    listing = client.get("/admin/appointment/list").text
    for slug in ("confirm", "check-in", "complete", "cancel", "no-show"):
        assert f'action-custom-{slug}"' in listing
    assert listing.index("action-custom-confirm") < listing.index("action-custom-no-show")
    assert "Book appointment" in listing
    detail = client.get(f"/admin/appointment/details/{a.id}").text
    assert f"/admin/appointment/action/confirm?pks={a.id}" in detail


# -- appointment actions --------------------------------------------------------------------

def test_confirm_changes_status_and_audits_the_staff_member(client, engine):
    user = staff_login(client, engine, role=Role.receptionist)
    a = book(engine, make_clinic_session(engine))
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id]))
    assert messages == [("success", f"1 appointment confirmed: {a.reference}.")]
    assert status_of(engine, a.id) is S.confirmed
    event = audit_rows(engine, "confirm")[-1]
    assert (event.actor, event.actor_id, event.entity, event.entity_id) == (
        user.username, user.id, "appointment", str(a.id))


def test_check_in_complete_and_no_show(client, engine):
    user = staff_login(client, engine)
    s = todays_clinic_session(engine)
    a, b = book(engine, s), book(engine, s)
    move(engine, svc.confirm, b.id)
    assert flashes(client, do_action(client, "appointment", "check-in", [a.id]))[0][0] == "success"
    assert status_of(engine, a.id) is S.checked_in
    assert flashes(client, do_action(client, "appointment", "complete", [a.id]))[0][0] == "success"
    assert status_of(engine, a.id) is S.completed
    # the session "ends" for the no-show
    with transaction(engine) as db:
        db.execute(update(ClinicSession).where(ClinicSession.id == s.id).values(end_time=time(0, 1)))
    messages = flashes(client, do_action(client, "appointment", "no-show", [b.id]))
    assert messages == [("success", f"1 appointment marked as no-show: {b.reference}.")]
    assert status_of(engine, b.id) is S.no_show
    assert {e.action for e in audit_rows(engine) if e.actor == user.username} >= {"check_in", "complete", "no_show"}


def test_cancel_asks_for_a_reason(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    a = book(engine, s)
    page, _ = open_action(client, "appointment", "cancel", [a.id])
    assert 'name="reason"' in page.text
    response = do_action(client, "appointment", "cancel", [a.id], reason="  ")
    assert response.status_code == 400 and "Give a reason." in response.text
    assert status_of(engine, a.id) is S.pending
    messages = flashes(client, do_action(client, "appointment", "cancel", [a.id], reason="Patient phoned"))
    assert messages[0][0] == "success"
    with transaction(engine, write=False) as db:
        row = db.get(Appointment, a.id)
        assert (row.status, row.cancel_reason) == (S.cancelled, "Patient phoned")
        assert db.get(ClinicSession, s.id).booked_count == 0


def test_refused_transition_is_a_flash_and_the_row_is_unchanged(client, engine):
    staff_login(client, engine)
    a = book(engine, make_clinic_session(engine))
    move(engine, svc.cancel, a.id, reason="test")
    before = len(audit_rows(engine))
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id]))
    assert messages == [("warning", f"Nothing confirmed; 1 skipped: Appointment {a.reference} is cancelled; "
                                    "it cannot be confirmed.")]
    assert status_of(engine, a.id) is S.cancelled
    assert len(audit_rows(engine)) == before


def test_bulk_with_mixed_outcomes(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    a, b, c = book(engine, s), book(engine, s), book(engine, s)
    move(engine, svc.cancel, b.id, reason="test")
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id, b.id, c.id]))
    assert messages == [
        ("success", f"2 appointments confirmed: {a.reference}, {c.reference}."),
        ("warning", f"1 skipped: Appointment {b.reference} is cancelled; it cannot be confirmed."),
    ]
    assert [status_of(engine, x.id) for x in (a, b, c)] == [S.confirmed, S.cancelled, S.confirmed]


def test_bulk_refusals_are_grouped_by_reason(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    rows = [book(engine, s) for _ in range(5)]
    for x in rows[:3]:
        move(engine, svc.cancel, x.id, reason="test")
    move(engine, svc.confirm, rows[3].id)
    messages = flashes(client, do_action(client, "appointment", "confirm", [x.id for x in rows]))
    cancelled = ", ".join(x.reference for x in rows[:3])
    assert messages == [
        ("success", f"1 appointment confirmed: {rows[4].reference}."),
        ("warning", f"4 skipped: \u2022 Appointment \u2026 is cancelled; it cannot be confirmed. (3: {cancelled}) "
                    f"\u2022 Appointment {rows[3].reference} is confirmed; it cannot be confirmed."),
    ]


def test_unexpected_error_is_a_failed_row_not_a_500(client, engine, monkeypatch):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    a, b = book(engine, s), book(engine, s)
    real = svc.confirm

    def flaky(db, appointment_id, *, actor):
        if appointment_id == b.id:
            raise RuntimeError("disk on fire")
        return real(db, appointment_id, actor=actor)

    monkeypatch.setattr(svc, "confirm", flaky)
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id, b.id]))
    assert messages[0] == ("success", f"1 appointment confirmed: {a.reference}.")
    assert messages[1][0] == "danger" and b.reference in messages[1][1]
    assert status_of(engine, b.id) is S.pending


# -- CSRF and permissions ----------------------------------------------------------------------

def _expired_copy(token: str) -> str:
    from portal.core.settings import get_settings

    serializer = itsdangerous.URLSafeTimedSerializer(get_settings().secret_key, salt="admin-action")
    payload = serializer.loads(token)
    real = _time.time
    try:
        _time.time = lambda: real() - 2 * 3600
        return serializer.dumps(payload)
    finally:
        _time.time = real


def test_post_without_or_with_a_bad_token_is_refused(client, engine):
    staff_login(client, engine)
    a = book(engine, make_clinic_session(engine))
    _, token = open_action(client, "appointment", "confirm", [a.id])
    forged = itsdangerous.URLSafeTimedSerializer("not-our-key", salt="admin-action").dumps({"uid": 1, "n": "x"})
    for bad in (None, "", "garbage", forged, _expired_copy(token), token[:-2] + "xx"):
        data = {"pks": str(a.id)} | ({"csrf_token": bad} if bad is not None else {})
        response = client.post(action_url("appointment", "confirm"), data=data)
        assert response.status_code == 403, bad
        assert "nothing was changed" in response.text
    assert status_of(engine, a.id) is S.pending
    assert audit_rows(engine, "confirm") == []


def test_token_of_another_session_is_refused(app, engine):
    from starlette.testclient import TestClient

    a = book(engine, make_clinic_session(engine))
    with TestClient(app, follow_redirects=False) as first, TestClient(app, follow_redirects=False) as second:
        staff_login(first, engine)
        staff_login(second, engine)
        _, token = open_action(first, "appointment", "confirm", [a.id])
        response = second.post(action_url("appointment", "confirm"), data={"csrf_token": token, "pks": str(a.id)})
        assert response.status_code == 403
    assert status_of(engine, a.id) is S.pending


def test_action_refused_by_the_authorization_backend(client, engine, monkeypatch):
    from sqladmin.authorization import AuthorizationBackend

    from views.appointments import AppointmentView

    class NoConfirm(AuthorizationBackend):
        def has_permission(self, request, identity, action, obj=None):
            return action != "action:confirm"

    staff_login(client, engine)
    a = book(engine, make_clinic_session(engine))
    _, token = open_action(client, "appointment", "cancel", [a.id])
    monkeypatch.setattr(AppointmentView._admin_ref, "authorization_backend", NoConfirm())
    assert client.get(action_url("appointment", "confirm"), params={"pks": a.id}).status_code == 403
    response = client.post(action_url("appointment", "confirm"), data={"csrf_token": token, "pks": str(a.id)})
    assert response.status_code == 403
    assert status_of(engine, a.id) is S.pending
    assert "action-custom-confirm" not in client.get("/admin/appointment/list").text


def test_get_of_the_action_url_never_changes_anything(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    a = book(engine, s)
    for slug in ("confirm", "check-in", "complete", "cancel", "no-show"):
        assert client.get(action_url("appointment", slug), params={"pks": a.id, "reason": "x"}).status_code == 200
    for slug in ("close", "reopen", "cancel-session"):
        assert client.get(action_url("clinic_session", slug), params={"pks": s.id, "reason": "x"}).status_code == 200
    assert status_of(engine, a.id) is S.pending
    with transaction(engine, write=False) as db:
        assert db.get(ClinicSession, s.id).status is ClinicSessionStatus.open
    assert [e.action for e in audit_rows(engine) if e.action not in ("login",)] == ["book"]


def test_logged_out_user_is_sent_to_login(client, engine):
    a = book(engine, make_clinic_session(engine))
    token = csrf_token_of(client.get("/admin/login").text)  # what a logged-out browser holds
    response = client.post(action_url("appointment", "confirm"), data={"pks": str(a.id), "csrf_token": token})
    assert response.status_code == 302 and "/admin/login" in response.headers["location"]
    assert status_of(engine, a.id) is S.pending


# -- clinic session actions ----------------------------------------------------------------------

def test_close_and_reopen_booking(client, engine):
    user = staff_login(client, engine)
    s = make_clinic_session(engine)
    assert flashes(client, do_action(client, "clinic_session", "close", [s.id]))[0][0] == "success"
    with transaction(engine, write=False) as db:
        assert db.get(ClinicSession, s.id).status is ClinicSessionStatus.closed
    messages = flashes(client, do_action(client, "clinic_session", "close", [s.id]))
    assert messages[0][0] == "warning" and "is closed; it cannot be closed" in messages[0][1]
    assert flashes(client, do_action(client, "clinic_session", "reopen", [s.id]))[0][0] == "success"
    with transaction(engine, write=False) as db:
        assert db.get(ClinicSession, s.id).status is ClinicSessionStatus.open
    assert [e.action for e in audit_rows(engine) if e.actor == user.username and e.entity == "clinic_session"] == [
        "close", "reopen"]


def test_cancel_session_shows_the_count_and_cancels_its_appointments(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    a, b = book(engine, s), book(engine, s)
    move(engine, svc.confirm, b.id)
    page, _ = open_action(client, "clinic_session", "cancel-session", [s.id])
    assert "2 appointments will be cancelled" in page.text and 'name="reason"' in page.text
    messages = flashes(client, do_action(client, "clinic_session", "cancel-session", [s.id], reason="Doctor ill"))
    assert messages[0][0] == "success" and "(2 appointments cancelled)" in messages[0][1]
    with transaction(engine, write=False) as db:
        assert db.get(ClinicSession, s.id).status is ClinicSessionStatus.cancelled
        assert db.get(ClinicSession, s.id).booked_count == 0
    assert status_of(engine, a.id) is S.cancelled and status_of(engine, b.id) is S.cancelled


# -- the booking page ------------------------------------------------------------------------------

def book_page(client):
    response = client.get("/admin/appointment/book")
    assert response.status_code == 200
    return token_from(response.text)


def count_appointments(engine):
    with transaction(engine, write=False) as db:
        return db.scalar(select(func.count()).select_from(Appointment))


def test_front_desk_books_an_appointment(client, engine):
    user = staff_login(client, engine, role=Role.receptionist)
    s = make_clinic_session(engine)
    p = make_patient(engine, full_name="Ada Lovelace")
    response = client.post("/admin/appointment/book", data={
        "csrf_token": book_page(client), "clinic_session_id": s.id, "patient_id": p.id,
        "channel": "phone", "reason": "Palpitations",
    })
    assert response.status_code == 303
    messages = flashes(client, response)
    assert messages[0][0] == "success" and "for Ada Lovelace: queue no. 1" in messages[0][1]
    with transaction(engine, write=False) as db:
        row = db.scalars(select(Appointment)).one()
    assert (row.channel.value, row.reason, row.is_overbooked) == ("phone", "Palpitations", False)
    assert response.headers["location"].endswith(f"/admin/appointment/details/{row.id}")
    assert audit_rows(engine, "book")[-1].actor == user.username


def test_booking_form_errors_keep_the_input_and_write_nothing(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine, capacity=1)
    book(engine, s)
    p = make_patient(engine, full_name="Grace Hopper")
    token = book_page(client)
    # nothing chosen
    response = client.post("/admin/appointment/book", data={"csrf_token": token, "channel": "front_desk",
                                                              "reason": "typed text"})
    assert response.status_code == 400
    assert "Choose a clinic session." in response.text and "Choose a patient." in response.text
    assert "typed text" in response.text
    # full session, overbook ticked without a reason
    data = {"csrf_token": token, "clinic_session_id": s.id, "patient_id": p.id, "channel": "front_desk", "overbook": "y"}
    response = client.post("/admin/appointment/book", data=data)
    assert response.status_code == 400 and "Give a reason for overbooking" in response.text
    assert "Grace Hopper" in response.text  # the chosen patient is still chosen
    # full session without overbooking: the service's refusal, next to the session
    response = client.post("/admin/appointment/book", data={**data, "overbook": ""})
    assert response.status_code == 400 and "filled up" in response.text
    assert count_appointments(engine) == 1
    # a reason without the box ticked is not honoured
    response = client.post("/admin/appointment/book", data={**data, "overbook": "", "overbook_reason": "urgent"})
    assert response.status_code == 400 and count_appointments(engine) == 1
    # ticked and a reason: overbooked
    response = client.post("/admin/appointment/book", data={**data, "overbook_reason": "Chest pain"})
    assert response.status_code == 303
    assert "overbooked" in flashes(client, response)[0][1]
    assert count_appointments(engine) == 2


def test_booking_needs_the_csrf_token_and_permission(client, engine, monkeypatch):
    from sqladmin.authorization import AuthorizationBackend

    from views.appointments import AppointmentView

    staff_login(client, engine)
    s, p = make_clinic_session(engine), make_patient(engine)
    data = {"clinic_session_id": s.id, "patient_id": p.id, "channel": "front_desk"}
    assert client.post("/admin/appointment/book", data=data).status_code == 403
    token = book_page(client)

    class NoBooking(AuthorizationBackend):
        def has_permission(self, request, identity, action, obj=None):
            return action != "action:book"

    monkeypatch.setattr(AppointmentView._admin_ref, "authorization_backend", NoBooking())
    assert client.get("/admin/appointment/book").status_code == 403
    assert client.post("/admin/appointment/book", data={**data, "csrf_token": token}).status_code == 403
    assert "Book appointment" not in client.get("/admin/appointment/list").text
    assert count_appointments(engine) == 0


def test_booking_pickers_search_sessions_and_patients(client, engine):
    staff_login(client, engine)
    s = make_clinic_session(engine)
    make_clinic_session(engine, status=ClinicSessionStatus.closed)
    p = make_patient(engine, full_name="Marie Curie")
    found = client.get("/admin/appointment/book/lookup", params={"name": "patient_id", "term": "curie"}).json()
    assert found["results"] == [{"id": str(p.id), "text": found["results"][0]["text"]}]
    assert "Marie Curie" in found["results"][0]["text"]
    sessions = client.get("/admin/appointment/book/lookup", params={"name": "clinic_session_id", "term": "tomorrow"}).json()
    assert [r["id"] for r in sessions["results"]] == [str(s.id)]
    assert "10 of 10 places left" in sessions["results"][0]["text"]
    make_clinic_session(engine, day=clock.today(), start=time(0, 0), end=time(0, 1))  # already ended
    running = todays_clinic_session(engine)
    today = client.get("/admin/appointment/book/lookup", params={"name": "clinic_session_id", "term": "today"}).json()
    assert [r["id"] for r in today["results"]] == [str(running.id)]  # not the ended one


# -- prescriptions: dispense and cancel ---------------------------------------------------------------

def load(engine, model, pk):
    with transaction(engine, write=False) as db:
        return db.get(model, pk)


def movements(engine, kind=None):
    with transaction(engine, write=False) as db:
        stmt = select(StockMovement).order_by(StockMovement.id)
        if kind:
            stmt = stmt.where(StockMovement.kind == kind)
        return db.scalars(stmt).all()


def test_dispense_takes_stock_and_audits_the_pharmacist(client, engine):
    user = staff_login(client, engine, role=Role.pharmacist)
    med_a, med_b = make_medicine(engine, name="Amoxicillin"), make_medicine(engine, name="Paracetamol")
    batch_a, batch_b = make_batch(engine, medicine=med_a, quantity=50), make_batch(engine, medicine=med_b, quantity=50)
    rx = make_prescription(engine, items=[(med_a, 20), (med_b, 10)])
    page, _ = open_action(client, "prescription", "dispense", [rx.id])
    assert "Dispense 1 prescription" in page.text and "20 tablet owed, 50 usable" in page.text
    assert 'name="witness_id"' not in page.text  # nothing controlled
    messages = flashes(client, do_action(client, "prescription", "dispense", [rx.id]))
    assert messages == [("success", f"1 prescription dispensed: {rx.number} (30 units, complete).")]
    assert load(engine, Prescription, rx.id).status is PrescriptionStatus.dispensed
    assert (load(engine, StockBatch, batch_a.id).quantity_on_hand, load(engine, StockBatch, batch_b.id).quantity_on_hand) == (30, 40)
    event = audit_rows(engine, "dispense")[-1]
    assert (event.actor, event.actor_id, event.entity_id) == (user.username, user.id, str(rx.id))
    assert {m.staff_user_id for m in movements(engine, MovementKind.dispense)} == {user.id}
    assert_ledger_consistent(engine)


def test_dispense_with_insufficient_stock_names_the_shortage_and_takes_nothing(client, engine):
    staff_login(client, engine, role=Role.pharmacist)
    short, plenty = make_medicine(engine, name="Insulin"), make_medicine(engine, name="Aspirin")
    batch = make_batch(engine, medicine=short, quantity=4)
    make_batch(engine, medicine=plenty, quantity=100)
    rx = make_prescription(engine, items=[(short, 10), (plenty, 5)])
    page, _ = open_action(client, "prescription", "dispense", [rx.id])
    assert "10 tablet owed, 4 usable, short by 6" in page.text
    messages = flashes(client, do_action(client, "prescription", "dispense", [rx.id]))
    assert len(messages) == 1 and messages[0][0] == "warning"
    assert "Insulin" in messages[0][1] and "6 short" in messages[0][1] and rx.number in messages[0][1]
    assert "Aspirin" not in messages[0][1]
    assert load(engine, StockBatch, batch.id).quantity_on_hand == 4
    assert load(engine, Prescription, rx.id).status is PrescriptionStatus.issued
    assert movements(engine, MovementKind.dispense) == []


def test_dispense_available_leaves_the_rest_owed(client, engine):
    staff_login(client, engine, role=Role.pharmacist)
    med = make_medicine(engine, name="Metformin")
    make_batch(engine, medicine=med, quantity=4)
    rx = make_prescription(engine, items=[(med, 10)])
    messages = flashes(client, do_action(client, "prescription", "dispense-partial", [rx.id]))
    assert messages[0][0] == "success" and "still owed: 6 tablet" in messages[0][1]
    assert load(engine, Prescription, rx.id).status is PrescriptionStatus.partially_dispensed
    assert_ledger_consistent(engine)


def test_controlled_medicine_needs_a_witness(client, engine):
    user = staff_login(client, engine, role=Role.pharmacist)
    witness = make_staff(engine, role=Role.nurse, full_name="Nina Witness")
    morphine = make_medicine(engine, name="Morphine", is_controlled=True)
    batch = make_batch(engine, medicine=morphine, quantity=20)
    rx = make_prescription(engine, patient=make_patient(engine, full_name="Zhao Lei"), items=[(morphine, 2)])
    page, _ = open_action(client, "prescription", "dispense", [rx.id])
    assert 'name="witness_id"' in page.text and "Nina Witness" in page.text
    assert f'value="{user.id}"' not in page.text.split('name="witness_id"')[1].split("</select>")[0]
    response = do_action(client, "prescription", "dispense", [rx.id])
    assert response.status_code == 400 and "Choose the witness: Morphine" in response.text
    assert "Zhao Lei" in response.text  # the page shown again lists the prescription with its patient
    assert load(engine, StockBatch, batch.id).quantity_on_hand == 20
    assert load(engine, Prescription, rx.id).status is PrescriptionStatus.issued
    messages = flashes(client, do_action(client, "prescription", "dispense", [rx.id], witness_id=str(witness.id)))
    assert messages[0][0] == "success"
    assert [m.witness_user_id for m in movements(engine, MovementKind.dispense)] == [witness.id]


def test_cancel_prescription_needs_a_reason(client, engine):
    staff_login(client, engine, role=Role.pharmacist)
    med = make_medicine(engine)
    rx = make_prescription(engine, items=[(med, 1)])
    assert do_action(client, "prescription", "cancel", [rx.id]).status_code == 400
    assert load(engine, Prescription, rx.id).status is PrescriptionStatus.issued
    messages = flashes(client, do_action(client, "prescription", "cancel", [rx.id], reason="Duplicate"))
    assert messages == [("success", f"1 prescription cancelled: {rx.number}.")]
    assert load(engine, Prescription, rx.id).status is PrescriptionStatus.cancelled


# -- stock batches -----------------------------------------------------------------------------------------

def test_mark_expired_writes_the_batch_off(client, engine):
    user = staff_login(client, engine, role=Role.pharmacist)
    med = make_medicine(engine, name="Ceftriaxone")
    batch = make_batch(engine, medicine=med, quantity=12, unit_cost=250, expiry=clock.today() - timedelta(days=3))
    page, _ = open_action(client, "stock_batch", "expire", [batch.id])
    assert "Write off 1 stock batch as expired" in page.text and "12 tablet will be written off" in page.text
    assert "expired on" in page.text
    messages = flashes(client, do_action(client, "stock_batch", "expire", [batch.id]))
    assert messages == [("success", f"1 stock batch written off as expired: lot {batch.lot_number} of {med}.")]
    row = load(engine, StockBatch, batch.id)
    assert (row.status, row.quantity_on_hand) == (BatchStatus.expired, 0)
    [write_off] = movements(engine, MovementKind.expiry_write_off)
    assert (write_off.quantity, write_off.staff_user_id) == (-12, user.id)
    messages = flashes(client, do_action(client, "stock_batch", "expire", [batch.id]))
    assert messages[0][0] == "warning" and "already expired" in messages[0][1]
    assert messages[0][1].count(batch.lot_number) == 1  # the service's sentence, not prefixed twice
    assert_ledger_consistent(engine)


def test_quarantine_and_release(client, engine):
    staff_login(client, engine, role=Role.pharmacist)
    batch = make_batch(engine, medicine=make_medicine(engine))
    assert do_action(client, "stock_batch", "quarantine", [batch.id]).status_code == 400
    assert flashes(client, do_action(client, "stock_batch", "quarantine", [batch.id], reason="Broken seal"))[0][0] == "success"
    assert load(engine, StockBatch, batch.id).status is BatchStatus.quarantined
    assert flashes(client, do_action(client, "stock_batch", "release", [batch.id], reason="Seal checked"))[0][0] == "success"
    assert load(engine, StockBatch, batch.id).status is BatchStatus.active
    assert [e.action for e in audit_rows(engine) if e.entity == "stock_batch"][-2:] == ["quarantine", "release"]


def count_batches(engine):
    with transaction(engine, write=False) as db:
        return db.scalar(select(func.count()).select_from(StockBatch))


def test_receive_stock_form(client, engine):
    user = staff_login(client, engine, role=Role.pharmacist)
    med = make_medicine(engine, name="Salbutamol", unit="inhaler")
    supplier = make_supplier(engine, name="Sinopharm")
    page = client.get("/admin/stock_batch/receive")
    assert page.status_code == 200 and "Sinopharm" in page.text
    token = token_from(page.text)
    expiry = (clock.today() + timedelta(days=400)).isoformat()
    response = client.post("/admin/stock_batch/receive", data={
        "csrf_token": token, "medicine_id": med.id, "lot_number": "SAL-77", "expiry_date": expiry,
        "quantity": "40", "unit_cost": "12.50", "supplier_id": str(supplier.id), "note": "DN 1234",
    })
    assert response.status_code == 303
    messages = flashes(client, response)
    assert messages[0] == ("success", f"Received 40 inhaler of {med}, lot SAL-77 (expires {expiry}). "
                                      "The batch now holds 40.")
    with transaction(engine, write=False) as db:
        batch = db.scalars(select(StockBatch)).one()
    assert (batch.quantity_on_hand, batch.unit_cost, batch.supplier_id) == (40, 1250, supplier.id)
    assert response.headers["location"].endswith(f"/admin/stock_batch/details/{batch.id}")
    [receipt] = movements(engine, MovementKind.receipt)
    assert (receipt.quantity, receipt.staff_user_id, receipt.note) == (40, user.id, "DN 1234")


def test_receive_stock_form_errors_keep_the_input_and_write_nothing(client, engine):
    staff_login(client, engine, role=Role.pharmacist)
    med = make_medicine(engine, name="Salbutamol")
    token = token_from(client.get("/admin/stock_batch/receive").text)
    base = {"csrf_token": token, "medicine_id": med.id, "lot_number": "LOT-TYPED", "expiry_date": "2099-01-31",
            "quantity": "10", "unit_cost": "1.00"}
    # form errors, each next to its field
    response = client.post("/admin/stock_batch/receive", data={
        **base, "lot_number": "", "quantity": "0", "unit_cost": "abc", "expiry_date": "31/01/2099"})
    assert response.status_code == 400
    assert "Enter the lot number printed on the pack." in response.text
    assert "Receive at least 1 unit." in response.text
    assert "Enter the date as YYYY-MM-DD" in response.text
    assert 'value="31/01/2099"' in response.text and "Salbutamol" in response.text
    # the service's refusal: already expired stock, shown at the expiry date
    past = (clock.today() - timedelta(days=1)).isoformat()
    response = client.post("/admin/stock_batch/receive", data={**base, "expiry_date": past})
    assert response.status_code == 400 and "only stock that expires after" in response.text
    assert 'value="LOT-TYPED"' in response.text
    m = re.search(r'id="field-expiry_date".*?</div>\s*</div>', response.text, re.S)
    assert m and "only stock that expires after" in m.group(0)
    # without the CSRF token
    assert client.post("/admin/stock_batch/receive", data={**base, "csrf_token": ""}).status_code == 403
    assert count_batches(engine) == 0 and movements(engine) == []


def test_stock_count_form(client, engine):
    user = staff_login(client, engine, role=Role.pharmacist)
    batch = make_batch(engine, medicine=make_medicine(engine, name="Heparin", unit="ampoule"), quantity=30)
    detail = client.get(f"/admin/stock_batch/details/{batch.id}").text
    assert f"/admin/stock_batch/action/count?pks={batch.id}" in detail
    opened = client.get(action_url("stock_batch", "count"), params={"pks": batch.id})
    assert opened.status_code == 303 and opened.headers["location"].endswith(f"/admin/stock_batch/count/{batch.id}")
    page = client.get(f"/admin/stock_batch/count/{batch.id}")
    assert page.status_code == 200 and "30 ampoule" in page.text
    url, token = f"/admin/stock_batch/count/{batch.id}", token_from(page.text)
    response = client.post(url, data={"csrf_token": token, "counted_quantity": "-1", "reason": ""})
    assert response.status_code == 400
    assert "The count cannot be negative." in response.text and "Say what was counted" in response.text
    assert 'value="-1"' in response.text
    assert client.post(url, data={"counted_quantity": "28", "reason": "x"}).status_code == 403
    assert load(engine, StockBatch, batch.id).quantity_on_hand == 30 and movements(engine, MovementKind.adjustment) == []
    response = client.post(url, data={"csrf_token": token, "counted_quantity": "28", "reason": "2 broken"})
    messages = flashes(client, response)
    assert messages[0][0] == "success" and "from 30 to 28 (-2)" in messages[0][1]
    assert load(engine, StockBatch, batch.id).quantity_on_hand == 28
    [adjustment] = movements(engine, MovementKind.adjustment)
    assert (adjustment.quantity, adjustment.note, adjustment.staff_user_id) == (-2, "2 broken", user.id)
    assert_ledger_consistent(engine)


def test_stock_pages_need_their_permission(client, engine, monkeypatch):
    from sqladmin.authorization import AuthorizationBackend

    from views.pharmacy import StockBatchView

    staff_login(client, engine, role=Role.pharmacist)
    batch = make_batch(engine, medicine=make_medicine(engine))

    class NoStockPages(AuthorizationBackend):
        def has_permission(self, request, identity, action, obj=None):
            return action not in ("action:receive", "action:count")

    monkeypatch.setattr(StockBatchView._admin_ref, "authorization_backend", NoStockPages())
    assert client.get("/admin/stock_batch/receive").status_code == 403
    assert client.get(f"/admin/stock_batch/count/{batch.id}").status_code == 403
    assert client.get("/admin/stock_batch/receive/lookup", params={"name": "medicine_id", "term": "m"}).status_code == 403
    assert "Receive stock" not in client.get("/admin/stock_batch/list").text


# -- the medicine list ---------------------------------------------------------------------------------------

def test_medicine_list_stock_columns_in_one_query_and_filters(client, engine):
    from sqlalchemy import event

    staff_login(client, engine, role=Role.pharmacist)
    low = make_medicine(engine, name="Aaa low", reorder_level=100)
    soon = make_medicine(engine, name="Bbb soon", reorder_level=10)
    fine = make_medicine(engine, name="Ccc fine", reorder_level=10)
    make_batch(engine, medicine=low, quantity=30)
    make_batch(engine, medicine=soon, quantity=50, expiry=clock.today() + timedelta(days=10))
    make_batch(engine, medicine=fine, quantity=500)
    for _ in range(3):
        make_medicine(engine)
    statements = []

    def count(conn, cursor, statement, *args):
        if "stock_batch" in statement:
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        page = client.get("/admin/medicine/list").text
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert "Usable stock" in page and "Next expiry" in page
    assert "30 tablet" in page and "below reorder level" in page and "in 10 days" in page

    def names(params):
        text = client.get("/admin/medicine/list", params=params).text
        return [n for n in ("Aaa low", "Bbb soon", "Ccc fine") if n in text]

    assert names({"stock": "below_reorder"}) == ["Aaa low"]
    assert names({"expiring": "30d"}) == ["Bbb soon"]
    assert names({}) == ["Aaa low", "Bbb soon", "Ccc fine"]
