"""Booking references: short, unguessable and easy to read over the phone."""

from __future__ import annotations

import random
import secrets

#: Crockford's base-32 alphabet: no I, L, O or U, so nothing is mistaken for 1, 0 or V.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10  # 10 symbols x 5 bits = 50 bits of randomness
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})


def new_reference(rng: random.Random | None = None) -> str:
    """Return a new reference such as ``K7MX9-3QD2A`` (50 random bits).

    Args:
        rng (random.Random | None): a seeded generator for reproducible demo data;
            the operating system's CSPRNG when omitted (always, outside seeding).
    """
    pick = rng.choice if rng is not None else secrets.choice
    raw = "".join(pick(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def normalise_reference(text: str) -> str | None:
    """Return the canonical form of a typed reference, or None if it cannot be one.

    Case, spaces and dashes are ignored; O, I, L and U are read as 0, 1, 1 and V.
    """
    raw = "".join((text or "").split()).replace("-", "").upper().translate(_CONFUSABLE)
    if len(raw) != LENGTH or any(ch not in ALPHABET for ch in raw):
        return None
    return f"{raw[:5]}-{raw[5:]}"
