"""The hospital clock: the one place that says what time and what day it is.

Every "now" and "today" of the portal comes from here: the services' rules (a clinic
session that has ended, a batch past its expiry date, a login idle too long), the row
stamps of the models, the faces' pages. Times are stored in UTC; the hospital's day and
its wall-clock times are those of ``PORTAL_TIMEZONE`` (a clinic session from 08:00 to
12:00 on 2026-03-06 is in Asia/Shanghai unless configured otherwise).

Tests set the clock through one fixture (``tests/conftest.py``): :func:`freeze` stops it
at an instant, :func:`travel` starts it at an instant and lets it run. A server that a
test starts in another process runs with the test's clock through
``PORTAL_CLOCK_OFFSET_SECONDS`` (seconds to add to the real time; :func:`offset_seconds`
gives the current one), so every process of the test agrees on the time. Nothing else
builds a "now".
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Environment variable: seconds this process's clock is ahead of the real time (may be
#: negative; for the servers tests start, and for training copies that live on another day).
OFFSET_ENV = "PORTAL_CLOCK_OFFSET_SECONDS"

_frozen: datetime | None = None
_offset = timedelta(0)


def tz() -> ZoneInfo:
    """The hospital's time zone (``PORTAL_TIMEZONE``)."""
    from portal.core.settings import get_settings  # settings read lazily: models import this module

    return get_settings().tz


def now() -> datetime:
    """The current instant, as an aware UTC datetime (microseconds kept)."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def local_now(at: datetime | None = None) -> datetime:
    """The current instant in the hospital's zone (aware).

    Args:
        at (datetime | None): an "as of" instant a caller was given (aware), used instead
            of the current one; shown in the hospital's zone.
    """
    return (at if at is not None else now()).astimezone(tz())


def today(at: datetime | None = None) -> date:
    """The hospital's current date (its local calendar day), or that of instant ``at``."""
    return local_now(at).date()


def local(instant: datetime) -> datetime:
    """``instant`` (aware; a naive value is taken as UTC) in the hospital's zone."""
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=UTC)
    return instant.astimezone(tz())


def at(day: date, wall: time) -> datetime:
    """The aware instant of hospital-local ``day`` at wall-clock time ``wall``."""
    return datetime.combine(day, wall, tzinfo=tz())


def start_of_day(day: date) -> datetime:
    """The aware instant the hospital-local ``day`` begins (00:00 local)."""
    return at(day, time.min)


def next_midnight() -> datetime:
    """The aware instant the next hospital-local day begins."""
    return start_of_day(today() + timedelta(days=1))


def epoch_seconds() -> int:
    """The current instant as whole seconds since 1970 (for signed cookies' stamps)."""
    return int(now().timestamp())


# -- for tests (one fixture in tests/conftest.py) and PORTAL_CLOCK_OFFSET_SECONDS -----------


def freeze(instant: datetime) -> None:
    """Stop the clock at ``instant`` (aware) until :func:`reset`: every call of :func:`now`
    returns it, in every thread of this process."""
    global _frozen, _offset
    if instant.tzinfo is None:
        raise ValueError("freeze() needs an aware datetime")
    _frozen, _offset = instant.astimezone(UTC), timedelta(0)


def travel(instant: datetime) -> None:
    """Set the clock to ``instant`` (aware) and let it run on from there."""
    global _frozen, _offset
    if instant.tzinfo is None:
        raise ValueError("travel() needs an aware datetime")
    _frozen, _offset = None, instant.astimezone(UTC) - datetime.now(UTC)


def advance(delta: timedelta) -> None:
    """Move the clock on by ``delta`` (frozen or running)."""
    global _frozen, _offset
    if _frozen is not None:
        _frozen = _frozen + delta
    else:
        _offset = _offset + delta


def offset_seconds() -> float:
    """Seconds the clock is ahead of the real time now (for ``PORTAL_CLOCK_OFFSET_SECONDS``
    of a server started by a test: it then runs with this process's clock)."""
    return (now() - datetime.now(UTC)).total_seconds()


def reset() -> None:
    """Back to the real time, shifted by ``PORTAL_CLOCK_OFFSET_SECONDS`` when it is set.

    Raises:
        ValueError: the variable is not a number of seconds.
    """
    global _frozen, _offset
    text = os.environ.get(OFFSET_ENV, "").strip()
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        raise ValueError(f"{OFFSET_ENV} must be a number of seconds, not {text!r}") from None
    _frozen, _offset = None, timedelta(seconds=seconds)


reset()
