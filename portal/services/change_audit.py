"""Audit of generic create/edit/delete made through the admin's ORM sessions.

Sessions created with ``info={"audit_changes": True}`` (the admin's) get an
``after_flush`` hook that writes one AuditEvent per inserted, updated or deleted row,
with the old and new value of every changed column, in the same transaction as the
change: if the change rolls back, so does its audit row, and if the audit write
fails, the change fails with it. Service functions record their own, more specific
events and do not use this hook.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.base import NO_VALUE

from models import AuditEvent
from portal.core.actor import SYSTEM, current_actor
from portal.core.vocabulary import AuditAction, Entity
from portal.services import audit


def _column_changes(obj: Any) -> dict[str, list[Any]]:
    state = inspect(obj)
    changes: dict[str, list[Any]] = {}
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            if old != new:
                changes[attr.key] = [old, new]
    for rel in state.mapper.relationships:
        if rel.direction.name == "MANYTOMANY":
            hist = state.attrs[rel.key].history
            if hist.added or hist.deleted:
                unchanged = list(hist.unchanged or ())
                changes[rel.key] = [
                    sorted(str(o) for o in unchanged + list(hist.deleted or ())),
                    sorted(str(o) for o in unchanged + list(hist.added or ())),
                ]
    return changes


def _identity(obj: Any) -> str | None:
    values = inspect(obj).mapper.primary_key_from_instance(obj)
    if any(v is None for v in values):
        return None
    return ",".join(str(v) for v in values)


def _after_flush(db: Session, _flush_context: Any) -> None:
    if not db.info.get("audit_changes"):
        return
    actor = current_actor.get() or SYSTEM
    for obj in list(db.new):
        if isinstance(obj, AuditEvent):
            continue
        table = obj.__tablename__
        values = {k: v[1] for k, v in _column_changes(obj).items()}
        audit.record(
            db, actor=actor, action=AuditAction.create, entity=Entity.of_table(table), entity_id=_identity(obj),
            summary=f"Created {table} {obj}", changes=values,
        )
    for obj in list(db.dirty):
        if isinstance(obj, AuditEvent) or not db.is_modified(obj):
            continue
        changes = _column_changes(obj)
        if not changes:
            continue
        table = obj.__tablename__
        audit.record(
            db, actor=actor, action=AuditAction.update, entity=Entity.of_table(table), entity_id=_identity(obj),
            summary=f"Edited {table} {obj}: {', '.join(sorted(changes))}", changes=changes,
        )
    for obj in list(db.deleted):
        table = obj.__tablename__
        state = inspect(obj)
        snapshot = {
            a.key: state.attrs[a.key].loaded_value
            for a in state.mapper.column_attrs
            if state.attrs[a.key].loaded_value is not NO_VALUE
        }
        audit.record(
            db, actor=actor, action=AuditAction.delete, entity=Entity.of_table(table), entity_id=_identity(obj),
            summary=f"Deleted {table} {obj}", changes=snapshot,
        )


def install(session_class: type[Session] = Session) -> None:
    """Register the after-flush audit hook on ``session_class`` (idempotent)."""
    if not event.contains(session_class, "after_flush", _after_flush):
        event.listen(session_class, "after_flush", _after_flush)
