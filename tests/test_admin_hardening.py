"""The admin's defences, measured from outside: CSRF tokens and the same-origin check on
every state-changing request, security headers on every response, the login cookie's
Secure flag, and one-line log entries for refused input."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from models import Appointment, AppointmentStatus, Department, Patient, Role, StaffUser
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.services import appointments as svc
from tests.admin_html import csrf_token_of
from tests.factories import (
    CSRF_HEADER,
    PASSWORD,
    login,
    logout,
    make_clinic_session,
    make_department,
    make_patient,
    make_staff,
)

EVIL = {"Origin": "http://evil.example"}
HOSTILE_HEADERS = [
    pytest.param(EVIL, id="foreign-origin"),
    pytest.param({"Sec-Fetch-Site": "cross-site"}, id="sec-fetch-cross-site"),
    pytest.param({"Sec-Fetch-Site": "same-site", "Origin": "http://other.testserver"}, id="sec-fetch-same-site"),
    pytest.param({"Origin": "null"}, id="null-origin"),
]
OWN_SITE = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
NEW_PASSWORD = "a-brand-new-pass-7"


@dataclass
class Hospital:
    """The rows the requests below aim at."""

    admin: StaffUser
    department: Department
    appointment: Appointment


@pytest.fixture
def hospital(engine) -> Hospital:
    admin = make_staff(engine, username="boss", role=Role.admin)
    department = make_department(engine, code="KEEP", name="Keep me")
    session, patient = make_clinic_session(engine), make_patient(engine)
    with transaction(engine) as db:
        appointment = svc.book(db, clinic_session_id=session.id, patient_id=patient.id,
                               actor=Actor(username="setup")).appointment
    return Hospital(admin, department, appointment)


@pytest.fixture
def admin(client, hospital) -> TestClient:
    """The client logged in as the administrator, holding the login's token (header)."""
    assert login(client, "boss").status_code == 302
    return client


def _state(engine, h: Hospital) -> tuple:
    """Everything the requests below could change."""
    with transaction(engine, write=False) as db:
        department = db.get(Department, h.department.id)
        return (
            db.scalar(select(func.count()).select_from(Department)),
            department and (department.code, department.name, department.location),
            db.get(Appointment, h.appointment.id).status,
            db.get(StaffUser, h.admin.id).password_hash,
        )


def _department_form(**fields: Any) -> dict[str, Any]:
    return {"code": "KEEP", "name": "Keep me", "location": "", "phone": "", "description": "", "is_active": "y",
            "save": "Save", **fields}


def _requests(h: Hospital) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    """Name -> (method, path, form) of each kind of state-changing admin request."""
    return {
        "create": ("POST", "/admin/department/create", _department_form(code="EVIL", name="Evil")),
        "edit": ("POST", f"/admin/department/edit/{h.department.id}", _department_form(name="Hacked")),
        "delete": ("DELETE", f"/admin/department/delete?pks={h.department.id}", None),
        "workflow action": ("POST", "/admin/appointment/action/confirm", {"pks": str(h.appointment.id)}),
        "change password": ("POST", "/admin/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD,
                                                        "new_password_again": NEW_PASSWORD}),
        "logout": ("POST", "/admin/logout", {}),
    }


KINDS = ["create", "edit", "delete", "workflow action", "change password", "logout"]


def _send(client, method: str, path: str, form: dict | None, token: str | None, headers: dict | None = None):
    """Send one request as a page would: the token in the form, or in the header for DELETE."""
    client.headers.pop(CSRF_HEADER, None)
    headers = dict(headers or {})
    if method == "DELETE":
        if token is not None:
            headers[CSRF_HEADER] = token
        return client.request(method, path, headers=headers)
    data = dict(form or {})
    if token is not None:
        data["csrf_token"] = token
    return client.request(method, path, data=data, headers=headers)


def _still_logged_in(client) -> bool:
    return client.get("/admin/department/list").status_code == 200


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hostile", HOSTILE_HEADERS)
def test_a_request_sent_by_another_site_is_refused_even_with_a_token(admin, engine, hospital, kind, hostile):
    token = csrf_token_of(admin.get("/admin/password").text)
    before = _state(engine, hospital)
    method, path, form = _requests(hospital)[kind]

    response = _send(admin, method, path, form, token, headers=hostile)

    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.startswith("Refused: this request was sent by another site")
    assert _state(engine, hospital) == before
    assert _still_logged_in(admin)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("token_kind", ["none", "forged", "another login's", "pre-login"])
