"""one name per idea: ``schedule`` becomes ``clinic_session``, ``session_epoch`` ``login_epoch``

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 18:00:00

The model of a clinic session was called ``Schedule`` (table ``schedule``, column
``appointment.schedule_id``) while the screens, the docs and the field say "clinic
session". This revision renames the table, its constraints, indexes and catalog
triggers, the appointment's foreign key column, and the entity name in the audit trail,
so one name is used everywhere. Likewise ``staff_user.session_epoch`` (the counter in a
staff member's login cookie) becomes ``login_epoch``: "session" alone now means a clinic
session. Data is kept (ids included).

MariaDB: RENAME TABLE and ALTERs in place. SQLite: the table is renamed (SQLite rewrites
the foreign keys and triggers that name it), then rebuilt by Alembic's batch mode to take
the new constraint names; ``migrations/env.py`` runs SQLite migrations with foreign keys
off and checks them afterwards, as SQLite's own procedure for rebuilding tables asks.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: Union[str, Sequence[str], None] = '0004'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUMP = "UPDATE catalog_version SET version = version + 1 WHERE department_id "
#: (suffix, timing and event, body) of the catalog triggers on the clinic session table
#: (revision 0003 made them on ``schedule``).
TRIGGERS = [
    ("ai", "AFTER INSERT", BUMP + "= NEW.department_id"),
    ("au", "AFTER UPDATE", BUMP + "IN (OLD.department_id, NEW.department_id)"),
    ("ad", "AFTER DELETE", BUMP + "= OLD.department_id"),
]
CHECKS = {
    "booked": "booked_count >= 0 AND booked_count <= capacity",
    "capacity": "capacity >= 1",
    "times": "end_time > start_time",
    "fee": "fee >= 0",
    "slot": "slot_minutes >= 1",
}
#: index name suffix -> columns, on the clinic session table
INDEXES = {
    "date_status": ["session_date", "status"],
    "department_date_start": ["department_id", "session_date", "start_time"],
}


def _triggers(old: str, new: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for suffix, _when, _body in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS catalog_{old}_{suffix}")
    for suffix, when, body in TRIGGERS:
        name = f"catalog_{new}_{suffix}"
        if sqlite:
            op.execute(f"CREATE TRIGGER {name} {when} ON {new} FOR EACH ROW BEGIN {body}; END")
        else:
            op.execute(f"CREATE TRIGGER {name} {when} ON {new} FOR EACH ROW {body}")


def _rename(old: str, new: str, old_col: str, new_col: str) -> None:
    """Rename table ``old`` to ``new`` (and every name derived from it), and the
    appointment's column ``old_col`` to ``new_col``."""
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.rename_table(old, new)
        with op.batch_alter_table(new, recreate="always") as batch:
            batch.drop_constraint(op.f(f"pk_{old}"), type_="primary")
            batch.create_primary_key(op.f(f"pk_{new}"), ["id"])
            batch.drop_constraint(op.f(f"uq_{old}_doctor_start"), type_="unique")
            batch.create_unique_constraint(op.f(f"uq_{new}_doctor_start"), ["doctor_id", "session_date", "start_time"])
            for name, condition in CHECKS.items():
                batch.drop_constraint(op.f(f"ck_{old}_{name}"), type_="check")
                batch.create_check_constraint(op.f(f"ck_{new}_{name}"), condition)
            for fk_col, target in (("department_id", "department"), ("doctor_id", "doctor")):
                batch.drop_constraint(op.f(f"fk_{old}_{fk_col}_{target}"), type_="foreignkey")
                batch.create_foreign_key(op.f(f"fk_{new}_{fk_col}_{target}"), target, [fk_col], ["id"])
            for suffix, columns in INDEXES.items():
                batch.drop_index(op.f(f"ix_{old}_{suffix}"))
                batch.create_index(op.f(f"ix_{new}_{suffix}"), columns)
        with op.batch_alter_table("appointment", recreate="always") as batch:
            batch.drop_constraint(op.f(f"fk_appointment_{old_col}_{old}"), type_="foreignkey")
            batch.alter_column(old_col, new_column_name=new_col)
        with op.batch_alter_table("appointment", recreate="always") as batch:
            batch.create_foreign_key(op.f(f"fk_appointment_{new_col}_{new}"), new, [new_col], ["id"])
    else:
        op.execute(f"RENAME TABLE {old} TO {new}")
        parts = [f"RENAME INDEX ix_{old}_{s} TO ix_{new}_{s}" for s in INDEXES]
        parts.append(f"RENAME INDEX uq_{old}_doctor_start TO uq_{new}_doctor_start")
        parts += [f"DROP CONSTRAINT ck_{old}_{name}" for name in CHECKS]
        parts += [f"ADD CONSTRAINT ck_{new}_{name} CHECK ({condition})" for name, condition in CHECKS.items()]
        op.execute(f"ALTER TABLE {new} " + ", ".join(parts))
        op.execute(
            f"ALTER TABLE {new} DROP FOREIGN KEY fk_{old}_department_id_department, "
            f"DROP FOREIGN KEY fk_{old}_doctor_id_doctor"
        )
        op.execute(
            f"ALTER TABLE {new} "
            f"ADD CONSTRAINT fk_{new}_department_id_department FOREIGN KEY (department_id) REFERENCES department (id), "
            f"ADD CONSTRAINT fk_{new}_doctor_id_doctor FOREIGN KEY (doctor_id) REFERENCES doctor (id)"
        )
        op.execute(f"ALTER TABLE appointment DROP FOREIGN KEY fk_appointment_{old_col}_{old}")
        op.execute(f"ALTER TABLE appointment CHANGE {old_col} {new_col} INTEGER NOT NULL")
        op.execute(
            f"ALTER TABLE appointment ADD CONSTRAINT fk_appointment_{new_col}_{new} "
            f"FOREIGN KEY ({new_col}) REFERENCES {new} (id)"
        )
    _triggers(old, new)
    op.execute(f"UPDATE audit_event SET entity = '{new}' WHERE entity = '{old}'")


def _rename_epoch(old: str, new: str) -> None:
    """``staff_user.<old>`` becomes ``<new>`` (the counter stamped into login cookies)."""
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("staff_user") as batch:
            batch.alter_column(old, new_column_name=new)
    else:
        op.execute(f"ALTER TABLE staff_user CHANGE {old} {new} INTEGER NOT NULL")


def upgrade() -> None:
    """Upgrade schema."""
    _rename("schedule", "clinic_session", "schedule_id", "clinic_session_id")
    _rename_epoch("session_epoch", "login_epoch")


def downgrade() -> None:
    """Downgrade schema."""
    _rename_epoch("login_epoch", "session_epoch")
    _rename("clinic_session", "schedule", "clinic_session_id", "schedule_id")
