"""clinical photographs of the flap: each photo's record, its bytes in a table of their own
(never changed, never deleted), and the patient's consent to photography per reconstruction

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

# What a photo's record says of what was stored: never changed (only hiding it is).
PHOTO_COLUMNS = (
    'reconstruction_id', 'check_id', 'not_done_id', 'taken_at', 'uploaded_at', 'uploaded_by_id',
    'original_format', 'original_bytes', 'original_sha256', 'original_width', 'original_height',
    'width', 'height', 'display_bytes', 'display_sha256', 'thumbnail_bytes', 'thumbnail_sha256',
    'storage',
)


def _instant() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    op.create_table(
        'photos',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reconstruction_id', sa.Integer(), nullable=False),
        sa.Column('check_id', sa.Integer(), nullable=True),
        sa.Column('not_done_id', sa.Integer(), nullable=True),
        sa.Column('taken_at', _instant(), nullable=False),
        sa.Column('uploaded_at', _instant(), nullable=False),
        sa.Column('uploaded_by_id', sa.Integer(), nullable=False),
        sa.Column('original_format', sa.String(length=10), nullable=False),
        sa.Column('original_bytes', sa.Integer(), nullable=False),
        sa.Column('original_sha256', sa.String(length=64), nullable=False),
        sa.Column('original_width', sa.Integer(), nullable=False),
        sa.Column('original_height', sa.Integer(), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('display_bytes', sa.Integer(), nullable=False),
        sa.Column('display_sha256', sa.String(length=64), nullable=False),
        sa.Column('thumbnail_bytes', sa.Integer(), nullable=False),
        sa.Column('thumbnail_sha256', sa.String(length=64), nullable=False),
        sa.Column('storage', sa.String(length=10), nullable=False),
        sa.Column('hidden_at', _instant(), nullable=True),
        sa.Column('hidden_by_id', sa.Integer(), nullable=True),
        sa.Column('hidden_reason', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['reconstruction_id'], ['reconstructions.id'],
                                name=op.f('fk_photos_reconstruction_id_reconstructions')),
        sa.ForeignKeyConstraint(['check_id'], ['checks.id'],
                                name=op.f('fk_photos_check_id_checks')),
        sa.ForeignKeyConstraint(['not_done_id'], ['checks_not_done.id'],
                                name=op.f('fk_photos_not_done_id_checks_not_done')),
        sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'],
                                name=op.f('fk_photos_uploaded_by_id_users')),
        sa.ForeignKeyConstraint(['hidden_by_id'], ['users.id'],
                                name=op.f('fk_photos_hidden_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_photos')),
        sa.UniqueConstraint('check_id', 'original_sha256', name='uq_photos_check_original'),
        sa.UniqueConstraint('not_done_id', 'original_sha256', name='uq_photos_not_done_original'),
    )
    op.create_index('ix_photos_reconstruction_taken', 'photos', ['reconstruction_id', 'taken_at'])
    op.create_table(
        'photo_blobs',
        sa.Column('photo_id', sa.Integer(), nullable=False),
        sa.Column('variant', sa.String(length=10), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(['photo_id'], ['photos.id'],
                                name=op.f('fk_photo_blobs_photo_id_photos')),
        sa.PrimaryKeyConstraint('photo_id', 'variant', name=op.f('pk_photo_blobs')),
    )
    # Added in place (a table rebuild on SQLite would have to drop the flaps other rows
    # point at).
    op.execute('ALTER TABLE reconstructions ADD COLUMN photo_consent BOOLEAN')
    op.execute('ALTER TABLE reconstructions ADD COLUMN photo_consent_by_id INTEGER '
               'CONSTRAINT fk_reconstructions_photo_consent_by_id_users REFERENCES users (id)')
    op.execute('ALTER TABLE reconstructions ADD COLUMN photo_consent_at '
               + ('TIMESTAMP WITH TIME ZONE' if postgresql else 'DATETIME'))

    if postgresql:
        changed = ' OR '.join(f'OLD.{c} IS DISTINCT FROM NEW.{c}' for c in PHOTO_COLUMNS)
        for trigger, timing in (
            ('photo_blobs_append_only', 'BEFORE UPDATE OR DELETE ON photo_blobs FOR EACH ROW'),
            ('photo_blobs_no_truncate', 'BEFORE TRUNCATE ON photo_blobs FOR EACH STATEMENT'),
            ('photos_never_deleted', 'BEFORE DELETE ON photos FOR EACH ROW'),
            ('photos_no_truncate', 'BEFORE TRUNCATE ON photos FOR EACH STATEMENT'),
            ('photos_record_unchanged', f'BEFORE UPDATE ON photos FOR EACH ROW WHEN ({changed})'),
        ):
            op.execute(f'CREATE TRIGGER {trigger} {timing} '
                       'EXECUTE FUNCTION flapwatch_refuse_change()')
    else:
        changed = ' OR '.join(f'OLD.{c} IS NOT NEW.{c}' for c in PHOTO_COLUMNS)
        for trigger, timing in (
            ('photo_blobs_no_update', 'BEFORE UPDATE ON photo_blobs'),
            ('photo_blobs_no_delete', 'BEFORE DELETE ON photo_blobs'),
            ('photos_no_delete', 'BEFORE DELETE ON photos'),
            ('photos_record_unchanged', f'BEFORE UPDATE ON photos WHEN {changed}'),
        ):
            op.execute(f"CREATE TRIGGER {trigger} {timing} BEGIN SELECT RAISE(ABORT, "
                       "'flapwatch: a photo is never changed or deleted (entered in error "
                       "hides it)'); END")


def downgrade() -> None:
    raise NotImplementedError('Photos are part of the clinical record: no way back.')
