"""The marketing plugin's tables (all named ``marketing_*``, all per company: ``TenantMixin``).

- **Segment** (客户分群): a saved, dynamic filter over customers -- the customer list's own
  filter parameters (``filters``: ``[[key, value], …]``) plus the marketing ones (RFM segment,
  last purchase) -- or a **static** list of customers (``SegmentMember`` rows, from an import).
- **Campaign** (营销活动) and **Message** (the outbox, 发件箱): a campaign's messages are
  inserted set-based into the outbox; ``UNIQUE (campaign_id, customer_id, occasion)`` keeps one
  message per customer per campaign (``occasion`` is ``''`` for a one-shot campaign, the year of
  a birthday / anniversary, the order of an after-purchase message).
- **Level** (会员等级): thresholds, point multiplier and benefits of each member level;
  **PointsEntry** (积分流水): the points ledger (a balance is always a SUM, never an edited
  number); **Reward** (积分兑换礼品); **LevelMove** (等级变动): the history of level moves;
  **Program**: the company's loyalty rules (points per yuan, expiry, level window).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extend import TenantMixin, UTCDateTime, db, utcnow

#: Channels a campaign sends through (pluggable senders, see :mod:`plugins.marketing.senders`).
CHANNELS = (
    ("email", "E-mail", "邮件"),
    ("sms", "SMS", "短信"),
    ("wechat", "WeChat", "微信"),
)
#: What a campaign contacts customers for: the consent purposes this plugin declares
#: (:mod:`core.consent`; all of them need the customer's consent first).
PURPOSES = (
    ("marketing", "Promotions", "营销推广"),
    ("care", "Care and greetings", "关怀问候"),
    ("loyalty", "Membership notices", "会员通知"),
)
#: How a campaign picks its moment.
TRIGGERS = (
    ("manual", "Launched by hand", "手动发送"),
    ("scheduled", "At a scheduled time", "定时发送"),
    ("birthday", "On the customer's birthday", "生日当天"),
    ("anniversary", "Anniversary of first purchase", "首次购买周年"),
    ("after_purchase", "N days after a purchase", "购买后N天"),
    ("decline", "Customer entered decline", "客户进入衰退期"),
)
CAMPAIGN_STATES = (
    ("draft", "Draft", "草稿"),
    ("scheduled", "Scheduled", "已排期"),
    ("active", "Active (triggered)", "触发中"),
    ("sent", "Sent", "已发送"),
    ("stopped", "Stopped", "已停止"),
)
MESSAGE_STATES = (
    ("queued", "In the outbox", "待发送"),
    ("sent", "Sent", "已发送"),
    ("failed", "Failed", "发送失败"),
)
LEDGER_KINDS = (
    ("earn", "Earned", "获得"),
    ("redeem", "Redeemed", "兑换"),
    ("expire", "Expired", "过期"),
    ("adjust", "Adjusted", "调整"),
)


class Segment(TenantMixin, db.Model):
    """A customer segment: ``kind`` ``dynamic`` (``filters`` evaluated whenever it is used) or
    ``static`` (its :class:`SegmentMember` rows)."""

    __tablename__ = "marketing_segment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10), default="dynamic")
    filters: Mapped[list[Any]] = mapped_column(JSON, default=list)
    description: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SegmentMember(TenantMixin, db.Model):
    """A customer on a static list."""

    __tablename__ = "marketing_segment_member"
    __table_args__ = (UniqueConstraint("segment_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(
        ForeignKey("marketing_segment.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )


class Campaign(TenantMixin, db.Model):
    """A campaign: a message through ``channel`` for ``purpose`` to the customers of
    ``segment_id`` (none: every customer), at launch, at ``scheduled_at`` or on a trigger."""

    __tablename__ = "marketing_campaign"
    __table_args__ = (Index("ix_marketing_campaign_state", "company_id", "state", "trigger"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    segment_id: Mapped[int | None] = mapped_column(
        ForeignKey("marketing_segment.id", ondelete="RESTRICT")
    )
    channel: Mapped[str] = mapped_column(String(20), default="sms")
    purpose: Mapped[str] = mapped_column(String(20), default="marketing")
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    #: ``after_purchase``: days after the order.
    days: Mapped[int | None]
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    #: Orders within this many days of a message count as its conversion.
    conversion_days: Mapped[int] = mapped_column(default=30)
    state: Mapped[str] = mapped_column(String(20), default="draft")
    launched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Message(TenantMixin, db.Model):
    """One message of a campaign to one customer: the outbox row. ``state`` ``queued`` while no
    gateway took it (nothing is lost), ``sent`` once a gateway did."""

    __tablename__ = "marketing_message"
    __table_args__ = (
        UniqueConstraint("campaign_id", "customer_id", "occasion"),
        Index("ix_marketing_message_state", "company_id", "state", "id"),
        Index("ix_marketing_message_customer", "company_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("marketing_campaign.id", ondelete="CASCADE")
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    occasion: Mapped[str] = mapped_column(String(40), default="")
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(254), info={"pii": "phone"})
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="queued")
    error: Mapped[str | None] = mapped_column(String(300))
    #: The company-local day the message was written, and the last day an order counts for it.
    sent_on: Mapped[date] = mapped_column(Date)
    convert_until: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Program(TenantMixin, db.Model):
    """The company's loyalty rules (one row per company)."""

    __tablename__ = "marketing_program"
    __table_args__ = (UniqueConstraint("company_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: Points earned per yuan of an order (times the member level's multiplier).
    points_per_yuan: Mapped[Decimal] = mapped_column(Numeric(8, 2), default=Decimal(1))
    #: Points expire this many days after the day they were earned.
    expiry_days: Mapped[int] = mapped_column(default=365)
    #: The level follows the points earned over this many days.
    level_window_days: Mapped[int] = mapped_column(default=365)


class Level(TenantMixin, db.Model):
    """A member level: ``key`` is a value of the customer field ``marketing__member_level``;
    a member reaches it with ``threshold`` points earned within the program's window."""

    __tablename__ = "marketing_level"
    __table_args__ = (UniqueConstraint("company_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40))
    threshold: Mapped[int] = mapped_column(default=0)
    multiplier: Mapped[Decimal] = mapped_column(Numeric(6, 2), default=Decimal(1))
    benefits: Mapped[str | None] = mapped_column(Text)


class LevelMove(TenantMixin, db.Model):
    """A member's level changed (by the levels job, or on joining)."""

    __tablename__ = "marketing_level_move"
    __table_args__ = (Index("ix_marketing_level_move_customer", "company_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    from_level: Mapped[str | None] = mapped_column(String(40))
    to_level: Mapped[str | None] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(default=0)
    moved_on: Mapped[date] = mapped_column(Date)


class Reward(TenantMixin, db.Model):
    """Something members redeem points for."""

    __tablename__ = "marketing_reward"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    points: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)


class PointsEntry(TenantMixin, db.Model):
    """One line of the points ledger: ``points`` positive (earned) or negative (redeemed,
    expired). ``UNIQUE (order_id, kind)``: an order earns points once."""

    __tablename__ = "marketing_points"
    __table_args__ = (
        UniqueConstraint("order_id", "kind"),
        Index("ix_marketing_points_customer", "company_id", "customer_id", "booked_on"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10))
    points: Mapped[int]
    booked_on: Mapped[date] = mapped_column(Date)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("sales_order.id", ondelete="SET NULL"))
    reward_id: Mapped[int | None] = mapped_column(
        ForeignKey("marketing_reward.id", ondelete="SET NULL")
    )
    note: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
