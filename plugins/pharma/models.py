"""The pharma plugin's tables (all named ``pharma_*``, all per company through ``TenantMixin``).

Sections: tiering (each doctor's current tier; schemes, versions, history and overrides) and
visits (quotas and their months).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
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
    #: The scheme version that computed ``tier`` and ``score`` (an override keeps it).
    scheme_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("pharma_tier_scheme_version.id", ondelete="SET NULL")
    )
    #: The criteria as computed: ``[raw, normalised, raw, normalised, …]`` in the version's
    #: criterion order (see :func:`plugins.pharma.tiering.explain`).
    inputs: Mapped[list[Any] | None] = mapped_column(JSON)
    #: Deciles only: the share (%) of the company's doctors that scored higher.
    percentile: Mapped[float | None]
    #: The tier before the last recompute wrote the row (the recompute's history reads it).
    previous_tier: Mapped[str | None] = mapped_column(String(20))


class TierScheme(TenantMixin, db.Model):
    """A company's doctor tier scheme (评级方案); exactly one of a company's schemes is
    ``active``. Its rules live in versions: every change adds a :class:`TierSchemeVersion`."""

    __tablename__ = "pharma_tier_scheme"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    active: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierSchemeVersion(TenantMixin, db.Model):
    """One version of a scheme's rules (criteria, weights, normalisation, tiers), never changed
    once written; the highest ``number`` is the scheme's current version."""

    __tablename__ = "pharma_tier_scheme_version"
    __table_args__ = (UniqueConstraint("scheme_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    scheme_id: Mapped[int] = mapped_column(ForeignKey("pharma_tier_scheme.id", ondelete="CASCADE"))
    number: Mapped[int]
    #: :class:`plugins.pharma.tiering.SchemeConfig` as JSON.
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(String(200))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierHistory(TenantMixin, db.Model):
    """A change of a doctor's tier: old and new tier, the scheme version, the criterion values
    and score that caused it, why (``recompute`` or ``override``) and when."""

    __tablename__ = "pharma_tier_history"
    __table_args__ = (
        Index("ix_pharma_tier_history_customer", "company_id", "customer_id", "changed_at"),
        Index("ix_pharma_tier_history_changed", "company_id", "changed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    old_tier: Mapped[str | None] = mapped_column(String(20))
    new_tier: Mapped[str | None] = mapped_column(String(20))
    scheme_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("pharma_tier_scheme_version.id", ondelete="SET NULL")
    )
    score: Mapped[float | None]
    inputs: Mapped[list[Any] | None] = mapped_column(JSON)
    percentile: Mapped[float | None]
    reason: Mapped[str] = mapped_column(String(20), default="recompute")
    override_id: Mapped[int | None] = mapped_column(
        ForeignKey("pharma_tier_override.id", ondelete="SET NULL")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierOverride(TenantMixin, db.Model):
    """A rep's request to set a doctor's tier by hand (等级调整申请) until ``locked_until``, on
    the workflow ``pharma_tier_override`` (pending → approved or rejected by a manager)."""

    __tablename__ = "pharma_tier_override"
    __table_args__ = (Index("ix_pharma_tier_override_state", "company_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    tier: Mapped[str] = mapped_column(String(20))
    #: The doctor's tier when the request was made.
    from_tier: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    locked_until: Mapped[date] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(20), default="pending")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)

    __mapper_args__ = {"version_id_col": version}


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
