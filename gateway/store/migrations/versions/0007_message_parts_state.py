"""Per-part submit state: a multipart message's parts are submitted, answered and retried each on its own

Revision ID: 0007_message_parts_state
Revises: 0006_idempotency
Create Date: 2026-11-28 22:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007_message_parts_state'
down_revision = '0006_idempotency'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message_parts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('answer', sa.String(length=50), nullable=True))
        batch_op.alter_column('carrier_message_id', existing_type=sa.String(length=80), nullable=True)
        batch_op.alter_column('carrier_id_norm', existing_type=sa.String(length=80), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM message_parts WHERE carrier_message_id IS NULL")  # refused parts have no id to keep
    with op.batch_alter_table('message_parts', schema=None) as batch_op:
        batch_op.alter_column('carrier_id_norm', existing_type=sa.String(length=80), nullable=False)
        batch_op.alter_column('carrier_message_id', existing_type=sa.String(length=80), nullable=False)
        batch_op.drop_column('answer')
        batch_op.drop_column('attempts')
