"""10DLC through a registry API: the gateway as a Campaign Service Provider (issue #17)

Revision ID: 0013_csp
Revises: 0012_toll_free
Create Date: 2026-11-29 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import registry.db

revision = '0013_csp'
down_revision = '0012_toll_free'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registry_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=80), nullable=False),
    sa.Column('event_type', sa.String(length=60), nullable=False),
    sa.Column('subject', sa.String(length=20), nullable=True),
    sa.Column('registry_at', registry.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sequence', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('received_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_registry_events_event_id'))
    )
    with op.batch_alter_table('registry_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_events_subject'), ['subject'], unique=False)

    op.create_table('registry_requests',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=20), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('operation', sa.String(length=30), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_try_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', registry.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_requests'))
    )
    with op.batch_alter_table('registry_requests', schema=None) as batch_op:
        batch_op.create_index('ix_registry_requests_due', ['status', 'next_try_at'], unique=False)
        batch_op.create_index('ix_registry_requests_entity', ['entity', 'entity_id'], unique=False)

    op.create_table('campaign_operations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('mno', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('mark', sa.String(length=48), nullable=True),
    sa.Column('updated_at', registry.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_campaign_operations_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_operations')),
    sa.UniqueConstraint('campaign_id', 'mno', name='uq_campaign_operations_mno')
    )
    with op.batch_alter_table('campaign_operations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_operations_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('number_orders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('registry_id', sa.String(length=10), nullable=True),
    sa.Column('reference_id', sa.String(length=40), nullable=False),
    sa.Column('mark', sa.String(length=48), nullable=True),
    sa.Column('registry_updated_at', registry.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaigns.id'], name=op.f('fk_number_orders_campaign_id_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_number_orders')),
    sa.UniqueConstraint('reference_id', name=op.f('uq_number_orders_reference_id')),
    sa.UniqueConstraint('registry_id', name=op.f('uq_number_orders_registry_id'))
    )
    with op.batch_alter_table('number_orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_number_orders_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('number_order_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('number_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['number_id'], ['numbers.id'], name=op.f('fk_number_order_items_number_id_numbers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['number_orders.id'], name=op.f('fk_number_order_items_order_id_number_orders'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_number_order_items'))
    )
    with op.batch_alter_table('number_order_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_number_order_items_number_id'), ['number_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_number_order_items_order_id'), ['order_id'], unique=False)

    op.drop_table('registry_clock')
    # columns are added, and dropped, in place (no batch copy of the table: on SQLite a copy drops the old table,
    # which would apply the ON DELETE actions of the tables that refer to it)
    for name, column in (('street', sa.String(length=255)), ('city', sa.String(length=100)),
                         ('state', sa.String(length=20)), ('postal_code', sa.String(length=20)),
                         ('vetting_status', sa.String(length=20)), ('vetting_id', sa.String(length=40)),
                         ('registry_id', sa.String(length=10)), ('reference_id', sa.String(length=40)),
                         ('identity_mark', sa.String(length=48)), ('vetting_mark', sa.String(length=48)),
                         ('registry_updated_at', registry.db.UTCDateTime(timezone=True))):
        op.add_column('brands', sa.Column(name, column, nullable=True))
    op.add_column('brands', sa.Column('relationship', sa.String(length=20), server_default='BASIC_ACCOUNT',
                                      nullable=False))
    op.create_index(op.f('ix_brands_registry_id'), 'brands', ['registry_id'], unique=True)
    op.create_index(op.f('ix_brands_reference_id'), 'brands', ['reference_id'], unique=True)
    for name, column in (('registry_id', sa.String(length=10)), ('reference_id', sa.String(length=40)),
                         ('registry_status', sa.String(length=20)), ('sharing_status', sa.String(length=20)),
                         ('expires_at', registry.db.UTCDateTime(timezone=True)),
                         ('status_mark', sa.String(length=48)), ('sharing_mark', sa.String(length=48)),
                         ('registry_updated_at', registry.db.UTCDateTime(timezone=True))):
        op.add_column('campaigns', sa.Column(name, column, nullable=True))
    op.add_column('campaigns', sa.Column('auto_renewal', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.create_index(op.f('ix_campaigns_registry_id'), 'campaigns', ['registry_id'], unique=True)
    op.create_index(op.f('ix_campaigns_reference_id'), 'campaigns', ['reference_id'], unique=True)
    op.execute("ALTER TABLE numbers DROP COLUMN registry_due_at")
    op.add_column('transitions', sa.Column('detail', sa.Text(), nullable=True))
    # identities as the registry writes them; campaigns the local stand-in approved stay approved by every carrier
    op.execute("UPDATE brands SET identity_status = UPPER(identity_status)")
    op.execute("INSERT INTO campaign_operations (campaign_id, mno, status) SELECT c.id, m.mno, 'APPROVED' FROM "
               "campaigns c, (SELECT 'ATT' AS mno UNION ALL SELECT 'TMOBILE' UNION ALL SELECT 'VERIZON' UNION ALL "
               "SELECT 'USCELLULAR') m WHERE c.status = 'approved'")
    op.execute("UPDATE campaigns SET status = 'active', registry_status = 'ACTIVE', sharing_status = 'ACCEPTED' "
               "WHERE status = 'approved'")


def downgrade() -> None:
    op.execute("UPDATE campaigns SET status = 'approved' WHERE status = 'active'")
    op.execute("UPDATE brands SET identity_status = LOWER(identity_status)")
    op.drop_column('transitions', 'detail')
    op.add_column('numbers', sa.Column('registry_due_at', registry.db.UTCDateTime(timezone=True), nullable=True))
    op.drop_index(op.f('ix_campaigns_reference_id'), table_name='campaigns')
    op.drop_index(op.f('ix_campaigns_registry_id'), table_name='campaigns')
    for name in ('auto_renewal', 'registry_updated_at', 'sharing_mark', 'status_mark', 'expires_at', 'sharing_status',
                 'registry_status', 'reference_id', 'registry_id'):
        op.execute(f"ALTER TABLE campaigns DROP COLUMN {name}")
    op.drop_index(op.f('ix_brands_reference_id'), table_name='brands')
    op.drop_index(op.f('ix_brands_registry_id'), table_name='brands')
    for name in ('relationship', 'registry_updated_at', 'vetting_mark', 'identity_mark', 'reference_id', 'registry_id',
                 'vetting_id', 'vetting_status', 'postal_code', 'state', 'city', 'street'):
        op.execute(f"ALTER TABLE brands DROP COLUMN {name}")
    op.create_table('registry_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('offset_days', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_clock'))
    )
    with op.batch_alter_table('number_order_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_number_order_items_order_id'))
        batch_op.drop_index(batch_op.f('ix_number_order_items_number_id'))

    op.drop_table('number_order_items')
    with op.batch_alter_table('number_orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_number_orders_campaign_id'))

    op.drop_table('number_orders')
    with op.batch_alter_table('campaign_operations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_operations_campaign_id'))

    op.drop_table('campaign_operations')
    with op.batch_alter_table('registry_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_requests_entity')
        batch_op.drop_index('ix_registry_requests_due')

    op.drop_table('registry_requests')
    with op.batch_alter_table('registry_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registry_events_subject'))

    op.drop_table('registry_events')
