"""Record audit events inside the caller's transaction."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import Enum
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from models import AuditEvent
from portal.core import clock
from portal.core.actor import Actor
from portal.core.vocabulary import AuditAction, Entity

#: Field names whose values never enter the audit trail.
SECRET_FIELDS = frozenset({"password_hash", "password", "secret_key", "submission_key"})


def jsonable(value: Any) -> Any:
    """Return ``value`` in a form JSON can store (enums as values, dates as ISO text)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def scrub(changes: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drop secret fields and make every value JSON-storable."""
    if changes is None:
        return None
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key in SECRET_FIELDS:
            out[key] = "(changed)" if value else value
        elif isinstance(value, (list, tuple)):
            out[key] = [jsonable(v) for v in value]
        else:
            out[key] = jsonable(value)
    return out


def record(
    db: Session,
    *,
    actor: Actor,
    action: AuditAction,
    entity: Entity,
    entity_id: Any,
    summary: str,
    changes: dict[str, Any] | None = None,
) -> None:
    """Write one AuditEvent in ``session``'s transaction (commits or rolls back with it).

    Args:
        db (Session): the session of the change being recorded.
        actor (Actor): who acted; its username, id and ip are stored.
        action (AuditAction): what happened (``AuditAction.confirm``, ``AuditAction.login``...).
        entity (Entity): what it happened to (``Entity.appointment``...).
        entity_id (Any): the row's id (stored as text), or None.
        summary (str): one readable line (truncated to 500 characters).
        changes (dict | None): ``{field: [old, new]}`` or ``{field: value}``; secrets scrubbed.

    Raises:
        ValueError: ``action`` or ``entity`` is not in the vocabulary
            (``portal.core.vocabulary``): a programming error, caught by the tests.
    """
    action, entity = AuditAction(action), Entity(entity)
    db.execute(
        insert(AuditEvent).values(
            occurred_at=clock.now(),
            actor=actor.username[:80],
            actor_id=actor.user_id,
            action=action.value,
            entity=entity.value,
            entity_id=None if entity_id is None else str(entity_id)[:40],
            summary=summary[:500],
            changes=scrub(changes),
            ip=(actor.ip or None) and actor.ip[:45],
        )
    )
