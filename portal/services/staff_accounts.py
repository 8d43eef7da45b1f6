"""Staff accounts: a member of staff changing their own password."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from portal.core import clock
from models import StaffUser
from portal.core.passwords import check_password_rules, hash_password, verify_password
from portal.services import audit
from portal.core.actor import Actor
from portal.core.errors import NotFound, ValidationFailed
from portal.core.vocabulary import AuditAction, Entity


def change_password(
    db: Session, user_id: int, *, current: str, new: str, repeated: str, actor: Actor
) -> int:
    """Replace the user's password and end their other sessions.

    The account's ``login_epoch`` is raised in the same conditional UPDATE that
    stores the new hash, so every session stamped with the old epoch ends at its next
    request; the caller re-stamps the current session with the returned epoch.

    Args:
        session (Session): the caller's transaction (the audit event is written in it).
        user_id (int): the account changing its password.
        current (str): the password now in use.
        new (str): the new password.
        repeated (str): the new password typed again.
        actor (Actor): who acts (the same user).

    Returns:
        int: the account's new ``login_epoch``.

    Raises:
        ValidationFailed: the current password is wrong, the two new ones differ, the
            new one breaks the password rules or equals the current one.
        NotFound: the account is gone or inactive.
    """
    row = db.execute(
        select(StaffUser.username, StaffUser.password_hash, StaffUser.login_epoch, StaffUser.is_active)
        .where(StaffUser.id == user_id)
    ).one_or_none()
    if row is None or not row.is_active:
        raise NotFound("This account no longer exists or is inactive.")
    if not verify_password(row.password_hash, current):
        raise ValidationFailed("The current password is not correct.")
    if new != repeated:
        raise ValidationFailed("The two new passwords differ.")
    check_password_rules(new, username=row.username)
    if new == current:
        raise ValidationFailed("Choose a password different from the current one.")
    changed = db.execute(
        update(StaffUser)
        .where(StaffUser.id == user_id, StaffUser.login_epoch == row.login_epoch)
        .values(
            password_hash=hash_password(new),
            login_epoch=StaffUser.login_epoch + 1,
            password_changed_at=clock.now(),
            failed_logins=0,
            locked_until=None,
        )
    ).rowcount
    if not changed:
        raise ValidationFailed("The account changed meanwhile; please log in again.")
    audit.record(
        db, actor=actor, action=AuditAction.password_change, entity=Entity.staff_user, entity_id=user_id,
        summary=f"{row.username} changed their password; other sessions ended",
        changes={"password_hash": "(changed)", "login_epoch": [row.login_epoch, row.login_epoch + 1]},
    )
    return row.login_epoch + 1
