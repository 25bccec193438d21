"""the attending answer: who is coming to the bedside, when they said so and when they
expect to be there; its timeline event

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

EVENT_KINDS_BEFORE = ('opened', 'flag_added', 'overdue', 'acknowledged', 'closed', 'paged')
EVENT_KINDS = (*EVENT_KINDS_BEFORE, 'attending')
KIND_CHECK = 'ck_escalation_events_escalationeventkind'


def _event_kinds(kinds: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    with op.batch_alter_table('escalation_events') as batch:
        batch.drop_constraint(op.f(KIND_CHECK), type_='check')
        batch.create_check_constraint(op.f(KIND_CHECK), sa.text(f"kind IN ({listed})"))


def upgrade() -> None:
    with op.batch_alter_table('escalations') as batch:
        batch.add_column(sa.Column('attending_by_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('attending_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('attending_expected_at', sa.DateTime(timezone=True),
                                   nullable=True))
        batch.create_foreign_key(op.f('fk_escalations_attending_by_id_users'), 'users',
                                 ['attending_by_id'], ['id'])
    _event_kinds(EVENT_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM escalation_events WHERE kind = 'attending'")
    _event_kinds(EVENT_KINDS_BEFORE)
    with op.batch_alter_table('escalations') as batch:
        batch.drop_constraint(op.f('fk_escalations_attending_by_id_users'), type_='foreignkey')
        batch.drop_column('attending_expected_at')
        batch.drop_column('attending_at')
        batch.drop_column('attending_by_id')
