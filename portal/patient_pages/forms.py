"""Validation of the patient forms: every field checked, every error a sentence next to it.

Messages are gettext message ids (marked with ``N_`` for extraction) translated when the
page is rendered; a :class:`Message` may carry named values (``%(max)d``). Validation
never raises: it returns the cleaned values and a dict of errors, and the form is shown
again with what the patient typed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from models import Gender
from portal.core.errors import ValidationFailed
from portal.services.booking import canonical_phone
from portal.services.national_id import national_id_valid
from portal.services.patients import MAX_AGE_YEARS, check_birth_date
from portal.services.references import normalise_reference


def N_(message: str) -> str:
    """Mark ``message`` for translation without translating it (it is translated when shown)."""
    return message


MAX_NAME = 60
MAX_REASON = 300
MAX_PHONE_INPUT = 32
#: Characters allowed in a name besides letters, combining marks and spaces:
#: apostrophes, hyphens, dots and the middle dots of transliterated names (约翰·史密斯).
NAME_PUNCTUATION = frozenset("'\u2019\u02bc-\u2010\u2011.\u00b7\u30fb\u2022,")
_DATE_PATTERNS = (
    re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
)
GENDERS = (Gender.female, Gender.male, Gender.other, Gender.unknown)


@dataclass(frozen=True)
class Message:
    """A translatable message and the values it names.

    Attributes:
        text (str): the gettext message id, e.g. ``"Use at most %(max)d characters."``.
        params (dict[str, Any]): values for its ``%(name)`` placeholders.
    """

    text: str
    params: dict[str, Any] = field(default_factory=dict)


def _msg(text: str, **params: Any) -> Message:
    return Message(text, params)


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") for ch in text)


def clean_name(raw: str) -> tuple[str, Message | None]:
    """Check a person's name: any script, 1-60 characters, no digits, symbols or control characters.

    Letters of any script, combining marks, spaces, apostrophes, hyphens, dots and middle
    dots are allowed; runs of spaces become one.

    Args:
        raw (str): what was typed.

    Returns:
        tuple[str, Message | None]: the tidied name and None, or what was typed and the error.
    """
    text = " ".join(unicodedata.normalize("NFC", raw or "").split())
    if not text:
        return raw, _msg(N_("Enter your full name."))
    if len(text) > MAX_NAME:
        return raw, _msg(N_("Use at most %(max)d characters for the name."), max=MAX_NAME)
    if _has_control(text) or any(ch.isdigit() for ch in text):
        return raw, _msg(N_("A name cannot contain digits or special characters."))
    for ch in text:
        category = unicodedata.category(ch)
        if not (category[0] in "LM" or ch == " " or ch in NAME_PUNCTUATION):
            return raw, _msg(N_("A name cannot contain digits or special characters."))
    if not any(unicodedata.category(ch)[0] == "L" for ch in text):
        return raw, _msg(N_("Enter your full name."))
    return text, None


def clean_phone(raw: str) -> tuple[str, Message | None]:
    """Normalise a phone number (``+8613800138000``).

    Returns:
        tuple[str, Message | None]: the canonical number and None, or what was typed and the error.
    """
    text = (raw or "").strip()
    if not text:
        return raw, _msg(N_("Enter your mobile phone number."))
    if len(text) > MAX_PHONE_INPUT:
        return raw, _msg(N_("Enter a phone number of 6 to 15 digits."))
    try:
        return canonical_phone(text), None
    except ValidationFailed:
        return raw, _msg(N_("Enter a phone number of 6 to 15 digits."))


def parse_date(raw: str) -> date | None:
    """Read a date typed as ``2001-02-03``, ``2001/2/3``, ``2001.2.3``, ``20010203`` or ``2001年2月3日``.

    Returns:
        date | None: the date, or None when it is not one of these or not a real date.
    """
    text = (raw or "").strip()
    for pattern in _DATE_PATTERNS:
        found = pattern.fullmatch(text)
        if found:
            try:
                return date(*(int(part) for part in found.groups()))
            except ValueError:
                return None
    return None


def clean_birth_date(raw: str, *, today: date) -> tuple[date | None, Message | None]:
    """Check a birth date: a real date, not in the future, at most 130 years ago.

    Args:
        raw (str): what was typed (``YYYY-MM-DD`` from a date picker, or see :func:`parse_date`).
        today (date): today's local date.

    Returns:
        tuple[date | None, Message | None]: the date and None, or None and the error.
    """
    if not (raw or "").strip():
        return None, _msg(N_("Enter your date of birth."))
    born = parse_date(raw)
    if born is None:
        return None, _msg(N_("Enter the date of birth as year-month-day, for example 1985-07-23."))
    if born > today:
        return None, _msg(N_("The date of birth cannot be in the future."))
    try:
        check_birth_date(born, today=today)
    except ValidationFailed:
        return None, _msg(N_("The date of birth cannot be more than %(years)d years ago."), years=MAX_AGE_YEARS)
    return born, None


def clean_national_id(raw: str) -> tuple[str | None, Message | None]:
    """Check an optional resident ID number (15 digits, or 18 with a valid check character).

    Spaces are ignored and a final ``x`` is read as ``X``.

    Returns:
        tuple[str | None, Message | None]: the ID (None when left empty) and None, or None
        and the error.
    """
    text = "".join((raw or "").split()).upper()
    if not text:
        return None, None
    if len(text) not in (15, 18) or not (text[:-1].isascii() and text[:-1].isdigit()) \
            or not (text[-1].isdigit() or (text[-1] == "X" and len(text) == 18)):
        return None, _msg(N_("An ID number has 18 characters (or 15 digits): digits, with an X allowed at the end."))
    if not national_id_valid(text):
        return None, _msg(N_("This ID number is not valid: please check each digit."))
    return text, None


def clean_reason(raw: str) -> tuple[str | None, Message | None]:
    """Check the optional reason for the visit: at most 300 characters, no control characters.

    Returns:
        tuple[str | None, Message | None]: the text with runs of white space made one (None
        when empty) and None, or None and the error.
    """
    text = " ".join((raw or "").split())
    if len(text) > MAX_REASON:
        return None, _msg(N_("Keep this under %(max)d characters (now %(count)d)."), max=MAX_REASON, count=len(text))
    if _has_control(text):
        return None, _msg(N_("Remove the special characters from this text."))
    return text or None, None


def clean_gender(raw: str) -> tuple[Gender | None, Message | None]:
    """Check the gender choice (female, male, other, or unknown for "prefer not to say").

    Returns:
        tuple[Gender | None, Message | None]: the choice and None, or None and the error.
    """
    for gender in GENDERS:
        if raw == gender.value:
            return gender, None
    return None, _msg(N_("Choose your gender, or “Prefer not to say”."))


@dataclass
class BookingForm:
    """The booking form: what was typed, the cleaned values and the errors per field.

    Attributes:
        raw (dict[str, str]): what the patient typed, by field name (shown again on errors).
        values (dict[str, Any]): cleaned values (``full_name``, ``phone``, ``birth_date``,
            ``gender``, ``national_id``, ``reason``) when there are no errors.
        errors (dict[str, Message]): field name -> error message.
    """

    raw: dict[str, str]
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, Message] = field(default_factory=dict)

    FIELDS = ("full_name", "phone", "birth_date", "gender", "national_id", "reason")

    @classmethod
    def empty(cls) -> "BookingForm":
        """A blank form (nothing typed, no errors)."""
        return cls(raw={name: "" for name in cls.FIELDS})

    @classmethod
    def validate(cls, data: dict[str, str], *, today: date) -> "BookingForm":
        """Check every field of a submitted booking form.

        Args:
            data (dict[str, str]): submitted fields (others are ignored).
            today (date): today's local date (for the birth date).

        Returns:
            BookingForm: ``errors`` is empty when every field is valid.
        """
        raw = {name: str(data.get(name) or "")[:2000] for name in cls.FIELDS}
        form = cls(raw=raw)
        checks = {
            "full_name": clean_name(raw["full_name"]),
            "phone": clean_phone(raw["phone"]),
            "birth_date": clean_birth_date(raw["birth_date"], today=today),
            "gender": clean_gender(raw["gender"]),
            "national_id": clean_national_id(raw["national_id"]),
            "reason": clean_reason(raw["reason"]),
        }
        for name, (value, error) in checks.items():
            if error is not None:
                form.errors[name] = error
            else:
                form.values[name] = value
        return form


@dataclass
class LookupForm:
    """The "My booking" form: reference and phone.

    Attributes:
        raw (dict[str, str]): what was typed.
        reference (str | None): canonical reference (``K7MX9-3QD2A``) when valid.
        phone (str | None): canonical phone when valid.
        errors (dict[str, Message]): field name -> error message (format only: whether a
            booking exists is never told per field).
    """

    raw: dict[str, str]
    reference: str | None = None
    phone: str | None = None
    errors: dict[str, Message] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> "LookupForm":
        """A blank form."""
        return cls(raw={"reference": "", "phone": ""})

    @classmethod
    def validate(cls, data: dict[str, str]) -> "LookupForm":
        """Check the format of the reference and phone.

        Args:
            data (dict[str, str]): submitted fields.

        Returns:
            LookupForm: with ``reference`` and ``phone`` set when both are well formed.
        """
        raw = {name: str(data.get(name) or "")[:200] for name in ("reference", "phone")}
        form = cls(raw=raw)
        if not raw["reference"].strip():
            form.errors["reference"] = _msg(N_("Enter the booking reference."))
        else:
            form.reference = normalise_reference(raw["reference"])
            if form.reference is None:
                form.errors["reference"] = _msg(
                    N_("A booking reference has 10 letters and digits, like K7MX9‑3QD2A."))
        form.phone, error = clean_phone(raw["phone"])
        if error is not None:
            form.phone = None
            form.errors["phone"] = error
        return form


def clean_cancel_reason(raw: str) -> tuple[str | None, Message | None]:
    """Check the optional reason given when cancelling (same rules as :func:`clean_reason`)."""
    return clean_reason(raw)
