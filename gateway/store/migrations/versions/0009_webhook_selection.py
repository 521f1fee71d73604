"""Webhooks: which events an account's webhook and a message's status callback want, batched delivery, receivers

Revision ID: 0009_webhook_selection
Revises: 0008_unmatched_receipt_expiry
Create Date: 2026-11-28 22:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009_webhook_selection'
down_revision = '0008_unmatched_receipt_expiry'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_events', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('webhook_batch_size', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_callback_events', sa.Text(), nullable=True))
    # deliveries queued before this revision have none: the sender takes their receiver from their URL
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('receiver', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_column('receiver')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('status_callback_events')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('webhook_batch_size')
        batch_op.drop_column('webhook_events')
