"""Estates (小区/项目), buildings (楼栋), units (房屋) and the residents living there.

The services here check their input and raise :class:`PlaceError` with a message per form
field (nothing is written then); the caller commits. Pages: :mod:`plugins.property.web_places`.

- :func:`create_estate` / :func:`update_estate`, :func:`create_building`, :func:`create_unit`;
- :func:`bulk_units` -- every unit of a building from floors × rooms (``1501``…) in one
  ``INSERT`` (labels the building already has are skipped);
- :func:`link_resident` / :func:`end_residence` -- a customer as owner, tenant or family
  member of a unit; :func:`customer_units` -- the units of a customer.

The hook functions gathered by the plugin: :func:`menu_items` (the 物业 menu group) and
:func:`panels` (the resident's units and complaints on a customer's page).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import render_template
from flask_babel import gettext as _
from sqlalchemy import func, insert, select

from core import audit
from core.extend import MenuItem, Panel, db, require_company
from core.models import Customer, ServiceTicket
from plugins.property.models import Building, Complaint, Estate, Residence, Unit

MAX_ID = 2**31 - 1
ROLES = ("owner", "tenant", "family")
#: The most units one bulk add makes (floors × rooms).
MAX_BULK = 2000
PANEL_COMPLAINTS = 10


class PlaceError(ValueError):
    """Refused input: ``errors`` maps form fields to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _text(value: Any, limit: int) -> str:
    return str(value or "").replace("\x00", "").strip()[:limit]


def _check_length(errors: dict[str, str], key: str, value: Any, limit: int) -> None:
    if len(str(value or "").strip()) > limit:
        errors[key] = _("At most %(n)s characters.", n=limit)


# --- estates ------------------------------------------------------------------------------------


def _estate_errors(code: str, name: str, raw: dict[str, Any], estate_id: int | None) -> dict:
    errors: dict[str, str] = {}
    if not code:
        errors["code"] = _("Give the estate a short code.")
    if not name:
        errors["name"] = _("Give the estate's name.")
    _check_length(errors, "code", raw.get("code"), 20)
    _check_length(errors, "name", raw.get("name"), 120)
    _check_length(errors, "address", raw.get("address"), 300)
    if code and "code" not in errors:
        other = db.session.scalar(select(Estate.id).where(Estate.code == code))
        if other is not None and other != estate_id:
            errors["code"] = _("Another estate has this code.")
    return errors


def create_estate(
    code: str, name: str, address: str | None = None, user_id: int | None = None
) -> Estate:
    raw = {"code": code, "name": name, "address": address}
    code, name = _text(code, 20), _text(name, 120)
    errors = _estate_errors(code, name, raw, None)
    if errors:
        raise PlaceError(errors)
    estate = Estate(code=code, name=name, address=_text(address, 300) or None)
    db.session.add(estate)
    db.session.flush()
    audit.record("create", "property_estate", estate.id, {"code": code}, user_id=user_id)
    return estate


def update_estate(
    estate: Estate, code: str, name: str, address: str | None = None, user_id: int | None = None
) -> Estate:
    raw = {"code": code, "name": name, "address": address}
    code, name = _text(code, 20), _text(name, 120)
    errors = _estate_errors(code, name, raw, estate.id)
    if errors:
        raise PlaceError(errors)
    estate.code, estate.name, estate.address = code, name, _text(address, 300) or None
    audit.record("update", "property_estate", estate.id, {"code": code}, user_id=user_id)
    return estate


# --- buildings and units ------------------------------------------------------------------------


def create_building(estate: Estate, name: str, user_id: int | None = None) -> Building:
    errors: dict[str, str] = {}
    clean = _text(name, 40)
    if not clean:
        errors["building_name"] = _("Give the building's name, e.g. 3栋.")
    _check_length(errors, "building_name", name, 40)
    if clean and not errors:
        taken = db.session.scalar(
            select(Building.id).where(Building.estate_id == estate.id, Building.name == clean)
        )
        if taken is not None:
            errors["building_name"] = _("The estate has a building of this name.")
    if errors:
        raise PlaceError(errors)
    building = Building(estate_id=estate.id, name=clean)
    db.session.add(building)
    db.session.flush()
    audit.record("create", "property_building", building.id, {"name": clean}, user_id=user_id)
    return building


