"""units: minutes without use after which a shared tablet logs its user off

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('units', sa.Column('idle_logoff_minutes', sa.Integer(),
                                     server_default=sa.text('10'), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('units') as batch:
        batch.drop_column('idle_logoff_minutes')
