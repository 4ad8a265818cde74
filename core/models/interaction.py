"""The interaction timeline: calls, visits, messages, meetings, follow-ups (回访)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin


class Interaction(TenantMixin, db.Model):
    """Something that happened with a customer, optionally about a contact, ticket or record."""

    __tablename__ = "interaction"
    __table_args__ = (
        Index("ix_interaction_customer_id_occurred_at", "customer_id", "occurred_at"),
        Index("ix_interaction_user_id_next_step_due", "user_id", "next_step_due"),
        #: Activity reports and plugins read one kind of interaction over a window (visits in
        #: the last 90 days, calls this month) across a company.
        Index("ix_interaction_company_id_kind_occurred_at", "company_id", "kind", "occurred_at"),
        UniqueConstraint("company_id", "external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_ticket.id", ondelete="SET NULL")
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20), default="call")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    duration_minutes: Mapped[int | None]
    purpose: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[str | None] = mapped_column(Text)
    next_step: Mapped[str | None] = mapped_column(String(200))
    next_step_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_step_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Follow-up (回访) scores, kept apart: the customer's own satisfaction (1-5) and the
    #: internal quality-control score (0-100) given by the person who checked the work.
    customer_score: Mapped[int | None]
    quality_score: Mapped[int | None]
    # A plugin record the interaction is about, e.g. ("pharma_visit", 12).
    subject_type: Mapped[str | None] = mapped_column(String(60))
    subject_id: Mapped[int | None]
    #: The id the record has in the system it came from (call centre, WeChat, ERP): bulk
    #: imports upsert on it, so sending the same call twice does not log it twice.
    external_id: Mapped[str | None] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}
