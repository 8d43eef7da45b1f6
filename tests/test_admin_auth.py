"""Staff login to the admin, proven through HTTP: who gets in, who does not, and what is recorded."""

from __future__ import annotations

import json
import re
from base64 import b64encode

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select
from starlette.routing import Mount

from models import AuditEvent, Department, Role, StaffUser
from portal.core import clock
from portal.core.db import transaction
from portal.core.settings import get_settings
from tests.admin_html import csrf_token_of, field_errors
from tests.factories import CSRF_HEADER, PASSWORD, login, logout, make_department, make_staff
from views import ALL_VIEWS

COOKIE = "portal_staff"
#: The entity screens; ALL_VIEWS also holds the reports and custom pages.
MODEL_VIEWS = [view for view in ALL_VIEWS if getattr(view, "model", None) is not None]


def _audit(engine, action: str) -> list[AuditEvent]:
    with transaction(engine, write=False) as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _session_cookie_header(response) -> str:
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{COOKIE}=")]
    assert len(headers) == 1, response.headers.get_list("set-cookie")
    return headers[0]


def _forge_session(data: dict) -> str:
    """A session cookie value signed like Starlette's SessionMiddleware does."""
    payload = b64encode(json.dumps(data).encode())
    return TimestampSigner(get_settings().secret_key).sign(payload).decode()


def test_good_password_logs_in_and_opens_the_admin(engine, client):
    user = make_staff(engine, username="alice", role=Role.receptionist)
    assert client.get("/admin/patient/list").status_code == 302

    response = login(client, "alice")

    assert response.status_code == 302
    assert response.headers["location"].endswith("/admin/")
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/patient/list").status_code == 200
    with transaction(engine, write=False) as db:
        assert db.get(StaffUser, user.id).last_login_at is not None


def test_session_cookie_is_httponly_and_samesite_strict(engine, client):
    make_staff(engine, username="alice")
    header = _session_cookie_header(login(client, "alice")).lower()
    attributes = {part.strip().split("=")[0]: part.strip() for part in header.split(";")[1:]}
    assert "httponly" in attributes
    assert attributes.get("samesite") == "samesite=strict"
    assert attributes.get("path") == "path=/"
    assert "secure" not in attributes  # SECURE_COOKIES is off in tests; on in production over HTTPS


@pytest.mark.parametrize("username, password", [
    ("alice", "wrong-password-123"),
    ("alice", ""),
    ("nobody", PASSWORD),
    ("", ""),
])
def test_bad_credentials_are_refused_with_a_message(engine, client, username, password):
    make_staff(engine, username="alice")

    response = login(client, username, password)

    assert response.status_code == 400
    assert "Invalid credentials." in field_errors(response.text)
    assert not any(h.startswith(f"{COOKIE}=") and "uid" in h for h in response.headers.get_list("set-cookie"))
    assert client.get("/admin/").status_code == 302
    with transaction(engine, write=False) as db:
        assert db.scalar(select(StaffUser.last_login_at).where(StaffUser.username == "alice")) is None


def test_inactive_user_cannot_log_in_even_with_the_right_password(engine, client):
    make_staff(engine, username="gone", is_active=False)

    response = login(client, "gone")

    assert response.status_code == 400
    assert "Invalid credentials." in field_errors(response.text)
    assert client.get("/admin/patient/list").status_code == 302
    [event] = _audit(engine, "login_failed")
    assert event.actor == "gone"
    assert "inactive" in event.summary


def test_login_and_failed_login_are_audited(engine, client):
    user = make_staff(engine, username="alice")

    login(client, "alice", "not-the-password")
    login(client, "nobody", "whatever-password")
    login(client, "alice")

    failed = _audit(engine, "login_failed")
    assert [(e.actor, e.entity, e.entity_id, e.actor_id) for e in failed] == [
        ("alice", "staff_user", str(user.id), user.id),
        ("nobody", "staff_user", None, None),
    ]
    assert all(e.ip == "testclient" for e in failed)
    assert all("not-the-password" not in json.dumps(e.changes) + e.summary for e in failed)
    [ok] = _audit(engine, "login")
    assert (ok.actor, ok.actor_id, ok.entity_id, ok.ip) == ("alice", user.id, str(user.id), "testclient")


