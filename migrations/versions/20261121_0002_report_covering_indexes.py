"""covering indexes for the outpatient, workload and pharmacy reports

Replaces two two-column indexes by wider ones that hold every column the report
queries read, so each report is a range scan of one index instead of a lookup of
every matching row (measured in docs/benchmarks.md, "Dashboard and reports").

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 03:20:00

"""
from typing import Sequence, Union

from alembic import op


# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the covering indexes first, then drop the narrower ones they replace."""
    op.create_index(
        "ix_appointment_date_status_cover", "appointment",
        ["session_date", "status", "department_id", "doctor_id"],
    )
    op.drop_index("ix_appointment_date_status", table_name="appointment")
    op.create_index(
        "ix_movement_kind_created_cover", "stock_movement",
        ["kind", "created_at", "medicine_id", "quantity", "unit_cost"],
    )
    op.drop_index("ix_movement_kind_created", table_name="stock_movement")


def downgrade() -> None:
    """Restore revision 0001's indexes (created before the wide ones are dropped)."""
    op.create_index("ix_movement_kind_created", "stock_movement", ["kind", "created_at"])
    op.drop_index("ix_movement_kind_created_cover", table_name="stock_movement")
    op.create_index("ix_appointment_date_status", "appointment", ["session_date", "status"])
    op.drop_index("ix_appointment_date_status_cover", table_name="appointment")
