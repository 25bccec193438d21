"""audit_events: indexes for counting recent failed log-ins by account and by address

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 16:00:00
"""

from __future__ import annotations

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_events_login_account', 'audit_events',
                    ['action', 'actor_username', 'at'])
    op.create_index('ix_audit_events_login_address', 'audit_events',
                    ['action', 'client_address', 'at'])


def downgrade() -> None:
    op.drop_index('ix_audit_events_login_address', table_name='audit_events')
    op.drop_index('ix_audit_events_login_account', table_name='audit_events')
