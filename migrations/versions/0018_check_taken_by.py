"""a check keeps who took it: the nurse of its first version, beside whoever corrected it

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from alembic import op


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

# Written with the row, never changed after (migration 0013's list, and who took the check).
FROZEN_COLUMNS = (
    'reconstruction_id', 'taken_at', 'recorded_at', 'recorded_by_id', 'colour',
    'flap_temperature_c', 'control_temperature_c', 'capillary_refill', 'capillary_refill_s',
    'doppler_arterial', 'doppler_venous', 'turgor', 'pinprick', 'sto2_percent', 'notes',
    'version', 'amends_id', 'entered_in_error', 'amendment_reason', 'first_recorded_at',
    'source', 'device', 'taken_by_id',
)
REFUSAL = ("flapwatch: UPDATE on checks refused: a check''s values are never changed "
           "(a correction is an amendment)")


def _changed(distinct: str) -> str:
    frozen = ' OR '.join(f'OLD.{c} {distinct} NEW.{c}' for c in FROZEN_COLUMNS)
    return (f'{frozen} OR (OLD.superseded_by_id IS NOT NULL AND '
            f'OLD.superseded_by_id {distinct} NEW.superseded_by_id)')


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    # Added in place: a table rebuild on SQLite would drop the append-only triggers.
    op.execute('ALTER TABLE checks ADD COLUMN taken_by_id INTEGER '
               'CONSTRAINT fk_checks_taken_by_id_users REFERENCES users (id)')
    # Who took each check: its first version's recorder, carried down each chain of
    # corrections (a correction names the version it amends, one version at a time).
    op.execute('UPDATE checks SET taken_by_id = recorded_by_id WHERE amends_id IS NULL')
    depth = op.get_bind().exec_driver_sql('SELECT MAX(version) FROM checks').scalar() or 1
    for _ in range(int(depth)):
        op.execute(
            'UPDATE checks SET taken_by_id = (SELECT amended.taken_by_id FROM checks AS amended '
            'WHERE amended.id = checks.amends_id) WHERE taken_by_id IS NULL'
        )
    if postgresql:
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
            BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END
        """)


def downgrade() -> None:
    raise NotImplementedError('Who took a check is part of the clinical record: no way back.')
