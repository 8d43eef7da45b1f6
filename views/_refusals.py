"""A refused admin form is a one-line WARNING in the log, not an ERROR with a traceback.

sqladmin's create, edit and delete routes catch whatever a save raises, show its text on
the form (or the list) and log it with ``logger.exception``: a typo in a phone number
filled the log with tracebacks. The portal's model views raise :class:`FormRefusal` for
everything that is the user's input being refused (``validate_model``'s sentences, a
related row outside the user's scope, a constraint, a row still in use) and services
raise ``DomainError``. :class:`RefusalLogFilter`, on sqladmin's logger, turns the record
of either into one WARNING line naming the kind and the sentence; anything else (a real
fault) keeps its ERROR and traceback.
"""

from __future__ import annotations

import logging

from portal.core.errors import DomainError

#: The logger sqladmin's routes log a failed save with.
SQLADMIN_LOGGER = "sqladmin.application"


class FormRefusal(ValueError):
    """The user's input was refused: the sentence is shown on the form, nothing was saved.

    A ``ValueError``, so sqladmin shows it like any other save error.
    """


def is_refusal(exc: BaseException | None) -> bool:
    """True when ``exc`` is a refusal of the user's input rather than a fault.

    Args:
        exc (BaseException | None): an exception from an admin save.

    Returns:
        bool: True for :class:`FormRefusal` and ``DomainError`` (and their subclasses).
    """
    return isinstance(exc, (FormRefusal, DomainError))


class RefusalLogFilter(logging.Filter):
    """Rewrite a logged refusal into one WARNING line without traceback (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record; a refusal's record becomes a one-line WARNING."""
        exc = record.exc_info[1] if record.exc_info else None
        if is_refusal(exc):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "admin form refused (%s): %s", (type(exc).__name__, str(exc))
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def install_refusal_logging() -> None:
    """Put :class:`RefusalLogFilter` on sqladmin's logger (once, however often it is called)."""
    logger = logging.getLogger(SQLADMIN_LOGGER)
    if not any(isinstance(f, RefusalLogFilter) for f in logger.filters):
        logger.addFilter(RefusalLogFilter())
