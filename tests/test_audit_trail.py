"""The audit trail: one event per create, edit, delete, login, logout, export, booking and
cancellation, written in the same transaction as the change; append-only; no secrets."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import AuditEvent, Department, StaffUser
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.services import appointments as booking
from tests.access_world import build_world, fingerprint, today
from tests.factories import login, logout, make_clinic_session, make_department, make_patient, make_staff


def _events(engine, **where) -> list[AuditEvent]:
    with transaction(engine, write=False) as db:
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        for key, value in where.items():
            stmt = stmt.where(getattr(AuditEvent, key) == value)
        return list(db.scalars(stmt))


def _department(engine, pk) -> Department | None:
    with transaction(engine, write=False) as db:
        return db.get(Department, pk)


def _department_form(**values):
    form = {"code": "", "name": "", "description": "", "location": "", "phone": "", "is_active": "y", "save": "Save"}
    form.update(values)
    return form


@pytest.fixture
def admin_client(client, engine):
    """A client logged in as an admin."""
    make_staff(engine, username="boss")
    assert login(client, "boss").status_code == 302
    return client


def test_admin_create_edit_delete_are_audited_with_old_and_new_values(admin_client, engine):
    client = admin_client
    assert client.post("/admin/department/create", data=_department_form(code="NEPH", name="Nephrology")).status_code == 302
    (created,) = _events(engine, action="create", entity="department")
    pk = int(created.entity_id)
    assert created.actor == "boss" and created.ip == "testclient" and created.actor_id is not None
    assert created.changes["code"] == "NEPH" and created.changes["name"] == "Nephrology"

    response = client.post(f"/admin/department/edit/{pk}", data=_department_form(
        code="NEPH", name="Renal Medicine", location="Building G",
    ))
    assert response.status_code == 302
    (edited,) = _events(engine, action="update", entity="department")
    assert edited.entity_id == str(pk) and edited.actor == "boss"
    assert edited.changes == {"name": ["Nephrology", "Renal Medicine"], "location": [None, "Building G"]}

    assert client.delete("/admin/department/delete", params={"pks": pk}).status_code == 200
    (deleted,) = _events(engine, action="delete", entity="department")
    assert deleted.entity_id == str(pk) and deleted.changes["name"] == "Renal Medicine"
    assert _department(engine, pk) is None


def test_login_failed_login_logout_and_export_are_audited(client, engine):
    user = make_staff(engine, username="clerk1")
    assert login(client, "clerk1", "wrong-password-1").status_code == 400
    assert login(client, "nobody", "wrong-password-1").status_code == 400
    assert login(client, "clerk1").status_code == 302
    assert client.get("/admin/staff_user/export/csv").status_code == 200
    assert logout(client).status_code == 302
    events = _events(engine)
    assert [(e.action, e.actor) for e in events] == [
        ("login_failed", "clerk1"), ("login_failed", "nobody"), ("login", "clerk1"),
        ("export", "clerk1"), ("logout", "clerk1"),
    ]
    assert events[0].entity_id == str(user.id) and events[1].entity_id is None
    assert all(e.ip == "testclient" for e in events)
    assert events[3].entity == "staff_user" and events[3].changes["rows"] == 1


def test_booking_and_cancelling_write_audit_events(engine):
    clinic_session = make_clinic_session(engine)
    patient = make_patient(engine)
    online = Actor(username="patient:online", ip="203.0.113.7")
    with transaction(engine) as db:
        booked = booking.book(db, clinic_session_id=clinic_session.id, patient_id=patient.id, actor=online)
    with transaction(engine) as db:
        booking.cancel(db, booked.appointment.id, actor=online, reason="Feeling better")
    events = _events(engine, entity="appointment")
    assert [e.action for e in events] == ["book", "cancel"]
    assert all(e.entity_id == str(booked.appointment.id) and e.ip == "203.0.113.7" for e in events)


def test_a_change_that_fails_leaves_no_audit_row(admin_client, engine):
    client = admin_client
    make_department(engine, code="CARD", name="Cardiology")
    other = make_department(engine, code="DERM", name="Dermatology")
    before = fingerprint(engine)
    response = client.post(f"/admin/department/edit/{other.id}", data=_department_form(code="CARD", name="Dermatology"))
    assert response.status_code == 400 and "already has this code" in response.text
    response = client.post("/admin/department/create", data=_department_form(code="DERM", name="Skin"))
    assert response.status_code == 400
    assert fingerprint(engine) == before
    assert _department(engine, other.id).code == "DERM"


def test_a_failed_audit_write_rolls_the_change_back(admin_client, engine, monkeypatch):
    client = admin_client
    department = make_department(engine, code="ENT", name="ENT")
    before = fingerprint(engine)

    def broken_record(*args, **kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("portal.services.audit.record", broken_record)
    response = client.post(f"/admin/department/edit/{department.id}", data=_department_form(code="ENT", name="Ear, Nose and Throat"))
    assert response.status_code == 400
    assert client.post("/admin/department/create", data=_department_form(code="NEW", name="New")).status_code == 400
    client.delete("/admin/department/delete", params={"pks": department.id})
    monkeypatch.undo()
    assert _department(engine, department.id).name == "ENT"
    assert fingerprint(engine) == before


def test_audit_log_is_append_only_even_for_admins(admin_client, engine):
    client = admin_client
    (event,) = _events(engine, action="login")
    before = fingerprint(engine)
    for send in (
        lambda: client.get("/admin/audit_event/create"),
        lambda: client.post("/admin/audit_event/create", data={"action": "x", "summary": "forged"}),
        lambda: client.get(f"/admin/audit_event/edit/{event.id}"),
        lambda: client.post(f"/admin/audit_event/edit/{event.id}", data={"summary": "rewritten"}),
        lambda: client.delete("/admin/audit_event/delete", params={"pks": event.id}),
        lambda: client.post("/admin/audit_event/import", files={"file": ("a.csv", b"id,summary\n1,x\n")}),
    ):
        assert send().status_code == 403
    assert fingerprint(engine) == before
    assert _events(engine, id=event.id)[0].summary == event.summary


def test_staff_passwords_never_reach_the_audit_log_pages_or_exports(admin_client, engine):
    client = admin_client
    response = client.post("/admin/staff_user/create", data={
        "username": "newnurse", "full_name": "New Nurse", "role": "nurse", "doctor": "",
        "is_active": "y", "new_password": "a-long-secret-9", "save": "Save",
    })
    assert response.status_code == 302, response.text[-500:]
    with transaction(engine, write=False) as db:
        user = db.scalars(select(StaffUser).where(StaffUser.username == "newnurse")).one()
    response = client.post(f"/admin/staff_user/edit/{user.id}", data={
        "username": "newnurse", "full_name": "New Nurse", "role": "nurse", "doctor": "",
        "is_active": "y", "new_password": "another-secret-7", "save": "Save",
    })
    assert response.status_code == 302
    pages = [
        client.get(f"/admin/staff_user/details/{user.id}").text,
        client.get("/admin/staff_user/export/csv").text,
        client.get("/admin/staff_user/export/json").text,
        client.get("/admin/staff_user/list").text,
        client.get("/admin/audit_event/export/json").text,
    ]
    for text in pages:
        assert "$argon2" not in text and "a-long-secret-9" not in text and "another-secret-7" not in text
    for event in _events(engine):
        blob = repr(event.changes) + event.summary
        assert "$argon2" not in blob and "secret-" not in blob
    (reset,) = _events(engine, action="password_reset", entity="staff_user")
    assert reset.changes["password_hash"] == "(changed)"
    assert reset.changes["login_epoch"] == [0, 1]


def test_audit_log_filters_and_history_link(admin_client, engine):
    client = admin_client
    world = build_world(engine)
    pk = world.sample["department"]
    details = client.get(f"/admin/department/details/{pk}").text
    assert 'id="history-link"' in details
    link = details.split('id="history-link" href="')[1].split('"')[0].replace("&amp;", "&")
    assert "entity=department" in link and f"entity_id={pk}" in link
    history = client.get(link)
    assert history.status_code == 200 and "Seeded" in history.text and ">login<" not in history.text
    assert f"History of department #{pk}" in history.text

    for params, present, absent in (
        ({"actor": "boss", "actor_op": "equals"}, ">login<", ">seed<"),
        ({"action": "seed"}, ">seed<", ">login<"),
        ({"entity": "staff_user"}, ">login<", ">seed<"),
        ({"search": "Seeded"}, ">seed<", ">login<"),
    ):
        text = client.get("/admin/audit_event/list", params=params).text
        assert present in text and absent not in text, params
    tomorrow = (today() + timedelta(days=2)).isoformat()
    text = client.get("/admin/audit_event/list", params={"occurred_at_from": tomorrow}).text
    assert ">login<" not in text and ">seed<" not in text


def test_history_link_is_only_for_those_who_may_read_the_audit_log(client, engine):
    world = build_world(engine)
    login(client, "receptionist")
    page = client.get(f"/admin/patient/details/{world.sample['patient']}")
    assert page.status_code == 200 and 'id="history-link"' not in page.text
