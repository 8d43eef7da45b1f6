"""CSRF tokens for the admin's own forms (workflow actions and custom pages).

sqladmin checks no CSRF token anywhere. Our forms carry one: an itsdangerous
``URLSafeTimedSerializer(SECRET_KEY, salt="admin-action")`` signature over the
session's user id and a random value kept in the signed session cookie. A token is
valid only for the same login (a new login clears the session, so a new random value
is drawn), for ``MAX_AGE`` seconds, and only with this process's ``SECRET_KEY``.
"""

from __future__ import annotations

import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request

from portal.core.settings import get_settings

SALT = "admin-action"
#: Seconds a form stays submittable after it was rendered.
MAX_AGE = 3600
#: Name of the hidden form field.
FIELD = "csrf_token"
_SESSION_KEY = "csrf"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key, salt=SALT)


def csrf_token(request: Request) -> str:
    """Return a fresh token for a form rendered for ``request``'s session.

    Stores the session's random value in the (signed) session cookie the first
    time it is needed.
    """
    nonce = request.session.get(_SESSION_KEY)
    if not nonce:
        nonce = request.session[_SESSION_KEY] = secrets.token_urlsafe(18)
    return _serializer().dumps({"uid": request.session.get("uid"), "n": nonce})


def csrf_valid(request: Request, token: object, *, max_age: int = MAX_AGE) -> bool:
    """True when ``token`` was issued to this session's user, this login, within ``max_age`` seconds."""
    if not isinstance(token, str) or not token or len(token) > 512:
        return False
    try:
        data = _serializer().loads(token, max_age=max_age)
    except BadSignature:  # includes SignatureExpired
        return False
    nonce = request.session.get(_SESSION_KEY)
    uid = request.session.get("uid")
    if not isinstance(data, dict) or not nonce or uid is None:
        return False
    return data.get("uid") == uid and hmac.compare_digest(str(data.get("n", "")), str(nonce))
