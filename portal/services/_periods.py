"""Group rows by hospital-local day or month, in SQL, on SQLite and MariaDB alike.

A ``DATE`` that already holds the hospital's local date (``Appointment.session_date``)
is grouped by the column itself. A UTC ``DATETIME`` (``StockMovement.created_at``) needs
more: the hospital-local day of an instant depends on the zone's UTC offset, which may
change (daylight saving). The range is cut into :class:`Segment` s of constant offset;
within one the label is computed in SQL from ``column + offset``. A day on which the
offset changes becomes a segment of its own with a constant label, so every row lands on
the right local day in every zone.

Labels are text: ``YYYY-MM-DD`` for days and ``YYYY-MM`` for months, the same format
on both databases (SQLite ``strftime`` and MariaDB ``DATE_FORMAT`` share these codes);
:func:`period_labels` lists every label of a range, so empty periods show as zeros.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, literal, literal_column
from sqlalchemy.sql.elements import ColumnElement


class Grain(str, enum.Enum):
    """How finely a report groups dates."""

    day = "day"
    month = "month"


_FORMATS = {Grain.day: "%Y-%m-%d", Grain.month: "%Y-%m"}


@dataclass(frozen=True)
class Segment:
    """A stretch of time in which the hospital's UTC offset is constant.

    Attributes:
        utc_start (datetime): first instant (aware, UTC), inclusive.
        utc_end (datetime): end instant (aware, UTC), exclusive.
        offset_minutes (int | None): the zone's UTC offset in minutes throughout, or
            None for a day on which the offset changes.
        day (date | None): that local day, when ``offset_minutes`` is None.
    """

    utc_start: datetime
    utc_end: datetime
    offset_minutes: int | None
    day: date | None = None


def local_midnight_utc(day: date, tz: ZoneInfo) -> datetime:
    """Return the UTC instant (aware) at which local ``day`` begins in ``tz``."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def utc_bounds(start: date, end: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Return ``(from, to)``: the UTC instants from local ``start`` 00:00 (inclusive)
    to the local midnight after ``end`` (exclusive)."""
    return local_midnight_utc(start, tz), local_midnight_utc(end + timedelta(days=1), tz)


def segments(start: date, end: date, tz: ZoneInfo) -> list[Segment]:
    """Cut the local days ``start``..``end`` (inclusive) into constant-offset segments.

    Args:
        start (date): first local day.
        end (date): last local day (>= ``start``).
        tz (ZoneInfo): the hospital's zone.

    Returns:
        list[Segment]: in time order; one segment for a zone without transitions in the
        range, a few more around daylight-saving changes.
    """
    def offset(day: date) -> int:
        delta = datetime.combine(day, time(0), tzinfo=tz).utcoffset() or timedelta(0)
        return int(delta.total_seconds() // 60)

    out: list[Segment] = []
    run_start: date | None = None
    day = start
    while day <= end:
        nxt = day + timedelta(days=1)
        if offset(day) != offset(nxt):
            if run_start is not None:
                out.append(Segment(local_midnight_utc(run_start, tz), local_midnight_utc(day, tz), offset(run_start)))
                run_start = None
            out.append(Segment(local_midnight_utc(day, tz), local_midnight_utc(nxt, tz), None, day))
        elif run_start is None:
            run_start = day
        day = nxt
    if run_start is not None:
        out.append(Segment(local_midnight_utc(run_start, tz), local_midnight_utc(end + timedelta(days=1), tz), offset(run_start)))
    return out


def instant_label(dialect: str, column: Any, grain: Grain, segment: Segment) -> ColumnElement[str]:
    """SQL text label of a UTC ``DATETIME`` column's local day or month within ``segment``.

    Args:
        dialect (str): ``sqlite`` or ``mysql``/``mariadb``.
        column: the UTC datetime column.
        grain (Grain): day or month.
        segment (Segment): the constant-offset stretch the query is restricted to.

    Returns:
        ColumnElement[str]: a constant for a transition day, else ``column`` shifted by
        the segment's offset and formatted.
    """
    fmt = _FORMATS[grain]
    if segment.offset_minutes is None:
        return literal(segment.day.strftime(fmt))
    minutes = int(segment.offset_minutes)
    if dialect == "sqlite":
        return func.strftime(fmt, column, f"{minutes:+d} minutes")
    return func.date_format(func.date_add(column, literal_column(f"INTERVAL {minutes} MINUTE")), fmt)


def period_labels(start: date, end: date, grain: Grain) -> list[str]:
    """Every label from ``start`` to ``end`` (inclusive) at ``grain``, in order."""
    if grain is Grain.day:
        return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    labels, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return labels
