"""The property plugin's tables (all named ``property_*``, all per company: ``TenantMixin``).

Places: estates (小区/项目) hold buildings (楼栋) that hold units (房屋); residents are core
customers (kind ``resident``) linked to units by :class:`Residence` as owner, tenant or family.

Complaints: a complaint or repair is a core :class:`~core.models.ServiceTicket` on the
``property_complaint`` workflow; :class:`Complaint` is its property half (unit, classifier,
flags, root cause, repeat link, tracking code), one row per ticket. The classifier
(:class:`ComplaintClass`) has three levels a complaint is filed under: place (位置) →
category (类别) → problem (问题). Dispatch rules and SLA rules are the company's data.
See docs/property.md.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.extend import TenantMixin, UTCDateTime, db, utcnow

# --- estates, buildings, units, residents -------------------------------------------------------


class Estate(TenantMixin, db.Model):
    """A residential estate or managed project (小区/项目)."""

    __tablename__ = "property_estate"
    __table_args__ = (UniqueConstraint("company_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Building(TenantMixin, db.Model):
    """A building of an estate (楼栋), e.g. ``3栋``."""

    __tablename__ = "property_building"
    __table_args__ = (UniqueConstraint("company_id", "estate_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(
        ForeignKey("property_estate.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(40))

    estate: Mapped[Estate] = relationship()


class Unit(TenantMixin, db.Model):
    """A home or shop in a building (房屋): ``label`` as residents say it, ``2单元1502``."""

    __tablename__ = "property_unit"
    __table_args__ = (UniqueConstraint("company_id", "building_id", "label"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(
        ForeignKey("property_building.id", ondelete="CASCADE"), index=True
    )
    label: Mapped[str] = mapped_column(String(40))
    floor: Mapped[int | None]
    area: Mapped[float | None]  # m²

    building: Mapped[Building] = relationship()


class Residence(TenantMixin, db.Model):
    """A resident (a core customer) living in or owning a unit: ``role`` owner 业主, tenant
    租户 or family 家庭成员 (choice ``property_resident_role``); ``until`` set when they left."""

    __tablename__ = "property_residence"
    __table_args__ = (
        UniqueConstraint("company_id", "unit_id", "customer_id"),
        Index("ix_property_residence_customer", "company_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("property_unit.id", ondelete="CASCADE"), index=True
    )
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(20), default="owner")
    since: Mapped[date | None] = mapped_column(Date)
    until: Mapped[date | None] = mapped_column(Date)

    unit: Mapped[Unit] = relationship()


# --- classifier, dispatch and SLA rules ---------------------------------------------------------


class ComplaintClass(TenantMixin, db.Model):
    """One entry of the three-level classifier: ``level`` ``place`` (户内, 公共区域…),
    ``category`` (保洁, 安保, 维修, 噪音, 收费…) or ``problem`` (under a category:
    ``parent_id``). ``code`` is stable (reports and rules key on it); names are the
    company's. A category may name the team that handles it by default."""

    __tablename__ = "property_class"
    __table_args__ = (UniqueConstraint("company_id", "level", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    level: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str | None] = mapped_column(String(80))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("property_class.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)


class DispatchRule(TenantMixin, db.Model):
    """Who takes complaints of a category (any when empty) in an estate or building (any when
    empty): a team and optionally a person. The most specific matching rule wins (building
    over estate over anywhere; a category over any), then the lowest ``position``."""

    __tablename__ = "property_dispatch_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("property_class.id", ondelete="CASCADE")
    )
    estate_id: Mapped[int | None] = mapped_column(
        ForeignKey("property_estate.id", ondelete="CASCADE")
    )
    building_id: Mapped[int | None] = mapped_column(
        ForeignKey("property_building.id", ondelete="CASCADE")
    )
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id", ondelete="CASCADE"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("user.id", ondelete="SET NULL"))
    position: Mapped[int] = mapped_column(default=0)


class SlaRule(TenantMixin, db.Model):
    """Minutes (counted around the clock) to respond (on site, 到场/首次响应) and to resolve,
    per category (any when empty) and priority. An emergency is priority ``urgent``."""

    __tablename__ = "property_sla_rule"
    __table_args__ = (UniqueConstraint("company_id", "category_id", "priority"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("property_class.id", ondelete="CASCADE")
    )
    priority: Mapped[str] = mapped_column(String(20))
    response_minutes: Mapped[int]
    resolution_minutes: Mapped[int]


# --- complaints ---------------------------------------------------------------------------------


class Complaint(TenantMixin, db.Model):
    """The property half of a complaint or repair ticket (one per ticket).

    ``root_cause`` (choice ``property_root_cause``) and ``action`` are required to resolve and
    to close. ``repeat_of_id`` links an earlier complaint about the same unit and category
    within the company's repeat window. ``tracking_code`` is the random part of the
    resident's tracking link (read-only: it shows the steps, never other residents' data).
    """

    __tablename__ = "property_complaint"
    __table_args__ = (
        UniqueConstraint("tracking_code"),
        Index("ix_property_complaint_unit_category", "company_id", "unit_id", "category_id"),
        Index("ix_property_complaint_category", "company_id", "category_id"),
    )

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("service_ticket.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("property_unit.id", ondelete="SET NULL"))
    building_id: Mapped[int | None] = mapped_column(
        ForeignKey("property_building.id", ondelete="SET NULL"), index=True
    )
    place_id: Mapped[int | None] = mapped_column(ForeignKey("property_class.id"))
    category_id: Mapped[int | None] = mapped_column(ForeignKey("property_class.id"))
    problem_id: Mapped[int | None] = mapped_column(ForeignKey("property_class.id"))
    emergency: Mapped[bool] = mapped_column(default=False, server_default=false())
    paid: Mapped[bool] = mapped_column(default=False, server_default=false())
    reporter_name: Mapped[str | None] = mapped_column(String(80))
    reporter_phone: Mapped[str | None] = mapped_column(String(40), info={"pii": "phone"})
    root_cause: Mapped[str | None] = mapped_column(String(40), index=True)
    action: Mapped[str | None] = mapped_column(Text)
    repeat_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_ticket.id", ondelete="SET NULL")
    )
    reopen_count: Mapped[int] = mapped_column(default=0, server_default="0")
    tracking_code: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ComplaintPhoto(TenantMixin, db.Model):
    """A photo sent with a complaint (JPEG, PNG or WebP, size-limited), kept in the database
    with the complaint so that a backup holds both."""

    __tablename__ = "property_photo"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("service_ticket.id", ondelete="CASCADE"), index=True
    )
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
