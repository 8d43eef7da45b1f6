"""List filters that read the way hospital staff mean them.

``date_range(column, title)`` gives a From/To pair of filters (inclusive days) shown as
one box with two date pickers. On a ``date`` column the days are compared as they are;
on a UTC datetime column each day runs from midnight to midnight in the hospital's
zone (``PORTAL_TIMEZONE``), so "on 6 March" means the hospital's 6 March, not UTC's.
A value with a time of day (``2026-03-06T10:30:00``, as the dashboard's links carry) is
an instant in the hospital's zone: ``from`` keeps rows at or after it, ``to`` rows before
it. sqladmin hands each filter one query parameter, so the pair is two filter objects
(``<column>_from`` and ``<column>_to``); the first draws the box for both, the second
draws nothing.

:class:`PresetFilter` offers named conditions, for links from the dashboard. sqladmin's
own filters compare one column with one value; the dashboard's alerts need conditions
such as "below reorder level" or "expires within 30 days", each offered as one choice in
the list's filter panel, and the dashboard links to
``/admin/<view>/list?<parameter>=<choice>``. The conditions come from
``portal.services.reports`` and are built when the list is queried (so "today" is the day
of the request), which keeps a dashboard figure and its list in agreement.

:class:`SearchableForeignKeyFilter` is sqladmin's foreign-key filter for a related table
too large to list in the panel (doctors): a few names and a box to find the others.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqladmin.filters import (
    ForeignKeyFilter,
    OperationColumnFilter,
    get_column_obj,
    get_foreign_column_name,
    get_parameter_name,
)
from sqlalchemy import Date, DateTime, Float, Integer, Numeric, String, Text, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Select
from starlette.requests import Request

from portal.core import clock


def parse_day(value: Any) -> date | None:
    """``2026-03-06`` (or a datetime's date part) as a date; None when it is not one."""
    text = str(value or "").strip()[:10]
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_instant(value: Any) -> datetime | None:
    """``2026-03-06T10:30:00`` (hospital time unless it names an offset) as an aware UTC
    datetime; None when ``value`` is a bare day or not a date and time at all."""
    text = str(value or "").strip()
    if len(text) <= 10:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=clock.tz())
    return moment.astimezone(UTC)


def local_midnight(day: date) -> datetime:
    """The start of ``day`` in the hospital's zone, as an aware UTC datetime."""
    return clock.start_of_day(day).astimezone(UTC)


def _is_plain_date(column: Any) -> bool:
    return isinstance(column.type, Date)


class DateRangeFilter:
    """One end (``from`` or ``to``, both inclusive) of a date range on one column.

    Build the pair with :func:`date_range`; the ``from`` end renders the box.

    Attributes:
        column: the model column (a ``date`` or a UTC datetime column).
        end (str): ``"from"`` or ``"to"``.
        title (str): shown above the box.
        parameter_name (str): the query parameter, ``<column>_from`` / ``<column>_to``.
        partner (DateRangeFilter | None): the other end, for the template.
    """

    has_operator = False

    def __init__(self, column: Any, *, end: str, title: str, parameter_name: str) -> None:
        if end not in ("from", "to"):
            raise ValueError("end must be 'from' or 'to'")
        self.column = column
        self.end = end
        self.title = title
        self.parameter_name = parameter_name
        self.partner: DateRangeFilter | None = None
        self.template = "filters/date_range.html" if end == "from" else "filters/nothing.html"

    async def lookups(self, request, model, run_query) -> list[tuple[str, str]]:
        """Not a lookup filter: no choices."""
        return []

    async def get_filtered_query(self, query: Select, value: Any, model: Any) -> Select:
        """Keep rows on or after (``from``) or on or before (``to``) the given day; for
        an instant on a datetime column, at or after it (``from``) or before it (``to``).
        A value that is not a date leaves the query as it is."""
        column = get_column_obj(self.column, model)
        instant = parse_instant(value)
        if instant is not None and not _is_plain_date(column):
            return query.filter(column >= instant if self.end == "from" else column < instant)
        day = parse_day(value)
        if day is None:
            return query
        if _is_plain_date(column):
            return query.filter(column >= day if self.end == "from" else column <= day)
        if self.end == "from":
            return query.filter(column >= local_midnight(day))
        return query.filter(column < local_midnight(day + timedelta(days=1)))


def date_range(column: Any, title: str) -> list[DateRangeFilter]:
    """The From/To filter pair for ``column`` (spread it into ``column_filters``)."""
    name = get_parameter_name(column)
    start = DateRangeFilter(column, end="from", title=title, parameter_name=f"{name}_from")
    stop = DateRangeFilter(column, end="to", title=f"{title} (to)", parameter_name=f"{name}_to")
    start.partner, stop.partner = stop, start
    return [start, stop]


def _stored_type(column_obj: Any) -> Any:
    """The column's type as the database stores it (a TypeDecorator's ``impl``)."""
    kind = column_obj.type
    return getattr(kind, "impl_instance", None) or kind


class ColumnFilter(OperationColumnFilter):
    """sqladmin's comparison filter, reading the column's type through type decorators.

    sqladmin tells text from numbers by the column's type class, so on SQLModel's
    ``AutoString`` (a decorator over VARCHAR) it offered only "equals", not "contains",
    "starts with" or "ends with" (while applying them when a URL asked). The list's
    query-parameter check (``views._list_params``) accepts exactly what is offered.
    """

    def _is_string_type(self, column_obj: Any) -> bool:
        return isinstance(_stored_type(column_obj), (String, Text))

    def _is_numeric_type(self, column_obj: Any) -> bool:
        return isinstance(_stored_type(column_obj), (Integer, Numeric, Float))

    def _is_date_type(self, column_obj: Any) -> bool:
        return isinstance(_stored_type(column_obj), (Date, DateTime))


