"""Workflow actions in the admin, through HTTP: confirmation pages, CSRF, per-row
outcomes, flash messages, and the custom pages (booking, stock)."""

from __future__ import annotations

import html
import re
import time as _time
from datetime import time

import itsdangerous
import pytest
from sqlalchemy import func, select, update

from models import (
    Appointment,
    AppointmentStatus,
    AuditEvent,
    Role,
    Schedule,
    ScheduleStatus,
)
from portal.db import transaction
from portal.services import appointments as svc
from portal.services.actor import Actor
from tests.factories import PASSWORD, local_today, login, make_patient, make_schedule, make_staff

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
    found = re.findall(r'text-bg-(\w+)".*?<div class="toast-body">(.*?)</div>', page.text, re.S)
    return [(category, html.unescape(" ".join(text.split()))) for category, text in found]


def book(engine, schedule, patient=None):
    patient = patient or make_patient(engine)
    with transaction(engine) as session:
        return svc.book(session, schedule_id=schedule.id, patient_id=patient.id, actor=CLERK).appointment


def status_of(engine, appointment_id):
    with transaction(engine, write=False) as session:
        return session.get(Appointment, appointment_id).status


def audit_rows(engine, action=None):
    with transaction(engine, write=False) as session:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            stmt = stmt.where(AuditEvent.action == action)
        return session.scalars(stmt).all()


def todays_schedule(engine, **kw):
    return make_schedule(engine, day=local_today(), start=time(0, 0), end=time(23, 59), **kw)


def move(engine, fn, appointment_id, **kw):
    with transaction(engine) as session:
        return fn(session, appointment_id, actor=CLERK, **kw)


# -- the confirmation page ----------------------------------------------------------------

def test_get_shows_what_will_happen_and_changes_nothing(client, engine):
    staff_login(client, engine)
    s = make_schedule(engine)
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
    a = book(engine, make_schedule(engine))
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
    a = book(engine, make_schedule(engine))
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id]))
    assert messages == [("success", f"1 appointment confirmed: {a.reference}.")]
    assert status_of(engine, a.id) is S.confirmed
    event = audit_rows(engine, "confirm")[-1]
    assert (event.actor, event.actor_id, event.entity, event.entity_id) == (
        user.username, user.id, "appointment", str(a.id))


def test_check_in_complete_and_no_show(client, engine):
    user = staff_login(client, engine)
    s = todays_schedule(engine)
    a, b = book(engine, s), book(engine, s)
    move(engine, svc.confirm, b.id)
    assert flashes(client, do_action(client, "appointment", "check-in", [a.id]))[0][0] == "success"
    assert status_of(engine, a.id) is S.checked_in
    assert flashes(client, do_action(client, "appointment", "complete", [a.id]))[0][0] == "success"
    assert status_of(engine, a.id) is S.completed
    # the session "ends" for the no-show
    with transaction(engine) as session:
        session.execute(update(Schedule).where(Schedule.id == s.id).values(end_time=time(0, 1)))
    messages = flashes(client, do_action(client, "appointment", "no-show", [b.id]))
    assert messages == [("success", f"1 appointment marked as no-show: {b.reference}.")]
    assert status_of(engine, b.id) is S.no_show
    assert {e.action for e in audit_rows(engine) if e.actor == user.username} >= {"check_in", "complete", "no_show"}


def test_cancel_asks_for_a_reason(client, engine):
    staff_login(client, engine)
    s = make_schedule(engine)
    a = book(engine, s)
    page, _ = open_action(client, "appointment", "cancel", [a.id])
    assert 'name="reason"' in page.text
    response = do_action(client, "appointment", "cancel", [a.id], reason="  ")
    assert response.status_code == 400 and "Give a reason." in response.text
    assert status_of(engine, a.id) is S.pending
    messages = flashes(client, do_action(client, "appointment", "cancel", [a.id], reason="Patient phoned"))
    assert messages[0][0] == "success"
    with transaction(engine, write=False) as session:
        row = session.get(Appointment, a.id)
        assert (row.status, row.cancel_reason) == (S.cancelled, "Patient phoned")
        assert session.get(Schedule, s.id).booked_count == 0


