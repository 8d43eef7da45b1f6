"""Staff accounts: creating and editing them (an administrator's password reset and
deactivation included) and a member of staff changing their own password."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Role, StaffUser
from portal.core import clock
from portal.core.actor import Actor
from portal.core.errors import ConcurrentChange, NotFound, ValidationFailed
from portal.core.passwords import check_password_rules, hash_password, verify_password
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit


def change_password(
    db: Session, user_id: int, *, current: str, new: str, repeated: str, actor: Actor
) -> int:
    """Replace the user's password and end their other sessions.

    The account's ``login_epoch`` is raised in the same conditional UPDATE that
    stores the new hash, so every session stamped with the old epoch ends at its next
    request; the caller re-stamps the current session with the returned epoch.

    Args:
        db (Session): the caller's transaction (the audit event is written in it).
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


def _check_role_link(role: Role, doctor_id: int | None) -> None:
    if role is Role.doctor and doctor_id is None:
        raise ValidationFailed("A doctor's account must be linked to a doctor.", field="doctor")


def create_account(
    db: Session, *, username: str, full_name: str, role: Role, password: str, doctor_id: int | None = None,
    is_active: bool = True, actor: Actor,
) -> StaffUser:
    """Create a staff account (the admin's form, ``main.py create-staff``).

    Args:
        db (Session): the caller's transaction (the audit event is written in it).
        username (str): unique login name (trimmed; 1-60 characters).
        full_name (str): the person's name (trimmed; the username when blank).
        role (Role): what the account may do (``views/permissions.py``).
        password (str): the first password, checked against the password rules.
        doctor_id (int | None): the Doctor of a doctor's account (required for doctors).
        is_active (bool): whether the account may log in.
        actor (Actor): who creates it.

    Returns:
        StaffUser: the new account.

    Raises:
        ValidationFailed: blank or too long username, password against the rules, a
            doctor's account without a doctor, or the username is taken (``field`` names
            the input).
    """
    username = (username or "").strip()
    if not username or len(username) > 60:
        raise ValidationFailed("Enter a username of at most 60 characters.", field="username")
    role = Role(role)
    _check_role_link(role, doctor_id)
    if not password:
        raise ValidationFailed("Set a password for the new account.", field="new_password")
    try:
        check_password_rules(password, username=username)
    except ValidationFailed as exc:
        raise ValidationFailed(exc.message, field="new_password") from None
    if db.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise ValidationFailed("This username is taken.", field="username")
    user = StaffUser(username=username, full_name=(full_name or "").strip() or username, role=role,
                     password_hash=hash_password(password), password_changed_at=clock.now(),
                     doctor_id=doctor_id, is_active=is_active)
    try:
        with db.begin_nested():
            db.add(user)
            db.flush()
    except IntegrityError:
        raise ValidationFailed("This username is taken.", field="username") from None
    audit.record(db, actor=actor, action=AuditAction.create, entity=Entity.staff_user, entity_id=user.id,
                 summary=f"Created staff account {username} ({role.value})",
                 changes={"username": username, "full_name": user.full_name, "role": role,
                          "doctor_id": doctor_id, "is_active": is_active, "password_hash": "(set)"})
    return user


def update_account(
    db: Session, user_id: int, *, full_name: str, role: Role, doctor_id: int | None, is_active: bool,
    new_password: str | None = None, actor: Actor,
) -> StaffUser:
    """Edit a staff account: name, role, doctor link, active; optionally reset its password.

    A new password (an administrator's reset) or a deactivation raises the account's
    ``login_epoch`` in the same conditional UPDATE, so every login of the account ends at
    its next request, and clears the lockout. Each kind of change is audited in this
    transaction: ``update`` (with old and new values), ``password_reset``, ``deactivate``
    or ``reactivate``. The username never changes (it is the audit trail's name for the
    person).

    Args:
        db (Session): the caller's transaction.
        user_id (int): the account.
        full_name (str): the person's name (trimmed, 1-120 characters).
        role (Role): the account's role.
        doctor_id (int | None): the linked Doctor (required for the doctor role).
        is_active (bool): whether it may log in.
        new_password (str | None): a new password set by an administrator, or None/"" to keep it.
        actor (Actor): who edits.

    Returns:
        StaffUser: the account as stored.

    Raises:
        NotFound: no such account.
        ValidationFailed: a rule refused an input (``field`` names it).
        ConcurrentChange: the account changed meanwhile.
    """
    role = Role(role)
    full_name = (full_name or "").strip()
    if not full_name or len(full_name) > 120:
        raise ValidationFailed("Enter the person's full name (at most 120 characters).", field="full_name")
    _check_role_link(role, doctor_id)
    current = db.execute(
        select(StaffUser.username, StaffUser.full_name, StaffUser.role, StaffUser.doctor_id, StaffUser.is_active,
               StaffUser.login_epoch).where(StaffUser.id == user_id)
    ).one_or_none()
    if current is None:
        raise NotFound("This staff account does not exist.")
    values: dict = {"full_name": full_name, "role": role, "doctor_id": doctor_id, "is_active": is_active}
    if new_password:
        try:
            check_password_rules(new_password, username=current.username)
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, field="new_password") from None
        values.update(password_hash=hash_password(new_password), password_changed_at=clock.now())
    ends_logins = bool(new_password) or (current.is_active and not is_active)
    if ends_logins:
        values.update(login_epoch=StaffUser.login_epoch + 1, failed_logins=0, locked_until=None)
    changed = db.execute(
        update(StaffUser).where(StaffUser.id == user_id, StaffUser.login_epoch == current.login_epoch)
        .values(**values)
    ).rowcount
    if not changed:
        raise ConcurrentChange()
    name = current.username
    edits = {key: [getattr(current, key), values[key]] for key in ("full_name", "role", "doctor_id")
             if getattr(current, key) != values[key]}
    if edits:
        audit.record(db, actor=actor, action=AuditAction.update, entity=Entity.staff_user, entity_id=user_id,
                     summary=f"Edited staff account {name}: {', '.join(sorted(edits))}", changes=edits)
    if new_password:
        audit.record(db, actor=actor, action=AuditAction.password_reset, entity=Entity.staff_user, entity_id=user_id,
                     summary=f"Set a new password for {name}; their logins ended",
                     changes={"password_hash": "(changed)", "login_epoch": [current.login_epoch, current.login_epoch + 1]})
    if current.is_active != is_active:
        action = AuditAction.reactivate if is_active else AuditAction.deactivate
        audit.record(db, actor=actor, action=action, entity=Entity.staff_user, entity_id=user_id,
                     summary=f"{'Reactivated' if is_active else 'Deactivated'} staff account {name}"
                     + ("" if is_active else "; their logins ended"),
                     changes={"is_active": [current.is_active, is_active]})
    return db.get(StaffUser, user_id, populate_existing=True)
