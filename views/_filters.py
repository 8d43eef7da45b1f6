"""List filters of our own: named conditions (for links from the dashboard), and a
foreign-key filter for related tables too large to list.

sqladmin's own filters compare one column with one value. The dashboard's alerts need
conditions such as "below reorder level" or "expires within 30 days"; a
:class:`PresetFilter` offers each as one choice in the list's filter panel, and the
dashboard links to ``/admin/<view>/list?<parameter>=<choice>``. The conditions come from
``portal.services.reports`` and are built when the list is queried (so "today" is the day
of the request), which keeps a dashboard figure and its list in agreement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqladmin.filters import ForeignKeyFilter, get_column_obj, get_foreign_column_name
from sqlalchemy import select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Select
from starlette.requests import Request


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