def test_a_request_without_this_logins_token_is_refused(admin, app, engine, hospital, kind, token_kind):
    other = make_staff(engine, username="other", role=Role.admin)
    tokens = {"none": None, "forged": "not-a-token", "pre-login": None}
    if token_kind == "another login's":
        with TestClient(app, follow_redirects=False) as elsewhere:
            login(elsewhere, other.username)
            tokens[token_kind] = csrf_token_of(elsewhere.get("/admin/password").text)
    if token_kind == "pre-login":
        with TestClient(app, follow_redirects=False) as anonymous:
            tokens[token_kind] = csrf_token_of(anonymous.get("/admin/login").text)
    before = _state(engine, hospital)
    method, path, form = _requests(hospital)[kind]

    response = _send(admin, method, path, form, tokens[token_kind], headers=OWN_SITE)

    assert response.status_code == 403
    assert "did not come from this site, so nothing was changed" in response.text
    assert _state(engine, hospital) == before
    assert _still_logged_in(admin)


def test_the_same_requests_with_the_token_from_this_site_work(admin, engine, hospital):
    def token() -> str:
        return csrf_token_of(admin.get("/admin/password").text)

    requests = _requests(hospital)

    def send(kind: str):
        method, path, form = requests[kind]
        return _send(admin, method, path, form, token(), headers=OWN_SITE)

    assert send("create").status_code == 302
    assert send("edit").status_code == 302
    assert send("workflow action").status_code in (302, 303)
    with transaction(engine, write=False) as db:
        assert db.scalar(select(Department.name).where(Department.code == "EVIL")) == "Evil"
        assert db.get(Department, hospital.department.id).name == "Hacked"
        assert db.get(Appointment, hospital.appointment.id).status is AppointmentStatus.confirmed
    response = send("delete")
    assert response.status_code == 200 and "error" not in response.text
    with transaction(engine, write=False) as db:
        assert db.get(Department, hospital.department.id) is None
    old_hash = _state(engine, hospital)[3]
    assert send("change password").status_code == 302
    assert _state(engine, hospital)[3] != old_hash
    assert send("logout").status_code == 302
    assert not _still_logged_in(admin)


def test_get_logout_only_asks(admin):
    page = admin.get("/admin/logout")
    assert page.status_code == 200
    assert 'id="logout-confirm-form"' in page.text and 'method="POST"' in page.text
    assert _still_logged_in(admin)
    # The top bar's "Logout" is a form button, not a link.
    dashboard = admin.get("/admin/").text
    assert re.search(r'<form method="POST" action="[^"]*/admin/logout"[^>]*id="logout-form"', dashboard)
    assert 'href="http://testserver/admin/logout"' not in dashboard
    assert logout(admin).status_code == 302 and not _still_logged_in(admin)


def test_login_needs_the_login_pages_token_and_this_site(client, hospital):
    credentials = {"username": "boss", "password": PASSWORD}
    assert client.post("/admin/login", data=credentials).status_code == 403
    assert client.post("/admin/login", data={**credentials, "csrf_token": "forged"}).status_code == 403
    token = csrf_token_of(client.get("/admin/login").text)
    assert client.post("/admin/login", data={**credentials, "csrf_token": token}, headers=EVIL).status_code == 403
    assert not _still_logged_in(client)
    assert client.post("/admin/login", data={**credentials, "csrf_token": token}, headers=OWN_SITE).status_code == 302
    assert _still_logged_in(client)


# -- security headers --------------------------------------------------------------------------

def _assert_hardened(response, what: str) -> None:
    headers = response.headers
    csp = headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, what
    script_src = re.search(r"script-src ([^;]*)", csp)
    assert script_src and "'unsafe-inline'" not in script_src.group(1), what
    assert "default-src 'self'" in csp and "base-uri 'none'" in csp and "object-src 'none'" in csp, what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") == "same-origin", what


def test_every_kind_of_admin_response_carries_the_security_headers(admin, client, app, hospital):
    pid = hospital.appointment.patient_id
    pages = {
        "dashboard": "/admin/", "list": "/admin/patient/list", "detail": f"/admin/patient/details/{pid}",
        "create": "/admin/patient/create", "edit": f"/admin/patient/edit/{pid}",
        "report": "/admin/reports/outpatient-volume", "change password": "/admin/password",
        "CSV export": "/admin/patient/export/csv", "JSON export": "/admin/patient/export/json",
        "action form": f"/admin/appointment/action/confirm?pks={hospital.appointment.id}",
        "404": "/admin/patient/details/999999", "unknown path": "/admin/no-such-page",
        "refused (403)": "/admin/staff_user/create?x=1",
    }
    seen = {}
    for what, path in pages.items():
        response = admin.get(path)
        seen[what] = response.status_code
        _assert_hardened(response, what)
    assert seen["dashboard"] == seen["list"] == seen["CSV export"] == seen["JSON export"] == 200
    assert seen["404"] == 404
    refused = admin.post("/admin/department/create", data={}, headers=EVIL)
    assert refused.status_code == 403
    _assert_hardened(refused, "cross-site refusal")
    logout(admin)
    redirect = client.get("/admin/patient/list")
    assert redirect.status_code == 302
    _assert_hardened(redirect, "redirect")
    _assert_hardened(client.get("/admin/login"), "login")


