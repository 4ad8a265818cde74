"""A customer's answer to being contacted through a channel for a purpose (PIPL 授权同意)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin


class Consent(TenantMixin, db.Model):
    """The current answer of ``customer_id`` for ``channel`` (a ``contact_channel`` choice)
    and ``purpose`` (a :class:`core.consent.Purpose` an enabled plugin declares): ``granted``
    or refused, where it came from (``source``: form, call, import, unsubscribe link…), when
    and by whom. One row per (customer, channel, purpose); the audit log keeps the history.
    The unique index also serves the per-customer lookups of :func:`core.consent.allowed`."""

    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("customer_id", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    purpose: Mapped[str] = mapped_column(String(40))
    granted: Mapped[bool] = mapped_column(default=False)
    source: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    recorded_by: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
