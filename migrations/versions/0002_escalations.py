"""escalation rules, flags, escalations, missed checks, notifications

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 09:36:45.286836
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


DEFAULT_RULE_SET = json.loads(
    """
{
 "rules": [
  {
   "id": "arterial",
   "name": "Arterial insufficiency suspected",
   "severity": "red",
   "action": "Call the on-call plastic surgery registrar now and stay with the patient.",
   "match": "any",
   "enabled": true,
   "conditions": [
    {
     "field": "colour",
     "op": "in",
     "value": [
      "pale",
      "white",
      "mottled"
     ]
    },
    {
     "field": "capillary_refill",
     "op": "in",
     "value": [
      "sluggish",
      "absent"
     ]
    },
    {
     "field": "turgor",
     "op": "in",
     "value": [
      "flaccid"
     ]
    },
    {
     "field": "pinprick",
     "op": "in",
     "value": [
      "slow_none"
     ]
    },
    {
     "field": "doppler_arterial",
     "op": "in",
     "value": [
      "absent"
     ]
    }
   ]
  },
  {
   "id": "venous",
   "name": "Venous congestion suspected",
   "severity": "red",
   "action": "Call the on-call plastic surgery registrar now and stay with the patient.",
   "match": "any",
   "enabled": true,
   "conditions": [
    {
     "field": "colour",
     "op": "in",
     "value": [
      "dusky",
      "blue",
      "purple"
     ]
    },
    {
     "field": "capillary_refill",
     "op": "in",
     "value": [
      "brisk"
     ]
    },
    {
     "field": "turgor",
     "op": "in",
     "value": [
      "tense"
     ]
    },
    {
     "field": "pinprick",
     "op": "in",
     "value": [
      "dark_rapid"
     ]
    },
    {
     "field": "doppler_venous",
     "op": "in",
     "value": [
      "absent"
     ]
    }
   ]
  },
  {
   "id": "necrosis",
   "name": "Flap necrosis suspected",
   "severity": "red",
   "action": "Call the on-call plastic surgery registrar now and stay with the patient.",
   "match": "any",
   "enabled": true,
   "conditions": [
    {
     "field": "colour",
     "op": "in",
     "value": [
      "black"
     ]
    }
   ]
  },
  {
   "id": "temperature",
   "name": "Flap cooling",
   "severity": "amber",
   "action": "Recheck within 15 minutes and inform the nurse in charge.",
   "match": "any",
   "enabled": true,
   "conditions": [
    {
     "field": "temperature_difference_c",
     "op": ">=",
     "value": 1.8
    },
    {
     "field": "flap_temperature_c",
     "op": "drop_since_previous",
     "value": 1.8
    }
   ]
  },
  {
   "id": "doppler-change",
   "name": "Doppler signal lost",
   "severity": "red",
   "action": "Call the on-call plastic surgery registrar now and stay with the patient.",
   "match": "any",
   "enabled": true,
   "conditions": [
    {
     "field": "doppler_arterial",
     "op": "changed_from",
     "from": [
      "present"
     ],
     "to": [
      "weak",
      "absent"
     ]
    },
    {
     "field": "doppler_venous",
     "op": "changed_from",
     "from": [
      "present"
     ],
     "to": [
      "absent"
     ]
    }
   ]
  },
  {
   "id": "sto2",
   "name": "Low or falling StO₂",
   "severity": "red",
   "action": "Call the on-call plastic surgery registrar now and stay with the patient.",
   "match": "any",
   "enabled": true,
   "conditions": [
    {
     "field": "sto2_percent",
     "op": "<",
     "value": 30
    },
    {
     "field": "sto2_percent",
     "op": "drop_within",
     "value": 20,
     "minutes": 60
    }
   ]
  },
  {
   "id": "overdue",
   "name": "Flap check overdue",
   "severity": "amber",
   "action": "Check the flap now; if it cannot be checked, inform the nurse in charge.",
   "match": "any",
   "enabled": true,
   "conditions": []
  }
 ],
 "note": "Default rule set (DESIGN.md §3): an evidence-based starting point for the unit to adapt."
}
"""
)


def upgrade() -> None:

    op.create_table('rule_set_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_rule_set_versions_created_by_id_users')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_rule_set_versions_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rule_set_versions')),
    sa.UniqueConstraint('unit_id', 'version', name='uq_rule_set_versions_version')
    )
    with op.batch_alter_table('rule_set_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_set_versions_unit_id'), ['unit_id'], unique=False)

    op.create_table('check_flags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('check_id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('rule_name', sa.String(length=200), nullable=False),
    sa.Column('severity', sa.Enum('amber', 'red', name='severity', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['check_id'], ['checks.id'], name=op.f('fk_check_flags_check_id_checks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_check_flags'))
    )
    with op.batch_alter_table('check_flags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_check_flags_check_id'), ['check_id'], unique=False)

    op.create_table('escalations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reconstruction_id', sa.Integer(), nullable=False),
    sa.Column('severity', sa.Enum('amber', 'red', name='severity', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by_check_id', sa.Integer(), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.Enum('observe', 'medical_management', 'return_to_theatre', 'false_alarm', name='escalationoutcome', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['users.id'], name=op.f('fk_escalations_acknowledged_by_id_users')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_escalations_closed_by_id_users')),
    sa.ForeignKeyConstraint(['opened_by_check_id'], ['checks.id'], name=op.f('fk_escalations_opened_by_check_id_checks')),
    sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'], name=op.f('fk_escalations_reconstruction_id_reconstructions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalations'))
    )
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.create_index('ix_escalations_closed_opened', ['closed_at', 'opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalations_reconstruction_id'), ['reconstruction_id'], unique=False)
        batch_op.create_index('uq_escalations_one_open_per_reconstruction', ['reconstruction_id'], unique=True, sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))

    op.create_table('escalation_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.Enum('opened', 'flag_added', 'overdue', 'acknowledged', 'closed', name='escalationeventkind', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('severity', sa.Enum('amber', 'red', name='severity', native_enum=False, create_constraint=True, length=32), nullable=True),
    sa.Column('check_id', sa.Integer(), nullable=True),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_escalation_events_actor_id_users')),
    sa.ForeignKeyConstraint(['check_id'], ['checks.id'], name=op.f('fk_escalation_events_check_id_checks')),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_escalation_events_escalation_id_escalations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_events'))
    )
    with op.batch_alter_table('escalation_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_escalation_events_escalation_id'), ['escalation_id'], unique=False)

    op.create_table('missed_checks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reconstruction_id', sa.Integer(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_missed_checks_escalation_id_escalations')),
    sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'], name=op.f('fk_missed_checks_reconstruction_id_reconstructions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_missed_checks')),
    sa.UniqueConstraint('reconstruction_id', 'due_at', name='uq_missed_checks_due')
    )
    op.create_table('notification_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('escalation_id', sa.Integer(), nullable=False),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'delivered', 'failed', name='deliverystatus', native_enum=False, create_constraint=True, length=32), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'], name=op.f('fk_notification_deliveries_escalation_id_escalations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_deliveries'))
    )
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_notification_deliveries_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_deliveries_escalation_id'), ['escalation_id'], unique=False)

    op.create_table('notification_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('delivery_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['delivery_id'], ['notification_deliveries.id'], name=op.f('fk_notification_attempts_delivery_id_notification_deliveries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_attempts'))
    )
    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_attempts_delivery_id'), ['delivery_id'], unique=False)

    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_set_version_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('severity', sa.Enum('amber', 'red', name='severity', native_enum=False, create_constraint=True, length=32), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_checks_rule_set_version_id_rule_set_versions'), 'rule_set_versions', ['rule_set_version_id'], ['id'])

    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_url', sa.String(length=500), nullable=True))

    # Every unit that exists already gets version 1 of the default rule set (DESIGN.md §3),
    # frozen here as it stood when this migration was written.
    connection = op.get_bind()
    units = connection.execute(sa.text("SELECT id FROM units")).scalars().all()
    versions = sa.table(
        "rule_set_versions",
        sa.column("unit_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("definition", sa.JSON()),
        sa.column("note", sa.Text()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    now = datetime.now(UTC)
    if connection.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    if units:
        op.bulk_insert(
            versions,
            [
                {"unit_id": unit_id, "version": 1, "definition": DEFAULT_RULE_SET,
                 "note": "Default rule set", "created_at": now}
                for unit_id in units
            ],
        )




def downgrade() -> None:

    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_column('webhook_url')

    with op.batch_alter_table('checks', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_checks_rule_set_version_id_rule_set_versions'), type_='foreignkey')
        batch_op.drop_column('severity')
        batch_op.drop_column('rule_set_version_id')

    with op.batch_alter_table('notification_attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_attempts_delivery_id'))

    op.drop_table('notification_attempts')
    with op.batch_alter_table('notification_deliveries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_deliveries_escalation_id'))
        batch_op.drop_index('ix_notification_deliveries_due')

    op.drop_table('notification_deliveries')
    op.drop_table('missed_checks')
    with op.batch_alter_table('escalation_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalation_events_escalation_id'))

    op.drop_table('escalation_events')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_index('uq_escalations_one_open_per_reconstruction', sqlite_where=sa.text('closed_at IS NULL'), postgresql_where=sa.text('closed_at IS NULL'))
        batch_op.drop_index(batch_op.f('ix_escalations_reconstruction_id'))
        batch_op.drop_index('ix_escalations_closed_opened')

    op.drop_table('escalations')
    with op.batch_alter_table('check_flags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_check_flags_check_id'))

    op.drop_table('check_flags')
    with op.batch_alter_table('rule_set_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_set_versions_unit_id'))

    op.drop_table('rule_set_versions')

