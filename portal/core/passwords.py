"""Password hashing with argon2id (argon2-cffi) and the portal's password rules."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from portal.core.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 10
_hasher = PasswordHasher()

# A fixed hash to verify against when the username is unknown, so a failed login
# takes the same time whether or not the account exists.
_DUMMY_HASH = _hasher.hash("not-a-real-password-but-takes-the-same-time")


def hash_password(password: str) -> str:
    """Return an argon2id hash of ``password`` (str) as text."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``; a missing hash still costs one verify.

    Returns:
        bool: True when the password matches.
    """
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def check_password_rules(password: str, *, username: str) -> None:
    """Refuse a password that is too short or contains the username.

    Raises:
        ValidationFailed: shorter than ``MIN_PASSWORD_LENGTH`` characters, or it
            contains the username (case-insensitive).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long."
        )
    if username and username.lower() in password.lower():
        raise ValidationFailed("The password must not contain the username.")