def test_refused_transition_is_a_flash_and_the_row_is_unchanged(client, engine):
    staff_login(client, engine)
    a = book(engine, make_schedule(engine))
    move(engine, svc.cancel, a.id, reason="test")
    before = len(audit_rows(engine))
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id]))
    assert messages == [("warning", f"Nothing confirmed; 1 skipped: Appointment {a.reference} is cancelled; "
                                    "it cannot be confirmed.")]
    assert status_of(engine, a.id) is S.cancelled
    assert len(audit_rows(engine)) == before


def test_bulk_with_mixed_outcomes(client, engine):
    staff_login(client, engine)
    s = make_schedule(engine)
    a, b, c = book(engine, s), book(engine, s), book(engine, s)
    move(engine, svc.cancel, b.id, reason="test")
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id, b.id, c.id]))
    assert messages == [
        ("success", f"2 appointments confirmed: {a.reference}, {c.reference}."),
        ("warning", f"1 skipped: Appointment {b.reference} is cancelled; it cannot be confirmed."),
    ]
    assert [status_of(engine, x.id) for x in (a, b, c)] == [S.confirmed, S.cancelled, S.confirmed]


def test_unexpected_error_is_a_failed_row_not_a_500(client, engine, monkeypatch):
    staff_login(client, engine)
    s = make_schedule(engine)
    a, b = book(engine, s), book(engine, s)
    real = svc.confirm

    def flaky(session, appointment_id, *, actor):
        if appointment_id == b.id:
            raise RuntimeError("disk on fire")
        return real(session, appointment_id, actor=actor)

    monkeypatch.setattr(svc, "confirm", flaky)
    messages = flashes(client, do_action(client, "appointment", "confirm", [a.id, b.id]))
    assert messages[0] == ("success", f"1 appointment confirmed: {a.reference}.")
    assert messages[1][0] == "danger" and b.reference in messages[1][1]
    assert status_of(engine, b.id) is S.pending


# -- CSRF and permissions ----------------------------------------------------------------------

def _expired_copy(token: str) -> str:
    from portal.settings import get_settings

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
    a = book(engine, make_schedule(engine))
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

    a = book(engine, make_schedule(engine))
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
    a = book(engine, make_schedule(engine))
    _, token = open_action(client, "appointment", "cancel", [a.id])
    monkeypatch.setattr(AppointmentView._admin_ref, "authorization_backend", NoConfirm())
    assert client.get(action_url("appointment", "confirm"), params={"pks": a.id}).status_code == 403
    response = client.post(action_url("appointment", "confirm"), data={"csrf_token": token, "pks": str(a.id)})
    assert response.status_code == 403
    assert status_of(engine, a.id) is S.pending
    assert "action-custom-confirm" not in client.get("/admin/appointment/list").text


def test_get_of_the_action_url_never_changes_anything(client, engine):
    staff_login(client, engine)
    s = make_schedule(engine)
    a = book(engine, s)
    for slug in ("confirm", "check-in", "complete", "cancel", "no-show"):
        assert client.get(action_url("appointment", slug), params={"pks": a.id, "reason": "x"}).status_code == 200
    for slug in ("close", "reopen", "cancel-session"):
        assert client.get(action_url("schedule", slug), params={"pks": s.id, "reason": "x"}).status_code == 200
    assert status_of(engine, a.id) is S.pending
    with transaction(engine, write=False) as session:
        assert session.get(Schedule, s.id).status is ScheduleStatus.open
    assert [e.action for e in audit_rows(engine) if e.action not in ("login",)] == ["book"]


def test_logged_out_user_is_sent_to_login(client, engine):
    a = book(engine, make_schedule(engine))
    response = client.post(action_url("appointment", "confirm"), data={"pks": str(a.id)})
    assert response.status_code == 302 and "/admin/login" in response.headers["location"]
    assert status_of(engine, a.id) is S.pending


# -- clinic session actions ----------------------------------------------------------------------

