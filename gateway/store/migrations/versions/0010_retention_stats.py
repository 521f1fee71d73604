"""Stats over a time range and the retention purge: messages, inbound messages and webhook deliveries by time

Revision ID: 0010_retention_stats
Revises: 0009_webhook_selection
Create Date: 2026-11-29 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0010_retention_stats'
down_revision = '0009_webhook_selection'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_account_created', 'messages', ['account_id', 'created_at'])
    op.create_index('ix_inbound_account_received', 'inbound_messages', ['account_id', 'received_at'])
    op.create_index('ix_webhook_deliveries_created', 'webhook_deliveries', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_created', table_name='webhook_deliveries')
    op.drop_index('ix_inbound_account_received', table_name='inbound_messages')
    op.drop_index('ix_messages_account_created', table_name='messages')
