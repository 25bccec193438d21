"""escalation chains: a unit's contacts and chains (versioned), the steps sent, and deliveries
that say which level and contact they are for

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 07:00:00
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

EVENT_KINDS_BEFORE = ('opened', 'flag_added', 'overdue', 'acknowledged', 'closed')
EVENT_KINDS = (*EVENT_KINDS_BEFORE, 'paged')
KIND_CHECK = 'ck_escalation_events_escalationeventkind'

# DESIGN.md §2b's defaults, frozen here as they stood when this migration was written.
DEFAULT_CONTACTS = [
    {"name": "Registrar on call", "channels": []},
    {"name": "Consultant on call", "channels": []},
    {"name": "Nurse in charge", "channels": []},
]
DEFAULT_CHAINS = {
    "red": [
        {"after_minutes": 0, "notify": "Registrar on call"},
        {"after_minutes": 5, "notify": "Registrar on call"},
        {"after_minutes": 15, "notify": "Consultant on call"},
        {"after_minutes": 20, "notify": "Nurse in charge"},
    ],
    "amber": [
        {"after_minutes": 0, "notify": "Registrar on call"},
        {"after_minutes": 30, "notify": "Registrar on call"},
    ],
}


def _versions_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('definition', sa.JSON(), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'],
                                name=op.f(f'fk_{name}_created_by_id_users')),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f(f'fk_{name}_unit_id_units')),
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
        sa.UniqueConstraint('unit_id', 'version', name=f'uq_{name}_version'),
    )


def _event_kinds(kinds: tuple[str, ...]) -> None:
    listed = ", ".join(f"'{kind}'" for kind in kinds)
    with op.batch_alter_table('escalation_events') as batch:
        batch.drop_constraint(op.f(KIND_CHECK), type_='check')
        batch.create_check_constraint(op.f(KIND_CHECK), sa.text(f"kind IN ({listed})"))


def upgrade() -> None:
    _versions_table('contact_list_versions')
    _versions_table('escalation_chain_versions')
    op.create_table(
        'escalation_pages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('escalation_id', sa.Integer(), nullable=False),
        sa.Column('round', sa.Integer(), nullable=False),
        sa.Column('level', sa.Integer(), nullable=False),
        sa.Column('severity', sa.Enum('amber', 'red', name='severity', native_enum=False,
                                      create_constraint=True, length=32), nullable=False),
        sa.Column('contact', sa.String(length=100), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('chain_version_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['chain_version_id'], ['escalation_chain_versions.id'],
                                name=op.f('fk_escalation_pages_chain_version_id_escalation_chain_versions')),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'],
                                name=op.f('fk_escalation_pages_escalation_id_escalations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_pages')),
        sa.UniqueConstraint('escalation_id', 'round', 'level', name='uq_escalation_pages_step'),
    )
    with op.batch_alter_table('escalations') as batch:
        batch.add_column(sa.Column('chain_round', sa.Integer(), nullable=False,
                                   server_default=sa.text('0')))
        batch.add_column(sa.Column('chain_started_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('chain_level', sa.Integer(), nullable=False,
                                   server_default=sa.text('0')))
    with op.batch_alter_table('notification_deliveries') as batch:
        batch.add_column(sa.Column('channel', sa.String(length=16), nullable=False,
                                   server_default='webhook'))
        batch.add_column(sa.Column('level', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('target', sa.String(length=100), nullable=True))
    _event_kinds(EVENT_KINDS)

    connection = op.get_bind()
    units = connection.execute(sa.text("SELECT id FROM units")).scalars().all()
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    for name, definition, note in (
        ('contact_list_versions', DEFAULT_CONTACTS, 'Default contacts'),
        ('escalation_chain_versions', DEFAULT_CHAINS, 'Default escalation chain'),
    ):
        table = sa.table(
            name,
            sa.column("unit_id", sa.Integer()),
            sa.column("version", sa.Integer()),
            sa.column("definition", sa.JSON()),
            sa.column("note", sa.Text()),
            sa.column("created_at", sa.DateTime(timezone=True)),
        )
        if units:
            op.bulk_insert(
                table,
                [{"unit_id": unit_id, "version": 1, "definition": definition, "note": note,
                  "created_at": now} for unit_id in units],
            )


def downgrade() -> None:
    op.execute("DELETE FROM escalation_events WHERE kind = 'paged'")
    _event_kinds(EVENT_KINDS_BEFORE)
    with op.batch_alter_table('notification_deliveries') as batch:
        batch.drop_column('target')
        batch.drop_column('level')
        batch.drop_column('channel')
    with op.batch_alter_table('escalations') as batch:
        batch.drop_column('chain_level')
        batch.drop_column('chain_started_at')
        batch.drop_column('chain_round')
    op.drop_table('escalation_pages')
    op.drop_table('escalation_chain_versions')
    op.drop_table('contact_list_versions')
