"""Staff logins and sessions: lockout per username and per address, idle and shift
expiry, deactivation and password changes ending sessions, cookie flags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models import AuditEvent, StaffUser, ThrottleBucket
from portal.core import clock
from portal.core.db import transaction
from portal.core.passwords import verify_password
from portal.core.settings import get_settings
from portal.services import login_throttle as throttle
from tests.access_world import session_cookie
from tests.factories import PASSWORD, login, make_staff

LOCKED = "Too many failed attempts; try again in 15 minutes."
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _user(engine, user_id) -> StaffUser:
    with transaction(engine, write=False) as db:
        return db.get(StaffUser, user_id)


def _error_of(response) -> str:
    return response.text.split('class="invalid-feedback">')[1].split("<")[0]


# -- the login itself ----------------------------------------------------------------------
def test_the_slow_password_check_holds_no_database_connection(client, engine, monkeypatch):
    """Many staff logging in at once must not run the connection pool dry: argon2 runs
    between the login's two short transactions, with every connection back in the pool."""
    from portal.services import staff_login

    user = make_staff(engine, username="pharm1")
    held = []

    def verify(password_hash, password):
        held.append(engine.pool.checkedout())
        return verify_password(password_hash, password)

    monkeypatch.setattr(staff_login, "verify_password", verify)
    assert login(client, "pharm1", "not-the-password").status_code == 400
    assert login(client, "pharm1").status_code == 302
    assert held == [0, 0]
    assert _user(engine, user.id).last_login_at is not None


# -- per-username lockout ----------------------------------------------------------------
def test_five_failures_lock_a_real_and_an_unknown_username_alike(client, engine):
    user = make_staff(engine, username="reception1")
    answers = {}
    for name in ("reception1", "ghost"):
        codes = [login(client, name, "not-the-password").status_code for _ in range(4)]
        assert codes == [400] * 4
        fifth = login(client, name, "not-the-password")
        sixth = login(client, name, PASSWORD)  # even the right password is refused now
        assert (fifth.status_code, sixth.status_code) == (429, 429)
        answers[name] = (_error_of(fifth), _error_of(sixth), fifth.text.count(LOCKED))
    assert answers["reception1"] == answers["ghost"] == (LOCKED, LOCKED, 2)

    locked = _user(engine, user.id)
    assert locked.failed_logins == 5 and locked.locked_until is not None
    with transaction(engine, write=False) as db:
        bucket = db.get(ThrottleBucket, throttle.user_key("ghost"))
        refused = db.scalars(select(AuditEvent).where(AuditEvent.summary.like("%too many%"))).all()
    assert bucket.hits == 5
    assert {e.actor for e in refused} == {"reception1", "ghost"}

    # When the lock has passed, the right password works and the count starts again.
    with transaction(engine) as db:
        db.get(StaffUser, user.id).locked_until = clock.now() - timedelta(seconds=1)
    assert login(client, "reception1").status_code == 302
    again = _user(engine, user.id)
    assert again.failed_logins == 0 and again.locked_until is None


def test_looking_at_the_login_page_is_not_a_failed_login(client, engine):
    """A HEAD (a link checker, a proxy's health check) answers like GET and counts nothing."""
    make_staff(engine, username="nurse2")
    for _ in range(throttle.IP_FAILURES + 1):
        assert client.head("/admin/login").status_code == 200
    with transaction(engine, write=False) as db:
        assert db.scalars(select(ThrottleBucket)).all() == []
    assert login(client, "nurse2").status_code == 302


def test_username_lock_rules_with_a_clock(engine):
    user = make_staff(engine, username="pharm1")

    def fail(name, account, at):
        with transaction(engine) as db:
            return throttle.record_failure(db, username=name, user=account, ip=None, now=at)

    def wait(name, account, at):
        with transaction(engine) as db:
            return throttle.wait_time(db, username=name, user=account, ip=None, now=at)

    for name, account in (("pharm1", user), ("nobody", None)):
        for i in range(4):
            assert fail(name, account, NOW + timedelta(minutes=i)) is None
        assert fail(name, account, NOW + timedelta(minutes=4)) == timedelta(minutes=15)
        assert wait(name, account, NOW + timedelta(minutes=10)) == timedelta(minutes=9)
        assert throttle.refusal_message(timedelta(minutes=9)) == "Too many failed attempts; try again in 9 minutes."
        assert wait(name, account, NOW + timedelta(minutes=19)) is None
        # After the lock one failure does not lock again: the count starts over.
        assert fail(name, account, NOW + timedelta(minutes=20)) is None
        assert wait(name, account, NOW + timedelta(minutes=20)) is None
    assert _user(engine, user.id).failed_logins == 1


