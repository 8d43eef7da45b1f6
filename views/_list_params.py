"""What an admin list page (and its export) accepts in its query string.

Checked before any query runs (``views._access.RowScopedView.filtered_query``); a value
the page would not offer is answered with 400 and a sentence naming the parameter and
what it takes, never a 500 and never a query without bounds. The rule, for every view
(summarised in ``views._base.PortalModelView``):

* **Choices fixed in code must be one of the choices**: ``pageSize`` (the view's
  ``page_size_options``), ``sortBy`` (its sortable columns), ``sort`` (``asc``/``desc``),
  the value of a filter whose choices do not come from the data (yes/no, status,
  preset conditions) and the ``<filter>_op`` of a comparison filter. An empty value
  means "not set".
* **Free values must have the column's type**: ``page`` is a whole number of at most
  :data:`MAX_PAGE_DIGITS` digits; the value of a comparison filter or of a filter that
  offers no choices (the From/To dates of ``views._filters.date_range``) is a number, a
  date, a date and time or at most :data:`MAX_TEXT` characters of text, as its column
  holds; a filter whose choices come from the data (a doctor, an audit action) takes a
  value of its column's type. A well-formed value that matches no row lists no row, like a
  search: rows come and go, so this is not an error.
* **Pages out of range are normalised**: a ``page`` below 1 or past the last page is
  redirected to the nearest page that exists (sqladmin's own behaviour), since the rows
  move under a bookmarked link.
* ``search`` is free text of at most :data:`MAX_TEXT` characters.
* Parameters the list does not know are ignored (sqladmin adds ``error`` after a
  refused delete, for one).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqladmin.filters import AllUniqueStringValuesFilter, ForeignKeyFilter, get_column_obj
from sqlalchemy import Date, DateTime, Enum, Float, Integer, Numeric, String
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request

#: Longest search text or text filter value, in characters.
MAX_TEXT = 100
#: Most digits of a page number.
MAX_PAGE_DIGITS = 9
#: The value of sqladmin's filters that means "no filter" (besides the empty string).
ALL = "__all"
#: Largest id a filter on an integer column takes (signed 64-bit).
MAX_INT = 2**63 - 1
#: Years a date or datetime filter takes (1 and 9999 overflow once moved to UTC or by a day).
YEARS = range(2, 9999)

_WHOLE = re.compile(r"-?[0-9]+")


class BadListParameter(HTTPException):
    """A list query parameter the page does not offer: 400 with ``detail`` saying why."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=status.HTTP_400_BAD_REQUEST, detail=detail)


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "\u2026")


def _choices(values: list[str]) -> str:
    return ", ".join(values[:12]) + (", \u2026" if len(values) > 12 else "")


async def check_list_params(view: Any, request: Request) -> None:
    """Refuse query parameters the list of ``view`` does not offer (see the module docstring).

    Args:
        view (ModelView): the admin view whose list (or export) is asked for.
        request (Request): the request; only its query parameters are read.

    Raises:
        BadListParameter: (HTTP 400) the first parameter that is not accepted, and why.
    """
    params = request.query_params
    page = params.get("page", "")
    if page and not (_WHOLE.fullmatch(page) and len(page.lstrip("-")) <= MAX_PAGE_DIGITS):
        raise BadListParameter(f"page must be a page number, not {_shown(page)}.")
    sizes = sorted({view.page_size, *view.page_size_options})
    size = params.get("pageSize", "")
    if size and size not in {str(s) for s in sizes}:
        raise BadListParameter(f"pageSize must be one of {_choices([str(s) for s in sizes])}, not {_shown(size)}.")
    sort_by = params.get("sortBy", "")
    if sort_by and sort_by not in view._sort_fields:
        raise BadListParameter(
            f"sortBy must be one of the sortable columns ({_choices(list(view._sort_fields))}), not {_shown(sort_by)}.")
    sort = params.get("sort", "")
    if sort and sort not in ("asc", "desc"):
        raise BadListParameter(f"sort must be asc or desc, not {_shown(sort)}.")
    search = params.get("search", "")
    if len(search) > MAX_TEXT:
        raise BadListParameter(f"search takes at most {MAX_TEXT} characters.")
    for filter_ in view.get_filters():
        await _check_filter(view, request, filter_)


async def _check_filter(view: Any, request: Request, filter_: Any) -> None:
    name = filter_.parameter_name
    value = request.query_params.get(name, "")
    if getattr(filter_, "has_operator", False):
        operation = request.query_params.get(f"{name}_op", "")
        column = get_column_obj(filter_.column, view.model)
        operations = [op for op, _ in filter_.get_operation_options(column)]
        if operation and operation not in operations:
            raise BadListParameter(f"{name}_op must be one of {_choices(operations)}, not {_shown(operation)}.")
        if value and not operation:
            raise BadListParameter(f"{name} needs {name}_op, one of {_choices(operations)}.")
        if value:
            _check_typed(name, value, column)
        return
    if not value:
        return
    if isinstance(filter_, (ForeignKeyFilter, AllUniqueStringValuesFilter)):  # choices from the data
        if value != ALL:
            column = filter_.foreign_key if isinstance(filter_, ForeignKeyFilter) else filter_.column
            _check_typed(name, value, get_column_obj(column, view.model))
        return
    offered = [str(v) for v, _ in await filter_.lookups(request, view.model, view._run_query)]
    if offered:
        if value not in offered:
            raise BadListParameter(f"{name} must be one of {_choices(offered)}, not {_shown(value)}.")
    elif getattr(filter_, "column", None) is not None:  # no choices: a free value of its column (From/To dates)
        _check_typed(name, value, get_column_obj(filter_.column, view.model))
    elif len(value) > MAX_TEXT:
        raise BadListParameter(f"{name} takes at most {MAX_TEXT} characters.")


def _check_typed(name: str, value: str, column: Any) -> None:
    """Refuse ``value`` unless it reads as a value of ``column``'s type."""
    kind = column.type
    impl = getattr(kind, "impl", kind)  # TypeDecorators (UTCDateTime) by what they store
    text = value.strip()
    if isinstance(kind, Enum):
        allowed = list(kind.enums)
        if text not in allowed:
            raise BadListParameter(f"{name} must be one of {_choices(allowed)}, not {_shown(value)}.")
    elif isinstance(impl, Integer):
        if not (_WHOLE.fullmatch(text) and abs(int(text)) <= MAX_INT):
            raise BadListParameter(f"{name} must be a whole number, not {_shown(value)}.")
    elif isinstance(impl, (Numeric, Float)):
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or abs(number) > MAX_INT:
            raise BadListParameter(f"{name} must be a number, not {_shown(value)}.")
    elif isinstance(impl, DateTime):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            when = None
        if when is None or when.year not in YEARS:
            raise BadListParameter(f"{name} must be a date (YYYY-MM-DD) or a date and time, not {_shown(value)}.")
    elif isinstance(impl, Date):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
        if day is None or day.year not in YEARS:
            raise BadListParameter(f"{name} must be a date (YYYY-MM-DD), not {_shown(value)}.")
    elif isinstance(impl, String):
        limit = min(MAX_TEXT, impl.length or MAX_TEXT)
        if len(value) > limit:
            raise BadListParameter(f"{name} takes at most {limit} characters.")
    elif len(value) > MAX_TEXT:
        raise BadListParameter(f"{name} takes at most {MAX_TEXT} characters.")
