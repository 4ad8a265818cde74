"""Customers (客户) and the contact persons at them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import UTCDateTime, db, utcnow
from core.tenancy import TenantMixin


class Customer(TenantMixin, db.Model):
    """Anyone who cares about the company's products: a person or an organisation.

    ``kind`` takes a value of the ``customer_kind`` choice list (core: consumer, intermediary,
    public_interest, internal; plugins add theirs). ``value_tier``, ``loyalty`` and
    ``lifecycle_stage`` are computed by rules, never typed in.
    """

    __tablename__ = "customer"
    __table_args__ = (
        Index("ix_customer_company_id_name", "company_id", "name"),
        Index("ix_customer_company_id_phone", "company_id", "phone"),
        # The list's default order (newest first, keyset on created_at then id), whole and
        # narrowed to one owner (the "own" record rule, the owner filter): bench/lists.py.
        Index("ix_customer_company_id_created_at_id", "company_id", "created_at", "id"),
        Index(
            "ix_customer_company_id_owner_id_created_at_id",
            "company_id",
            "owner_id",
            "created_at",
            "id",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), default="consumer")
    is_organization: Mapped[bool] = mapped_column(default=False)
    phone: Mapped[str | None] = mapped_column(String(40), info={"pii": "phone"})
    email: Mapped[str | None] = mapped_column(String(254))
    region: Mapped[str | None] = mapped_column(String(80))
    address: Mapped[str | None] = mapped_column(String(300), info={"pii": "address"})
    status: Mapped[str] = mapped_column(String(20), default="potential")
    relationship_level: Mapped[str | None] = mapped_column(String(40))
    value_tier: Mapped[str | None] = mapped_column(String(20))
    loyalty: Mapped[str | None] = mapped_column(String(20))
    lifecycle_stage: Mapped[str | None] = mapped_column(String(20))
    #: What the customer bought in the last 12 months (typed, imported from the ERP or kept
    #: by a sales plugin); the value-tier rule reads it.
    revenue: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    #: Last interaction with the customer (kept by the core when one is logged).
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    channel_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel.id", ondelete="SET NULL"), index=True
    )
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(default=1)

    contacts: Mapped[list[Contact]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="Contact.id"
    )

    __mapper_args__ = {"version_id_col": version}

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.name}>"


class Contact(TenantMixin, db.Model):
    """A person at a customer, with their role in buying decisions (buyer, decider, …)."""

    __tablename__ = "contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    title: Mapped[str | None] = mapped_column(String(120))
    decision_role: Mapped[str | None] = mapped_column(String(40))
    phone: Mapped[str | None] = mapped_column(String(40), info={"pii": "phone"})
    email: Mapped[str | None] = mapped_column(String(254))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    customer: Mapped[Customer] = relationship(back_populates="contacts")

    __mapper_args__ = {"version_id_col": version}


class Tag(TenantMixin, db.Model):
    """A label a company puts on customers (VIP, 重点客户, …)."""

    __tablename__ = "tag"
    __table_args__ = (UniqueConstraint("company_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))


class CustomerTag(TenantMixin, db.Model):
    """A tag on a customer."""

    __tablename__ = "customer_tag"
    __table_args__ = (UniqueConstraint("customer_id", "tag_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customer.id", ondelete="CASCADE"), index=True
    )
    tag_id: Mapped[int] = mapped_column(ForeignKey("tag.id", ondelete="CASCADE"), index=True)
