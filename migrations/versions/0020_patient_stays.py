"""transfers as dated events: each patient's stays on each ward, carried over from the
history of their ward in the audit trail, so that a ward's reports count what happened there

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 15:00:00
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from flapwatch.db import UTCDateTime


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

STAYS = sa.table(
    'patient_stays',
    sa.column('patient_id'), sa.column('unit_id'), sa.column('note'),
    sa.column('started_at', UTCDateTime()), sa.column('ended_at', UTCDateTime()),
)


def upgrade() -> None:
    op.create_table(
        'patient_stays',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('patient_id', sa.Integer(), nullable=False),
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('moved_by_id', sa.Integer(), nullable=True),
        sa.Column('note', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['patient_id'], ['patients.id'],
                                name=op.f('fk_patient_stays_patient_id_patients')),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'],
                                name=op.f('fk_patient_stays_unit_id_units')),
        sa.ForeignKeyConstraint(['moved_by_id'], ['users.id'],
                                name=op.f('fk_patient_stays_moved_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_stays')),
    )
    op.create_index('ix_patient_stays_patient', 'patient_stays', ['patient_id', 'started_at'])
    connection = op.get_bind()
    units = dict(connection.execute(sa.text('SELECT code, id FROM units')).all())
    # Every change of a patient's ward the trail holds: a coordinator's edit or a re-admission.
    moves: dict[int, list[tuple[datetime, int, int]]] = {}
    for row in connection.execute(sa.text(
        "SELECT object_id, at, before, after FROM audit_events WHERE object_type = 'patient' "
        "AND action IN ('patient.update', 'patient.readmit') ORDER BY id"
    )):
        before, after = (json.loads(v) if isinstance(v, str) else (v or {})
                         for v in (row.before, row.after))
        if not before.get('unit') or not after.get('unit') or before['unit'] == after['unit']:
            continue
        at = row.at if isinstance(row.at, datetime) else datetime.fromisoformat(row.at)
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if before['unit'] in units and after['unit'] in units:
            moves.setdefault(int(row.object_id), []).append(
                (at, units[before['unit']], units[after['unit']])
            )
    for patient_id, unit_id in connection.execute(sa.text('SELECT id, unit_id FROM patients')):
        started = None
        for at, left, _ in moves.get(patient_id, []):
            connection.execute(STAYS.insert().values(
                patient_id=patient_id, unit_id=left, started_at=started, ended_at=at,
                note='From the audit trail (migration 0020).'))
            started = at
        connection.execute(STAYS.insert().values(
            patient_id=patient_id, unit_id=unit_id, started_at=started, ended_at=None, note=''))


def downgrade() -> None:
    op.drop_index('ix_patient_stays_patient', table_name='patient_stays')
    op.drop_table('patient_stays')
