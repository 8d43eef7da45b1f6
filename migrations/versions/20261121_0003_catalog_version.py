"""catalog versions: a counter per department raised by triggers (cache of patient pages)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 03:30:00

Every insert, update or delete of a department, a doctor's department link, a doctor, or a
clinic session raises ``catalog_version.version`` of the departments concerned, in the same
transaction, whoever writes (services, the admin, the seed, SQL by hand). The patient pages
keep rendered HTML keyed by these versions (``portal/booking/page_cache.py``).

MariaDB: cascaded foreign-key deletes fire no triggers, hence ``BEFORE DELETE`` on doctor
(its links still exist then). SQLite: a batch migration that recreates one of these tables
drops its triggers; ``tests/test_page_cache.py`` checks they all exist at head.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

BUMP = "UPDATE catalog_version SET version = version + 1 WHERE department_id "

#: (name, timing and event, table, body on MariaDB, body on SQLite)
TRIGGERS = [
    ("catalog_department_ai", "AFTER INSERT", "department",
     "INSERT INTO catalog_version (department_id, version) VALUES (NEW.id, 1) "
     "ON DUPLICATE KEY UPDATE version = version + 1",
     "INSERT OR IGNORE INTO catalog_version (department_id, version) VALUES (NEW.id, 0); "
     + BUMP + "= NEW.id;"),
    ("catalog_department_au", "AFTER UPDATE", "department", BUMP + "IN (OLD.id, NEW.id)", None),
    ("catalog_department_ad", "AFTER DELETE", "department", BUMP + "= OLD.id", None),
    ("catalog_schedule_ai", "AFTER INSERT", "schedule", BUMP + "= NEW.department_id", None),
    ("catalog_schedule_au", "AFTER UPDATE", "schedule", BUMP + "IN (OLD.department_id, NEW.department_id)", None),
    ("catalog_schedule_ad", "AFTER DELETE", "schedule", BUMP + "= OLD.department_id", None),
    ("catalog_doctor_department_ai", "AFTER INSERT", "doctor_department", BUMP + "= NEW.department_id", None),
    ("catalog_doctor_department_au", "AFTER UPDATE", "doctor_department",
     BUMP + "IN (OLD.department_id, NEW.department_id)", None),
    ("catalog_doctor_department_ad", "AFTER DELETE", "doctor_department", BUMP + "= OLD.department_id", None),
    ("catalog_doctor_au", "AFTER UPDATE", "doctor",
     BUMP + "IN (SELECT department_id FROM doctor_department WHERE doctor_id IN (OLD.id, NEW.id))", None),
    ("catalog_doctor_bd", "BEFORE DELETE", "doctor",
     BUMP + "IN (SELECT department_id FROM doctor_department WHERE doctor_id = OLD.id)", None),
]


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('catalog_version',
    sa.Column('department_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('department_id')
    )
    op.execute("INSERT INTO catalog_version (department_id, version) SELECT id, 1 FROM department")
    sqlite = op.get_bind().dialect.name == "sqlite"
    for name, when, table, mysql_body, sqlite_body in TRIGGERS:
        if sqlite:
            body = sqlite_body or (mysql_body + ";")
            op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW BEGIN {body} END")
        else:
            op.execute(f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW {mysql_body}")


def downgrade() -> None:
    """Downgrade schema."""
    for name, *_ in reversed(TRIGGERS):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('catalog_version')
