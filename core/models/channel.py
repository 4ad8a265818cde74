"""Sales and service channels (渠道): direct, agents, distributors, e-commerce, OEM, …"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin


class Channel(TenantMixin, db.Model):
    """A route to customers; ``type`` takes a value of the ``channel_type`` choice list."""

    __tablename__ = "channel"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(40), default="direct")
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("channel.id", ondelete="SET NULL"))
    territory: Mapped[str | None] = mapped_column(String(120))
    commission_rate: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    credit_limit: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}


class ChannelClaim(TenantMixin, db.Model):
    """A channel's claim that a customer is theirs (report of a lead, a registered deal).

    Two active claims by different channels on one customer are a channel conflict (渠道冲突).
    """

    __tablename__ = "channel_claim"
    __table_args__ = (UniqueConstraint("channel_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channel.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    note: Mapped[str | None] = mapped_column(String(300))
