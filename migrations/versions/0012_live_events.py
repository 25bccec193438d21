"""live events: what changed on a unit, for the board and the queue to update at once

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'live_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_live_events_unit_id_units')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_live_events')),
    )
    op.create_index('ix_live_events_unit_id_id', 'live_events', ['unit_id', 'id'])
    op.create_index(op.f('ix_live_events_at'), 'live_events', ['at'])


def downgrade() -> None:
    op.drop_index(op.f('ix_live_events_at'), table_name='live_events')
    op.drop_index('ix_live_events_unit_id_id', table_name='live_events')
    op.drop_table('live_events')
