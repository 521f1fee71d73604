"""Toll-free verification requests and their numbers; transitions.entity widened for toll_free_verification

Revision ID: 0012_toll_free
Revises: 0011_routes
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import registry.db

revision = '0012_toll_free'
down_revision = '0011_routes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('toll_free_verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('business_name', sa.String(length=255), nullable=False),
    sa.Column('website', sa.String(length=255), nullable=False),
    sa.Column('street', sa.String(length=255), nullable=False),
    sa.Column('street2', sa.String(length=255), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=False),
    sa.Column('postal_code', sa.String(length=20), nullable=False),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('contact_first_name', sa.String(length=100), nullable=False),
    sa.Column('contact_last_name', sa.String(length=100), nullable=False),
    sa.Column('contact_email', sa.String(length=255), nullable=False),
    sa.Column('contact_phone', sa.String(length=20), nullable=False),
    sa.Column('use_case', sa.String(length=40), nullable=False),
    sa.Column('use_case_summary', sa.Text(), nullable=False),
    sa.Column('monthly_volume', sa.Integer(), nullable=False),
    sa.Column('opt_in_type', sa.String(length=20), nullable=False),
    sa.Column('opt_in_workflow', sa.Text(), nullable=False),
    sa.Column('opt_in_image_urls', sa.Text(), nullable=False),
    sa.Column('sample_messages', sa.Text(), nullable=False),
    sa.Column('additional_info', sa.Text(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', registry.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_toll_free_verifications_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_toll_free_verifications'))
    )
    with op.batch_alter_table('toll_free_verifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_toll_free_verifications_account_id'), ['account_id'], unique=False)

    op.create_table('toll_free_numbers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('verification_id', sa.Integer(), nullable=False),
    sa.Column('number_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['number_id'], ['numbers.id'], name=op.f('fk_toll_free_numbers_number_id_numbers'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['verification_id'], ['toll_free_verifications.id'], name=op.f('fk_toll_free_numbers_verification_id_toll_free_verifications'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_toll_free_numbers')),
    sa.UniqueConstraint('number_id', name=op.f('uq_toll_free_numbers_number_id'))
    )
    with op.batch_alter_table('toll_free_numbers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_toll_free_numbers_verification_id'), ['verification_id'], unique=False)

    with op.batch_alter_table('transitions', schema=None) as batch_op:
        batch_op.alter_column('entity', existing_type=sa.String(length=20), type_=sa.String(length=40),
                              existing_nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM transitions WHERE entity = 'toll_free_verification'")  # longer than the 20 it gets
    with op.batch_alter_table('transitions', schema=None) as batch_op:
        batch_op.alter_column('entity', existing_type=sa.String(length=40), type_=sa.String(length=20),
                              existing_nullable=False)

    with op.batch_alter_table('toll_free_numbers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_toll_free_numbers_verification_id'))

    op.drop_table('toll_free_numbers')
    with op.batch_alter_table('toll_free_verifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_toll_free_verifications_account_id'))

    op.drop_table('toll_free_verifications')
