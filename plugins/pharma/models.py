"""The pharma plugin's tables (all named ``pharma_*``, all per company through ``TenantMixin``).

Sections: tiering (each doctor's current tier; schemes, versions, history and overrides) and
visits (quotas and their months).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.extend import TenantMixin, UTCDateTime, db, utcnow

# --- tiering ----------------------------------------------------------------------------------


class DoctorTier(TenantMixin, db.Model):
    """A doctor's current tier (医生分级), one row per doctor (a customer of kind ``doctor``).

    ``tier`` is a tier name of the company's active scheme (``A``, ``B``…); ``locked_until``
    is set by an approved override, and the recompute leaves the row alone until that date.
    """

    __tablename__ = "pharma_doctor_tier"
    __table_args__ = (UniqueConstraint("company_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    tier: Mapped[str | None] = mapped_column(String(20))
    score: Mapped[float | None]
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    locked_until: Mapped[date | None] = mapped_column(Date)
