"""outcomes apart from monitoring: each return to theatre a record of its own (decision,
knife to skin, findings, result) and the flap's final outcome, carried over faithfully from
the status history; `salvaged` and `failed` are no longer monitoring statuses

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 14:30:00
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

from flapwatch.db import UTCDateTime


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

FINDINGS = ('arterial', 'venous', 'both', 'haematoma', 'other')
RESULTS = ('salvaged', 'partial_loss', 'failed')
OUTCOMES = ('intact', 'partial_loss', 'total_loss')
PROVENANCE = "Carried over from the flap's status history (migration 0019)."


# Typed, so that instants are written as the application writes them on either backend.
THEATRE_RETURNS = sa.table(
    'theatre_returns',
    *(sa.column(name) for name in ('reconstruction_id', 'number', 'escalation_id',
                                    'decided_by_id', 'findings_note', 'result', 'provenance',
                                    'recorded_by_id', 'version')),
    sa.column('decided_at', UTCDateTime()),
    sa.column('recorded_at', UTCDateTime()),
)
RECONSTRUCTIONS = sa.table(
    'reconstructions',
    *(sa.column(name) for name in ('id', 'final_outcome', 'final_outcome_note',
                                    'final_outcome_by_id')),
    sa.column('final_outcome_on', sa.Date()),
    sa.column('final_outcome_recorded_at', UTCDateTime()),
)


def _vocabulary(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    connection = op.get_bind()
    op.create_table(
        'theatre_returns',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reconstruction_id', sa.Integer(), nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('escalation_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decided_by_id', sa.Integer(), nullable=True),
        sa.Column('knife_to_skin_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('findings', _vocabulary(FINDINGS, 'theatrefinding'), nullable=True),
        sa.Column('findings_note', sa.Text(), nullable=False),
        sa.Column('result', _vocabulary(RESULTS, 'theatreresult'), nullable=True),
        sa.Column('provenance', sa.Text(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('recorded_by_id', sa.Integer(), nullable=True),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'],
                                name=op.f('fk_theatre_returns_reconstruction_id_reconstructions')),
        sa.ForeignKeyConstraint(['escalation_id'], ['escalations.id'],
                                name=op.f('fk_theatre_returns_escalation_id_escalations')),
        sa.ForeignKeyConstraint(['decided_by_id'], ['users.id'],
                                name=op.f('fk_theatre_returns_decided_by_id_users')),
        sa.ForeignKeyConstraint(['recorded_by_id'], ['users.id'],
                                name=op.f('fk_theatre_returns_recorded_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_theatre_returns')),
        sa.UniqueConstraint('reconstruction_id', 'number', name='uq_theatre_returns_number'),
    )
    op.create_index('ix_theatre_returns_reconstruction', 'theatre_returns', ['reconstruction_id'])
    # Added in place (a table rebuild on SQLite would have to drop the flaps other rows
    # point at).
    allowed = ', '.join(f"'{value}'" for value in OUTCOMES)
    op.execute('ALTER TABLE reconstructions ADD COLUMN final_outcome VARCHAR(32) '
               'CONSTRAINT ck_reconstructions_finaloutcome '
               f'CHECK (final_outcome IN ({allowed}))')
    op.execute('ALTER TABLE reconstructions ADD COLUMN final_outcome_on DATE')
    op.execute("ALTER TABLE reconstructions ADD COLUMN final_outcome_note TEXT NOT NULL DEFAULT ''")
    op.execute('ALTER TABLE reconstructions ADD COLUMN final_outcome_by_id INTEGER '
               'CONSTRAINT fk_reconstructions_final_outcome_by_id_users REFERENCES users (id)')
    op.execute('ALTER TABLE reconstructions ADD COLUMN final_outcome_recorded_at '
               + ('TIMESTAMP WITH TIME ZONE' if connection.dialect.name == 'postgresql'
                  else 'DATETIME'))
    _carry_over(connection)
    # The status column's CHECK (migration 0001) still admits 'salvaged' and 'failed': no row
    # holds them after this, and the application refuses them.


def _moment(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _carry_over(connection: sa.Connection) -> None:
    """Each flap's status history, oldest first, read as returns to theatre and a final
    outcome: into `returned_to_theatre` opens a return (decided then, by whoever set it, on
    the escalation acknowledged "return to theatre" at that moment); `salvaged` is the result
    of the return still without one; `failed` fails the open return and is a total loss on
    that day. Nothing is invented: what the history does not say stays unknown."""
    flaps = {
        row.id: row
        for row in connection.execute(sa.text(
            'SELECT r.id, r.status, r.status_changed_at, u.timezone FROM reconstructions r '
            'JOIN patients p ON p.id = r.patient_id JOIN units u ON u.id = p.unit_id'
        ))
    }
    history: dict[int, list[tuple[datetime, int | None, str]]] = {}
    for row in connection.execute(sa.text(
        "SELECT object_id, at, actor_id, after FROM audit_events "
        "WHERE action = 'reconstruction.status' AND object_type = 'reconstruction' ORDER BY id"
    )):
        after = json.loads(row.after) if isinstance(row.after, str) else (row.after or {})
        at = _moment(after.get('changed_at')) or _moment(row.at)
        history.setdefault(int(row.object_id), []).append(
            (at, row.actor_id, after.get('status', ''))
        )
    sent: dict[tuple[int, datetime], int] = {}
    for row in connection.execute(sa.text(
        "SELECT id, reconstruction_id, acknowledged_at FROM escalations "
        "WHERE outcome = 'return_to_theatre' AND acknowledged_at IS NOT NULL"
    )):
        sent[(row.reconstruction_id, _moment(row.acknowledged_at))] = row.id
    now = datetime.now(UTC)
    for flap_id, flap in flaps.items():
        changes = sorted(history.get(flap_id, []), key=lambda change: change[0])
        if not changes and flap.status in ('returned_to_theatre', 'salvaged', 'failed'):
            changes = [(_moment(flap.status_changed_at), None, flap.status)]
        returns: list[dict] = []
        open_return: dict | None = None
        final: tuple[str, datetime | None, int | None] | None = None
        for at, actor_id, status in changes:
            if status == 'returned_to_theatre':
                if open_return is None:
                    open_return = {'decided_at': at, 'decided_by_id': actor_id,
                                   'escalation_id': sent.get((flap_id, at)), 'result': None}
                    returns.append(open_return)
            elif status == 'salvaged':
                target = open_return or (
                    returns[-1] if returns and returns[-1]['result'] is None else None
                )
                if target is None:  # salvaged with no return on record: one, time unknown
                    target = {'decided_at': None, 'decided_by_id': None,
                              'escalation_id': None, 'result': None}
                    returns.append(target)
                target['result'] = 'salvaged'
                open_return = None
            elif status == 'failed':
                if open_return is not None:
                    open_return['result'] = 'failed'
                final = ('total_loss', at, actor_id)
                open_return = None
            else:
                open_return = None
        for number, found in enumerate(returns, start=1):
            connection.execute(
                THEATRE_RETURNS.insert().values(
                    reconstruction_id=flap_id, number=number,
                    escalation_id=found['escalation_id'], decided_at=found['decided_at'],
                    decided_by_id=found['decided_by_id'], findings_note='',
                    result=found['result'], provenance=PROVENANCE, recorded_at=now,
                    recorded_by_id=found['decided_by_id'], version=1,
                )
            )
        if final is not None:
            outcome, at, actor_id = final
            connection.execute(
                RECONSTRUCTIONS.update().where(RECONSTRUCTIONS.c.id == flap_id).values(
                    final_outcome=outcome,
                    final_outcome_on=at.astimezone(ZoneInfo(flap.timezone)).date() if at else None,
                    final_outcome_note=PROVENANCE, final_outcome_by_id=actor_id,
                    final_outcome_recorded_at=at,
                )
            )
    # Salvaged and failed flaps were off the board: their monitoring had stopped.
    connection.execute(sa.text(
        "UPDATE reconstructions SET status = 'stopped' WHERE status IN ('salvaged', 'failed')"
    ))


def downgrade() -> None:
    raise NotImplementedError('Outcomes are part of the clinical record: no way back.')
