"""inpatient notes and vitals (issue 17)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 03:05:00

One new table, ``inpatient_note``: a ward note on an admission with optional vitals
(temperature in 0.1 °C, pulse and respiratory rate per minute, blood pressure in mmHg,
SpO2 in %), each held to a plausible range by a CHECK constraint (MariaDB and SQLite both
enforce them). Nothing existing changes; downgrading drops the table and its rows.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import models._types


# revision identifiers, used by Alembic.
revision: str = '0007'
down_revision: Union[str, Sequence[str], None] = '0006'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('inpatient_note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('admission_id', sa.Integer(), nullable=False),
    sa.Column('written_at', models._types.UTCDateTime(), nullable=False),
    sa.Column('author', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('temperature_dc', sa.Integer(), nullable=True),
    sa.Column('pulse', sa.Integer(), nullable=True),
    sa.Column('systolic', sa.Integer(), nullable=True),
    sa.Column('diastolic', sa.Integer(), nullable=True),
    sa.Column('respiratory_rate', sa.Integer(), nullable=True),
    sa.Column('spo2', sa.Integer(), nullable=True),
    sa.CheckConstraint('temperature_dc IS NULL OR temperature_dc BETWEEN 300 AND 440', name=op.f('ck_inpatient_note_temperature_dc')),
    sa.CheckConstraint('pulse IS NULL OR pulse BETWEEN 20 AND 250', name=op.f('ck_inpatient_note_pulse')),
    sa.CheckConstraint('systolic IS NULL OR systolic BETWEEN 50 AND 260', name=op.f('ck_inpatient_note_systolic')),
    sa.CheckConstraint('diastolic IS NULL OR diastolic BETWEEN 20 AND 160', name=op.f('ck_inpatient_note_diastolic')),
    sa.CheckConstraint('systolic IS NULL OR diastolic IS NULL OR diastolic < systolic', name=op.f('ck_inpatient_note_blood_pressure')),
    sa.CheckConstraint('respiratory_rate IS NULL OR respiratory_rate BETWEEN 4 AND 60', name=op.f('ck_inpatient_note_respiratory_rate')),
    sa.CheckConstraint('spo2 IS NULL OR spo2 BETWEEN 50 AND 100', name=op.f('ck_inpatient_note_spo2')),
    sa.ForeignKeyConstraint(['admission_id'], ['admission.id'], name=op.f('fk_inpatient_note_admission_id_admission')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inpatient_note'))
    )
    with op.batch_alter_table('inpatient_note', schema=None) as batch_op:
        batch_op.create_index('ix_inpatient_note_admission_at', ['admission_id', 'written_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema: drop the table (its index goes with it; MariaDB refuses to drop an
    index a foreign key needs)."""
    op.drop_table('inpatient_note')
