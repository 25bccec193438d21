"""rules that tighten the schedule: an escalation's recheck interval while it is unanswered

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('escalations') as batch:
        batch.add_column(sa.Column('recheck_minutes', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('recheck_from', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('escalations') as batch:
        batch.drop_column('recheck_from')
        batch.drop_column('recheck_minutes')
