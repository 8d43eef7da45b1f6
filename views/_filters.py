"""A list filter offering named conditions, for links from the dashboard.

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
