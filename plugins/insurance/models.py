"""The insurance plugin's tables (all named ``insurance_*``, all per company: ``TenantMixin``).

Sections: agents and licences; products and policies; commissions and settlements; leads and
referrals. See docs/insurance.md for the decisions behind them.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Date, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extend import TenantMixin, UTCDateTime, db, utcnow

# --- agents and licences ----------------------------------------------------------------------


class Agent(TenantMixin, db.Model):
    """A producer's profile (代理人/经纪人档案): one per channel that sells in person -- an
    agent, a broker, a direct sales employee, a bank branch's sales point.

    The channel row (core) carries the name, type, parent (the bank above its branches) and
    territory; this row adds the licence, the status and the agent's place in the sales team:
    ``upline_id`` points to the agent above (a hierarchy of any depth), ``team`` names the team.
    ``user_id`` is the agent's own login when the agent works in Guanxi (their leads, policies
    and statements).

    ``licence_classes`` lists the product classes (choice ``insurance_product_class``) the
    licence covers; a policy of another class, or issued after ``licence_expires_on``, cannot
    go through this agent.
    """

    __tablename__ = "insurance_agent"
    __table_args__ = (
        UniqueConstraint("company_id", "channel_id"),
        Index("ix_insurance_agent_upline", "company_id", "upline_id"),
        Index("ix_insurance_agent_expiry", "company_id", "licence_expires_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user.id", ondelete="SET NULL"), index=True
    )
    licence_number: Mapped[str | None] = mapped_column(String(40), index=True)
    licence_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    licence_region: Mapped[str | None] = mapped_column(String(80))
    licence_expires_on: Mapped[date | None] = mapped_column(Date)
    #: ``active``, ``suspended`` or ``terminated`` (choice ``insurance_agent_status``).
    status: Mapped[str] = mapped_column(String(20), default="active")
    upline_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_agent.id", ondelete="SET NULL")
    )
    team: Mapped[str | None] = mapped_column(String(80))
    joined_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


# --- products and policies --------------------------------------------------------------------


class Product(TenantMixin, db.Model):
    """An insurance product (险种) of the company: its class (life, health, accident, property,
    auto, annuity -- choice ``insurance_product_class``) decides which licences may sell it."""

    __tablename__ = "insurance_product"
    __table_args__ = (UniqueConstraint("company_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    product_class: Mapped[str] = mapped_column(String(20))
    #: The length of one policy term (12: a one-year policy renewed each year).
    term_months: Mapped[int] = mapped_column(default=12)
    renewable: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Policy(TenantMixin, db.Model):
    """A policy (保单) for one term, on the workflow ``insurance_policy``: application →
    underwriting → issued / declined → in force → lapsed / renewed / cancelled.

    ``customer_id`` is the policyholder (投保人); the insured and the beneficiaries are contacts
    (:class:`PolicyParty`). ``agent_id`` is the writing agent, ``channel_id`` the channel of the
    sale. ``premium`` is due ``frequency`` times a year; ``annual_premium`` is that premium
    times the number of payments a year (a single premium: the premium) and is what orders,
    commissions and reports count. A renewal is a new policy for the next term with
    ``renewal_of_id`` set and ``policy_year`` one higher; commissions read ``policy_year`` to
    choose the first-year or the renewal rate. ``order_id`` is the sales order its issue
    created (so customer value and channel revenue include the premium).
    """

    __tablename__ = "insurance_policy"
    __table_args__ = (
        UniqueConstraint("company_id", "number"),
        Index("ix_insurance_policy_state_end", "company_id", "state", "end_on"),
        Index("ix_insurance_policy_agent_issued", "company_id", "agent_id", "issued_on"),
        Index("ix_insurance_policy_customer", "company_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[int] = mapped_column(ForeignKey("insurance_product.id", ondelete="RESTRICT"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_agent.id", ondelete="SET NULL")
    )
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel.id", ondelete="SET NULL"), index=True
    )
    #: The member of staff who looks after the policy (the renewal notices go to them).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    premium: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    #: ``annual``, ``semiannual``, ``quarterly``, ``monthly`` or ``single``.
    frequency: Mapped[str] = mapped_column(String(20), default="annual")
    annual_premium: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    sum_insured: Mapped[Decimal | None] = mapped_column(Numeric(16, 2))
    start_on: Mapped[date] = mapped_column(Date)
    end_on: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), default="application")
    applied_on: Mapped[date] = mapped_column(Date)
    issued_on: Mapped[date | None] = mapped_column(Date)
    cancelled_on: Mapped[date | None] = mapped_column(Date)
    policy_year: Mapped[int] = mapped_column(default=1)
    renewal_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_policy.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("sales_order.id", ondelete="SET NULL"))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}

    parties: Mapped[list[PolicyParty]] = relationship(
        back_populates="policy", cascade="all, delete-orphan", order_by="PolicyParty.id"
    )


class PolicyParty(TenantMixin, db.Model):
    """A contact's part in a policy: ``insured`` (被保险人) or ``beneficiary`` (受益人, with its
    ``share`` in per cent)."""

    __tablename__ = "insurance_policy_party"
    __table_args__ = (UniqueConstraint("policy_id", "contact_id", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(
        ForeignKey("insurance_policy.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contact.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20))
    share: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))

    policy: Mapped[Policy] = relationship(back_populates="parties")


# --- commissions and settlements --------------------------------------------------------------


class CommissionSchedule(TenantMixin, db.Model):
    """Commission rates (佣金方案) for a product (``None``: every product) sold through a channel
    type (``None``: every type), valid from ``valid_from`` until ``valid_to`` (inclusive,
    ``None``: open). Rates are per cent of the annual premium: ``first_year_rate`` for policy
    year 1, ``renewal_rate`` for later years; ``override_rates[i]`` is paid to the agent ``i + 1``
    levels above the writing agent (``[5, 2]``: 5 % to the direct upline, 2 % to the next).
    The most specific schedule valid on the issue date wins (product and type, then product,
    then type, then neither)."""

    __tablename__ = "insurance_commission_schedule"
    __table_args__ = (Index("ix_insurance_schedule_product", "company_id", "product_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_product.id", ondelete="CASCADE")
    )
    channel_type: Mapped[str | None] = mapped_column(String(40))
    first_year_rate: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    renewal_rate: Mapped[Decimal] = mapped_column(Numeric(6, 3), default=0)
    override_rates: Mapped[list[str]] = mapped_column(JSON, default=list)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PolicyHierarchy(TenantMixin, db.Model):
    """The sales hierarchy of a policy as it stood when it was issued: ``level`` 0 is the
    writing agent, 1 the upline, 2 the upline's upline… Later moves in the team do not change
    who earns on the policy."""

    __tablename__ = "insurance_policy_hierarchy"
    __table_args__ = (UniqueConstraint("policy_id", "level"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    policy_id: Mapped[int] = mapped_column(ForeignKey("insurance_policy.id", ondelete="CASCADE"))
    level: Mapped[int]
    agent_id: Mapped[int] = mapped_column(
        ForeignKey("insurance_agent.id", ondelete="CASCADE"), index=True
    )


class Settlement(TenantMixin, db.Model):
    """An agent's commission statement for one month (佣金结算单): the sum of its lines.
    ``open`` → ``confirmed`` → ``paid`` (workflow ``insurance_settlement``); once confirmed the
    month is locked for that agent: no line is added, changed or removed, and a clawback lands
    in the next open month instead."""

    __tablename__ = "insurance_settlement"
    __table_args__ = (UniqueConstraint("company_id", "agent_id", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("insurance_agent.id", ondelete="CASCADE"))
    #: The first day of the month.
    month: Mapped[date] = mapped_column(Date)
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=0)
    state: Mapped[str] = mapped_column(String(20), default="open")
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class CommissionLine(TenantMixin, db.Model):
    """One commission amount: ``kind`` is ``first_year``, ``renewal``, ``override`` (an upline
    at ``level`` ≥ 1) or ``clawback`` (negative, taking back the line ``reverses_id``).
    ``amount`` = ``base`` × ``rate`` / 100, rounded half-up to the fen."""

    __tablename__ = "insurance_commission_line"
    __table_args__ = (
        Index("ix_insurance_commission_agent_month", "company_id", "agent_id", "month"),
        Index("ix_insurance_commission_policy", "company_id", "policy_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("insurance_agent.id", ondelete="CASCADE"))
    policy_id: Mapped[int] = mapped_column(ForeignKey("insurance_policy.id", ondelete="CASCADE"))
    settlement_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_settlement.id", ondelete="SET NULL"), index=True
    )
    #: The first day of the month the line is settled in.
    month: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))
    level: Mapped[int] = mapped_column(default=0)
    policy_year: Mapped[int] = mapped_column(default=1)
    base: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    rate: Mapped[Decimal] = mapped_column(Numeric(6, 3))
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_commission_line.id", ondelete="SET NULL")
    )
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_commission_schedule.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- leads and referrals ----------------------------------------------------------------------


class Lead(TenantMixin, db.Model):
    """A sales lead (销售线索) of an agent: a prospect (a customer with status ``potential``)
    on the workflow ``insurance_lead``: new → contacted → proposal → converted / lost. It
    converts when the prospect buys (its first policy is issued) or by hand; the customer then
    becomes a customer (status ``existing``)."""

    __tablename__ = "insurance_lead"
    __table_args__ = (
        Index("ix_insurance_lead_agent", "company_id", "agent_id", "created_on"),
        Index("ix_insurance_lead_state", "company_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_agent.id", ondelete="SET NULL")
    )
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id", ondelete="SET NULL"))
    #: Where the lead came from (choice ``insurance_lead_source``: referral, walk-in, online…).
    source: Mapped[str] = mapped_column(String(20), default="other")
    state: Mapped[str] = mapped_column(String(20), default="new")
    created_on: Mapped[date] = mapped_column(Date)
    converted_on: Mapped[date | None] = mapped_column(Date)
    lost_reason: Mapped[str | None] = mapped_column(String(200))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


class Referral(TenantMixin, db.Model):
    """Who referred a customer (转介绍): an existing customer, an agent, or both."""

    __tablename__ = "insurance_referral"
    __table_args__ = (
        UniqueConstraint("company_id", "customer_id"),
        Index("ix_insurance_referral_by_customer", "company_id", "referrer_customer_id"),
        Index("ix_insurance_referral_by_agent", "company_id", "referrer_agent_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    referrer_customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customer.id", ondelete="SET NULL")
    )
    referrer_agent_id: Mapped[int | None] = mapped_column(
        ForeignKey("insurance_agent.id", ondelete="SET NULL")
    )
    referred_on: Mapped[date] = mapped_column(Date)
    note: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
