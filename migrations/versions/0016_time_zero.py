"""return from theatre: time zero of the schedule restarts when the person resuming says so

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 20:25:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reconstructions') as batch:
        batch.add_column(sa.Column('time_zero_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reconstructions') as batch:
        batch.drop_column('time_zero_at')
