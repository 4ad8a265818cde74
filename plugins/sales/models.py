"""The sales plugin's tables (all named ``sales_*``, all per company through ``TenantMixin``).

Amounts are ``Numeric(14, 2)`` in CNY. Sections: the funnel (stages, opportunities and the people
in their buying climate), orders and payments (receivables are orders not fully paid), customer
value (one computed row per customer) and targets.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, synonym

from core.extend import TenantMixin, UTCDateTime, db, utcnow

# --- the funnel -------------------------------------------------------------------------------


class Stage(TenantMixin, db.Model):
    """A stage of the company's opportunity funnel (销售漏斗), in ``sequence`` order.

    ``outcome`` is ``open`` for stages an opportunity moves through, ``won`` or ``lost`` for the
    two ends. ``key`` is what an opportunity's ``state`` holds; labels and probabilities are the
    company's to edit, and a stage with ``active`` false is no longer offered.
    """

    __tablename__ = "sales_stage"
    __table_args__ = (UniqueConstraint("company_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(80))
    label_zh: Mapped[str] = mapped_column(String(80))
    sequence: Mapped[int] = mapped_column(default=0)
    probability: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str] = mapped_column(String(10), default="open")
    active: Mapped[bool] = mapped_column(default=True)


class Opportunity(TenantMixin, db.Model):
    """A sales opportunity (销售机会/商机) moving through the funnel on the workflow engine.

    ``state`` is the key of its :class:`Stage`; ``probability`` overrides the stage's default
    when set. ``guide_contact_id`` is the inside guide (向导) of key-account "1+2+1" tracking.
    """

    __tablename__ = "sales_opportunity"
    __table_args__ = (Index("ix_sales_opportunity_company_state", "company_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id", ondelete="SET NULL"))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[str] = mapped_column(String(40), default="target")
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    probability: Mapped[int | None]
    expected_close: Mapped[date | None] = mapped_column(Date)
    guide_contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact.id", ondelete="SET NULL")
    )
    lost_reason: Mapped[str | None] = mapped_column(String(40))
    stage_entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    roles: Mapped[list[OpportunityContact]] = relationship(
        back_populates="opportunity", cascade="all, delete-orphan", lazy="selectin"
    )


class OpportunityContact(TenantMixin, db.Model):
    """A contact's role in an opportunity's buying climate (采购氛围): purchaser, user,
    gatekeeper or decider."""

    __tablename__ = "sales_opportunity_contact"
    __table_args__ = (UniqueConstraint("opportunity_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    opportunity_id: Mapped[int] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))

    opportunity: Mapped[Opportunity] = relationship(back_populates="roles")


# --- orders and receivables ---------------------------------------------------------------------


class Order(TenantMixin, db.Model):
    """A sale: free product lines, amount and cost (margin = amount - cost), a due date and the
    payments received. ``paid`` is the sum of its payments, kept with them so that receivables
    ageing is one aggregate over this table.

    ``number`` is per company and year (``SO-2026-000123``); ``state`` moves on the workflow
    ``sales_order`` (open → paid when fully paid, or cancelled); the list sorts by
    ``ordered_on`` and the ageing reads open orders by ``due_on`` (hence the two indexes).
    """

    __tablename__ = "sales_order"
    __table_args__ = (
        UniqueConstraint("company_id", "number"),
        Index("ix_sales_order_company_customer_date", "company_id", "customer_id", "ordered_on"),
        Index("ix_sales_order_company_date", "company_id", "ordered_on"),
        Index("ix_sales_order_company_state_due", "company_id", "state", "due_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel.id", ondelete="SET NULL"), index=True
    )
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    opportunity_id: Mapped[int | None] = mapped_column(
        ForeignKey("sales_opportunity.id", ondelete="SET NULL")
    )
    ordered_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    cost: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    paid: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    state: Mapped[str] = mapped_column(String(20), default="open")
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def margin(self) -> Decimal:
        return (self.amount or 0) - (self.cost or 0)

    @property
    def outstanding(self) -> Decimal:
        return (self.amount or 0) - (self.paid or 0)


class OrderLine(TenantMixin, db.Model):
    """A free-text product line of an order."""

    __tablename__ = "sales_order_line"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("sales_order.id", ondelete="CASCADE"), index=True
    )
    product: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=1)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)

    order: Mapped[Order] = relationship(back_populates="lines")


class Payment(TenantMixin, db.Model):
    """Money received against an order (回款)."""

    __tablename__ = "sales_payment"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("sales_order.id", ondelete="CASCADE"), index=True
    )
    paid_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    method: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- customer value -----------------------------------------------------------------------------


class CustomerValue(TenantMixin, db.Model):
    """The computed value of one customer (客户价值), rewritten by :mod:`plugins.sales.value`.

    Inputs are kept beside the scores so the customer page can say why: first and last order,
    orders so far, recency, frequency and monetary value over the window, margin so far, revenue
    and margin of the last 12 months, purchase potential and share of wallet, and the customer's
    cumulative share of the company's margin (``abc_share``, %) that gave its ABC class.
    ``id`` is the customer's id (the API addresses a value by its customer). One index beside
    the company's: the list's order by lifetime value (filters by segment, class or quadrant
    read along it; more indexes made the nightly rewrite of every row slower).
    """

    __tablename__ = "sales_customer_value"
    __table_args__ = (Index("ix_sales_customer_value_company_ltv", "company_id", "lifetime_value"),)

    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    id = synonym("customer_id")
    first_order_on: Mapped[date | None] = mapped_column(Date)
    last_order_on: Mapped[date | None] = mapped_column(Date)
    orders_total: Mapped[int] = mapped_column(default=0)
    recency_days: Mapped[int | None]
    frequency: Mapped[int] = mapped_column(default=0)
    monetary: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    r_score: Mapped[int | None]
    f_score: Mapped[int | None]
    m_score: Mapped[int | None]
    segment: Mapped[str | None] = mapped_column(String(20))
    historical_value: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    yearly_revenue: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    yearly_margin: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    current_value: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    potential_value: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    lifetime_value: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=0)
    purchase_potential: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    share_of_wallet: Mapped[int | None]
    abc_class: Mapped[str | None] = mapped_column(String(1))
    abc_share: Mapped[Decimal | None] = mapped_column(Numeric(7, 2))
    quadrant: Mapped[str | None] = mapped_column(String(20))
    resource: Mapped[str | None] = mapped_column(String(20))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- targets ------------------------------------------------------------------------------------


class Target(TenantMixin, db.Model):
    """A sales target of one rep or one team for a month (``2026-11``) or quarter (``2026-Q4``)."""

    __tablename__ = "sales_target"
    __table_args__ = (
        UniqueConstraint("company_id", "user_id", "team_id", "period"),
        CheckConstraint("(user_id IS NULL) != (team_id IS NULL)", name="user_or_team"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    new_customers: Mapped[int] = mapped_column(default=0)
