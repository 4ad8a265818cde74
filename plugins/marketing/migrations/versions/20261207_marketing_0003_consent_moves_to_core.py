"""consent moves to the core's consent table

Revision ID: marketing_0003
Revises: marketing_0002
Create Date: 2026-12-07 03:00:00

Every row of marketing_consent is copied into the core's ``consent`` (same columns) and the
table is dropped: consent is shared by every plugin that contacts customers (core.consent).
The downgrade copies the marketing purposes' rows back and removes them from ``consent``.
"""
from alembic import op
import sqlalchemy as sa

import core.db


# revision identifiers, used by Alembic.
revision = 'marketing_0003'
down_revision = 'marketing_0002'
branch_labels = None
depends_on = 'core_0009'

COLUMNS = "company_id, customer_id, channel, purpose, granted, source, recorded_at, recorded_by"
#: The purposes and channels marketing_consent knew.
PURPOSES = "('marketing', 'care', 'loyalty')"
CHANNELS = "('email', 'sms', 'wechat')"


def upgrade():
    op.execute(
        f"INSERT INTO consent ({COLUMNS}) SELECT {COLUMNS} FROM marketing_consent m"
        " WHERE NOT EXISTS (SELECT 1 FROM consent c WHERE c.customer_id = m.customer_id"
        " AND c.channel = m.channel AND c.purpose = m.purpose)"
    )
    with op.batch_alter_table('marketing_consent', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_marketing_consent_company_id'))
    op.drop_table('marketing_consent')


def downgrade():
    op.create_table('marketing_consent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('granted', sa.Boolean(), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('recorded_at', core.db.UTCDateTime(), nullable=False),
    sa.Column('recorded_by', sa.Integer(), nullable=True),
    sa.Column('company_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_marketing_consent_company_id_company'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_marketing_consent_customer_id_customer'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['recorded_by'], ['user.id'], name=op.f('fk_marketing_consent_recorded_by_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_marketing_consent')),
    sa.UniqueConstraint('customer_id', 'channel', 'purpose', name=op.f('uq_marketing_consent_customer_id_channel_purpose'))
    )
    with op.batch_alter_table('marketing_consent', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_marketing_consent_company_id'), ['company_id'], unique=False)
    mine = f"purpose IN {PURPOSES} AND channel IN {CHANNELS}"
    op.execute(
        f"INSERT INTO marketing_consent ({COLUMNS}) SELECT {COLUMNS} FROM consent WHERE {mine}"
    )
    op.execute(f"DELETE FROM consent WHERE {mine}")
