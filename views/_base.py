"""The base ModelView every admin screen derives from.

It shows datetimes in the hospital's time zone, enum values as words and money in
yuan; labels every column in words; turns database constraint errors into sentences
on the form (never a 500, never a driver's message) on SQLite and MariaDB alike;
retries a save that met a lock conflict; and refuses, with a sentence, to delete a
row that other rows still point at. Create, edit and delete are audited in the same
transaction by the admin session's change hook (``portal.services.change_audit``).
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, ClassVar

import anyio
from markupsafe import Markup
from sqladmin import ModelView
from sqladmin.formatters import BASE_FORMATTERS
from sqladmin.models import ModelViewMeta
from sqlalchemy import Enum as SAEnum
from sqlalchemy import String, Text, UniqueConstraint, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import DetachedInstanceError
from starlette.requests import Request

from portal.core import clock
from portal.core.db import conflict_retries_async, writing
from portal.core.errors import Busy
from portal.core.vocabulary import Entity
from portal.services.audit import SECRET_FIELDS
from portal.web.faults import UNAVAILABLE_MESSAGE
from views._access import RowScopedView
from views._refusals import FormRefusal
from views._fields import MoneyField, PortalConverter, enum_choices, enum_label, money
from views._filters import LocalDateTimeFilter, date_range
from views._forms import limit_to_columns
from views._large_lists import LargeListMixin

__all__ = [
    "FORMATTERS", "LocalDateTimeFilter", "PortalModelView", "date_range", "enum_choices",
    "enum_label", "humanize", "local_datetime", "money",
]

log = logging.getLogger(__name__)


def local_datetime(value: datetime | None) -> str:
    """Format an aware UTC datetime in the hospital's zone as ``YYYY-MM-DD HH:MM``."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return clock.local(value).strftime("%Y-%m-%d %H:%M")


def _datetime_formatter(value: datetime) -> Markup:
    return Markup('<span class="text-nowrap" title="{}">{}</span>').format(value.isoformat(), local_datetime(value))


def _nowrap(text: str) -> Markup:
    return Markup('<span class="text-nowrap">{}</span>').format(text)


def _word(text: str) -> str | Markup:
    """Codes without spaces (``MRN-00000500``, ``K7MX9-3QD2A``) never break at the hyphen."""
    return _nowrap(text) if " " not in text and len(text) <= 40 else text


FORMATTERS = {
    **BASE_FORMATTERS,
    str: _word,
    datetime: _datetime_formatter,
    date: lambda v: _nowrap(v.isoformat()),
    time: lambda v: _nowrap(v.strftime("%H:%M")),
}

#: Column names whose label is not just the words of the name.
_NAMES = {"medical_record_number": "MRN", "national_id": "National ID", "icd10": "ICD-10"}
_WORDS = {"id": "ID", "ip": "IP", "mrn": "MRN", "url": "URL"}


def humanize(name: str) -> str:
    """A column or attribute path as a label: ``patient.full_name`` -> ``Patient full name``."""
    words: list[str] = []
    for part in name.split("."):
        if part in _NAMES:
            words.append(_NAMES[part])
            continue
        part = part[3:] if part.startswith("is_") else part
        words.extend(_WORDS.get(word, word) for word in part.split("_") if word)
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _plural(noun: str, n: int) -> str:
    if n == 1:
        return noun
    return noun + ("es" if noun.endswith(("ch", "sh", "s", "x")) else "s")


def _and_join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


_UNIQUE = (
    re.compile(r"UNIQUE constraint failed: (?P<cols>[\w., ]+)"),
    re.compile(r"Duplicate entry '.*' for key '(?:\w+\.)?(?P<key>\w+)'", re.S),
)
_CHECK = (
    re.compile(r"CHECK constraint failed: (?P<name>\w+)"),
    re.compile(r"CONSTRAINT `(?P<name>\w+)` failed"),
)
_NOT_NULL = (
    re.compile(r"NOT NULL constraint failed: (?:\w+\.)?(?P<col>\w+)"),
    re.compile(r"Column '(?P<col>\w+)' cannot be null"),
)
_FOREIGN_KEY = (
    re.compile(r"FOREIGN KEY constraint failed"),
    re.compile(r"a foreign key constraint fails"),
)


class _EntityViewMeta(ModelViewMeta):
    """sqladmin's view metaclass, with the view's identity (its URL segment and its key in
    the permission table) spelled as the audit vocabulary spells the entity: the table name."""

    def __new__(mcs, name, bases, attrs, **kwargs):
        cls = super().__new__(mcs, name, bases, attrs, **kwargs)
        model = kwargs.get("model")
        if model is not None:
            cls.identity = Entity.of_table(model.__tablename__).value
        return cls


