"""obligation indexes for the clock scan

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-12-06 21:45:00

clocks.scan reads the open obligations below the top escalation level (working-time kinds)
and, per dated kind, those due within each notice: with a million open obligations it read
them all a dozen times (15 s on SQLite); with these two indexes each statement is a range.
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = 'core_0007'
down_revision = 'core_0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.create_index(
            'ix_obligation_open_level',
            ['met_at', 'paused_at', 'escalation_level', 'warn_at'],
            unique=False,
        )
        batch_op.create_index(
            'ix_obligation_kind_open',
            ['kind', 'met_at', 'paused_at', 'escalation_level', 'due_at'],
            unique=False,
        )


def downgrade():
    with op.batch_alter_table('obligation', schema=None) as batch_op:
        batch_op.drop_index('ix_obligation_kind_open')
        batch_op.drop_index('ix_obligation_open_level')