def _protected_requests(app):
    """Every admin route of every view, as (method, path): the model routes of each
    entity, then every custom page and workflow action route (path parameters = 1)."""
    yield "GET", "/admin/"
    for view in MODEL_VIEWS:
        base = f"/admin/{view.identity}"
        yield "GET", f"{base}/list"
        yield "GET", f"{base}/details/1"
        yield "GET", f"{base}/create"
        yield "POST", f"{base}/create"
        yield "GET", f"{base}/edit/1"
        yield "POST", f"{base}/edit/1"
        yield "DELETE", f"{base}/delete?pks=1"
        yield "GET", f"{base}/export/csv"
        yield "GET", f"{base}/export/json"
        yield "GET", f"{base}/ajax/lookup?name=patient&term=a"
    mount = next(r for r in app.routes if isinstance(r, Mount) and r.path == "/admin")
    for route in mount.app.routes:
        endpoint = getattr(route, "endpoint", None)
        if getattr(endpoint, "_exposed", False) or getattr(endpoint, "_action", False):
            path = "/admin" + re.sub(r"\{\w+(:\w+)?\}", "1", route.path)
            for method in sorted(route.methods - {"HEAD"}):
                yield method, path + ("?pks=1" if getattr(endpoint, "_action", False) else "")


def test_every_admin_page_redirects_to_login_when_logged_out(engine, app, client):
    department = make_department(engine, code="KEEP", name="Keep me")
    # A logged-out browser holds the login page's (pre-login) CSRF token: with it, the
    # token check passes and the login check is what refuses.
    client.headers[CSRF_HEADER] = csrf_token_of(client.get("/admin/login").text)
    checked = 0
    for method, path in _protected_requests(app):
        data = {"code": "NEW", "name": "New"} if method == "POST" else None
        response = client.request(method, path, data=data)
        assert response.status_code == 302, (method, path, response.status_code)
        assert response.headers["location"].endswith("/admin/login"), (method, path)
        checked += 1
    assert checked > 1 + 10 * len(MODEL_VIEWS)  # and the reports, pages and actions
    with transaction(engine, write=False) as db:
        assert db.scalar(select(func.count()).select_from(Department)) == 1
        assert db.get(Department, department.id).name == "Keep me"
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0
    # The login page itself and the static files stay reachable.
    assert client.get("/admin/login").status_code == 200


def test_logout_ends_the_session_and_the_old_cookie_stops_working(engine, client):
    user = make_staff(engine, username="alice")
    login(client, "alice")
    stolen = client.cookies.get(COOKIE)
    assert client.get("/admin/patient/list").status_code == 200

    response = logout(client)

    assert response.status_code == 302
    assert client.get("/admin/patient/list").status_code == 302
    [event] = _audit(engine, "logout")
    assert (event.actor, event.entity_id) == ("alice", str(user.id))
    # A copy of the cookie taken before logout (shared PC, proxy log) is worthless now.
    client.cookies.set(COOKIE, stolen)
    assert client.get("/admin/patient/list").status_code == 302


def test_logging_in_again_after_logout_works(engine, client):
    make_staff(engine, username="alice")
    login(client, "alice")
    logout(client)
    assert login(client, "alice").status_code == 302
    assert client.get("/admin/patient/list").status_code == 200


def test_deactivating_an_account_ends_its_open_session(engine, app, client):
    from starlette.testclient import TestClient

    make_staff(engine, username="chief")
    bob = make_staff(engine, username="bob", role=Role.nurse)
    login(client, "chief")
    with TestClient(app, follow_redirects=False) as bob_client:
        login(bob_client, "bob")
        assert bob_client.get("/admin/patient/list").status_code == 200

        response = client.post(f"/admin/staff_user/edit/{bob.id}", data={
            "username": "bob", "full_name": bob.full_name, "role": "nurse", "save": "Save",
        })  # is_active checkbox left unticked

        assert response.status_code == 302, response.text
        assert bob_client.get("/admin/patient/list").status_code == 302
        assert login(bob_client, "bob").status_code == 400


@pytest.mark.parametrize("age_field, seconds", [("seen", 31 * 60), ("iat", 13 * 3600)])
def test_idle_and_overlong_sessions_end(engine, client, age_field, seconds):
    user = make_staff(engine, username="alice")
    now = clock.epoch_seconds()
    data = {"uid": user.id, "epoch": user.login_epoch, "iat": now, "seen": now}
    client.cookies.set(COOKIE, _forge_session(data))
    assert client.get("/admin/patient/list").status_code == 200

    data[age_field] = now - seconds
    client.cookies.clear()  # the page set its own cookie (with the CSRF value): replace it
    client.cookies.set(COOKIE, _forge_session(data))
    assert client.get("/admin/patient/list").status_code == 302


def test_a_cookie_signed_with_another_key_is_ignored(engine, client):
    user = make_staff(engine, username="alice")
    now = clock.epoch_seconds()
    payload = b64encode(json.dumps({"uid": user.id, "epoch": 0, "iat": now, "seen": now}).encode())
    client.cookies.set(COOKIE, TimestampSigner("some-other-key").sign(payload).decode())
    assert client.get("/admin/patient/list").status_code == 302
