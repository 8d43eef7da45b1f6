"""Staff login for the admin: the signed login cookie, checked against the database.

The login cookie (itsdangerous-signed by Starlette's SessionMiddleware, which calls it a
"session"; HttpOnly, SameSite=strict, Secure on every HTTPS request, as the trusted proxy
reports the scheme, and always with ``SECURE_COOKIES``: ``portal.web.sessions``) carries the user id, the
account's ``login_epoch``, the login time and the last activity time. Every request
reloads the account, so a deactivated user or a reset password ends the login at once;
logins also end after ``LOGIN_IDLE_MINUTES`` of inactivity and ``LOGIN_MAX_HOURS`` after
they began. Checking the password, the throttle, the audit and logging out are the
service's (``portal.services.staff_login``); this module keeps the cookie.
"""

from __future__ import annotations

from sqladmin.authentication import AuthenticationBackend
from starlette.middleware import Middleware
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from models import StaffUser
from portal.core import clock
from portal.core.actor import Actor, current_actor
from portal.core.db import transaction
from portal.core.settings import get_settings
from portal.services import staff_login
from portal.web.sessions import SchemeSecureSession
from views._csrf_guard import CsrfGuard


def client_ip(request: Request) -> str | None:
    """The client's address as seen by this process."""
    return request.client.host if request.client else None


def actor_for(user: StaffUser, request: Request) -> Actor:
    """Build the service-layer Actor for a logged-in staff member."""
    return staff_login.actor_of(user, client_ip(request))


class AdminAuth(AuthenticationBackend):
    """sqladmin authentication backend backed by StaffUser rows.

    Its middleware (which sqladmin puts around the admin's routes): the login cookie,
    ``Secure`` per request (:class:`portal.web.sessions.SchemeSecureSession`), then the
    CSRF token check of every state-changing request (:class:`views._csrf_guard.CsrfGuard`).
    """

    def __init__(self, engine) -> None:
        settings = get_settings()
        super().__init__(secret_key=settings.secret_key)
        self.middlewares = [
            Middleware(
                SchemeSecureSession,
                always_secure=settings.secure_cookies,
                secret_key=settings.secret_key,
                session_cookie="portal_staff",
                max_age=settings.login_max_hours * 3600,
                same_site="strict",
            ),
            Middleware(CsrfGuard),
        ]
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
        outcome = staff_login.log_in(username=username, password=password, ip=client_ip(request),
                                     engine=self.engine)
        if not outcome.ok:
            if outcome.refusal:
                request.state.login_refusal = outcome.refusal
            return False
        user, stamp = outcome.user, clock.epoch_seconds()
        request.session.clear()
        request.session.update({"uid": user.id, "epoch": user.login_epoch, "iat": stamp, "seen": stamp})
        return True

    async def logout(self, request: Request) -> bool:
        """End the login (every copy of its cookie) and clear the cookie."""
        uid, epoch = request.session.get("uid"), request.session.get("epoch")
        if uid and epoch is not None:
            await run_in_threadpool(staff_login.log_out, user_id=uid, login_epoch=epoch, ip=client_ip(request),
                                    engine=self.engine)
        request.session.clear()
        return True

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
