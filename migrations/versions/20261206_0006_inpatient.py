"""inpatient care: wards, rooms, beds, admissions and bed transfers (issue 17)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 02:36:49

New tables only; nothing existing changes. The database itself keeps a bed to one
patient and a patient to one active admission: ``admission`` has the unique keys
(bed_id, bed_marker) and (patient_id, active_marker), whose marker columns are 1 while
the admission holds its bed / is active and NULL afterwards (NULLs never collide), as
the appointment's (clinic session, patient, active_marker) key does. The services move
a bed's status with conditional UPDATEs on top of that (``portal.services.inpatient``).
Downgrading drops the five tables and their rows.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel
import models._types


# revision identifiers, used by Alembic.
revision: str = '0006'
down_revision: Union[str, Sequence[str], None] = '0005'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('ward',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('sex_policy', sa.Enum('male', 'female', 'mixed', name='sexpolicy', native_enum=False, length=24), nullable=False),
    sa.Column('floor', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_ward_department_id_department')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ward')),
    sa.UniqueConstraint('name', name=op.f('uq_ward_name'))
    )
    with op.batch_alter_table('ward', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ward_department_id'), ['department_id'], unique=False)

    op.create_table('room',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['ward_id'], ['ward.id'], name=op.f('fk_room_ward_id_ward')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_room')),
    sa.UniqueConstraint('ward_id', 'number', name='uq_room_ward_number')
    )
    with op.batch_alter_table('room', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_ward_id'), ['ward_id'], unique=False)

    op.create_table('bed',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sa.Enum('free', 'occupied', 'reserved', 'cleaning', 'out_of_service', name='bedstatus', native_enum=False, length=24), nullable=False),
    sa.Column('daily_rate', sa.Integer(), nullable=False),
    sa.Column('status_note', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.CheckConstraint('daily_rate >= 0', name=op.f('ck_bed_daily_rate')),
    sa.ForeignKeyConstraint(['room_id'], ['room.id'], name=op.f('fk_bed_room_id_room')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bed')),
    sa.UniqueConstraint('code', name=op.f('uq_bed_code'))
    )
    with op.batch_alter_table('bed', schema=None) as batch_op:
        batch_op.create_index('ix_bed_room_status', ['room_id', 'status'], unique=False)

    op.create_table('admission',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('doctor_id', sa.Integer(), nullable=False),
    sa.Column('department_id', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('diagnosis_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('admitted_from', sa.Enum('outpatient', 'emergency', 'direct', name='admittedfrom', native_enum=False, length=24), nullable=False),
    sa.Column('encounter_id', sa.Integer(), nullable=True),
    sa.Column('bed_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.Enum('requested', 'admitted', 'discharge_ordered', 'discharged', 'cancelled', name='admissionstatus', native_enum=False, length=24), nullable=False),
    sa.Column('active_marker', sa.Integer(), nullable=True),
    sa.Column('bed_marker', sa.Integer(), nullable=True),
    sa.Column('requested_at', models._types.UTCDateTime(), nullable=False),
    sa.Column('admitted_at', models._types.UTCDateTime(), nullable=True),
    sa.Column('discharge_ordered_at', models._types.UTCDateTime(), nullable=True),
    sa.Column('discharged_at', models._types.UTCDateTime(), nullable=True),
    sa.Column('cancelled_at', models._types.UTCDateTime(), nullable=True),
    sa.Column('discharge_note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.CheckConstraint('active_marker IS NULL OR active_marker = 1', name=op.f('ck_admission_active_marker')),
    sa.CheckConstraint('bed_marker IS NULL OR (bed_marker = 1 AND bed_id IS NOT NULL)', name=op.f('ck_admission_bed_marker')),
    sa.ForeignKeyConstraint(['bed_id'], ['bed.id'], name=op.f('fk_admission_bed_id_bed')),
    sa.ForeignKeyConstraint(['department_id'], ['department.id'], name=op.f('fk_admission_department_id_department')),
    sa.ForeignKeyConstraint(['diagnosis_code'], ['icd10_code.code'], name=op.f('fk_admission_diagnosis_code_icd10_code')),
    sa.ForeignKeyConstraint(['doctor_id'], ['doctor.id'], name=op.f('fk_admission_doctor_id_doctor')),
    sa.ForeignKeyConstraint(['encounter_id'], ['encounter.id'], name=op.f('fk_admission_encounter_id_encounter')),
    sa.ForeignKeyConstraint(['patient_id'], ['patient.id'], name=op.f('fk_admission_patient_id_patient')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admission')),
    sa.UniqueConstraint('bed_id', 'bed_marker', name='uq_admission_bed_holder'),
    sa.UniqueConstraint('patient_id', 'active_marker', name='uq_admission_active_patient')
    )
    with op.batch_alter_table('admission', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admission_bed_id'), ['bed_id'], unique=False)
        batch_op.create_index('ix_admission_discharged', ['discharged_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_admission_doctor_id'), ['doctor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_admission_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_admission_status_admitted', ['status', 'admitted_at'], unique=False)

    op.create_table('bed_transfer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('admission_id', sa.Integer(), nullable=False),
    sa.Column('from_bed_id', sa.Integer(), nullable=False),
    sa.Column('to_bed_id', sa.Integer(), nullable=False),
    sa.Column('transferred_at', models._types.UTCDateTime(), nullable=False),
    sa.Column('transferred_by', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.ForeignKeyConstraint(['admission_id'], ['admission.id'], name=op.f('fk_bed_transfer_admission_id_admission')),
    sa.ForeignKeyConstraint(['from_bed_id'], ['bed.id'], name=op.f('fk_bed_transfer_from_bed_id_bed')),
    sa.ForeignKeyConstraint(['to_bed_id'], ['bed.id'], name=op.f('fk_bed_transfer_to_bed_id_bed')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bed_transfer'))
    )
    with op.batch_alter_table('bed_transfer', schema=None) as batch_op:
        batch_op.create_index('ix_bed_transfer_admission_at', ['admission_id', 'transferred_at'], unique=False)



def downgrade() -> None:
    """Downgrade schema: drop the five tables (their indexes go with them; MariaDB refuses to
    drop an index a foreign key needs)."""
    op.drop_table('bed_transfer')
    op.drop_table('admission')
    op.drop_table('bed')
    op.drop_table('room')
    op.drop_table('ward')
