"""consent: one table of customers' answers per channel and purpose, shared by every plugin

Revision ID: core_0009
Revises: core_0008
Create Date: 2026-12-07 03:00:00

Consent was the marketing plugin's own table (marketing_consent) and the surveys plugin's
customer field surveys__opt_out; core.consent holds both now. Those plugins' next revisions
move their rows in.
"""
from alembic import op
import sqlalchemy as sa

import core.db


# revision identifiers, used by Alembic.
revision = "core_0009"
down_revision = "core_0008"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=40), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('recorded_by', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_consent_company_id_company'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_consent_customer_id_customer'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by'], ['user.id'], name=op.f('fk_consent_recorded_by_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent')),
    sa.UniqueConstraint('customer_id', 'channel', 'purpose', name=op.f('uq_consent_customer_id_channel_purpose'))
    )
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_company_id'), ['company_id'], unique=False)


def downgrade():
    with op.batch_alter_table('consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_company_id'))
    op.drop_table('consent')
