"""Service tickets (服务工单) and the SLA policies that set their deadlines."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import UTCDateTime, db, utcnow
from core.models.customer import Customer
from core.tenancy import TenantMixin


class ServiceTicket(TenantMixin, db.Model):
    """An inquiry, complaint, repair or suggestion, moved through a workflow.

    ``state`` is owned by the workflow engine (``core.workflow``); ``version`` makes a second,
    stale change fail instead of silently overwriting the first.
    """

    __tablename__ = "service_ticket"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contact.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(40), default="inquiry")
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    intake_channel: Mapped[str] = mapped_column(String(20), default="phone")
    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    workflow: Mapped[str] = mapped_column(String(60), default="ticket")
    state: Mapped[str] = mapped_column(String(40), default="new", index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Service recovery (服务补救): an apology and a compensation within the limit the company
    # authorised for the role of the person granting it.
    apology: Mapped[bool] = mapped_column(default=False, server_default=false())
    compensation: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    recovery_note: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)

    customer: Mapped[Customer] = relationship()

    __mapper_args__ = {"version_id_col": version}


class SlaPolicy(TenantMixin, db.Model):
    """Per company and priority: working minutes to first response and to resolution."""

    __tablename__ = "sla_policy"
    __table_args__ = (UniqueConstraint("company_id", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    priority: Mapped[str] = mapped_column(String(20))
    first_response_minutes: Mapped[int]
    resolution_minutes: Mapped[int]
