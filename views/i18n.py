"""Languages of the admin: Simplified Chinese and English (the staff member's language).

This is the API every admin module and template uses for its words:

- Python: ``from views.i18n import _, ngettext, lazy_gettext as _l``. ``_("Check in")`` translates
  into the current request's language; ``_l("Check in")`` is for words fixed at import time
  (``name``, ``name_plural``, ``column_labels``, ``category``), translated when shown.
- Templates (every admin template, sqladmin's overrides and the portal's own pages):
  ``{{ _("Check in") }}``, ``{{ ngettext("%(num)d bed", "%(num)d beds", n) }}``.
- :func:`use_locale` sets the language for the current request (a middleware does it from the
  staff member's setting); :func:`current_locale` reads it.

Until the admin's catalogue lands these return the English source words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from babel.support import LazyProxy

#: Locales offered to staff.
LOCALES = ("zh_Hans", "en")
DEFAULT_LOCALE = "en"

_locale: ContextVar[str] = ContextVar("admin_locale", default=DEFAULT_LOCALE)


def current_locale() -> str:
    """The language of the current request: ``"zh_Hans"`` or ``"en"``."""
    return _locale.get()


@contextmanager
def use_locale(locale: str) -> Iterator[None]:
    """Translate into ``locale`` inside the block (one request, a test, a report export).

    Args:
        locale (str): one of :data:`LOCALES`.
    """
    token = _locale.set(locale)
    try:
        yield
    finally:
        _locale.reset(token)


def gettext(message: str, **variables: object) -> str:
    """``message`` in the current language, with ``%(name)s`` variables filled in.

    Args:
        message (str): the English source text.
        **variables: values for the message's ``%(name)s`` placeholders.

    Returns:
        str: the translated text (English until the catalogue lands).
    """
    return message % variables if variables else message


def ngettext(singular: str, plural: str, num: int, **variables: object) -> str:
    """The singular or plural form of a message for ``num`` (``%(num)d`` is filled in).

    Args:
        singular (str): the English singular.
        plural (str): the English plural.
        num (int): the count that chooses the form.
        **variables: values for other placeholders.

    Returns:
        str: the translated text.
    """
    text = singular if num == 1 else plural
    return text % {"num": num, **variables}


def lazy_gettext(message: str, **variables: object) -> LazyProxy:
    """``message`` translated when it is shown, not when the module is imported.

    Args:
        message (str): the English source text.

    Returns:
        LazyProxy: behaves as the translated ``str`` wherever it is used.
    """
    return LazyProxy(gettext, message, enable_cache=False, **variables)


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it here."""
    return message


_ = gettext
