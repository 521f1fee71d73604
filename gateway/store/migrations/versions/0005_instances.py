"""Several gateway instances on one queue: instance heartbeats, message ownership, queue notifications

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import registry.db

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# PostgreSQL: wake idle dispatchers and webhook senders of every instance when work is queued. Statement-level
# triggers send one notification per INSERT statement (a batch of a thousand messages sends one), and
# PostgreSQL folds identical notifications of one transaction into one, delivered at commit.
NOTIFY_FUNCTIONS = {
    "gateway_queue": "messages",
    "gateway_webhooks": "webhook_deliveries",
}


def upgrade() -> None:
    op.create_table('gateway_instances',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gateway_instances'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=40), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        for channel, table in NOTIFY_FUNCTIONS.items():
            op.execute(f"""
                CREATE FUNCTION {channel}_notify() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$""")
            op.execute(f"""
                CREATE TRIGGER {table}_notify AFTER INSERT ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION {channel}_notify()""")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for channel, table in NOTIFY_FUNCTIONS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {channel}_notify()")
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('claimed_by')
    op.drop_table('gateway_instances')
