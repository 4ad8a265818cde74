"""Business calendars and obligations (promises with deadlines) kept by ``core.clocks``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, UniqueConstraint, case, literal
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin


class CalendarRecord(TenantMixin, db.Model):
    """A company's working calendar (hours per weekday, holidays, make-up workdays)."""

    __tablename__ = "business_calendar"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60), default="default")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)


class Obligation(TenantMixin, db.Model):
    """One running promise: a subject record, a kind, and its moments on the business calendar.

    ``warn_at``, ``due_at`` and ``escalate_at`` are computed once (and again on resume), so the
    state of any number of obligations is a plain SQL comparison (see :meth:`status_expr`).
    """

    __tablename__ = "obligation"
    __table_args__ = (
        UniqueConstraint("company_id", "kind", "subject_type", "subject_id"),
        Index("ix_obligation_open", "met_at", "paused_at", "warn_at"),
        # The clock scan (core.clocks.scan) every five minutes: open rows not yet at the top
        # level, and per dated kind; without them it read every open row a dozen times
        # (15 s over a million obligations, bench/reports_clocks.py).
        Index("ix_obligation_open_level", "met_at", "paused_at", "escalation_level", "warn_at"),
        Index(
            "ix_obligation_kind_open", "kind", "met_at", "paused_at", "escalation_level", "due_at"
        ),
        Index("ix_obligation_subject", "subject_type", "subject_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(60))
    subject_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    target_minutes: Mapped[int]
    warn_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalate_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remaining_minutes: Mapped[float | None]
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(default=0)

    @classmethod
    def status_expr(cls, now: datetime) -> Any:
        """SQL: ``met``, ``met_late``, ``paused``, ``breached``, ``at_risk`` or ``running``."""
        return case(
            (cls.met_at.is_not(None) & (cls.met_at > cls.due_at), literal("met_late")),
            (cls.met_at.is_not(None), literal("met")),
            (cls.paused_at.is_not(None), literal("paused")),
            (cls.due_at <= now, literal("breached")),
            (cls.warn_at <= now, literal("at_risk")),
            else_=literal("running"),
        )

    def status(self, now: datetime | None = None) -> str:
        """The same rule as :meth:`status_expr`, for one loaded row."""
        now = now or utcnow()
        if self.met_at is not None:
            return "met_late" if self.met_at > self.due_at else "met"
        if self.paused_at is not None:
            return "paused"
        if self.due_at <= now:
            return "breached"
        if self.warn_at <= now:
            return "at_risk"
        return "running"