def test_close_and_reopen_booking(client, engine):
    user = staff_login(client, engine)
    s = make_schedule(engine)
    assert flashes(client, do_action(client, "schedule", "close", [s.id]))[0][0] == "success"
    with transaction(engine, write=False) as session:
        assert session.get(Schedule, s.id).status is ScheduleStatus.closed
    messages = flashes(client, do_action(client, "schedule", "close", [s.id]))
    assert messages[0][0] == "warning" and "is closed; it cannot be closed" in messages[0][1]
    assert flashes(client, do_action(client, "schedule", "reopen", [s.id]))[0][0] == "success"
    with transaction(engine, write=False) as session:
        assert session.get(Schedule, s.id).status is ScheduleStatus.open
    assert [e.action for e in audit_rows(engine) if e.actor == user.username and e.entity == "schedule"] == [
        "close", "reopen"]


def test_cancel_session_shows_the_count_and_cancels_its_appointments(client, engine):
    staff_login(client, engine)
    s = make_schedule(engine)
    a, b = book(engine, s), book(engine, s)
    move(engine, svc.confirm, b.id)
    page, _ = open_action(client, "schedule", "cancel-session", [s.id])
    assert "2 appointments will be cancelled" in page.text and 'name="reason"' in page.text
    messages = flashes(client, do_action(client, "schedule", "cancel-session", [s.id], reason="Doctor ill"))
    assert messages[0][0] == "success" and "(2 appointments cancelled)" in messages[0][1]
    with transaction(engine, write=False) as session:
        assert session.get(Schedule, s.id).status is ScheduleStatus.cancelled
        assert session.get(Schedule, s.id).booked_count == 0
    assert status_of(engine, a.id) is S.cancelled and status_of(engine, b.id) is S.cancelled


# -- the booking page ------------------------------------------------------------------------------

def book_page(client):
    response = client.get("/admin/appointment/book")
    assert response.status_code == 200
    return token_from(response.text)


def count_appointments(engine):
    with transaction(engine, write=False) as session:
        return session.scalar(select(func.count()).select_from(Appointment))


def test_front_desk_books_an_appointment(client, engine):
    user = staff_login(client, engine, role=Role.receptionist)
    s = make_schedule(engine)
    p = make_patient(engine, full_name="Ada Lovelace")
    response = client.post("/admin/appointment/book", data={
        "csrf_token": book_page(client), "schedule_id": s.id, "patient_id": p.id,
        "channel": "phone", "reason": "Palpitations",
    })
    assert response.status_code == 303
    messages = flashes(client, response)
    assert messages[0][0] == "success" and "for Ada Lovelace: queue no. 1" in messages[0][1]
    with transaction(engine, write=False) as session:
        row = session.scalars(select(Appointment)).one()
    assert (row.channel.value, row.reason, row.is_overbooked) == ("phone", "Palpitations", False)
    assert response.headers["location"].endswith(f"/admin/appointment/details/{row.id}")
    assert audit_rows(engine, "book")[-1].actor == user.username


def test_booking_form_errors_keep_the_input_and_write_nothing(client, engine):
    staff_login(client, engine)
    s = make_schedule(engine, capacity=1)
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
    data = {"csrf_token": token, "schedule_id": s.id, "patient_id": p.id, "channel": "front_desk", "overbook": "y"}
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
    s, p = make_schedule(engine), make_patient(engine)
    data = {"schedule_id": s.id, "patient_id": p.id, "channel": "front_desk"}
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
    s = make_schedule(engine)
    make_schedule(engine, status=ScheduleStatus.closed)
    p = make_patient(engine, full_name="Marie Curie")
    found = client.get("/admin/appointment/book/lookup", params={"name": "patient_id", "term": "curie"}).json()
    assert found["results"] == [{"id": str(p.id), "text": found["results"][0]["text"]}]
    assert "Marie Curie" in found["results"][0]["text"]
    sessions = client.get("/admin/appointment/book/lookup", params={"name": "schedule_id", "term": "tomorrow"}).json()
    assert [r["id"] for r in sessions["results"]] == [str(s.id)]
    assert "10 of 10 places left" in sessions["results"][0]["text"]