class PortalModelView(LargeListMixin, RowScopedView, ModelView, metaclass=_EntityViewMeta):
    """Base for every admin view: row scope, readable values and labels, readable errors, safe delete.

    Which rows a user sees and may pick is each view's ``scope()`` (``views._access``);
    lists count at most ``count_limit`` rows past the page and load a page by its keys
    first (``views._large_lists``), so they stay fast on millions of rows.

    Query parameters of the list and export (``views._list_params``): a parameter whose
    choices are fixed in code (``pageSize``, ``sortBy``, ``sort``, ``<filter>_op``, a
    yes/no, status or preset filter) must be one of them, and a free value (``page``,
    ``search``, a comparison or id filter) must have its column's type; anything else
    is a 400 naming the parameter and what it takes. A well-formed value that matches
    nothing lists nothing; a page out of range is redirected to the nearest page.
    Unknown parameters are ignored. A URL id that cannot name a row is a 404.

    Class attributes (besides sqladmin's own):
        constraint_messages (dict[str, str]): constraint name (``uq_...``, ``ck_...``)
            or column name -> sentence shown when the database refuses a save because
            of it. Works the same on SQLite and MariaDB.
        delete_blockers (list[tuple[Any, str]]): (foreign-key column of another model,
            singular noun) pairs; deleting a row still referenced is refused with
            "<row> cannot be deleted: it still has 2 clinic sessions and 1 appointment."
        money_columns (tuple[str, ...]): integer columns holding money in the smallest
            currency unit; shown and exported as ``25.00``, typed in yuan in forms.
    """

    column_type_formatters = FORMATTERS
    column_type_formatters_detail = FORMATTERS
    form_converter = PortalConverter
    page_size = 25
    page_size_options = [25, 50, 100]
    constraint_messages: ClassVar[dict[str, str]] = {}
    delete_blockers: ClassVar[list[tuple[Any, str]]] = []
    money_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        for name in [*self._prop_names, *self._search_fields, *self._sort_fields]:
            self._column_labels.setdefault(name, humanize(name))
        self._column_labels_value_by_key = {v: k for k, v in self._column_labels.items()}
        self._enum_props = {
            attr.key: attr.columns[0].type.enum_class
            for attr in self._mapper.column_attrs
            if isinstance(attr.columns[0].type, SAEnum)
        }
        for name in self.money_columns:
            self._form_overrides.setdefault(name, MoneyField)
            self._list_formatters.setdefault(name, lambda m, a: money(getattr(m, a)))
            self._detail_formatters.setdefault(name, lambda m, a: money(getattr(m, a)))

    def _identity_for_object(self, obj: Any) -> str:
        """The identity of the view of ``obj``'s entity (its table name), for links."""
        return getattr(obj, "__tablename__", None) or super()._identity_for_object(obj)

    # -- which columns --------------------------------------------------------------
    def _readable_columns(self, columns: list[str]) -> list[str]:
        """Columns in table order, a related row by name in place of its raw foreign key,
        other relations last, never a secret."""
        relation_of_fk = {}
        for rel in self._mapper.relationships:
            if rel.direction.name == "MANYTOONE":
                for column in rel.local_columns:
                    relation_of_fk[column.key] = rel.key
        wanted = set(columns)
        ordered = [a.key for a in self._mapper.column_attrs] + [r.key for r in self._mapper.relationships]
        out: list[str] = []
        for name in ordered:
            if name not in wanted or name in SECRET_FIELDS:
                continue
            name = relation_of_fk.get(name, name)
            if name not in out:
                out.append(name)
        return out

    def get_details_columns(self) -> list[str]:
        """All columns unless configured, related rows by name, never a secret."""
        columns = super().get_details_columns()
        if self.column_details_list:
            return [c for c in columns if c not in SECRET_FIELDS]
        return self._readable_columns(columns)

    def get_export_columns(self) -> list[str]:
        """The configured export columns (default: the list's), never a secret."""
        return [c for c in super().get_export_columns() if c not in SECRET_FIELDS]

    # -- values ---------------------------------------------------------------------
    async def get_prop_value(self, obj: Any, prop: str) -> Any:
        """The value of ``prop`` for display and export.

        Enums give their stored value (``checked_in``), datetimes are in the hospital's
        zone, money columns are Decimal yuan.
        """
        for part in prop.split("."):
            try:
                obj = getattr(obj, part, None)
            except DetachedInstanceError:
                obj = await self._lazyload_prop(obj, part)
        if isinstance(obj, enum.Enum):
            return obj.value
        if isinstance(obj, datetime) and obj.tzinfo is not None:
            return clock.local(obj)
        if prop in self.money_columns and isinstance(obj, int):
            return (Decimal(obj) / 100).quantize(Decimal("0.01"))
        return obj

    async def get_list_value(self, obj: Any, prop: str, request: Request | None = None) -> tuple[Any, Any]:
        """Like sqladmin's, with enum values shown as words."""
        value, formatted = await super().get_list_value(obj, prop, request)
        if prop in self._enum_props and prop not in self._list_formatters:
            formatted = enum_label(value)
        return value, formatted

    async def get_detail_value(self, obj: Any, prop: str, request: Request | None = None) -> tuple[Any, Any]:
        """Like sqladmin's, with enum values shown as words."""
        value, formatted = await super().get_detail_value(obj, prop, request)
        if prop in self._enum_props and prop not in self._detail_formatters:
            formatted = enum_label(value)
        return value, formatted

    # -- errors ---------------------------------------------------------------------
    def _label(self, column: str) -> str:
        return self._column_labels.get(column) or humanize(column)

    def _unique_keys(self) -> list[tuple[str | None, list[str]]]:
        """(name, column names) of every unique key of the view's table, primary key first."""
        table = self.model.__table__
        keys = [(table.primary_key.name, [c.name for c in table.primary_key.columns])]
        keys += [(c.name, [col.name for col in c.columns]) for c in table.constraints if isinstance(c, UniqueConstraint)]
        keys += [(i.name, [col.name for col in i.columns]) for i in table.indexes if i.unique]
        return keys

    def _unique_columns(self, key: str | None, cols: str | None) -> tuple[str | None, list[str]]:
        """(constraint name, column names) of the unique key a duplicate hit.

        MariaDB names the key (``uq_department_code``, or ``PRIMARY``); SQLite lists the
        columns (``department.code``).
        """
        keys = self._unique_keys()
        if key is not None:
            if key == "PRIMARY":
                return keys[0]
            return next(((name, columns) for name, columns in keys if name == key), (key, []))
        columns = [c.strip().split(".")[-1] for c in (cols or "").split(",") if c.strip()]
        return next(((name, c) for name, c in keys if c == columns), (None, columns))

    async def scaffold_form(self, rules: list[str] | None = None) -> type:
        """sqladmin's form, each field limited to what its column stores (``limit_to_columns``)."""
        return limit_to_columns(await super().scaffold_form(rules), self.model)

    def describe_integrity_error(self, exc: IntegrityError) -> str:
        """Turn a database constraint error (SQLite or MariaDB) into a sentence for the form."""
        text = str(exc.orig)
        for pattern in _UNIQUE:
            match = pattern.search(text)
            if match:
                groups = match.groupdict()
                name, columns = self._unique_columns(groups.get("key"), groups.get("cols"))
                for candidate in [name, *columns]:
                    if candidate and candidate in self.constraint_messages:
                        return self.constraint_messages[candidate]
                if not columns:
                    return "Another record already has these values."
                labels = [self._label(c).lower() for c in columns]
                if len(labels) == 1:
                    return f"Another record already has this {labels[0]}."
                return f"Another record already has this {_and_join(labels)}."
        for pattern in _CHECK:
            match = pattern.search(text)
            if match:
                return self.constraint_messages.get(match.group("name"), "A value is outside the allowed range.")
        for pattern in _NOT_NULL:
            match = pattern.search(text)
            if match:
                column = match.group("col")
                return self.constraint_messages.get(column, f"Enter the {self._label(column).lower()}.")
        for pattern in _FOREIGN_KEY:
            if pattern.search(text):
                return "A related record is missing or is still in use."
        return "The database refused this change: a value is missing or not allowed."

    # -- saving ---------------------------------------------------------------------
    def validate_model(self, data: dict, model: Any, is_created: bool) -> None:
        """Cross-field checks before saving; raise ``ValueError`` with a sentence."""

    async def on_model_change(self, data: dict, model: Any, is_created: bool, request: Request) -> None:
        """Normalise the form data (trimmed text, enum members, aware datetimes), check the
        chosen related rows are in the user's scope, then validate."""
        tz = clock.tz()
        columns = self._mapper.columns
        for key, value in list(data.items()):
            if isinstance(value, datetime) and value.tzinfo is None:
                data[key] = value.replace(tzinfo=tz).astimezone(UTC)
            elif isinstance(value, str) and key in columns and isinstance(columns[key].type, (String, Text)):
                data[key] = value.strip()
            if key in self._enum_props and isinstance(data[key], str) and data[key]:
                data[key] = self._enum_props[key](data[key])
        await self.check_related_choices(request, data, model, is_created)
        try:
            self.validate_model(data, model, is_created)
        except ValueError as exc:  # the view's sentence for the user: a refusal, not a fault
            raise FormRefusal(str(exc)) from None

    async def get_form_data_for_edit(self, obj: Any) -> dict[str, Any]:
        """The edit form's initial data, datetimes in the hospital's zone."""
        data = await super().get_form_data_for_edit(obj)
        tz = clock.tz()
        for key, value in list(data.items()):
            if isinstance(value, datetime) and value.tzinfo is not None:
                data[key] = value.astimezone(tz).replace(tzinfo=None)
        return data

    async def save(self, attempt: Callable[[], Awaitable[Any]], integrity_message: str | None = None) -> Any:
        """Run one create, edit or delete (``attempt``, a whole transaction), turning database
        refusals into sentences on the form.

        sqladmin shows whatever a save raises as the form's error (status 400), so nothing
        may leave here with a driver's text in it. A lock conflict (MySQL deadlock or
        lock-wait timeout, SQLite "database is locked") rolls the attempt back and runs it
        again, with the one retry policy of the services (``portal.core.db.conflict_retries``). On SQLite the save's
        transaction takes the write lock first (``portal.core.db.writing``), so it queues behind
        other writers instead of failing to upgrade its read.

        Args:
            attempt (Callable[[], Awaitable[Any]]): sqladmin's own save (it opens its session,
                changes, commits).
            integrity_message (str | None): the sentence for a constraint error; by default
                :meth:`describe_integrity_error` names the constraint.

        Returns:
            Any: what ``attempt`` returned.

        Raises:
            FormRefusal: a constraint refused the change, or the conflict outlasted every
                attempt (``Busy``'s "try again" sentence); logged as one WARNING line
                (``views._refusals``).
            ValueError: the database could not be reached (the 503 page's sentence).
            Nothing was saved.
        """
        try:
            async for conflict in conflict_retries_async():  # the services' retry policy
                with conflict, writing():  # on SQLite: take the write lock before reading the row
                    return await attempt()
        except IntegrityError as exc:
            raise FormRefusal(integrity_message or self.describe_integrity_error(exc)) from None
        except Busy as exc:
            raise FormRefusal(f"{exc.message} Nothing was saved.") from None
        except DBAPIError as exc:
            log.warning("database error while saving in the admin: %s", exc.orig)
            raise ValueError(f"{UNAVAILABLE_MESSAGE} Nothing was saved.") from None
        raise AssertionError("unreachable: the last conflict raises Busy")

    async def insert_model(self, request: Request, data: dict) -> Any:
        """Insert; a database refusal becomes a ``ValueError`` sentence (HTTP 400 on the form)."""
        return await self.save(lambda: super(PortalModelView, self).insert_model(request, dict(data)))

    async def update_model(self, request: Request, pk: str, data: dict) -> Any:
        """Update; a database refusal becomes a ``ValueError`` sentence (HTTP 400 on the form)."""
        return await self.save(lambda: super(PortalModelView, self).update_model(request, pk, dict(data)))

    # -- delete ---------------------------------------------------------------------
    def _blocking_rows(self, pk: Any) -> list[str]:
        parts = []
        with self.session_maker() as db:
            for column, noun in self.delete_blockers:
                n = db.scalar(select(func.count()).select_from(column.class_).where(column == pk))
                if n:
                    parts.append(f"{n} {_plural(noun, n)}")
        return parts

    async def on_model_delete(self, model: Any, request: Request) -> None:
        """Refuse, with one sentence naming what still refers to it, to delete a row in use."""
        if model is None or not self.delete_blockers:
            return
        pk = self._mapper.primary_key_from_instance(model)[0]
        parts = await anyio.to_thread.run_sync(self._blocking_rows, pk)
        if parts:
            raise FormRefusal(f"{model} cannot be deleted: it still has {_and_join(parts)}.")

    async def delete_model(self, request: Request, pk: Any) -> None:
        """Delete; a foreign key still pointing at the row becomes a sentence."""
        await self.save(lambda: super(PortalModelView, self).delete_model(request, pk),
                        integrity_message="This record cannot be deleted: other records still refer to it.")
