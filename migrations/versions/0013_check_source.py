"""where a check's values came from: a nurse at the bedside or a named device

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 19:40:00
"""

from __future__ import annotations

from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

# Written with the row, never changed after (migration 0005's list, and where it came from).
FROZEN_COLUMNS = (
    'reconstruction_id', 'taken_at', 'recorded_at', 'recorded_by_id', 'colour',
    'flap_temperature_c', 'control_temperature_c', 'capillary_refill', 'capillary_refill_s',
    'doppler_arterial', 'doppler_venous', 'turgor', 'pinprick', 'sto2_percent', 'notes',
    'version', 'amends_id', 'entered_in_error', 'amendment_reason', 'first_recorded_at',
    'source', 'device',
)
REFUSAL = ("flapwatch: UPDATE on checks refused: a check''s values are never changed "
           "(a correction is an amendment)")


def _changed(distinct: str) -> str:
    frozen = ' OR '.join(f'OLD.{c} {distinct} NEW.{c}' for c in FROZEN_COLUMNS)
    return (f'{frozen} OR (OLD.superseded_by_id IS NOT NULL AND '
            f'OLD.superseded_by_id {distinct} NEW.superseded_by_id)')


def upgrade() -> None:
    # Added in place (a table rebuild on SQLite would drop the append-only triggers); every
    # check recorded so far was a nurse's.
    op.execute("ALTER TABLE checks ADD COLUMN source VARCHAR(32) DEFAULT 'bedside' NOT NULL "
               "CONSTRAINT ck_checks_checksource CHECK (source IN ('bedside', 'device'))")
    op.execute('ALTER TABLE checks ADD COLUMN device VARCHAR(100)')
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
            BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END
        """)


def downgrade() -> None:
    raise NotImplementedError('Where a clinical value came from is part of it: no way back.')
