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


# --- visits -----------------------------------------------------------------------------------


class VisitQuota(TenantMixin, db.Model):
    """A doctor's visit quota for one month (拜访定额): the tier the doctor had when the month was
    opened and the number of counting visits that tier requires (see :mod:`plugins.pharma.visits`).

    One row per doctor and month, only for quotas above zero; the rows of past months are the
    history the compliance pages and reports read. The month's live deadline is the doctor's
    ``pharma.visit_quota`` obligation on the clock engine.
    """

    __tablename__ = "pharma_visit_quota"
    __table_args__ = (UniqueConstraint("company_id", "month", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    #: The first day of the month.
    month: Mapped[date] = mapped_column(Date)
    tier: Mapped[str] = mapped_column(String(20))
    quota: Mapped[int]
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
