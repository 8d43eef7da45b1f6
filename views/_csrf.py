"""CSRF tokens for every state-changing admin request.

sqladmin checks no CSRF token anywhere. The admin's pages carry one: an itsdangerous
``URLSafeTimedSerializer(SECRET_KEY, salt="admin-action")`` signature over the
session's user id and a random value kept in the signed session cookie. A token is
valid only for the same login (a new login clears the session, so a new random value
is drawn), for ``MAX_AGE`` seconds, and only with this process's ``SECRET_KEY``.

Before login the session has no user id: the login page's token is bound to the random
value alone (a "pre-login" token), and is worth nothing once someone has logged in.

Forms send the token as the ``csrf_token`` field; sqladmin's JavaScript requests (the
list's delete) send it in the ``X-CSRF-Token`` header, read from the page's
``<meta name="csrf-token">``. ``views._csrf_guard`` checks it on every POST, PUT, PATCH
and DELETE under /admin.
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
#: Name of the request header sqladmin's JavaScript sends the token in.
HEADER = "x-csrf-token"
_SESSION_KEY = "csrf"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key, salt=SALT)


def csrf_token(request: Request) -> str:
    """Return a fresh token for a form rendered for ``request``'s session.

    Stores the session's random value in the (signed) session cookie the first
    time it is needed. Before login the token is bound to that value alone.

    Args:
        request (Request): the request whose page will carry the token.

    Returns:
        str: the signed token (URL-safe text).
    """
    nonce = request.session.get(_SESSION_KEY)
    if not nonce:
        nonce = request.session[_SESSION_KEY] = secrets.token_urlsafe(18)
    return _serializer().dumps({"uid": request.session.get("uid"), "n": nonce})


def csrf_valid(request: Request, token: object, *, max_age: int = MAX_AGE) -> bool:
    """True when ``token`` was issued to this session's user, this login, within ``max_age`` seconds.

    Args:
        request (Request): the request carrying the token (its signed session).
        token (object): the posted field or header value; anything but a string is invalid.
        max_age (int): seconds the token stays valid.

    Returns:
        bool: True for a token of this session's random value and user id (None
        before login, so a pre-login token is valid only while nobody is logged in).
    """
    if not isinstance(token, str) or not token or len(token) > 512:
        return False
    try:
        data = _serializer().loads(token, max_age=max_age)
    except BadSignature:  # includes SignatureExpired
        return False
    nonce = request.session.get(_SESSION_KEY)
    uid = request.session.get("uid")
    if not isinstance(data, dict) or not nonce:
        return False
    return data.get("uid") == uid and hmac.compare_digest(str(data.get("n", "")), str(nonce))
