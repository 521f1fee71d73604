"""Inbound messages as carriers handed them, by identity, for a while: a deliver_sm sent again is handled once

Revision ID: 0014_inbound_seen
Revises: 0013_csp
Create Date: 2026-11-29 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import registry.db

revision = '0014_inbound_seen'
down_revision = '0013_csp'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_seen',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('seen_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_inbound_seen'))
    )
    op.create_index('ix_inbound_seen_at', 'inbound_seen', ['seen_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_inbound_seen_at', table_name='inbound_seen')
    op.drop_table('inbound_seen')
