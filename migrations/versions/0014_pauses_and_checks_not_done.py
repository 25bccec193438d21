"""the ward's real day: monitoring pauses, checks not done, and how soon a check falls due
after one not done

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 19:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

PAUSE_REASONS = ('in_theatre', 'imaging', 'off_ward', 'other')
NOT_DONE_REASONS = ('patient_refused', 'patient_off_ward', 'dressing_not_removable', 'other')


def upgrade() -> None:
    with op.batch_alter_table('schedule_policies') as batch:
        batch.add_column(sa.Column('not_done_minutes', sa.Integer(), server_default='30',
                                   nullable=False))
    op.create_table(
        'monitoring_pauses',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reconstruction_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.Enum(*PAUSE_REASONS, name='pausereason', native_enum=False,
                                    create_constraint=True, length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_by_id', sa.Integer(), nullable=True),
        sa.Column('expected_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_by_id', sa.Integer(), nullable=True),
        sa.Column('end_note', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'],
                                name=op.f('fk_monitoring_pauses_reconstruction_id_reconstructions')),
        sa.ForeignKeyConstraint(['started_by_id'], ['users.id'],
                                name=op.f('fk_monitoring_pauses_started_by_id_users')),
        sa.ForeignKeyConstraint(['ended_by_id'], ['users.id'],
                                name=op.f('fk_monitoring_pauses_ended_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_monitoring_pauses')),
    )
    op.create_index('uq_monitoring_pauses_open', 'monitoring_pauses', ['reconstruction_id'],
                    unique=True, sqlite_where=sa.text('ended_at IS NULL'),
                    postgresql_where=sa.text('ended_at IS NULL'))
    op.create_table(
        'checks_not_done',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reconstruction_id', sa.Integer(), nullable=False),
        sa.Column('taken_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Enum(*NOT_DONE_REASONS, name='notdonereason', native_enum=False,
                                    create_constraint=True, length=32), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'],
                                name=op.f('fk_checks_not_done_reconstruction_id_reconstructions')),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'],
                                name=op.f('fk_checks_not_done_recorded_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_checks_not_done')),
    )
    op.create_index('ix_checks_not_done_reconstruction_taken', 'checks_not_done',
                    ['reconstruction_id', 'taken_at'])


def downgrade() -> None:
    op.drop_index('ix_checks_not_done_reconstruction_taken', table_name='checks_not_done')
    op.drop_table('checks_not_done')
    op.drop_index('uq_monitoring_pauses_open', table_name='monitoring_pauses')
    op.drop_table('monitoring_pauses')
    with op.batch_alter_table('schedule_policies') as batch:
        batch.drop_column('not_done_minutes')