def _number(raw: Any, key: str, errors: dict[str, str], lo: float, hi: float) -> float | None:
    text = str(raw or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        errors[key] = _("Enter a number.")
        return None
    if not (lo <= value <= hi):  # also refuses NaN
        errors[key] = _("Enter a number from %(lo)s to %(hi)s.", lo=lo, hi=hi)
        return None
    return value


def create_unit(
    building: Building,
    label: str,
    floor: Any = None,
    area: Any = None,
    user_id: int | None = None,
) -> Unit:
    errors: dict[str, str] = {}
    clean = _text(label, 40)
    if not clean:
        errors["label"] = _("Give the unit's number, e.g. 2单元1502.")
    _check_length(errors, "label", label, 40)
    number = _number(floor, "floor", errors, -10, 200)
    size = _number(area, "area", errors, 0, 100000)
    if number is not None and number != int(number):
        errors["floor"] = _("Enter a whole number.")
    if clean and "label" not in errors:
        taken = db.session.scalar(
            select(Unit.id).where(Unit.building_id == building.id, Unit.label == clean)
        )
        if taken is not None:
            errors["label"] = _("The building has a unit with this number.")
    if errors:
        raise PlaceError(errors)
    unit = Unit(
        building_id=building.id,
        label=clean,
        floor=int(number) if number is not None else None,
        area=size,
    )
    db.session.add(unit)
    db.session.flush()
    audit.record("create", "property_unit", unit.id, {"label": clean}, user_id=user_id)
    return unit


def _int_in(raw: Any, key: str, errors: dict[str, str], lo: int, hi: int) -> int | None:
    text = str(raw or "").strip()
    if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 6):
        errors[key] = _("Enter a whole number from %(lo)s to %(hi)s.", lo=lo, hi=hi)
        return None
    value = int(text)
    if not lo <= value <= hi:
        errors[key] = _("Enter a whole number from %(lo)s to %(hi)s.", lo=lo, hi=hi)
        return None
    return value


def bulk_units(
    building: Building,
    floor_from: Any,
    floor_to: Any,
    room_from: Any,
    room_to: Any,
    prefix: str = "",
    user_id: int | None = None,
) -> int:
    """Add the units ``<prefix><floor><room:02>`` for every floor and room in the ranges (e.g.
    floors 1–18 × rooms 01–04 make 101 … 1804) with one ``INSERT``; labels the building has
    are skipped. Returns how many were added."""
    errors: dict[str, str] = {}
    f1 = _int_in(floor_from, "floor_from", errors, -10, 200)
    f2 = _int_in(floor_to, "floor_to", errors, -10, 200)
    r1 = _int_in(room_from, "room_from", errors, 1, 99)
    r2 = _int_in(room_to, "room_to", errors, 1, 99)
    _check_length(errors, "prefix", prefix, 20)
    if f1 is not None and f2 is not None and f2 < f1:
        errors["floor_to"] = _("The last floor comes after the first.")
    if r1 is not None and r2 is not None and r2 < r1:
        errors["room_to"] = _("The last room comes after the first.")
    if not errors and (f2 - f1 + 1) * (r2 - r1 + 1) > MAX_BULK:  # type: ignore[operator]
        errors["floor_to"] = _("At most %(n)s units at once.", n=MAX_BULK)
    if errors:
        raise PlaceError(errors)
    assert f1 is not None and f2 is not None and r1 is not None and r2 is not None
    prefix = _text(prefix, 20)
    have = set(db.session.scalars(select(Unit.label).where(Unit.building_id == building.id)))
    company_id = require_company()
    rows = [
        {
            "company_id": company_id,
            "building_id": building.id,
            "label": label,
            "floor": floor,
        }
        for floor in range(f1, f2 + 1)
        if floor != 0
        for room in range(r1, r2 + 1)
        if (label := f"{prefix}{floor}{room:02d}"[:40]) not in have
    ]
    if rows:
        db.session.execute(insert(Unit), rows)
    audit.record(
        "create",
        "property_unit",
        None,
        {"building_id": building.id, "bulk": len(rows)},
        user_id=user_id,
    )
    return len(rows)


# --- residents ----------------------------------------------------------------------------------


def link_resident(
    unit: Unit,
    customer_id: int | None,
    role: str,
    since: date | None = None,
    user_id: int | None = None,
) -> Residence:
    """Link a customer to ``unit`` as ``role``; a customer who had left is linked again."""
    errors: dict[str, str] = {}
    customer = None
    if customer_id is None:
        errors["customer"] = _("Choose a customer from the list.")
    else:
        customer = db.session.scalar(select(Customer).where(Customer.id == customer_id))
        if customer is None:
            errors["customer"] = _("Choose a customer from the list.")
    if role not in ROLES:
        errors["role"] = _("Choose one of the list.")
    if errors:
        raise PlaceError(errors)
    assert customer is not None
    row = db.session.scalar(
        select(Residence).where(Residence.unit_id == unit.id, Residence.customer_id == customer.id)
    )
    if row is not None and row.until is None:
        raise PlaceError({"customer": _("%(name)s already lives here.", name=customer.name)})
    if row is None:
        row = Residence(unit_id=unit.id, customer_id=customer.id, role=role, since=since)
        db.session.add(row)
    else:
        row.role, row.since, row.until = role, since, None
    if customer.kind in ("consumer", None):
        customer.kind = "resident"
    db.session.flush()
    audit.record(
        "create",
        "property_residence",
        row.id,
        {"unit_id": unit.id, "customer_id": customer.id, "role": role},
        user_id=user_id,
    )
    return row