class LocalDateTimeFilter(OperationColumnFilter):
    """Single-operation date filter for a UTC datetime column, read in the hospital's zone.

    Prefer :func:`date_range`. ``greater_than`` means on or after the day's (local)
    start, ``less_than`` before it, ``equals`` during that local day.
    """

    def _is_date_type(self, column_obj: Any) -> bool:
        return True

    def get_operation_options(self, column_obj: Any) -> list[tuple[str, str]]:
        """The three operations, in staff words."""
        return [("greater_than", "On or after"), ("less_than", "Before"), ("equals", "On day")]

    def _convert_value_for_column(self, value: str, column_obj: Any, operation: str = "equals") -> Any:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=clock.tz())
        return parsed.astimezone(UTC)

    async def get_filtered_query(self, query, operation, value, model):
        """Apply the operation with an aware datetime (never a bound string)."""
        start = self._convert_value_for_column(str(value), None)
        if start is None or not operation:
            return query
        column = get_column_obj(self.column, model)
        if operation == "equals":
            return query.filter(column >= start, column < start + timedelta(days=1))
        if operation == "greater_than":
            return query.filter(column >= start)
        if operation == "less_than":
            return query.filter(column < start)
        return query



class PresetFilter:
    """A lookup filter whose choices are named SQL conditions.

    Args:
        parameter_name (str): the query parameter (e.g. ``stock``).
        title (str): heading in the filter panel.
        presets (dict[str, tuple[str, Callable[[], ColumnElement[bool]]]]): choice value ->
            (label shown, function returning the WHERE condition).
    """

    has_operator = False
    template = "sqladmin/filters/lookup_filter.html"

    def __init__(
        self,
        parameter_name: str,
        title: str,
        presets: dict[str, tuple[str, Callable[[], ColumnElement[bool]]]],
    ) -> None:
        self.parameter_name = parameter_name
        self.title = title
        self.presets = presets

    async def lookups(self, request: Request, model: Any, run_query: Callable[[Select], Any]) -> list[tuple[str, str]]:
        """The choices offered: ``All`` and one per preset."""
        return [("__all", "All")] + [(value, label) for value, (label, _) in self.presets.items()]

    async def get_filtered_query(self, query: Select, value: Any, model: Any) -> Select:
        """Add the chosen preset's condition; an unknown or empty choice filters nothing."""
        preset = self.presets.get(str(value or ""))
        return query if preset is None else query.filter(preset[1]())


class Choices(list):
    """The choices a :class:`SearchableForeignKeyFilter` offers; ``more`` is True when
    rows beyond them exist (the panel then asks for part of a name)."""

    more: bool = False


class SearchableForeignKeyFilter(ForeignKeyFilter):
    """sqladmin's ``ForeignKeyFilter`` for a related table that may hold thousands of rows.

    The filter itself is unchanged (``?doctor_id=7`` keeps its meaning). Only the panel
    differs: sqladmin lists every related row as a link on every list page (13,360
    doctors at 334 x the demo: a 2 MB page); this one lists at most ``max_choices``,
    by name, and, when there are more, a box to narrow them by part of the name
    (query parameter ``<parameter>_search``; it filters the choices, not the list).
    The row chosen is always shown, even when outside the choices listed.

    Args:
        foreign_key, foreign_display_field, title, parameter_name: as for ``ForeignKeyFilter``
            (``foreign_display_field`` is a column attribute such as ``Doctor.full_name``).
        max_choices (int): most choices listed (20).
    """

    template = "portal/filters/searchable_lookup_filter.html"

    def __init__(self, foreign_key: Any, foreign_display_field: Any, *, max_choices: int = 20, **kw: Any) -> None:
        super().__init__(foreign_key, foreign_display_field, **kw)
        self.max_choices = max_choices

    @property
    def search_parameter(self) -> str:
        """Query parameter of the name box."""
        return f"{self.parameter_name}_search"

    def search_term(self, request: Request) -> str:
        """The text typed in the name box (at most 60 characters)."""
        return request.query_params.get(self.search_parameter, "").strip()[:60]

    async def lookups(self, request: Request, model: Any, run_query: Callable[[Select], Any]) -> Choices:
        """``All``, the chosen row, then up to ``max_choices`` rows by name (those matching the box)."""
        display = self.foreign_display_field
        target = display.class_
        key = getattr(target, get_foreign_column_name(get_column_obj(self.foreign_key, model)))
        stmt = select(key, display).order_by(display, key).limit(self.max_choices + 1)
        term = self.search_term(request)
        if term:
            stmt = stmt.where(display.contains(term, autoescape=True))
        rows = list(await run_query(stmt))
        choices = Choices([("__all", "All")])
        choices.more = len(rows) > self.max_choices
        listed = {str(k) for k, _ in rows[: self.max_choices]}
        chosen = request.query_params.get(self.parameter_name, "")
        if chosen.isdigit() and chosen not in listed:
            picked = await run_query(select(key, display).where(key == int(chosen)))
            choices.extend((str(k), str(v)) for k, v in picked)
        choices.extend((str(k), str(v)) for k, v in rows[: self.max_choices])
        return choices
