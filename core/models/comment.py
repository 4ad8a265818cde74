"""Comments on any record (customer, ticket, a plugin's record), with @mentions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin


class Comment(TenantMixin, db.Model):
    """A remark by a user on the record (``subject_type``, ``subject_id``), e.g.
    ``("customer", 12)``, ``("service_ticket", 3)`` or ``("sales_opportunity", 7)``."""

    __tablename__ = "comment"
    __table_args__ = (Index("ix_comment_subject", "company_id", "subject_type", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject_type: Mapped[str] = mapped_column(String(60))
    subject_id: Mapped[int]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
