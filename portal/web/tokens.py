"""Signed tokens (itsdangerous) for forms and links: CSRF, one-time submissions, capability links.

Every token is signed with ``SECRET_KEY`` and a salt naming its purpose, so a token made
for one purpose is worthless for another, and every process with the same key accepts it.

* CSRF (double submit): each browser holds a random value in an HttpOnly,
  SameSite=strict cookie; every form carries that value signed. A POST is accepted only
  when the form's token unsigns to the cookie's value. Another site can neither read the
  cookie nor forge the signature.
* One-time submission tokens: a random value, signed together with what the form is
  for; used as the appointment's ``submission_key`` so a repeated POST books once.
* Signed links: an id signed with a purpose and an age limit, so a URL such as the
  booking confirmation shows one booking to whoever was given it, and nobody can make
  a link to another booking by changing a number.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from itsdangerous import BadData, URLSafeTimedSerializer

from portal.core.settings import get_settings

CSRF_SALT = "portal.csrf"
#: A form older than this (seconds) is refused by the CSRF check (the page must be reloaded).
CSRF_MAX_AGE = 12 * 3600


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(get_settings().secret_key, salt=salt)


def sign(value: Any, *, purpose: str) -> str:
    """Sign a JSON-serialisable ``value`` for ``purpose``.

    Args:
        value (Any): e.g. an int id or a small dict.
        purpose (str): the salt, e.g. ``"booking.view"``.

    Returns:
        str: a URL-safe token carrying the value and the time it was made.
    """
    return _serializer(purpose).dumps(value)


def unsign(token: str | None, *, purpose: str, max_age: int) -> Any | None:
    """The value of a token made by :func:`sign` for ``purpose``, if valid and young enough.

    Args:
        token (str | None): the token.
        purpose (str): the salt it must have been signed with.
        max_age (int): the oldest accepted token, in seconds.

    Returns:
        Any | None: the value, or None when the token is missing, forged, made for another
        purpose, or older than ``max_age``.
    """
    if not token or len(token) > 1000:
        return None
    try:
        return _serializer(purpose).loads(token, max_age=max_age)
    except BadData:
        return None


def new_csrf_cookie_value() -> str:
    """A fresh random value for a browser's CSRF cookie (str, 32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def csrf_token(cookie_value: str) -> str:
    """The token to put in a form for a browser whose CSRF cookie holds ``cookie_value``."""
    return sign(cookie_value, purpose=CSRF_SALT)


def csrf_valid(cookie_value: str | None, token: str | None) -> bool:
    """True when ``token`` was made by :func:`csrf_token` for this ``cookie_value`` within 12 hours.

    Args:
        cookie_value (str | None): the value of the browser's CSRF cookie.
        token (str | None): the token the form sent.
    """
    if not cookie_value:
        return False
    value = unsign(token, purpose=CSRF_SALT, max_age=CSRF_MAX_AGE)
    return isinstance(value, str) and hmac.compare_digest(value.encode(), cookie_value.encode())


def new_submission_token(scope: str, *, purpose: str) -> str:
    """A one-time form token: a new random key, signed together with ``scope``.

    Args:
        scope (str): what the form is for (e.g. the clinic session id), checked on submission.
        purpose (str): the salt, e.g. ``"booking.submission"``.

    Returns:
        str: the token for a hidden field.
    """
    return sign({"k": secrets.token_urlsafe(24), "s": scope}, purpose=purpose)


def read_submission_token(token: str | None, scope: str, *, purpose: str, max_age: int) -> str | None:
    """The random key of a one-time form token, if it is valid for ``scope``.

    Args:
        token (str | None): the hidden field's value.
        scope (str): what the form must be for.
        purpose (str): the salt it must have been signed with.
        max_age (int): the oldest accepted token, in seconds.

    Returns:
        str | None: the key (32 characters; fits ``Appointment.submission_key``), or None.
    """
    value = unsign(token, purpose=purpose, max_age=max_age)
    if not isinstance(value, dict) or value.get("s") != scope or not isinstance(value.get("k"), str):
        return None
    return value["k"][:64]
