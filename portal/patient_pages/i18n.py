"""Languages of the patient pages: Simplified Chinese and English.

Messages live in gettext catalogues under ``translations/`` (``messages.pot``, and
``zh_Hans/LC_MESSAGES/messages.po`` with its compiled ``.mo``, both committed). The
language comes from the ``lang`` cookie (set by the switch on every page), else from
``Accept-Language``, else :data:`DEFAULT_LOCALE`. Dates, weekdays and numbers are
formatted by Babel from CLDR data, in the hospital's time zone.

To change a message: edit the templates or Python, then (from the repository root)::

    pybabel extract -F portal/patient_pages/babel.cfg -o portal/patient_pages/translations/messages.pot .
    pybabel update -i portal/patient_pages/translations/messages.pot -d portal/patient_pages/translations -l zh_Hans
    # translate the new entries in the .po, then
    pybabel compile -d portal/patient_pages/translations -l zh_Hans

``tests/test_booking_i18n.py`` fails when the ``.mo`` is not compiled from the ``.po``
or a message is left untranslated.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from portal.patient_pages.forms import N_

TRANSLATIONS_DIR = Path(__file__).parent / "translations"
DOMAIN = "messages"

#: Locales offered, with the name each is shown as in the language switch.
LOCALES = {"zh_Hans": "中文", "en": "English"}
#: Short codes used in the cookie and the switch's links.
COOKIE_CODES = {"zh": "zh_Hans", "en": "en"}
#: The ``lang`` attribute of each locale's pages.
HTML_LANG = {"zh_Hans": "zh-Hans", "en": "en"}
DEFAULT_LOCALE = "en"
LANG_COOKIE = "lang"

#: Names that come from the database but are the hospital's standard ones (the seeded
#: departments, doctors' titles and specialties): translated when a translation exists.
DATA_NAMES = (
    N_("City General Hospital"),
    N_("Accident And Emergency Care"), N_("Cardiology"), N_("Diabetology"), N_("Dermatology"), N_("ENT"),
    N_("Gastroenterology"), N_("General Surgery"), N_("Gynaecology"), N_("Neurology"), N_("Oncology"),
    N_("Orthopaedics"), N_("Urology"),
    N_("Chief Physician"), N_("Associate Chief Physician"), N_("Attending Physician"), N_("Resident Physician"),
    N_("Emergency Medicine"), N_("Endocrinology"), N_("Otorhinolaryngology"), N_("General Medicine"),
    N_("Obstetrics and Gynecology"), N_("Orthopedics"),
)


@lru_cache(maxsize=None)
def translations(locale: str) -> NullTranslations:
    """The compiled catalogue of ``locale`` (English is the source language: no catalogue).

    Args:
        locale (str): ``"zh_Hans"`` or ``"en"``.

    Returns:
        NullTranslations: gettext translations (``gettext``, ``ngettext``, ``pgettext``...).
    """
    if locale == "en":
        return NullTranslations()
    found = Translations.load(str(TRANSLATIONS_DIR), [locale], DOMAIN)
    return found


def _from_code(code: str) -> str | None:
    code = code.strip().lower().replace("_", "-")
    if code.startswith("zh"):
        return "zh_Hans"  # readers of Traditional Chinese read Simplified better than English
    if code.startswith("en"):
        return "en"
    return None


def parse_accept_language(header: str | None) -> str | None:
    """The best offered locale for an ``Accept-Language`` header.

    Args:
        header (str | None): e.g. ``"zh-CN,zh;q=0.9,en;q=0.8"``.

    Returns:
        str | None: ``"zh_Hans"``, ``"en"``, or None when neither is acceptable.
    """
    choices: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")[:20]):
        code, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        locale = _from_code(code)
        if locale and quality > 0:
            choices.append((-quality, position, locale))
    return min(choices)[2] if choices else None


def choose_locale(cookie: str | None, accept_language: str | None) -> str:
    """The page language: the ``lang`` cookie, else ``Accept-Language``, else the default.

    Args:
        cookie (str | None): value of the ``lang`` cookie (``"zh"`` or ``"en"``).
        accept_language (str | None): the request's ``Accept-Language`` header.

    Returns:
        str: a key of :data:`LOCALES`.
    """
    if cookie in COOKIE_CODES:
        return COOKIE_CODES[cookie]
    return parse_accept_language(accept_language) or DEFAULT_LOCALE


def cookie_code(locale: str) -> str:
    """The short cookie code (``"zh"``/``"en"``) of a locale."""
    return next(code for code, name in COOKIE_CODES.items() if name == locale)


# A department page shows hundreds of sessions on a few dates, times and fees: Babel formats
# each distinct value once per process (the results depend only on the value and locale).
@lru_cache(maxsize=4096)
def _short_day(value: date, locale: str) -> str:
    return format_skeleton("MMMEd", value, locale=locale)


@lru_cache(maxsize=4096)
def _clock_time(value: time, locale: str) -> str:
    return format_time(value, "HH:mm", locale=locale)


@lru_cache(maxsize=4096)
def _yuan(fen: int, locale: str) -> str:
    return "¥" + format_decimal(Decimal(fen) / 100, "#,##0.00", locale=locale)


class Formatter:
    """Locale-aware formatting of the values on patient pages.

    Args:
        locale (str): a key of :data:`LOCALES`.
    """

    def __init__(self, locale: str) -> None:
        self.locale = locale
        self._t = translations(locale)

    def day(self, value: date) -> str:
        """Short date with weekday: ``Sat, Nov 21`` / ``11月21日周六``."""
        return _short_day(value, self.locale)

    def full_date(self, value: date) -> str:
        """Long date with weekday: ``Saturday, November 21, 2026`` / ``2026年11月21日星期六``."""
        return format_date(value, "full", locale=self.locale)

    def birth_date(self, value: date) -> str:
        """Medium date: ``Nov 21, 1980`` / ``1980年11月21日``."""
        return format_skeleton("yMMMd", value, locale=self.locale)

    def time(self, value: time) -> str:
        """24-hour time: ``08:30``."""
        return _clock_time(value, self.locale)

    def datetime(self, value: datetime, tz) -> str:
        """An aware datetime in zone ``tz``, as ``Nov 21, 2026 08:30``."""
        local = value.astimezone(tz)
        return f"{self.birth_date(local.date())} {self.time(local.time())}"

    def money(self, fen: int) -> str:
        """A fee in fen (1/100 yuan) as ``¥20.00``; nothing to pay shows as "Free"."""
        if not fen:
            return self._t.gettext("Free")
        return _yuan(fen, self.locale)

    def part_of_day(self, start: time) -> str:
        """Morning, afternoon or evening for a session starting at ``start``, translated."""
        if start < time(12, 0):
            return self._t.gettext("Morning")
        if start < time(18, 0):
            return self._t.gettext("Afternoon")
        return self._t.gettext("Evening")

    def data(self, value: str | None) -> str:
        """A name from the database, translated if it is a standard one (else unchanged).

        Never passes the value through the template's ``_()``: the result is plain text,
        escaped like any other value.
        """
        if not value:
            return ""
        return self._t.gettext(value)

    def data_matches(self, query: str) -> tuple[str, ...]:
        """The standard names whose translation contains ``query`` (case-insensitive)."""
        text = query.strip().lower()
        if not text or self.locale == "en":
            return ()
        return tuple(name for name in DATA_NAMES if text in self._t.gettext(name).lower())
