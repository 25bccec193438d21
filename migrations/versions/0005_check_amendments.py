"""check amendments: each correction a new version of the check

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# Written with the row, never changed after (migration 0004's list, and the amendment's own).
FROZEN_COLUMNS = (
    'reconstruction_id', 'taken_at', 'recorded_at', 'recorded_by_id', 'colour',
    'flap_temperature_c', 'control_temperature_c', 'capillary_refill', 'capillary_refill_s',
    'doppler_arterial', 'doppler_venous', 'turgor', 'pinprick', 'sto2_percent', 'notes',
    'version', 'amends_id', 'entered_in_error', 'amendment_reason', 'first_recorded_at',
)


def _changed(distinct: str) -> str:
    frozen = ' OR '.join(f'OLD.{c} {distinct} NEW.{c}' for c in FROZEN_COLUMNS)
    # superseded_by_id is set once, when the check is amended, and never again.
    return (f'{frozen} OR (OLD.superseded_by_id IS NOT NULL AND '
            f'OLD.superseded_by_id {distinct} NEW.superseded_by_id)')


def upgrade() -> None:
    # Columns added in place (no table rebuild on SQLite, which would drop the triggers).
    postgresql = op.get_bind().dialect.name == 'postgresql'

    op.add_column('checks', sa.Column('version', sa.Integer(), server_default=sa.text('1'),
                                      nullable=False))
    for column in ('amends_id', 'superseded_by_id'):
        if postgresql:
            op.add_column('checks', sa.Column(column, sa.Integer(), nullable=True))
        else:  # SQLite adds a column with its reference in place; Alembic would rebuild
            op.execute(f'ALTER TABLE checks ADD COLUMN {column} INTEGER '
                       f'CONSTRAINT fk_checks_{column}_checks REFERENCES checks (id)')
    op.add_column('checks', sa.Column('entered_in_error', sa.Boolean(),
                                      server_default=sa.text('false'), nullable=False))
    op.add_column('checks', sa.Column('amendment_reason', sa.Text(), nullable=True))
    # Every check recorded so far is its own first version (before the triggers are renewed).
    if postgresql:
        op.add_column('checks', sa.Column('first_recorded_at', sa.DateTime(timezone=True),
                                          nullable=True))
        op.execute('UPDATE checks SET first_recorded_at = recorded_at')
        op.alter_column('checks', 'first_recorded_at', nullable=False)
    else:
        op.execute("ALTER TABLE checks ADD COLUMN first_recorded_at DATETIME NOT NULL "
                   "DEFAULT '1970-01-01 00:00:00'")
        op.execute('DROP TRIGGER IF EXISTS checks_values_unchanged')
        op.execute('UPDATE checks SET first_recorded_at = recorded_at')
    if postgresql:
        op.create_foreign_key('fk_checks_amends_id_checks', 'checks', 'checks', ['amends_id'],
                              ['id'])
        op.create_foreign_key('fk_checks_superseded_by_id_checks', 'checks', 'checks',
                              ['superseded_by_id'], ['id'])
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP TRIGGER checks_values_unchanged ON checks')
        op.execute(f"""
            CREATE TRIGGER checks_values_unchanged BEFORE UPDATE ON checks
            FOR EACH ROW WHEN ({_changed('IS DISTINCT FROM')})
            EXECUTE FUNCTION flapwatch_refuse_change()
        """)
    else:
        op.execute('DROP TRIGGER IF EXISTS checks_values_unchanged')
        op.execute(f"""
            CREATE TRIGGER checks_values_unchanged BEFORE UPDATE ON checks
            WHEN {_changed('IS NOT')}
            BEGIN SELECT RAISE(ABORT, 'flapwatch: UPDATE on checks refused: a check''s values
            are never changed (a correction is an amendment)'); END
        """)


def downgrade() -> None:
    raise NotImplementedError('Amendments are clinical records: there is no way back.')
