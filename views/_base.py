"""The base ModelView every admin screen derives from.

It shows datetimes in the hospital's time zone, turns database constraint errors
into sentences on the form (never a 500), and refuses to delete a row that other
rows still point at. Create, edit and delete are audited in the same transaction
by the admin session's change hook (``portal.services.change_audit``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, ClassVar

from markupsafe import Markup, escape
from sqladmin import ModelView
from sqladmin.filters import OperationColumnFilter
from sqladmin.formatters import BASE_FORMATTERS
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request

from portal.settings import get_settings
from views._access import RowScopedView
from views._forms import limit_to_columns


def local_datetime(value: datetime | None) -> str:
    """Format an aware UTC datetime in the hospital's zone as ``YYYY-MM-DD HH:MM``."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(get_settings().tz).strftime("%Y-%m-%d %H:%M")


def money(value: int | None) -> str:
    """Format an amount in the smallest currency unit as ``123.45``."""
    if value is None:
        return ""
    return f"{value / 100:,.2f}"


def _datetime_formatter(value: datetime) -> Markup:
    return Markup(f'<span title="{escape(value.isoformat())}">{escape(local_datetime(value))}</span>')


FORMATTERS = {**BASE_FORMATTERS, datetime: _datetime_formatter, date: lambda v: v.isoformat()}


class LocalDateTimeFilter(OperationColumnFilter):
    """Date-range filter for a UTC datetime column, read in the hospital's zone.

    ``greater_than`` / ``less_than`` / ``equals`` take a date (``2026-11-20``) or a
    local datetime; the value becomes an aware datetime before it reaches the query
    (sqladmin would otherwise bind a string).
    """

    def _is_date_type(self, column_obj: Any) -> bool:
        return True

    def get_operation_options(self, column_obj: Any) -> list[tuple[str, str]]:
        return [("greater_than", "On or after"), ("less_than", "Before"), ("equals", "On day")]

    def _convert_value_for_column(self, value: str, column_obj: Any, operation: str = "equals") -> Any:
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=get_settings().tz)
        return parsed.astimezone(UTC)

    async def get_filtered_query(self, query, operation, value, model):
        if operation == "equals":
            start = self._convert_value_for_column(str(value), None)
            if start is None:
                return query
            from datetime import timedelta

            column = getattr(model, self.column.key if hasattr(self.column, "key") else self.column)
            return query.filter(column >= start, column < start + timedelta(days=1))
        return await super().get_filtered_query(query, operation, value, model)


_UNIQUE_PATTERNS = (
    re.compile(r"UNIQUE constraint failed: (?P<cols>[\w., ]+)"),
    re.compile(r"Duplicate entry '.*' for key '(?:\w+\.)?(?P<key>\w+)'"),
)
_CHECK_PATTERNS = (
    re.compile(r"CHECK constraint failed: (?P<name>\w+)"),
    re.compile(r"CONSTRAINT `(?P<name>\w+)` failed"),
)
_FK_PATTERNS = (
    re.compile(r"FOREIGN KEY constraint failed"),
    re.compile(r"a foreign key constraint fails"),
)


class PortalModelView(RowScopedView, ModelView):
    """Base for every admin view: row scope, hospital-time formatting, readable errors, safe delete.

    Which rows a user sees and may pick is each view's ``scope()`` (``views._access``).

    Query parameters of the list and export (``views._list_params``): a parameter whose
    choices are fixed in code (``pageSize``, ``sortBy``, ``sort``, ``<filter>_op``, a
    yes/no, status or preset filter) must be one of them, and a free value (``page``,
    ``search``, a comparison or id filter) must have its column's type; anything else
    is a 400 naming the parameter and what it takes. A well-formed value that matches
    nothing lists nothing; a page out of range is redirected to the nearest page.
    Unknown parameters are ignored. A URL id that cannot name a row is a 404.

    Class attributes (besides sqladmin's own):
        constraint_messages (dict[str, str]): constraint or column name -> sentence
            shown when the database refuses a save because of it.
        delete_blockers (list[tuple[Any, str]]): (foreign-key column of another model,
            plural noun) pairs; deleting a row still referenced by one is refused with
            "still has N <noun>".
    """

    column_type_formatters = FORMATTERS
    column_type_formatters_detail = FORMATTERS
    page_size = 25
    page_size_options = [25, 50, 100]
    constraint_messages: ClassVar[dict[str, str]] = {}
    delete_blockers: ClassVar[list[tuple[Any, str]]] = []

    async def scaffold_form(self, rules: list[str] | None = None) -> type:
        """sqladmin's form, each field limited to what its column stores (``limit_to_columns``)."""
        return limit_to_columns(await super().scaffold_form(rules), self.model)

    # -- errors -------------------------------------------------------------------
    def describe_integrity_error(self, exc: IntegrityError) -> str:
        """Turn a database constraint error into a sentence for the form."""
        text = str(exc.orig)
        for pattern in _UNIQUE_PATTERNS:
            match = pattern.search(text)
            if match:
                key = match.groupdict().get("key") or match.group("cols")
                for name, message in self.constraint_messages.items():
                    if name in key:
                        return message
                column = key.split(".")[-1].split(",")[0].strip()
                column = re.sub(r"^uq_\w+?_(?=[a-z_]+$)", "", column)
                return f"Another record already has this {column.replace('_', ' ')}."
        for pattern in _CHECK_PATTERNS:
            match = pattern.search(text)
            if match:
                name = match.group("name")
                return self.constraint_messages.get(name, f"A value is out of range ({name}).")
        for pattern in _FK_PATTERNS:
            if pattern.search(text):
                return "A related record is missing or is still in use."
        return "The database refused this change: a value is missing or not allowed."

    def validate_model(self, data: dict, model: Any, is_created: bool) -> None:
        """Cross-field checks before saving; raise ``ValueError`` with a sentence."""

    async def on_model_change(self, data: dict, model: Any, is_created: bool, request: Request) -> None:
        tz = get_settings().tz
        for key, value in list(data.items()):
            if isinstance(value, datetime) and value.tzinfo is None:
                data[key] = value.replace(tzinfo=tz).astimezone(UTC)
        await self.check_related_choices(request, data, model, is_created)
        self.validate_model(data, model, is_created)

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        data = await super().get_form_data_for_edit(obj)
        tz = get_settings().tz
        for key, value in list(data.items()):
            if isinstance(value, datetime) and value.tzinfo is not None:
                data[key] = value.astimezone(tz).replace(tzinfo=None)
        return data

    async def insert_model(self, request: Request, data: dict) -> Any:
        try:
            return await super().insert_model(request, data)
        except IntegrityError as exc:
            raise ValueError(self.describe_integrity_error(exc)) from None

    async def update_model(self, request: Request, pk: str, data: dict) -> Any:
        try:
            return await super().update_model(request, pk, data)
        except IntegrityError as exc:
            raise ValueError(self.describe_integrity_error(exc)) from None

    # -- delete -------------------------------------------------------------------
    async def on_model_delete(self, model: Any, request: Request) -> None:
        from sqlalchemy import func

        pk = getattr(model, "id", None)
        for column, noun in self.delete_blockers:
            rows = await self._run_arbitrary_query(
                select(func.count()).select_from(column.class_).where(column == pk)
            )
            n = rows[0][0]
            if n:
                raise ValueError(f"{model} cannot be deleted: it still has {n} {noun}.")

    async def delete_model(self, request: Request, pk: Any) -> None:
        try:
            await super().delete_model(request, pk)
        except IntegrityError as exc:
            raise ValueError(
                "This record cannot be deleted: other records still refer to it."
            ) from exc
