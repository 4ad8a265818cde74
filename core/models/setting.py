"""Per-company settings of the core (classification rules, service-recovery limits, …)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db import db
from core.tenancy import TenantMixin


class CompanySetting(TenantMixin, db.Model):
    """One named setting of a company, a JSON value validated by the module that owns ``key``."""

    __tablename__ = "company_setting"
    __table_args__ = (UniqueConstraint("company_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80))
    value: Mapped[Any] = mapped_column(JSON)

    @classmethod
    def put(cls, key: str, value: Any) -> CompanySetting:
        """Store ``value`` under ``key`` for the company in scope (the row made or changed and
        flushed, so it has its id for the audit row the caller writes); the caller commits."""
        from sqlalchemy import select

        row = db.session.scalar(select(cls).where(cls.key == key))
        if row is None:
            row = cls(key=key, value=value)
            db.session.add(row)
        else:
            row.value = value
        db.session.flush()
        return row
