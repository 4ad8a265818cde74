"""the customer field surveys__opt_out becomes refusals in the core's consent table

Revision ID: surveys_0003
Revises: surveys_0002
Create Date: 2026-12-07 03:00:00

A customer with ``opt_out`` set gets, for the purpose ``survey``, one refusal per contact
channel (phone, SMS, e-mail, WeChat: "does not want surveys" was about every channel), with
the source "surveys__opt_out"; then the column is dropped. The downgrade adds the column back,
sets it for every customer who refused surveys on some channel, and removes those refusals.
"""
from alembic import op
import sqlalchemy as sa

import core.db


# revision identifiers, used by Alembic.
revision = 'surveys_0003'
down_revision = 'surveys_0002'
branch_labels = None
depends_on = 'core_0009'

CHANNELS = ("phone", "sms", "email", "wechat")
SOURCE = "surveys__opt_out"


def upgrade():
    bind = op.get_bind()
    for channel in CHANNELS:
        bind.execute(
            sa.text(
                "INSERT INTO consent (company_id, customer_id, channel, purpose, granted,"
                " source, recorded_at)"
                f" SELECT c.company_id, c.id, '{channel}', 'survey', :no, :source, :now"
                " FROM surveys_customer_ext x JOIN customer c ON c.id = x.id"
                " WHERE x.opt_out = :yes AND NOT EXISTS (SELECT 1 FROM consent k"
                f" WHERE k.customer_id = c.id AND k.channel = '{channel}' AND k.purpose = 'survey')"
            ).bindparams(
                sa.bindparam("now", type_=core.db.UTCDateTime()),
                sa.bindparam("yes", type_=sa.Boolean()),
                sa.bindparam("no", type_=sa.Boolean()),
            ),
            {"no": False, "yes": True, "source": SOURCE,
             "now": core.db.utcnow()},
        )
    with op.batch_alter_table('surveys_customer_ext', schema=None) as batch_op:
        batch_op.drop_column('opt_out')


def downgrade():
    with op.batch_alter_table('surveys_customer_ext', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opt_out', sa.Boolean(), nullable=True))
    bind = op.get_bind()
    no = {"no": False, "yes": True}
    refused = (
        "SELECT DISTINCT customer_id FROM consent WHERE purpose = 'survey' AND granted = :no"
    )
    params = [sa.bindparam("no", type_=sa.Boolean()), sa.bindparam("yes", type_=sa.Boolean())]
    bind.execute(
        sa.text(f"UPDATE surveys_customer_ext SET opt_out = :yes WHERE id IN ({refused})")
        .bindparams(*params),
        no,
    )
    bind.execute(
        sa.text(
            f"INSERT INTO surveys_customer_ext (id, opt_out) SELECT r.customer_id, :yes"
            f" FROM ({refused}) r WHERE NOT EXISTS"
            " (SELECT 1 FROM surveys_customer_ext x WHERE x.id = r.customer_id)"
        ).bindparams(*params),
        no,
    )
    bind.execute(
        sa.text("DELETE FROM consent WHERE purpose = 'survey' AND granted = :no")
        .bindparams(sa.bindparam("no", type_=sa.Boolean())),
        {"no": False},
    )
