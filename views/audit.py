"""The audit log: read-only and append-only for everyone."""

from __future__ import annotations

from sqladmin.filters import AllUniqueStringValuesFilter

from models import AuditEvent
from views._base import PortalModelView, date_range
from views._filters import ColumnFilter


class AuditEventView(PortalModelView, model=AuditEvent):
    """Who did what, when, from where; nobody may edit or delete it."""

    name = "Audit event"
    name_plural = "Audit log"
    icon = "fa-solid fa-clipboard-list"
    category = "Administration"
    can_create = False
    can_edit = False
    can_delete = False
    column_list = [AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action, AuditEvent.entity, AuditEvent.entity_id, AuditEvent.summary, AuditEvent.ip]
    column_labels = {AuditEvent.occurred_at: "When", AuditEvent.entity_id: "Row", AuditEvent.ip: "IP address"}
    column_searchable_list = [AuditEvent.summary, AuditEvent.actor, AuditEvent.entity_id]
    column_sortable_list = [AuditEvent.occurred_at, AuditEvent.actor, AuditEvent.action, AuditEvent.entity]
    column_default_sort = [(AuditEvent.id, True)]
    column_filters = [
        ColumnFilter(AuditEvent.actor, title="Actor"),
        AllUniqueStringValuesFilter(AuditEvent.action, title="Action"),
        AllUniqueStringValuesFilter(AuditEvent.entity, title="Entity"),
        ColumnFilter(AuditEvent.entity_id, title="Row id"),
        *date_range(AuditEvent.occurred_at, "Date"),
    ]

    async def list_context(self, request):
        """Name the row when the list is one row's history (the detail pages' History link)."""
        entity = request.query_params.get("entity")
        row = request.query_params.get("entity_id")
        if entity and entity != "__all" and row:
            return {"title": f"History of {entity.replace('_', ' ')} #{row}",
                    "subtitle": "every recorded change, action, login and export of this row, newest first"}
        return {}
