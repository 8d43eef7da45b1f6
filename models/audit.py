"""The audit trail: one append-only row per change, login or export."""


from datetime import datetime
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models._types import UTCDateTime
from portal.core import clock


class AuditEvent(SQLModel, table=True):
    """Who did what to which row, when and from where.

    ``changes`` holds, for edits, ``{field: [old, new]}``; for creates the new
    values; for workflow actions the fields the action changed. Secrets never
    appear in it. Written in the same transaction as the change it records. An event
    of a change that wrote stock movements (receive, adjust, expire, dispense) lists
    their ids in ``changes["movement_ids"]`` (checked by ``portal.ops.integrity``).
    """

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_entity", "entity", "entity_id"),
        sa.Index("ix_audit_actor_time", "actor", "occurred_at"),
        sa.Index("ix_audit_action_time", "action", "occurred_at"),
    )

    id: Optional[int] = Field(default=None, primary_key=True)
    occurred_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime, index=True)
    actor: str = Field(max_length=80, description="Username, or patient:<channel>")
    actor_id: Optional[int] = Field(default=None)
    action: str = Field(max_length=40)
    entity: str = Field(max_length=40)
    entity_id: Optional[str] = Field(default=None, max_length=40)
    summary: str = Field(max_length=500)
    changes: Optional[dict[str, Any]] = Field(default=None, sa_type=sa.JSON)
    ip: Optional[str] = Field(default=None, max_length=45)

    def __str__(self) -> str:
        return f"{self.action} {self.entity} {self.entity_id or ''}".strip()
