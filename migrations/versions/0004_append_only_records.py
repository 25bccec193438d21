"""append-only audit trail and check values, enforced by the database

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:00:00
"""

from __future__ import annotations

from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# What a bedside check recorded: once stored, never changed (a correction is an amendment).
CHECK_VALUE_COLUMNS = (
    'reconstruction_id', 'taken_at', 'recorded_at', 'recorded_by_id', 'colour',
    'flap_temperature_c', 'control_temperature_c', 'capillary_refill', 'capillary_refill_s',
    'doppler_arterial', 'doppler_venous', 'turgor', 'pinprick', 'sto2_percent', 'notes',
)


def _changed(distinct: str) -> str:
    return ' OR '.join(f'OLD.{c} {distinct} NEW.{c}' for c in CHECK_VALUE_COLUMNS)


def upgrade() -> None:
    # audit-verify finds each check's record by its object id.
    op.create_index(
        'ix_audit_events_object', 'audit_events', ['object_type', 'object_id', 'action']
    )
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION flapwatch_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'flapwatch: % on % refused: this record is append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END $$
        """)
        op.execute("""
            CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION flapwatch_refuse_change()
        """)
        op.execute("""
            CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
            FOR EACH STATEMENT EXECUTE FUNCTION flapwatch_refuse_change()
        """)
        op.execute("""
            CREATE TRIGGER checks_never_deleted BEFORE DELETE ON checks
            FOR EACH ROW EXECUTE FUNCTION flapwatch_refuse_change()
        """)
        op.execute("""
            CREATE TRIGGER checks_no_truncate BEFORE TRUNCATE ON checks
            FOR EACH STATEMENT EXECUTE FUNCTION flapwatch_refuse_change()
        """)
        op.execute(f"""
            CREATE TRIGGER checks_values_unchanged BEFORE UPDATE ON checks
            FOR EACH ROW WHEN ({_changed('IS DISTINCT FROM')})
            EXECUTE FUNCTION flapwatch_refuse_change()
        """)
    else:
        for table, operation in (('audit_events', 'UPDATE'), ('audit_events', 'DELETE'),
                                 ('checks', 'DELETE')):
            op.execute(f"""
                CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table}
                BEGIN SELECT RAISE(ABORT, 'flapwatch: {operation} on {table} refused: this
                record is append-only'); END
            """)
        op.execute(f"""
            CREATE TRIGGER checks_values_unchanged BEFORE UPDATE ON checks
            WHEN {_changed('IS NOT')}
            BEGIN SELECT RAISE(ABORT, 'flapwatch: UPDATE on checks refused: a check''s values
            are never changed (a correction is an amendment)'); END
        """)


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for trigger, table in (
            ('audit_events_append_only', 'audit_events'),
            ('audit_events_no_truncate', 'audit_events'),
            ('checks_never_deleted', 'checks'),
            ('checks_no_truncate', 'checks'),
            ('checks_values_unchanged', 'checks'),
        ):
            op.execute(f'DROP TRIGGER {trigger} ON {table}')
        op.execute('DROP FUNCTION flapwatch_refuse_change()')
    else:
        for trigger in ('audit_events_no_update', 'audit_events_no_delete', 'checks_no_delete',
                        'checks_values_unchanged'):
            op.execute(f'DROP TRIGGER {trigger}')
    op.drop_index('ix_audit_events_object', table_name='audit_events')