def end_residence(residence: Residence, on: date, user_id: int | None = None) -> None:
    """The resident left the unit on ``on`` (the row stays, for the history)."""
    residence.until = on
    audit.record(
        "update", "property_residence", residence.id, {"until": on.isoformat()}, user_id=user_id
    )


@dataclass(frozen=True)
class Home:
    residence: Residence
    unit: Unit
    building: Building
    estate: Estate


def customer_units(customer_id: int, current_only: bool = True) -> list[Home]:
    """The units of a customer with their building and estate (one query)."""
    stmt = (
        select(Residence, Unit, Building, Estate)
        .join(Unit, Unit.id == Residence.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(Estate, Estate.id == Building.estate_id)
        .where(Residence.customer_id == customer_id)
        .order_by(Estate.name, Building.name, Unit.label)
    )
    if current_only:
        stmt = stmt.where(Residence.until.is_(None))
    return [Home(*row) for row in db.session.execute(stmt)]


def unit_path(unit_id: int | None) -> tuple[Unit, Building, Estate] | None:
    """The unit with its building and estate (one query), or ``None``."""
    if unit_id is None:
        return None
    row = db.session.execute(
        select(Unit, Building, Estate)
        .join(Building, Building.id == Unit.building_id)
        .join(Estate, Estate.id == Building.estate_id)
        .where(Unit.id == unit_id)
    ).first()
    return (row[0], row[1], row[2]) if row else None


def estate_counts() -> list[tuple[Estate, int, int]]:
    """Every estate with its number of buildings and units (one query)."""
    buildings = (
        select(func.count(Building.id))
        .where(Building.estate_id == Estate.id)
        .correlate(Estate)
        .scalar_subquery()
    )
    units = (
        select(func.count(Unit.id))
        .join(Building, Building.id == Unit.building_id)
        .where(Building.estate_id == Estate.id)
        .correlate(Estate)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(Estate, buildings.label("b"), units.label("u")).order_by(Estate.code, Estate.id)
    ).all()
    return [(r[0], int(r[1] or 0), int(r[2] or 0)) for r in rows]


# --- hook functions gathered by the plugin ------------------------------------------------------


def menu_items(company: Any) -> list[MenuItem]:
    group = {"group": "Property", "group_zh": "物业"}
    return [
        MenuItem("property.complaints", "Complaints", "投诉工单", order=40, **group),
        MenuItem("property.estates", "Estates and residents", "房屋与住户", order=41, **group),
        MenuItem(
            "property.settings",
            "Complaint settings",
            "投诉设置",
            order=42,
            roles=("admin", "manager"),
            **group,
        ),
    ]


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The resident's units and complaints on a customer's page."""
    if subject_type != "customer":
        return []
    return [
        Panel(
            "Homes and complaints",
            lambda: render_customer_panel(subject),
            "房屋与投诉",
            order=30,
        )
    ]


def render_customer_panel(customer: Customer) -> str:
    """Two queries: the customer's units, their latest complaints."""
    homes = customer_units(customer.id, current_only=False)
    rows = db.session.execute(
        select(
            ServiceTicket.id, ServiceTicket.subject, ServiceTicket.state, ServiceTicket.created_at
        )
        .join(Complaint, Complaint.ticket_id == ServiceTicket.id)
        .where(ServiceTicket.customer_id == customer.id)
        .order_by(ServiceTicket.created_at.desc(), ServiceTicket.id.desc())
        .limit(PANEL_COMPLAINTS)
    ).all()
    return render_template(
        "property/customer_panel.html",
        customer=customer,
        homes=homes,
        complaints=rows,
        role_label=role_label,
        state_label=state_label,
    )


def role_label(value: str) -> str:
    from core.choices import label

    return label("property_resident_role", value)


def state_label(state: str) -> str:
    """The complaint workflow's label of ``state``."""
    from plugins.property import complaints as svc

    for s in svc.workflows()[0].states:
        if s.name == state:
            return s.text
    return state
