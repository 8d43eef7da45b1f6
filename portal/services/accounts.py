"""Staff accounts: a member of staff changing their own password."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models import StaffUser
from models._types import utcnow
from portal.security.passwords import check_password_rules, hash_password, verify_password
from portal.services import audit
from portal.services.actor import Actor
from portal.services.errors import NotFound, ValidationFailed


def change_password(
    session: Session, user_id: int, *, current: str, new: str, repeated: str, actor: Actor
) -> int:
    """Replace the user's password and end their other sessions.

    The account's ``session_epoch`` is raised in the same conditional UPDATE that
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
        int: the account's new ``session_epoch``.

    Raises:
        ValidationFailed: the current password is wrong, the two new ones differ, the
            new one breaks the password rules or equals the current one.
        NotFound: the account is gone or inactive.
    """
    row = session.execute(
        select(StaffUser.username, StaffUser.password_hash, StaffUser.session_epoch, StaffUser.is_active)
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
    changed = session.execute(
        update(StaffUser)
        .where(StaffUser.id == user_id, StaffUser.session_epoch == row.session_epoch)
        .values(
            password_hash=hash_password(new),
            session_epoch=StaffUser.session_epoch + 1,
            password_changed_at=utcnow(),
            failed_logins=0,
            locked_until=None,
        )
    ).rowcount
    if not changed:
        raise ValidationFailed("The account changed meanwhile; please log in again.")
    audit.record(
        session, actor=actor, action="password_change", entity="staff_user", entity_id=user_id,
        summary=f"{row.username} changed their password; other sessions ended",
        changes={"password_hash": "(changed)", "session_epoch": [row.session_epoch, row.session_epoch + 1]},
    )
    return row.session_epoch + 1
