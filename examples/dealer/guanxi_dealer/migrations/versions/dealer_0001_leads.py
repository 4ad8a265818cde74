"""dealer: leads and the customer extension field

Revision ID: dealer_0001
Revises:
Create Date: 2026-12-06 00:00:00

"""

import sqlalchemy as sa
from alembic import op

from core.extend import UTCDateTime

revision = "dealer_0001"
down_revision = None
branch_labels = ("dealer",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "dealer_customer_ext",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cars_owned", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["id"], ["customer.id"], name=op.f("fk_dealer_customer_ext_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dealer_customer_ext")),
    )
    op.create_table(
        "dealer_lead",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("vehicle", sa.String(length=80), nullable=False),
        sa.Column("list_price", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("offer", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("service", sa.Integer(), nullable=False),
        sa.Column("influence", sa.Integer(), nullable=False),
        sa.Column("referral", sa.Integer(), nullable=False),
        sa.Column("age", sa.Integer(), nullable=True),
        sa.Column("score", sa.Numeric(precision=5, scale=1), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name=op.f("fk_dealer_lead_company_id_company"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customer.id"], name=op.f("fk_dealer_lead_customer_id_customer"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dealer_lead")),
    )
    op.create_index(op.f("ix_dealer_lead_company_id"), "dealer_lead", ["company_id"])
    op.create_index(op.f("ix_dealer_lead_customer_id"), "dealer_lead", ["customer_id"])
    op.create_index(op.f("ix_dealer_lead_vehicle"), "dealer_lead", ["vehicle"])


def downgrade() -> None:
    op.drop_table("dealer_lead")
    op.drop_table("dealer_customer_ext")
