"""Row-level access for every admin view: the ``scope()`` hook and everything that uses it.

The permission table (``views.permissions``) decides which screens a role may open;
this mixin decides which ROWS it sees there. A view states its rule once, in
``scope(request, stmt)`` (e.g. a doctor sees only ``Appointment.doctor_id == own``), and
the mixin applies it to every way a row can leave or be touched through the admin:

* the list page and its count, and the export (which also reuses the list's
  filters, search and sort, is capped at ``export_max_rows`` and is audited);
* the detail page, the edit form and its POST, and delete (a row outside the scope
  is "not found": 404, never shown, never changed);
* ajax lookups of related rows (the TARGET view's scope, and only for roles that
  may view the target), and the related rows chosen in a create or edit form;
* ``owner_field``: a doctor creating or editing a row of a view that names one
  (encounters, prescriptions) is always recorded as its doctor.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlencode

import anyio
from sqladmin._types import _UNSET
from sqladmin.ajax import QueryAjaxModelLoader
from sqladmin.helpers import get_direction, get_object_identifier, get_primary_keys, object_identifier_values
from sqlalchemy import String, cast, false, or_, select
from sqlalchemy.orm import selectinload
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.expression import Select
from starlette import status
from starlette.exceptions import HTTPException
from starlette.requests import Request

from models import AuditEvent, Role, StaffUser
from portal.core.actor import SYSTEM, current_actor
from portal.core.errors import PermissionDenied
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit
from views._list_params import check_list_params
from views.authorization import allowed, role_of

#: Query parameters of the list page that are not filters.
_PAGING_PARAMS = {"page", "pageSize"}
#: Largest id (signed 64-bit: the primary key columns' range on every database).
MAX_ID = 2**63 - 1


def staff_of(request: Request) -> StaffUser | None:
    """The authenticated staff member of ``request`` (set by ``views.auth.load_staff``)."""
    return getattr(request.state, "staff", None)


def by_role(request: Request, stmt: Select, **rules: Callable[[StaffUser], ColumnElement]) -> Select:
    """Narrow ``stmt`` by the rule of the request's role, if it has one.

    ``by_role(request, stmt, doctor=lambda me: Encounter.doctor_id == me.doctor_id)``
    leaves other roles' statements unchanged. Without an authenticated staff member
    nothing matches; a doctor's account without a linked doctor sees none of the
    doctor-scoped rows.
    """
    me = staff_of(request)
    if me is None:
        return stmt.where(false())
    rule = rules.get(me.role.value)
    if rule is None:
        return stmt
    if me.role is Role.doctor and me.doctor_id is None:
        return stmt.where(false())
    return stmt.where(rule(me))


class ScopedAjaxLoader(QueryAjaxModelLoader):
    """An ajax lookup that returns only rows the user may see (``scope_related``)."""

    async def get_list(self, request: Request, term: str) -> list[Any]:
        """Up to ``limit`` rows of the related model matching ``term``, within scope."""
        stmt = select(self.model).filter(
            or_(*[cast(field, String).ilike(f"%{term}%") for field in self._cached_fields])
        )
        if self.where is not None:
            stmt = stmt.where(*await self._prepare_where_clauses(request, term))
        stmt = self.model_admin.scope_related(request, self.name, stmt)
        if self._cached_fields_order_by:
            stmt = stmt.order_by(*self._cached_fields_order_by)
        return await self.model_admin._run_query(stmt.limit(self.limit))


class RowScopedView:
    """Mixin for ``ModelView``: row scope, scoped ajax, filtered and audited export.

    Class attributes:
        owner_field (str | None): relation naming the doctor who owns a row; a doctor
            creating or editing such a row is always recorded as its doctor.
        export_max_rows (int): most rows one export returns.
    """

    owner_field: ClassVar[str | None] = None
    export_max_rows: ClassVar[int] = 10_000

    def __init__(self) -> None:
        super().__init__()
        self._form_ajax_refs = {
            name: ScopedAjaxLoader(name, loader.model, self, **self.form_ajax_refs[name])
            for name, loader in self._form_ajax_refs.items()
        }

    # -- the hook ------------------------------------------------------------------
    def scope(self, request: Request, stmt: Select) -> Select:
        """Narrow ``stmt`` (a select of this view's model) to the rows the user may see.

        Override per view, usually with ``by_role``; the default shows every row.
        """
        return stmt

    def _scoped(self, request: Request, stmt: Select) -> Select:
        if staff_of(request) is None:
            return stmt.where(false())
        return self.scope(request, stmt)

    # -- queries sqladmin runs -------------------------------------------------------
    def list_query(self, request: Request) -> Select:
        """The list (and export) query, within scope."""
        return self._scoped(request, super().list_query(request))

    def details_query(self, request: Request) -> Select:
        """The detail query (also used by sqladmin's edit and delete guards), within scope."""
        return self._scoped(request, super().details_query(request))

    def form_edit_query(self, request: Request) -> Select:
        """The edit form's query, within scope."""
        return self._scoped(request, super().form_edit_query(request))

    def _stmt_by_identifier(self, identifier: str) -> Select:
        """sqladmin's select of the row named by a URL id (details, edit, delete).

        Raises:
            HTTPException: 404 for an id that cannot name a row: not of the primary key's
                type, or a whole number outside the 64-bit range ids are stored in.
        """
        try:
            values = object_identifier_values(str(identifier), self.model)
        except (TypeError, ValueError):
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND) from None
        if any(isinstance(v, int) and not -MAX_ID <= v <= MAX_ID for v in values):
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return super()._stmt_by_identifier(identifier)

    async def _in_scope(self, request: Request, pk: Any) -> bool:
        stmt = self._scoped(request, self._stmt_by_identifier(str(pk)))
        return bool(await self._run_query(stmt.limit(1)))

    async def check_can_view_details(self, request: Request, model: Any) -> bool:
        """A row outside the scope (not loaded: ``model is None``) is not found."""
        if model is None:
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return await super().check_can_view_details(request, model)

    async def check_can_edit(self, request: Request, model: Any) -> bool:
        """A row outside the scope is not found."""
        if model is None:
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return await super().check_can_edit(request, model)

    async def check_can_delete(self, request: Request, model: Any) -> bool:
        """A row outside the scope is not found."""
        if model is None:
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return await super().check_can_delete(request, model)

    async def delete_model(self, request: Request, pk: Any) -> None:
        """Delete one row, refusing a row outside the scope (sqladmin's own lookup is unscoped)."""
        if not await self._in_scope(request, pk):
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        await super().delete_model(request, pk)

    async def update_model(self, request: Request, pk: str, data: dict) -> Any:
        """Save an edit, refusing a row outside the scope."""
        if not await self._in_scope(request, pk):
            raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
        return await super().update_model(request, pk, data)

    # -- links to related rows ------------------------------------------------------------
    @property
    def _non_link_related_fields(self) -> builtins.list[str]:
        """Relations shown as plain text rather than links: the view's own choice, plus
        those whose target the current user may not open (no link that answers 403).

        sqladmin's list and detail templates read this attribute, once per cell; the user
        is the request's (``current_actor``, set when the request is authenticated). The
        answer depends only on the role and the permission table, so it is kept per role.
        """
        actor = current_actor.get()
        role = actor.role if actor is not None else None
        by_role = self.__dict__.setdefault("_non_link_by_role", {})
        if role not in by_role:
            closed = [
                name for name in self._relation_names
                if (view := self._view_for(self._mapper.relationships[name].mapper.class_)) is None
                or not allowed(role, view.identity, "details")
            ]
            by_role[role] = [*self.__dict__.get("_own_non_link_related_fields", []), *closed]
        return by_role[role]

    @_non_link_related_fields.setter
    def _non_link_related_fields(self, value: builtins.list[str]) -> None:
        self.__dict__["_own_non_link_related_fields"] = list(value)
        self.__dict__.pop("_non_link_by_role", None)

    # -- related rows -----------------------------------------------------------------
    def _view_for(self, model: type) -> Any:
        for view in getattr(self._admin_ref, "views", []):
            if getattr(view, "model", None) is model and hasattr(view, "scope"):
                return view
        return None

    def scope_related(self, request: Request, name: str, stmt: Select) -> Select:
        """Narrow ``stmt`` (a select of the model related through ``name``) to the rows
        the user may pick: those of the target's view, within that view's scope.

        A role that may not view the target entity may pick none of its rows. For
        ``owner_field``, a doctor may pick only themselves.
        """
        target = self._mapper.relationships[name].mapper.class_
        view = self._view_for(target)
        if view is None or not allowed(role_of(request), view.identity, "list"):
            return stmt.where(false())
        me = staff_of(request)
        if name == self.owner_field and me is not None and me.role is Role.doctor:
            (pk,) = get_primary_keys(target)
            return stmt.where(pk == me.doctor_id) if me.doctor_id is not None else stmt.where(false())
        return view._scoped(request, stmt)

    async def check_related_choices(self, request: Request, data: dict, model: Any, is_created: bool) -> None:
        """Force the owner of a doctor's row, and refuse related rows the user may not pick.

        Raises:
            PermissionDenied: a chosen related row is outside what the user may pick.
        """
        me = staff_of(request)
        if self.owner_field and me is not None and me.role is Role.doctor and self.owner_field in data:
            data[self.owner_field] = None if me.doctor_id is None else str(me.doctor_id)
        for name in self._form_relation_names:
            value = data.get(name)
            if not value:
                continue
            relation = self._mapper.relationships[name]
            target = relation.mapper.class_
            (pk,) = get_primary_keys(target)
            values = value if get_direction(relation) in ("ONETOMANY", "MANYTOMANY") else [value]
            wanted = {str(getattr(v, pk.key, v)) for v in values}
            if not is_created and get_direction(relation) == "MANYTOONE":
                current = [getattr(model, col.key) for col, _ in relation.local_remote_pairs]
                if wanted == {",".join(str(v) for v in current)}:
                    continue  # unchanged: keeping what is already there is fine
            stmt = self.scope_related(request, name, select(pk).where(cast(pk, String).in_(wanted)))
            found = {str(v) for v in await self._run_query(stmt)}
            if found != wanted:
                label = self._column_labels.get(name, name.replace("_", " "))
                raise PermissionDenied(f"You may not choose that {label}.")

    # -- list and export -------------------------------------------------------------
    async def filtered_query(self, request: Request) -> Select:
        """The list's query for ``request``: scope, then its filters, sort and search.

        The list page and the export both use it, so an export holds exactly the rows
        the list shows (all pages of them). Query parameters the list does not offer are
        refused first with 400 (``views._list_params``).
        """
        await check_list_params(self, request)
        stmt = self.list_query(request)
        for filter_ in self.get_filters():
            param = filter_.parameter_name
            value = request.query_params.get(param)
            if not value and getattr(filter_, "default_value", _UNSET) is _UNSET:
                continue
            if getattr(filter_, "has_operator", False):
                operation = request.query_params.get(f"{param}_op")
                if operation:
                    stmt = await filter_.get_filtered_query(stmt, operation, value, self.model)
            else:
                stmt = await filter_.get_filtered_query(stmt, value, self.model)
        stmt = self.sort_query(stmt, request)
        search = request.query_params.get("search")
        if search:
            stmt = self.search_query(stmt=stmt, term=search)
        return stmt

    async def get_model_objects(self, request: Request, limit: int | None = 0) -> builtins.list[Any]:
        """The export's rows: the list's filtered query, capped, and one AuditEvent for it."""
        cap = min(limit or self.export_max_rows, self.export_max_rows)
        stmt = (await self.filtered_query(request)).limit(cap)
        for relation in self._list_relations:
            stmt = stmt.options(selectinload(relation))
        rows = await self._run_query(stmt)
        used = {k: v for k, v in request.query_params.multi_items() if k not in _PAGING_PARAMS and v}
        actor = current_actor.get() or SYSTEM
        export_type = request.path_params.get("export_type", "")
        await anyio.to_thread.run_sync(self._record_export, actor, export_type, used, len(rows), cap)
        return rows

    def _record_export(self, actor: Any, export_type: str, used: dict, count: int, cap: int) -> None:
        with self.session_maker() as db, db.begin():
            audit.record(
                db, actor=actor, action=AuditAction.export, entity=Entity.of_table(self.model.__tablename__), entity_id=None,
                summary=f"Exported {count} {self.name_plural.lower()} as {export_type.upper()}"
                + (f" (capped at {cap})" if count >= cap else "")
                + (f" with {urlencode(used)}" if used else ""),
                changes={"format": export_type, "filters": urlencode(used), "rows": count},
            )

    # -- history -------------------------------------------------------------------------
    def history_url(self, request: Request, model: Any) -> str | None:
        """Link to the audit log filtered to ``model``'s row, for those who may read it."""
        if isinstance(model, AuditEvent) or not allowed(role_of(request), "audit_event", "list"):
            return None
        query = urlencode({
            "entity": self.model.__tablename__,
            "entity_id": str(get_object_identifier(model)),
            "entity_id_op": "equals",
        })
        return f"{request.url_for('admin:list', identity='audit_event')}?{query}"
