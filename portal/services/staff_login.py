"""Staff logins: checking a password (throttled, audited) and logging out.

The faces (the admin's login page, the API's token endpoint) call these functions and
keep only the HTTP part: reading the form, setting or clearing the signed login cookie.

Rules:

* A login is refused, with the same answer whether or not the account exists, for a
  wrong password, an unknown username, an inactive account, or while the username or
  the client's address is throttled (``portal.services.login_throttle``: five failures
  lock a username for 15 minutes; twenty from one address within 10 minutes refuse the
  address).
* The password is checked (argon2, slow on purpose) between two short transactions, so
  no pooled connection is held through it: the first reads the account and the
  throttle, the second records the outcome with a conditional UPDATE that succeeds only
  if the account is still active with the same ``login_epoch`` (a password reset or
  deactivation in between wins).
* Every attempt writes an audit event (``login`` or ``login_failed``) in the transaction
  that records it. Logging out raises the account's ``login_epoch`` (so a copy of the
  login cookie taken before is worthless, and the user's other logins end) and writes a
  ``logout`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from models import StaffUser
from portal.core import clock
from portal.core.actor import Actor
from portal.core.db import transaction
from portal.core.passwords import verify_password
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit, login_throttle

#: Longest username and password read from a login form (characters).
MAX_USERNAME, MAX_PASSWORD = 60, 1024


@dataclass(frozen=True)
class LoginOutcome:
    """The answer to a login attempt.

    Attributes:
        user (StaffUser | None): the account, logged in; None when refused.
        refusal (str | None): while throttled, the sentence to show ("Too many failed
            attempts; try again in N minutes."); None otherwise (a plain refusal says
            "Invalid credentials.", whatever the reason).
    """

    user: StaffUser | None
    refusal: str | None = None

    @property
    def ok(self) -> bool:
        """True when the login succeeded."""
        return self.user is not None


def actor_of(user: StaffUser, ip: str | None) -> Actor:
    """The service-layer Actor of a logged-in staff member."""
    return Actor(username=user.username, user_id=user.id, role=user.role.value, doctor_id=user.doctor_id, ip=ip)


def log_in(*, username: str, password: str, ip: str | None, engine: Engine | None = None) -> LoginOutcome:
    """Check a staff member's credentials and record the attempt.

    Args:
        username (str): as typed (trimmed, cut to 60 characters).
        password (str): as typed (cut to 1,024 characters).
        ip (str | None): the client's address, for the throttle and the audit.
        engine (Engine | None): the database; the default engine when omitted.

    Returns:
        LoginOutcome: the account on success; else the throttle's sentence, if any. On
        success the account's ``last_login_at`` is set and its throttle cleared.
    """
    username = (username or "").strip()[:MAX_USERNAME]
    password = (password or "")[:MAX_PASSWORD]
    now = clock.now()
    with transaction(engine, write=False) as db:
        user = db.scalars(select(StaffUser).where(StaffUser.username == username)).one_or_none()
        wait = login_throttle.wait_time(db, username=username, user=user, ip=ip, now=now)
    ok = wait is None and verify_password(user.password_hash if user else None, password)
    with transaction(engine) as db:
        current = ok and user is not None and user.is_active and db.execute(
            update(StaffUser)
            .where(StaffUser.id == user.id, StaffUser.is_active.is_(True), StaffUser.login_epoch == user.login_epoch)
            .values(last_login_at=now)
        ).rowcount == 1
        if not current:
            return LoginOutcome(None, _refuse(db, username=username, user=user, ip=ip, ok=ok, wait=wait, now=now))
        login_throttle.record_success(db, user=user)
        audit.record(db, actor=actor_of(user, ip), action=AuditAction.login, entity=Entity.staff_user,
                     entity_id=user.id, summary=f"{user.username} logged in")
    return LoginOutcome(user)


def _refuse(db, *, username: str, user: StaffUser | None, ip: str | None, ok: bool,
            wait: timedelta | None, now) -> str | None:
    """Count and audit a refused login; the throttle's sentence, if it now applies."""
    if wait is None:
        wait = login_throttle.record_failure(db, username=username, user=user, ip=ip, now=now)
        why = "" if user is None or user.is_active or not ok else " (account inactive)"
    else:
        why = " (refused: too many failed attempts)"
    audit.record(
        db, actor=Actor(username=username or "(blank)", user_id=user.id if user else None, ip=ip),
        action=AuditAction.login_failed, entity=Entity.staff_user, entity_id=user.id if user else None,
        summary="Failed login" + why,
    )
    return login_throttle.refusal_message(wait) if wait is not None else None


def log_out(*, user_id: int, login_epoch: int, ip: str | None, engine: Engine | None = None) -> bool:
    """End every login of a staff member (the one logging out and copies of its cookie).

    Raises the account's ``login_epoch`` with a conditional UPDATE on the epoch the
    login carried, and audits ``logout``; a login that had already ended (the epoch
    moved on) changes nothing.

    Args:
        user_id (int): the account.
        login_epoch (int): the epoch stamped in the login cookie.
        ip (str | None): the client's address, for the audit.
        engine (Engine | None): the database; the default engine when omitted.

    Returns:
        bool: True when a login was ended now.
    """
    with transaction(engine) as db:
        user = db.get(StaffUser, user_id)
        if user is None:
            return False
        ended = db.execute(
            update(StaffUser).where(StaffUser.id == user_id, StaffUser.login_epoch == login_epoch)
            .values(login_epoch=StaffUser.login_epoch + 1)
        ).rowcount == 1
        if ended:
            audit.record(db, actor=actor_of(user, ip), action=AuditAction.logout, entity=Entity.staff_user,
                         entity_id=user.id, summary=f"{user.username} logged out")
        return ended
