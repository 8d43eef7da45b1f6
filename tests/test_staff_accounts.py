"""Staff accounts change only through ``portal.services.staff_accounts``: creating (the
admin's form and ``main.py create-staff``), an administrator's password reset and a
deactivation end the account's logins, and each kind of change is its own audit event."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import AuditEvent, Role, StaffUser
from portal.core.actor import SYSTEM
from portal.core.db import run_in_transaction, transaction
from portal.core.errors import ValidationFailed
from portal.core.passwords import verify_password
from portal.services import staff_accounts
from tests.factories import make_staff


def _events(engine, user_id: int) -> list[tuple[str, str]]:
    with transaction(engine, write=False) as db:
        rows = db.execute(select(AuditEvent.action, AuditEvent.summary)
                          .where(AuditEvent.entity == "staff_user", AuditEvent.entity_id == str(user_id))
                          .order_by(AuditEvent.id)).all()
    return [(a, s) for a, s in rows]


def _user(engine, user_id: int) -> StaffUser:
    with transaction(engine, write=False) as db:
        return db.get(StaffUser, user_id)


def test_reset_and_deactivate_end_logins_and_are_audited_apart(engine):
    user = make_staff(engine, username="nurse7", role=Role.nurse)
    edit = dict(full_name=user.full_name, role=Role.nurse, doctor_id=None, actor=SYSTEM, engine=engine)
    run_in_transaction(staff_accounts.update_account, user.id, is_active=True, new_password="a-fresh-secret-1", **edit)
    after_reset = _user(engine, user.id)
    assert after_reset.login_epoch == 1 and verify_password(after_reset.password_hash, "a-fresh-secret-1")
    run_in_transaction(staff_accounts.update_account, user.id, is_active=False, **edit)
    assert _user(engine, user.id).login_epoch == 2
    run_in_transaction(staff_accounts.update_account, user.id, is_active=True, **edit)
    assert _user(engine, user.id).login_epoch == 2  # reactivating starts no new login by itself
    assert [a for a, _ in _events(engine, user.id)] == ["password_reset", "deactivate", "reactivate"]


@pytest.mark.parametrize("change, field", [
    ({"role": Role.doctor}, "doctor"),  # a doctor's account needs its doctor
    ({"new_password": "short"}, "new_password"),
    ({"new_password": "has-nurse8-inside"}, "new_password"),
    ({"full_name": "  "}, "full_name"),
])
def test_a_refused_edit_names_its_field_and_changes_nothing(engine, change, field):
    user = make_staff(engine, username="nurse8", role=Role.nurse)
    values = dict(full_name="Nurse Eight", role=Role.nurse, doctor_id=None, is_active=True) | change
    with pytest.raises(ValidationFailed) as refused:
        run_in_transaction(staff_accounts.update_account, user.id, actor=SYSTEM, engine=engine, **values)
    assert refused.value.field == field
    assert _user(engine, user.id).login_epoch == 0 and _events(engine, user.id) == []


def test_create_staff_command_goes_through_the_service(engine, db_url, monkeypatch, capsys):
    import main

    monkeypatch.setenv("DATABASE_URL", db_url)
    from portal.core.settings import get_settings

    get_settings.cache_clear()
    answers = iter(["a-long-secret-42", "a-long-secret-42", "a-long-secret-42", "a-long-secret-42"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    try:
        assert main.main(["create-staff", "kiosk1", "--role", "receptionist"]) == 0
        assert main.main(["create-staff", "kiosk1", "--role", "receptionist"]) == 2
    finally:
        get_settings.cache_clear()
    assert "This username is taken. Nothing was created." in capsys.readouterr().out
    with transaction(engine, write=False) as db:
        user = db.scalars(select(StaffUser).where(StaffUser.username == "kiosk1")).one()
    assert verify_password(user.password_hash, "a-long-secret-42")
    assert [a for a, _ in _events(engine, user.id)] == ["create"]