# -- per-address budget --------------------------------------------------------------------
def test_twenty_failures_from_one_address_refuse_every_login_from_it(client, engine):
    make_staff(engine, username="nurse1")
    for i in range(throttle.IP_FAILURES):
        response = login(client, f"guess{i // 4}", "wrong-password")  # never 5 per name
        assert response.status_code == (429 if i == throttle.IP_FAILURES - 1 else 400), i
    refused = login(client, "nurse1")
    assert refused.status_code == 429
    assert _error_of(refused) == "Too many failed attempts; try again in 10 minutes."


def test_address_window_with_a_clock(engine):
    def fail(at):
        with transaction(engine) as db:
            return throttle.record_failure(db, username=f"u{at.timestamp()}", user=None, ip="198.51.100.4", now=at)

    for i in range(throttle.IP_FAILURES - 1):
        assert fail(NOW + timedelta(seconds=i)) is None
    assert fail(NOW + timedelta(minutes=5)) == timedelta(minutes=5)
    with transaction(engine) as db:
        assert throttle.wait_time(db, username="x", user=None, ip="198.51.100.4", now=NOW + timedelta(minutes=10)) is None
    # A new window starts from one.
    assert fail(NOW + timedelta(minutes=11)) is None
    with transaction(engine, write=False) as db:
        assert db.get(ThrottleBucket, throttle.ip_key("198.51.100.4")).hits == 1


# -- session lifetime ---------------------------------------------------------------------
def _cookie_for(user, *, idle_seconds=0, age_seconds=0, epoch=None):
    now = clock.epoch_seconds()
    return session_cookie({
        "uid": user.id, "epoch": user.login_epoch if epoch is None else epoch,
        "iat": now - age_seconds, "seen": now - idle_seconds,
    })


@pytest.mark.parametrize("idle_minutes, alive", [(29, True), (31, False)])
def test_sessions_end_after_inactivity(client, engine, idle_minutes, alive):
    assert get_settings().login_idle_minutes == 30
    user = make_staff(engine)
    client.cookies.set("portal_staff", _cookie_for(user, idle_seconds=idle_minutes * 60, age_seconds=idle_minutes * 60))
    response = client.get("/admin/")
    assert response.status_code == (200 if alive else 302)
    if not alive:
        assert response.headers["location"].endswith("/admin/login")
        assert "portal_staff=null" in response.headers["set-cookie"]


@pytest.mark.parametrize("hours, alive", [(11.9, True), (12.1, False)])
def test_sessions_end_after_a_shift_even_when_active(client, engine, hours, alive):
    assert get_settings().login_max_hours == 12
    user = make_staff(engine)
    client.cookies.set("portal_staff", _cookie_for(user, idle_seconds=60, age_seconds=int(hours * 3600)))
    assert client.get("/admin/").status_code == (200 if alive else 302)


def test_a_forged_or_stale_epoch_cookie_is_refused(client, engine):
    user = make_staff(engine)
    client.cookies.set("portal_staff", _cookie_for(user, epoch=user.login_epoch + 1))
    assert client.get("/admin/").status_code == 302
    client.cookies.set("portal_staff", _cookie_for(user)[:-2] + "xx")
    assert client.get("/admin/").status_code == 302


def test_deactivating_a_user_ends_their_sessions_at_the_next_request(app, engine):
    from starlette.testclient import TestClient

    make_staff(engine, username="chief")
    victim = make_staff(engine, username="clerk2")
    with TestClient(app, follow_redirects=False) as admin, TestClient(app, follow_redirects=False) as clerk:
        assert login(admin, "chief").status_code == 302
        assert login(clerk, "clerk2").status_code == 302
        assert clerk.get("/admin/").status_code == 200
        response = admin.post(f"/admin/staff_user/edit/{victim.id}", data={
            "username": "clerk2", "full_name": victim.full_name, "role": "admin", "doctor": "",
            "new_password": "", "save": "Save",  # is_active unticked
        })
        assert response.status_code == 302, response.text[-500:]
        assert clerk.get("/admin/").status_code == 302
        assert login(clerk, "clerk2").status_code == 400
        assert admin.get("/admin/").status_code == 200