def test_inline_scripts_run_only_with_this_responses_nonce(admin):
    first, second = admin.get("/admin/"), admin.get("/admin/")
    nonces = []
    for response in (first, second):
        nonce = re.search(r"'nonce-([^']+)'", response.headers["content-security-policy"]).group(1)
        scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", response.text)
        assert scripts, "the page has inline scripts (the CSRF header for sqladmin's JavaScript)"
        assert all(f'nonce="{nonce}"' in attrs for attrs in scripts)
        nonces.append(nonce)
    assert nonces[0] != nonces[1]


# -- the login cookie's Secure flag ------------------------------------------------------------

def _login_cookie(client) -> str:
    token = csrf_token_of(client.get("/admin/login").text)
    response = client.post("/admin/login", data={"username": "boss", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("portal_staff="))


@pytest.mark.parametrize("trusted, forwarded, secure", [
    (None, None, False),               # plain HTTP, no proxy
    ("testclient", "https", True),     # the trusted proxy says the browser used HTTPS
    ("testclient", "http", False),
    ("10.9.9.9", "https", False),      # a client that is not the proxy cannot claim HTTPS
])
def test_the_login_cookie_is_secure_when_the_request_came_over_https(app, hospital, trusted, forwarded, secure):
    served = app if trusted is None else ProxyHeadersMiddleware(app, trusted_hosts=trusted)
    headers = {"X-Forwarded-Proto": forwarded, "X-Forwarded-For": "203.0.113.7"} if forwarded else {}
    with TestClient(served, follow_redirects=False, headers=headers) as client:
        # The login page already sets the cookie (its pre-login CSRF value), with the same
        # flags as after login; the test client (on http://) would not send a Secure one back.
        response = client.get("/admin/login")
        cookie = next(v for k, v in response.headers.multi_items()
                      if k == "set-cookie" and v.startswith("portal_staff=")).lower()
    assert ("; secure" in cookie) is secure, cookie
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_the_login_cookie_is_secure_on_an_https_address(app, hospital):
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        assert "; secure" in _login_cookie(client).lower()


# -- the log -----------------------------------------------------------------------------------

def _patient_form(**fields: Any) -> dict[str, Any]:
    return {"full_name": "Sun Li", "gender": "female", "birth_date": "1975-07-07", "phone": "138 0000 0099",
            "email": "", "national_id": "", "address": "", "emergency_contact_name": "",
            "emergency_contact_phone": "", "allergies": "", "save": "Save", **fields}


def _tracebacks(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


@pytest.mark.parametrize("typo", [{"phone": "12ab"}, {"birth_date": "2999-01-01"}])
def test_a_typo_on_the_patient_form_is_one_warning_line_not_a_traceback(admin, engine, caplog, typo):
    caplog.set_level(logging.INFO)
    with transaction(engine, write=False) as db:
        before = db.scalar(select(func.count()).select_from(Patient))

    response = admin.post("/admin/patient/create", data=_patient_form(**typo))

    assert response.status_code == 400
    with transaction(engine, write=False) as db:
        assert db.scalar(select(func.count()).select_from(Patient)) == before
    assert _tracebacks(caplog) == []
    [warning] = [r for r in caplog.records if r.name == "sqladmin.application"]
    assert warning.levelno == logging.WARNING and "\n" not in warning.getMessage()
    assert warning.getMessage().startswith("admin form refused (")


def test_a_refused_cross_scope_create_is_one_warning_line(client, engine, caplog):
    from tests.access_world import build_world

    world = build_world(engine)
    assert login(client, "doctor").status_code == 302  # the world's doctor
    caplog.set_level(logging.INFO)
    response = client.post("/admin/encounter/create", data={
        "patient": world.foreign["patient"], "doctor": str(world.doctor_id), "chief_complaint": "Sneaky",
        "save": "Save",
    })
    assert response.status_code == 400 and "You may not choose that" in response.text
    assert _tracebacks(caplog) == []
    assert any(r.levelno == logging.WARNING and "PermissionDenied" in r.getMessage() for r in caplog.records)


def test_a_real_fault_while_saving_still_logs_its_traceback(admin, monkeypatch, caplog):
    from views.patients import PatientView

    def broken(self, data, model, is_created):
        raise RuntimeError("a bug in the view")

    monkeypatch.setattr(PatientView, "validate_model", broken)
    caplog.set_level(logging.INFO)
    admin.post("/admin/patient/create", data=_patient_form())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info]
    assert errors and isinstance(errors[0].exc_info[1], RuntimeError)
