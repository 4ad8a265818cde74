"""customer list indexes: newest first, and per owner

Revision ID: core_0006
Revises: core_0005
Create Date: 2026-12-06 21:20:00

At a million customers the list's default order (created_at, id descending) sorted the whole
company on every page (PostgreSQL 0.9 s, SQLite 4 s) and the owner filter scanned the table;
bench/lists.py measured both at about a millisecond with these indexes.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'core_0006'
down_revision = 'core_0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.create_index(
            'ix_customer_company_id_created_at_id', ['company_id', 'created_at', 'id'], unique=False
        )
        batch_op.create_index(
            'ix_customer_company_id_owner_id_created_at_id',
            ['company_id', 'owner_id', 'created_at', 'id'],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index('ix_customer_company_id_owner_id_created_at_id')
        batch_op.drop_index('ix_customer_company_id_created_at_id')