def test_cookie_flags(client, engine, monkeypatch):
    make_staff(engine, username="flags")
    cookie = login(client, "flags").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert f"max-age={12 * 3600}" in cookie

    from starlette.testclient import TestClient

    from portal.app import create_app

    monkeypatch.setenv("SECURE_COOKIES", "true")
    get_settings.cache_clear()
    try:
        with TestClient(create_app(engine), base_url="https://testserver", follow_redirects=False) as secure:
            cookie = login(secure, "flags").headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        monkeypatch.delenv("SECURE_COOKIES")
        get_settings.cache_clear()


# -- passwords ------------------------------------------------------------------------------
def _form_token(client) -> str:
    page = client.get("/admin/password")
    assert page.status_code == 200
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def test_changing_ones_password_ends_other_sessions_but_not_this_one(app, engine):
    from starlette.testclient import TestClient

    user = make_staff(engine, username="doc7")
    with TestClient(app, follow_redirects=False) as here, TestClient(app, follow_redirects=False) as elsewhere:
        login(here, "doc7")
        login(elsewhere, "doc7")
        token = _form_token(here)

        def change(current, new, again, csrf=token):
            return here.post("/admin/password", data={
                "csrf_token": csrf, "current_password": current, "new_password": new, "new_password_again": again,
            })

        for current, new, again, message in (
            ("wrong-one-123", "brand-new-pass-1", "brand-new-pass-1", "current password is not correct"),
            (PASSWORD, "brand-new-pass-1", "brand-new-pass-2", "two new passwords differ"),
            (PASSWORD, "short", "short", "at least 10 characters"),
            (PASSWORD, "my-doc7-password", "my-doc7-password", "must not contain the username"),
        ):
            response = change(current, new, again)
            assert response.status_code == 400 and message in response.text, message
        assert change(PASSWORD, "brand-new-pass-1", "brand-new-pass-1", csrf="forged").status_code == 403
        assert _user(engine, user.id).login_epoch == 0

        response = change(PASSWORD, "brand-new-pass-1", "brand-new-pass-1")
        assert response.status_code == 302
        assert here.get("/admin/").status_code == 200          # this session was re-stamped
        assert elsewhere.get("/admin/").status_code == 302     # the other one ended
        changed = _user(engine, user.id)
        assert changed.login_epoch == 1 and verify_password(changed.password_hash, "brand-new-pass-1")
    with transaction(engine, write=False) as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "password_change")).one()
    assert event.actor == "doc7" and "$argon2" not in repr(event.changes)


def test_admin_account_rules(client, engine):
    make_staff(engine, username="chief2")
    login(client, "chief2")

    def create(username, password, role="nurse", doctor=""):
        return client.post("/admin/staff_user/create", data={
            "username": username, "full_name": "X", "role": role, "doctor": doctor,
            "is_active": "y", "new_password": password, "save": "Save",
        })

    assert "at least 10 characters" in create("short1", "abc").text
    assert "must not contain the username" in create("maria", "xx-MARIA-xx-1").text
    assert "Set a password" in create("nopass", "").text
    assert "must be linked to a doctor" in create("drnolink", "long-enough-pw-1", role="doctor").text
    assert create("fine1", "long-enough-pw-1").status_code == 302
    assert login(client, "fine1", "long-enough-pw-1").status_code == 302


def test_concurrent_failures_are_all_counted_and_lock_exactly_once(engine):
    """Many processes failing at once: the conditional UPDATEs lose no failure, the
    account locks after exactly five, and the address bucket counts every one."""
    from concurrent.futures import ThreadPoolExecutor

    from portal.core.db import run_in_transaction

    user = make_staff(engine, username="target")

    def fail(i):
        return run_in_transaction(
            lambda db: throttle.record_failure(db, username="target", user=user, ip="192.0.2.9", now=NOW),
            engine=engine,
        )

    def fail_unknown(i):
        return run_in_transaction(
            lambda db: throttle.record_failure(db, username="phantom", user=None, ip="192.0.2.9", now=NOW),
            engine=engine,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(fail, range(12)))
        list(pool.map(fail_unknown, range(12)))
    locked = _user(engine, user.id)
    assert locked.failed_logins == throttle.USER_FAILURES
    assert locked.locked_until == NOW + throttle.USER_LOCK
    with transaction(engine, write=False) as db:
        assert db.get(ThrottleBucket, throttle.user_key("phantom")).hits == throttle.USER_FAILURES
        assert db.get(ThrottleBucket, throttle.ip_key("192.0.2.9")).hits == 24
