"""Staff login for the admin: signed-cookie sessions checked against the database.

The session cookie (itsdangerous-signed by Starlette's SessionMiddleware; HttpOnly,
SameSite=strict, Secure when configured) carries the user id, the account's
``session_epoch``, the login time and the last activity time. Every request reloads
the account, so a deactivated user or a reset password ends the session at once;
sessions also end after ``SESSION_IDLE_MINUTES`` of inactivity and
``SESSION_MAX_HOURS`` after login. Logging out raises the epoch too, so a copy of the
cookie taken before logout is worthless (this also ends the user's other sessions).
"""

from __future__ import annotations

import time

from sqladmin.authentication import AuthenticationBackend
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from models import StaffUser
from portal.db import transaction
from portal.security import login_throttle
from portal.security.passwords import verify_password
from portal.services import audit
from portal.services.actor import Actor, current_actor
from portal.settings import get_settings
from models._types import utcnow


def client_ip(request: Request) -> str | None:
    """The client's address as seen by this process."""
    return request.client.host if request.client else None


def actor_for(user: StaffUser, request: Request) -> Actor:
    """Build the service-layer Actor for a logged-in staff member."""
    return Actor(
        username=user.username,
        user_id=user.id,
        role=user.role.value,
        doctor_id=user.doctor_id,
        ip=client_ip(request),
    )


class AdminAuth(AuthenticationBackend):
    """sqladmin authentication backend backed by StaffUser rows."""

    def __init__(self, engine) -> None:
        settings = get_settings()
        super().__init__(
            secret_key=settings.secret_key,
            session_cookie="portal_staff",
            max_age=settings.session_max_hours * 3600,
            same_site="strict",
            https_only=settings.secure_cookies,
        )
        self.engine = engine

    async def login(self, request: Request) -> bool:
        """Check the form's credentials (throttled); on success start a fresh session.

        A refusal while throttled leaves its sentence in ``request.state.login_refusal``.
        """
        form = await request.form()
        username = str(form.get("username", ""))[:60].strip()
        password = str(form.get("password", ""))[:1024]
        # argon2 and the database are blocking: keep them off the event loop.
        return await run_in_threadpool(self._login_sync, request, username, password)

    def _login_sync(self, request: Request, username: str, password: str) -> bool:
        ip = client_ip(request)
        now = utcnow()
        with transaction(self.engine) as session:
            user = session.query(StaffUser).filter(StaffUser.username == username).one_or_none()
            wait = login_throttle.wait_time(session, username=username, user=user, ip=ip, now=now)
            ok = wait is None and verify_password(user.password_hash if user else None, password)
            if not (ok and user and user.is_active):
                if wait is None:
                    wait = login_throttle.record_failure(session, username=username, user=user, ip=ip, now=now)
                    why = "" if user is None or user.is_active or not ok else " (account inactive)"
                else:
                    why = " (refused: too many failed attempts)"
                audit.record(
                    session,
                    actor=Actor(username=username or "(blank)", user_id=user.id if user else None, ip=ip),
                    action="login_failed", entity="staff_user",
                    entity_id=user.id if user else None,
                    summary="Failed login" + why,
                )
                if wait is not None:
                    request.state.login_refusal = login_throttle.refusal_message(wait)
                return False
            login_throttle.record_success(session, user=user)
            user.last_login_at = now
            audit.record(
                session, actor=actor_for(user, request), action="login", entity="staff_user",
                entity_id=user.id, summary=f"{user.username} logged in",
            )
            stamp = int(now.timestamp())
            request.session.clear()
            request.session.update(
                {"uid": user.id, "epoch": user.session_epoch, "iat": stamp, "seen": stamp}
            )
        return True

    async def logout(self, request: Request) -> bool:
        """Audit the logout and clear the session."""
        await run_in_threadpool(self._logout_sync, request)
        request.session.clear()
        return True

    def _logout_sync(self, request: Request) -> None:
        # The cookie is the whole session, so clearing it in this browser is not enough:
        # a copy of it would stay valid. Raising the epoch ends it (and the user's other
        # sessions) on the server side.
        uid = request.session.get("uid")
        if uid and request.session.get("epoch") is not None:
            with transaction(self.engine) as session:
                user = session.get(StaffUser, uid)
                if user is not None and user.session_epoch == request.session["epoch"]:
                    session.execute(
                        update(StaffUser).where(StaffUser.id == user.id)
                        .values(session_epoch=StaffUser.session_epoch + 1)
                    )
                    audit.record(
                        session, actor=actor_for(user, request), action="logout",
                        entity="staff_user", entity_id=user.id, summary=f"{user.username} logged out",
                    )

    async def authenticate(self, request: Request) -> bool:
        """True when the request carries a still valid staff session (see ``load_staff``)."""
        user = await load_staff(request, self.engine)
        return user is not None

    async def get_user_id(self, request: Request):
        """The staff user id of the session (for sqladmin)."""
        return request.session.get("uid")


def _get_user(engine, uid) -> StaffUser | None:
    with transaction(engine, write=False) as session:
        return session.get(StaffUser, uid)


async def load_staff(request: Request, engine) -> StaffUser | None:
    """Return the logged-in, still valid staff member of ``request``, or None.

    Ends the session (clears the cookie) when the account is gone or inactive, its
    epoch moved on, it has been idle too long, or the shift limit has passed. Sets
    ``request.state.staff`` and the audit's ``current_actor``.
    """
    cached = getattr(request.state, "staff", None)
    if cached is not None:
        return cached
    data = request.session
    uid = data.get("uid")
    if not uid:
        return None
    settings = get_settings()
    now = int(time.time())
    if now - int(data.get("seen", 0)) > settings.session_idle_minutes * 60 or (
        now - int(data.get("iat", 0)) > settings.session_max_hours * 3600
    ):
        data.clear()
        return None
    user = await run_in_threadpool(_get_user, engine, uid)
    if user is None or not user.is_active or user.session_epoch != data.get("epoch"):
        data.clear()
        return None
    if now - int(data.get("seen", 0)) >= 30:  # refresh the idle clock, not on every hit
        data["seen"] = now
    request.state.staff = user
    current_actor.set(actor_for(user, request))
    return user
