"""Unmatched receipts expire: an index on when they came, for the sweep that drops the old ones

Revision ID: 0008_unmatched_receipt_expiry
Revises: 0007_message_parts_state
Create Date: 2026-11-28 22:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0008_unmatched_receipt_expiry'
down_revision = '0007_message_parts_state'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_unmatched_receipts_received_at', 'unmatched_receipts', ['received_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_unmatched_receipts_received_at', table_name='unmatched_receipts')
