"""per-flap schedules: a surgeon's schedule for one flap over a window (checks at another
interval, or none), versioned and withdrawn, never edited

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

KINDS = ('interval', 'omit')


def upgrade() -> None:
    op.create_table(
        'schedule_overrides',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reconstruction_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Enum(*KINDS, name='overridekind', native_enum=False,
                                  create_constraint=True, length=32), nullable=False),
        sa.Column('interval_minutes', sa.Integer(), nullable=True),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('set_by_id', sa.Integer(), nullable=False),
        sa.Column('replaces_id', sa.Integer(), nullable=True),
        sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('withdrawn_by_id', sa.Integer(), nullable=True),
        sa.Column('withdraw_note', sa.Text(), nullable=False),
        sa.CheckConstraint("(kind = 'interval') = (interval_minutes IS NOT NULL)",
                           name=op.f('ck_schedule_overrides_interval')),
        sa.CheckConstraint('ends_at > starts_at', name=op.f('ck_schedule_overrides_window')),
        sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'],
                                name=op.f('fk_schedule_overrides_reconstruction_id_reconstructions')),
        sa.ForeignKeyConstraint(['set_by_id'], ['users.id'],
                                name=op.f('fk_schedule_overrides_set_by_id_users')),
        sa.ForeignKeyConstraint(['replaces_id'], ['schedule_overrides.id'],
                                name=op.f('fk_schedule_overrides_replaces_id_schedule_overrides')),
        sa.ForeignKeyConstraint(['withdrawn_by_id'], ['users.id'],
                                name=op.f('fk_schedule_overrides_withdrawn_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_schedule_overrides')),
        sa.UniqueConstraint('reconstruction_id', 'version', name='uq_schedule_overrides_version'),
    )


def downgrade() -> None:
    op.drop_table('schedule_overrides')
