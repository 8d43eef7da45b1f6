"""Staff login for the admin: signed-cookie sessions checked against the database.

The session cookie (itsdangerous-signed by Starlette's SessionMiddleware; HttpOnly,
SameSite=strict, Secure when configured) carries the user id, the account's
``login_epoch``, the login time and the last activity time. Every request reloads
the account, so a deactivated user or a reset password ends the session at once;
sessions also end after ``LOGIN_IDLE_MINUTES`` of inactivity and
``LOGIN_MAX_HOURS`` after login. Logging out raises the epoch too, so a copy of the
cookie taken before logout is worthless (this also ends the user's other sessions).
"""

from __future__ import annotations


from sqladmin.authentication import AuthenticationBackend
from sqlalchemy import update
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from portal.core import clock
from models import StaffUser
from portal.core.db import transaction
from portal.services import login_throttle
from portal.core.passwords import verify_password
from portal.services import audit
from portal.core.actor import Actor, current_actor
from portal.core.settings import get_settings
from portal.core.vocabulary import AuditAction, Entity


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
            max_age=settings.login_max_hours * 3600,
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
        now = clock.now()
        # Two short transactions around the password check: argon2 is slow on purpose
        # (about 0.1-0.6 s of CPU), and a pooled connection held through it runs the pool
        # dry when many staff log in at once (the shift change).
        with transaction(self.engine, write=False) as db:
            user = db.query(StaffUser).filter(StaffUser.username == username).one_or_none()
            wait = login_throttle.wait_time(db, username=username, user=user, ip=ip, now=now)
        ok = wait is None and verify_password(user.password_hash if user else None, password)
        with transaction(self.engine) as db:
            # Still active, with the password just checked (not reset or deactivated meanwhile).
            current = ok and user is not None and user.is_active and db.execute(
                update(StaffUser)
                .where(StaffUser.id == user.id, StaffUser.is_active.is_(True),
                       StaffUser.login_epoch == user.login_epoch)
                .values(last_login_at=now)
            ).rowcount == 1
            if not current:
                if wait is None:
                    wait = login_throttle.record_failure(db, username=username, user=user, ip=ip, now=now)
                    why = "" if user is None or user.is_active or not ok else " (account inactive)"
                else:
                    why = " (refused: too many failed attempts)"
                audit.record(
                    db,
                    actor=Actor(username=username or "(blank)", user_id=user.id if user else None, ip=ip),
                    action=AuditAction.login_failed, entity=Entity.staff_user,
                    entity_id=user.id if user else None,
                    summary="Failed login" + why,
                )
                if wait is not None:
                    request.state.login_refusal = login_throttle.refusal_message(wait)
                return False
            login_throttle.record_success(db, user=user)
            audit.record(
                db, actor=actor_for(user, request), action=AuditAction.login, entity=Entity.staff_user,
                entity_id=user.id, summary=f"{user.username} logged in",
            )
            stamp = int(now.timestamp())
            request.session.clear()
            request.session.update(
                {"uid": user.id, "epoch": user.login_epoch, "iat": stamp, "seen": stamp}
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
            with transaction(self.engine) as db:
                user = db.get(StaffUser, uid)
                if user is not None and user.login_epoch == request.session["epoch"]:
                    db.execute(
                        update(StaffUser).where(StaffUser.id == user.id)
                        .values(login_epoch=StaffUser.login_epoch + 1)
                    )
                    audit.record(
                        db, actor=actor_for(user, request), action=AuditAction.logout,
                        entity=Entity.staff_user, entity_id=user.id, summary=f"{user.username} logged out",
                    )

    async def authenticate(self, request: Request) -> bool:
        """True when the request carries a still valid staff session (see ``load_staff``)."""
        user = await load_staff(request, self.engine)
        return user is not None

    async def get_user_id(self, request: Request):
        """The staff user id of the session (for sqladmin)."""
        return request.session.get("uid")


def _get_user(engine, uid) -> StaffUser | None:
    with transaction(engine, write=False) as db:
        return db.get(StaffUser, uid)


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
    now = clock.epoch_seconds()
    if now - int(data.get("seen", 0)) > settings.login_idle_minutes * 60 or (
        now - int(data.get("iat", 0)) > settings.login_max_hours * 3600
    ):
        data.clear()
        return None
    user = await run_in_threadpool(_get_user, engine, uid)
    if user is None or not user.is_active or user.login_epoch != data.get("epoch"):
        data.clear()
        return None
    if now - int(data.get("seen", 0)) >= 30:  # refresh the idle clock, not on every hit
        data["seen"] = now
    request.state.staff = user
    current_actor.set(actor_for(user, request))
    return user
