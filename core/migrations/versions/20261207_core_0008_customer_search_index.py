"""customer search index: pg_trgm GIN on PostgreSQL, an FTS5 trigram table on SQLite

Revision ID: core_0008
Revises: core_0007
Create Date: 2026-12-07 00:00:00

Customer search was LIKE '%q%' over every customer of the company (0.8-3.7 s at a million,
bench/lists.py). core.search holds the index's definition and the queries it serves.
"""

from alembic import op

from core import search


# revision identifiers, used by Alembic.
revision = "core_0008"
down_revision = "core_0007"
branch_labels = None
depends_on = None


def upgrade():
    search.install(op.get_bind())


def downgrade():
    search.uninstall(op.get_bind())
