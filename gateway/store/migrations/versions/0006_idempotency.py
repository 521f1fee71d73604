"""Idempotency keys for voice messages, and the fingerprint of the request each key was first given with

Revision ID: 0006_idempotency
Revises: 0005
Create Date: 2026-11-28 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006_idempotency'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column only: SQLite alters the table in place (no copy of the messages table)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
    op.create_index('uq_voice_idempotency', 'voice_messages', ['account_id', 'idempotency_key'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_voice_idempotency', table_name='voice_messages')
    with op.batch_alter_table('voice_messages', schema=None) as batch_op:
        batch_op.drop_column('request_hash')
        batch_op.drop_column('idempotency_key')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('request_hash')
