"""Admin screen for staff accounts: create, deactivate, reset passwords (through
``portal.services.staff_accounts``)."""

from __future__ import annotations

from typing import Any

from sqladmin.filters import BooleanFilter, StaticValuesFilter
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from wtforms import PasswordField
from wtforms.validators import Optional as OptionalValidator

from models import Role, StaffUser
from portal.core.actor import SYSTEM, current_actor
from portal.core.db import run_in_transaction
from portal.core.errors import DomainError
from portal.services import staff_accounts
from views._base import PortalModelView, date_range, enum_choices
from views._refusals import FormRefusal


class StaffUserView(PortalModelView, model=StaffUser):
    """Staff accounts. The password hash is never shown or exported; setting a new
    password or deactivating the account ends the user's sessions."""

    name = "Staff account"
    name_plural = "Staff accounts"
    icon = "fa-solid fa-id-badge"
    category = "Administration"
    column_list = [StaffUser.username, StaffUser.full_name, StaffUser.role, StaffUser.doctor, StaffUser.is_active, StaffUser.last_login_at]
    column_details_exclude_list = [StaffUser.password_hash, StaffUser.login_epoch]
    column_export_list = [StaffUser.username, StaffUser.full_name, StaffUser.role, StaffUser.doctor, StaffUser.is_active, StaffUser.last_login_at, StaffUser.password_changed_at, StaffUser.created_at]
    column_searchable_list = [StaffUser.username, StaffUser.full_name]
    column_labels = {StaffUser.doctor: "Linked doctor", StaffUser.failed_logins: "Failed logins in a row"}
    column_sortable_list = [StaffUser.username, StaffUser.full_name, StaffUser.role, StaffUser.is_active, StaffUser.last_login_at]
    column_default_sort = [(StaffUser.username, False)]
    column_filters = [
        StaticValuesFilter(StaffUser.role, values=enum_choices(Role)),
        BooleanFilter(StaffUser.is_active, title="Active"),
        *date_range(StaffUser.last_login_at, "Last login"),
    ]
    form_columns = [StaffUser.username, StaffUser.full_name, StaffUser.role, StaffUser.doctor, StaffUser.is_active]
    form_ajax_refs = {"doctor": {"fields": ("full_name", "phone"), "order_by": "full_name"}}
    constraint_messages = {"username": "This username is taken."}

    async def scaffold_form(self, rules=None):
        """sqladmin's form plus a "New password" field (hashed on save, never stored as typed)."""
        base = await super().scaffold_form(rules)

        class StaffForm(base):  # type: ignore[misc, valid-type]
            new_password = PasswordField(
                "New password",
                validators=[OptionalValidator()],
                description="At least 10 characters, not containing the username. "
                "Leave empty to keep the current password.",
                render_kw={"autocomplete": "new-password"},
            )

        return StaffForm

    # -- saving: through the staff account services, never by setting columns here ----------
    async def insert_model(self, request: Request, data: dict) -> Any:
        """Create the account with ``staff_accounts.create_account`` (password hashed there)."""
        data = dict(data)
        await self.on_model_change(data, None, True, request)
        return await self._through_service(
            staff_accounts.create_account, username=data.get("username") or "", full_name=data.get("full_name") or "",
            role=data.get("role"), password=data.get("new_password") or "", doctor_id=_id(data.get("doctor")),
            is_active=bool(data.get("is_active")),
        )

    async def update_model(self, request: Request, pk: str, data: dict) -> Any:
        """Edit the account with ``staff_accounts.update_account``: a new password (a reset)
        or a deactivation ends the account's logins; each is audited."""
        if not await self._in_scope(request, pk):
            raise HTTPException(status_code=404)
        data = dict(data)
        model = await self.get_object_for_edit(request)
        await self.on_model_change(data, model, False, request)
        return await self._through_service(
            staff_accounts.update_account, int(pk), full_name=data.get("full_name") or "", role=data.get("role"),
            doctor_id=_id(data.get("doctor")), is_active=bool(data.get("is_active")),
            new_password=data.get("new_password") or None,
        )

    async def _through_service(self, fn, *args, **kwargs) -> Any:
        """Run a staff account service in one transaction (lock conflicts retried); a refusal
        becomes the form's message (sqladmin shows a ``ValueError`` on the form; a
        ``FormRefusal`` is logged as one WARNING line)."""
        engine = self.session_maker.kw["bind"]
        actor = current_actor.get() or SYSTEM
        try:
            return await run_in_threadpool(run_in_transaction, fn, *args, engine=engine, actor=actor, **kwargs)
        except DomainError as exc:
            raise FormRefusal(exc.message) from None


def _id(value: Any) -> int | None:
    """The id a relation field posted (an id string, a row, or nothing)."""
    value = getattr(value, "id", value)
    return int(value) if value not in (None, "") else None
