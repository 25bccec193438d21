"""initial schema: units, staff, patients, reconstructions, checks, audit

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 09:11:46.896762
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_chain_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_hash', sa.String(length=64), nullable=False),
    sa.Column('event_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_chain_head'))
    )
    # The audit chain starts from an all-zero hash; writers lock this row to append in turn.
    op.bulk_insert(
        sa.table("audit_chain_head", sa.column("id"), sa.column("last_hash"), sa.column("event_count")),
        [{"id": 1, "last_hash": "0" * 64, "event_count": 0}],
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('code', name=op.f('uq_units_code'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.Enum('nurse', 'surgeon', 'unit_admin', 'auditor', 'admin', name='role', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('actor_username', sa.String(length=64), nullable=False),
    sa.Column('actor_role', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('client_address', sa.String(length=64), nullable=True),
    sa.Column('previous_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_events_actor_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    sa.UniqueConstraint('hash', name=op.f('uq_audit_events_hash'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)

    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mrn', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('date_of_birth', sa.Date(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('bed', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_patients_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('mrn', name=op.f('uq_patients_mrn'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_unit_id'), ['unit_id'], unique=False)

    op.create_table('schedule_policies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('bands', sa.JSON(), nullable=False),
    sa.Column('grace_minutes', sa.Integer(), nullable=False),
    sa.Column('after_last_band_minutes', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_schedule_policies_created_by_id_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_schedule_policies_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_policies')),
    sa.UniqueConstraint('unit_id', 'version', name='uq_schedule_policies_version')
    )
    with op.batch_alter_table('schedule_policies', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_policies_unit_id'), ['unit_id'], unique=False)

    op.create_table('user_units',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_user_units_unit_id_units'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_units_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'unit_id', name=op.f('pk_user_units'))
    )
    op.create_table('reconstructions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=False),
    sa.Column('procedure', sa.String(length=200), nullable=False),
    sa.Column('flap_kind', sa.Enum('free', 'pedicled', 'replant', 'other', name='flapkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('site', sa.String(length=200), nullable=False),
    sa.Column('side', sa.Enum('left', 'right', 'midline', 'bilateral', 'na', name='side', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('surgery_end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('surgeon', sa.String(length=200), nullable=False),
    sa.Column('buried', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('monitoring', 'stopped', 'returned_to_theatre', 'salvaged', 'failed', 'discharged', name='reconstructionstatus', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_reconstructions_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconstructions'))
    )
    with op.batch_alter_table('reconstructions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconstructions_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index('ix_reconstructions_status_patient', ['status', 'patient_id'], unique=False)

    op.create_table('checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reconstruction_id', sa.Integer(), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by_id', sa.Integer(), nullable=False),
    sa.Column('colour', sa.Enum('pink', 'pale', 'white', 'mottled', 'dusky', 'blue', 'purple', 'black', 'not_assessable', name='colour', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('flap_temperature_c', sa.Float(), nullable=True),
    sa.Column('control_temperature_c', sa.Float(), nullable=True),
    sa.Column('capillary_refill', sa.Enum('brisk', 'normal', 'sluggish', 'absent', 'not_assessable', name='capillaryrefill', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('capillary_refill_s', sa.Float(), nullable=True),
    sa.Column('doppler_arterial', sa.Enum('present', 'weak', 'absent', 'not_assessed', name='dopplerarterial', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('doppler_venous', sa.Enum('present', 'absent', 'not_assessed', name='dopplervenous', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('turgor', sa.Enum('soft', 'firm', 'tense', 'flaccid', 'not_assessable', name='turgor', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('pinprick', sa.Enum('bright_red', 'dark_rapid', 'slow_none', 'not_done', name='pinprick', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('sto2_percent', sa.Float(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'], name=op.f('fk_checks_reconstruction_id_reconstructions')),
    sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'], name=op.f('fk_checks_recorded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_checks'))
    )
    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.create_index('ix_checks_reconstruction_taken', ['reconstruction_id', 'taken_at'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_index('ix_checks_reconstruction_taken')

    op.drop_table('checks')
    with op.batch_alter_table('reconstructions', schema=None) as batch_op:
        batch_op.drop_index('ix_reconstructions_status_patient')
        batch_op.drop_index(batch_op.f('ix_reconstructions_patient_id'))

    op.drop_table('reconstructions')
    op.drop_table('user_units')
    with op.batch_alter_table('schedule_policies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_policies_unit_id'))

    op.drop_table('schedule_policies')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_unit_id'))

    op.drop_table('patients')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
    op.drop_table('users')
    op.drop_table('units')
    op.drop_table('audit_chain_head')

