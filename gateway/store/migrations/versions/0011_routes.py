"""Routes added through the operator API (GET/POST/DELETE /admin/routes)

Revision ID: 0011_routes
Revises: 0010_retention_stats
Create Date: 2026-11-29 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import registry.db

revision = '0011_routes'
down_revision = '0010_retention_stats'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('routes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('created_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes')),
    sa.UniqueConstraint('name', name=op.f('uq_routes_name'))
    )


def downgrade() -> None:
    op.drop_table('routes')
