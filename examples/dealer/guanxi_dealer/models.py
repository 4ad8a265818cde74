"""The dealer's leads: one buyer's interest in one vehicle, moved along the test-drive workflow."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extend import Customer, TenantMixin, UTCDateTime, db, utcnow


class DealerLead(TenantMixin, db.Model):
    """A lead (table ``dealer_lead``); ``score`` is the weighted buyer value when last saved."""

    __tablename__ = "dealer_lead"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    vehicle: Mapped[str] = mapped_column(String(80), index=True)
    list_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    offer: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    service: Mapped[int] = mapped_column(default=0)
    influence: Mapped[int] = mapped_column(default=0)
    referral: Mapped[int] = mapped_column(default=0)
    age: Mapped[int | None]
    score: Mapped[Decimal] = mapped_column(Numeric(5, 1), default=0)
    state: Mapped[str] = mapped_column(String(20), default="new")
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    customer: Mapped[Customer] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": version}
