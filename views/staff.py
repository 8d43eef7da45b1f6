"""Admin screen for staff accounts: create, deactivate, reset passwords."""

from __future__ import annotations

from sqladmin.filters import BooleanFilter, StaticValuesFilter
from wtforms import PasswordField
from wtforms.validators import Optional as OptionalValidator

from portal.core import clock
from models import Role, StaffUser
from portal.core.passwords import check_password_rules, hash_password
from views._base import PortalModelView, date_range, enum_choices


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

    def validate_model(self, data, model, is_created):
        """Password rules and hashing, doctor link for doctors; a new password or a
        deactivation ends the account's sessions (raises ``login_epoch``)."""
        password = data.pop("new_password", None) or ""
        username = (data.get("username") or getattr(model, "username", "") or "").strip()
        data["username"] = username
        if is_created and not password:
            raise ValueError("Set a password for the new account.")
        if password:
            check_password_rules(password, username=username)
            data["password_hash"] = hash_password(password)
            data["password_changed_at"] = clock.now()
        role = data.get("role")
        role_value = getattr(role, "value", role)
        if role_value == Role.doctor.value and not data.get("doctor"):
            raise ValueError("A doctor's account must be linked to a doctor.")
        if not is_created and (password or (model.is_active and data.get("is_active") is False)):
            data["login_epoch"] = (model.login_epoch or 0) + 1
            data["failed_logins"] = 0
            data["locked_until"] = None
