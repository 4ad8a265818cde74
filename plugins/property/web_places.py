"""Pages that keep estates, units, residents and the complaint settings (``/property/…``).

Pages (on :data:`plugins.property.blueprint.bp`):

- ``/property/estates`` -- every estate with its number of buildings and units; managers add
  estates here;
- ``/property/estates/<id>`` -- the estate's buildings and their units; managers rename the
  estate, add a building, a unit, or a building's units in bulk (floors × rooms, one INSERT);
- ``/property/units/<id>`` -- the unit's residents (link a customer found by name or phone as
  owner, tenant or family member; mark one as left) and its complaints;
- ``/property/settings`` -- managers: the classifier (places, categories, problems: add,
  rename, deactivate), dispatch rules, SLA rules (the defaults shown when there are none), the
  follow-up and repeat windows, the public form's rate limit and the photo size limit.

Every refusal is a message at its field with status 422; nothing is written then.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from datetime import date
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select

from core import audit
from core.customers import search_clause
from core.extend import db
from core.i18n import pick
from core.models import Customer, ServiceTicket, Team, User
from core.web.helpers import role
from plugins.property import complaints as svc
from plugins.property import places
from plugins.property.blueprint import SERVICE_ROLES, bp, is_manager
from plugins.property.models import (
    Building,
    Complaint,
    ComplaintClass,
    DispatchRule,
    Estate,
    Residence,
    SlaRule,
    Unit,
)

LEVELS = ("place", "category", "problem")
PRIORITIES = ("urgent", "high", "normal", "low")
RATE_RE = re.compile(r"^\s*\d{1,5}\s*(/|per)\s*(second|minute|hour|day)s?\s*$")
UNIT_COMPLAINTS = 50


class ActionForm(FlaskForm):
    """A form that only carries the CSRF token."""


def _csrf() -> None:
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))


def _require_manager() -> None:
    if not is_manager():
        abort(
            403,
            _(
                "Estates and complaint settings are kept by admins and managers; you are %(role)s.",
                role=role() or "-",
            ),
        )


def _require_service() -> None:
    if role() not in SERVICE_ROLES:
        abort(403, _("Your role (%(role)s) cannot change residents.", role=role() or "-"))


def _int(raw: Any) -> int | None:
    text = str(raw or "").strip()
    if text.isascii() and text.isdigit() and 0 < int(text) <= places.MAX_ID:
        return int(text)
    return None


def _get(model: Any, row_id: int) -> Any:
    row = db.session.get(model, row_id) if 0 < row_id <= places.MAX_ID else None
    if row is None or row.company_id != svc.require_company():
        abort(404)
    return row


# --- estates ------------------------------------------------------------------------------------


@bp.route("/estates", methods=["GET", "POST"])
def estates() -> Any:
    errors: dict[str, str] = {}
    values: dict[str, str] = {}
    if request.method == "POST":
        _require_manager()
        _csrf()
        values = {k: request.form.get(k, "") for k in ("code", "name", "address")}
        try:
            estate = places.create_estate(**values, user_id=current_user.id)
            db.session.commit()
        except places.PlaceError as exc:
            db.session.rollback()
            errors = exc.errors
        else:
            flash(_("Estate %(name)s added.", name=estate.name))
            return redirect(url_for("property.estate_detail", estate_id=estate.id))
    html = render_template(
        "property/estates.html",
        rows=places.estate_counts(),
        errors=errors,
        values=values,
        can_manage=is_manager(),
    )
    return html, 422 if errors else 200


def _estate_page(estate: Estate, errors: dict[str, str], values: dict[str, str]) -> Any:
    buildings = list(
        db.session.scalars(
            select(Building).where(Building.estate_id == estate.id).order_by(Building.name)
        )
    )
    units: dict[int, list[Unit]] = defaultdict(list)
    if buildings:
        for unit in db.session.scalars(
            select(Unit)
            .join(Building, Building.id == Unit.building_id)
            .where(Building.estate_id == estate.id)
            .order_by(Unit.building_id, Unit.floor, Unit.label)
        ):
            units[unit.building_id].append(unit)
    html = render_template(
        "property/estate.html",
        estate=estate,
        buildings=buildings,
        units=units,
        errors=errors,
        values=values,
        can_manage=is_manager(),
    )
    return html, 422 if errors else 200


@bp.route("/estates/<int:estate_id>", methods=["GET", "POST"])
def estate_detail(estate_id: int) -> Any:
    estate = _get(Estate, estate_id)
    if request.method == "GET":
        return _estate_page(estate, {}, {})
    _require_manager()
    _csrf()
    values = {k: request.form.get(k, "") for k in ("code", "name", "address")}
    try:
        places.update_estate(estate, **values, user_id=current_user.id)
        db.session.commit()
    except places.PlaceError as exc:
        db.session.rollback()
        return _estate_page(_get(Estate, estate_id), exc.errors, values)
    flash(_("Saved."))
    return redirect(url_for("property.estate_detail", estate_id=estate.id))


@bp.route("/estates/<int:estate_id>/buildings", methods=["POST"])
def building_add(estate_id: int) -> Any:
    estate = _get(Estate, estate_id)
    _require_manager()
    _csrf()
    values = {"building_name": request.form.get("building_name", "")}
    try:
        places.create_building(estate, values["building_name"], user_id=current_user.id)
        db.session.commit()
    except places.PlaceError as exc:
        db.session.rollback()
        return _estate_page(_get(Estate, estate_id), exc.errors, values)
    flash(_("Building added."))
    return redirect(url_for("property.estate_detail", estate_id=estate.id))


@bp.route("/buildings/<int:building_id>/units", methods=["POST"])
def unit_add(building_id: int) -> Any:
    building = _get(Building, building_id)
    _require_manager()
    _csrf()
    keys = ("label", "floor", "area")
    values = {k: request.form.get(k, "") for k in keys}
    try:
        unit = places.create_unit(building, **values, user_id=current_user.id)
        db.session.commit()
    except places.PlaceError as exc:
        db.session.rollback()
        errors = {f"{k}-{building_id}": v for k, v in exc.errors.items()}
        shown = {f"{k}-{building_id}": v for k, v in values.items()}
        return _estate_page(_get(Estate, building.estate_id), errors, shown)
    flash(_("Unit %(label)s added.", label=unit.label))
    return redirect(url_for("property.estate_detail", estate_id=building.estate_id))


@bp.route("/buildings/<int:building_id>/bulk", methods=["POST"])
def units_bulk(building_id: int) -> Any:
    building = _get(Building, building_id)
    _require_manager()
    _csrf()
    keys = ("floor_from", "floor_to", "room_from", "room_to", "prefix")
    values = {k: request.form.get(k, "") for k in keys}
    try:
        added = places.bulk_units(building, **values, user_id=current_user.id)
        db.session.commit()
    except places.PlaceError as exc:
        db.session.rollback()
        errors = {f"{k}-{building_id}": v for k, v in exc.errors.items()}
        shown = {f"{k}-{building_id}": v for k, v in values.items()}
        return _estate_page(_get(Estate, building.estate_id), errors, shown)
    flash(_("%(n)s units added.", n=added))
    return redirect(url_for("property.estate_detail", estate_id=building.estate_id))


# --- units and residents ------------------------------------------------------------------------


def _unit_page(unit: Unit, errors: dict[str, str], values: dict[str, str]) -> Any:
    path = places.unit_path(unit.id)
    assert path is not None
    residents = db.session.execute(
        select(Residence, Customer.name, Customer.phone)
        .join(Customer, Customer.id == Residence.customer_id)
        .where(Residence.unit_id == unit.id)
        .order_by(Residence.until.is_not(None), Residence.id)
    ).all()
    complaints = db.session.execute(
        select(ServiceTicket, Complaint.category_id, Complaint.repeat_of_id)
        .join(Complaint, Complaint.ticket_id == ServiceTicket.id)
        .where(Complaint.unit_id == unit.id)
        .order_by(ServiceTicket.created_at.desc(), ServiceTicket.id.desc())
        .limit(UNIT_COMPLAINTS)
    ).all()
    names = _class_names()
    q = (request.args.get("q") or "").strip()[:100]
    found = []
    if q and "\x00" not in q:
        found = db.session.execute(
            select(Customer.id, Customer.name, Customer.phone, Customer.code)
            .where(search_clause(q))
            .order_by(Customer.name, Customer.id)
            .limit(20)
        ).all()
    from core import access

    html = render_template(
        "property/unit.html",
        unit=unit,
        building=path[1],
        estate=path[2],
        residents=residents,
        complaints=complaints,
        class_names=names,
        found=found,
        q=q,
        errors=errors,
        values=values,
        roles=[(r, places.role_label(r)) for r in places.ROLES],
        role_label=places.role_label,
        state_label=places.state_label,
        phone=access.phone,
        can_link=role() in SERVICE_ROLES,
    )
    return html, 422 if errors else 200


def _class_names() -> dict[int, str]:
    rows = db.session.execute(
        select(ComplaintClass.id, ComplaintClass.name, ComplaintClass.name_en)
    ).all()
    return {r.id: pick(r.name_en or r.name, r.name) for r in rows}


@bp.route("/units/<int:unit_id>")
def unit_detail(unit_id: int) -> Any:
    return _unit_page(_get(Unit, unit_id), {}, {})


@bp.route("/units/<int:unit_id>/residents", methods=["POST"])
def resident_link(unit_id: int) -> Any:
    unit = _get(Unit, unit_id)
    _require_service()
    _csrf()
    values = {k: request.form.get(k, "") for k in ("customer_id", "role", "since")}
    since: date | None = None
    errors: dict[str, str] = {}
    if values["since"].strip():
        try:
            since = date.fromisoformat(values["since"].strip())
        except ValueError:
            errors["since"] = _("Enter a date as YYYY-MM-DD.")
    if errors:
        return _unit_page(unit, errors, values)
    try:
        places.link_resident(
            unit,
            _int(values["customer_id"]),
            values["role"].strip(),
            since,
            user_id=current_user.id,
        )
        db.session.commit()
    except places.PlaceError as exc:
        db.session.rollback()
        return _unit_page(_get(Unit, unit_id), exc.errors, values)
    flash(_("Resident linked."))
    return redirect(url_for("property.unit_detail", unit_id=unit.id))


@bp.route("/residences/<int:residence_id>/end", methods=["POST"])
def residence_end(residence_id: int) -> Any:
    residence = _get(Residence, residence_id)
    _require_service()
    _csrf()
    places.end_residence(residence, svc.utcnow().date(), user_id=current_user.id)
    db.session.commit()
    flash(_("Marked as moved out."))
    return redirect(url_for("property.unit_detail", unit_id=residence.unit_id))


# --- settings -----------------------------------------------------------------------------------


def _settings_page(errors: dict[str, str] | None = None, values: dict[str, Any] | None = None):
    entries = list(
        db.session.scalars(
            select(ComplaintClass).order_by(
                ComplaintClass.level, ComplaintClass.position, ComplaintClass.id
            )
        )
    )
    by_level: dict[str, list[ComplaintClass]] = defaultdict(list)
    problems: dict[int | None, list[ComplaintClass]] = defaultdict(list)
    for e in entries:
        if e.level == "problem":
            problems[e.parent_id].append(e)
        else:
            by_level[e.level].append(e)
    names = {e.id: svc.class_name(e) for e in entries}
    rules = list(
        db.session.scalars(select(DispatchRule).order_by(DispatchRule.position, DispatchRule.id))
    )
    slas = list(db.session.scalars(select(SlaRule).order_by(SlaRule.category_id, SlaRule.priority)))
    estates_ = list(db.session.scalars(select(Estate).order_by(Estate.code)))
    buildings = db.session.execute(
        select(Building.id, Building.name, Estate.name)
        .join(Estate, Estate.id == Building.estate_id)
        .order_by(Estate.code, Building.name)
    ).all()
    from core.web.ticket_forms import members

    current = svc.settings()
    shown = values or {
        "followup_window_hours": current["followup_window_hours"],
        "repeat_window_days": current["repeat_window_days"],
        "public_rate_limit": current["public_rate_limit"],
        "photo_max_mb": round(int(current["photo_max_bytes"]) / 1024 / 1024, 1),
    }
    html = render_template(
        "property/settings.html",
        places_=by_level["place"],
        categories=by_level["category"],
        problems=problems,
        names=names,
        rules=rules,
        slas=slas,
        default_sla=svc.DEFAULT_SLA,
        priorities=[(p, _priority_label(p)) for p in PRIORITIES],
        priority_label=_priority_label,
        estates=estates_,
        estate_names={e.id: e.name for e in estates_},
        buildings=buildings,
        building_names={b[0]: f"{b[2]} {b[1]}" for b in buildings},
        teams=list(db.session.execute(select(Team.id, Team.name).order_by(Team.name)).all()),
        team_names=dict(db.session.execute(select(Team.id, Team.name)).all()),
        members=members(),
        user_names=dict(db.session.execute(select(User.id, User.name)).all()) if rules else {},
        errors=errors or {},
        values=shown,
    )
    return html, 422 if errors else 200


def _priority_label(value: str) -> str:
    from core.choices import label

    return label("ticket_priority", value)


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Any:
    _require_manager()
    if request.method == "GET":
        return _settings_page()
    _csrf()
    form = request.form
    values = {
        k: (form.get(k) or "").strip()
        for k in (
            "followup_window_hours",
            "repeat_window_days",
            "public_rate_limit",
            "photo_max_mb",
        )
    }
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    for key, lo, hi in (("followup_window_hours", 1, 720), ("repeat_window_days", 0, 365)):
        raw = values[key]
        if not (raw.isascii() and raw.isdigit() and lo <= int(raw) <= hi):
            errors[key] = _("Enter a whole number from %(lo)s to %(hi)s.", lo=lo, hi=hi)
        else:
            out[key] = int(raw)
    if not RATE_RE.match(values["public_rate_limit"]):
        errors["public_rate_limit"] = _("Write it as a number per minute, hour or day: 5/hour.")
    else:
        out["public_rate_limit"] = values["public_rate_limit"].replace(" ", "")
    try:
        mb = float(values["photo_max_mb"])
    except ValueError:
        mb = -1.0
    if not 0.1 <= mb <= 20:
        errors["photo_max_mb"] = _("Enter a size from 0.1 to 20 MB.")
    else:
        out["photo_max_bytes"] = int(mb * 1024 * 1024)
    if errors:
        return _settings_page(errors, values)
    svc.save_settings(out, user_id=current_user.id)
    db.session.commit()
    flash(_("Settings saved."))
    return redirect(url_for("property.settings"))


@bp.route("/settings/classes", methods=["POST"])
def class_add() -> Any:
    _require_manager()
    _csrf()
    level = (request.form.get("level") or "").strip()
    name = (request.form.get("name") or "").strip()
    name_en = (request.form.get("name_en") or "").strip()
    parent_id = _int(request.form.get("parent_id"))
    key = f"new-{level}"
    errors: dict[str, str] = {}
    if level not in LEVELS:
        abort(400, _("Unknown classifier level."))
    if not name or len(name) > 80 or "\x00" in name:
        errors[key] = _("Give a name of at most 80 characters.")
    if len(name_en) > 80:
        errors[key] = _("Give a name of at most 80 characters.")
    parent = None
    if level == "problem":
        parent = db.session.get(ComplaintClass, parent_id) if parent_id else None
        if (
            parent is None
            or parent.level != "category"
            or parent.company_id != svc.require_company()
        ):
            errors[key] = _("Choose the category the problem belongs to.")
    if not errors:
        same_parent = (
            ComplaintClass.parent_id == parent.id
            if parent is not None
            else ComplaintClass.parent_id.is_(None)
        )
        taken = db.session.scalar(
            select(ComplaintClass.id).where(
                ComplaintClass.level == level, ComplaintClass.name == name, same_parent
            )
        )
        if taken is not None:
            errors[key] = _("There is an entry of this name.")
    if errors:
        return _settings_page(errors)
    position = db.session.scalar(
        select(func.coalesce(func.max(ComplaintClass.position), 0) + 1).where(
            ComplaintClass.level == level
        )
    )
    code = f"{level[:3]}_{secrets.token_hex(5)}"
    entry = ComplaintClass(
        level=level,
        code=code,
        name=name,
        name_en=name_en or None,
        parent_id=parent.id if parent else None,
        position=position or 0,
    )
    db.session.add(entry)
    db.session.flush()
    audit.record("create", ComplaintClass.__tablename__, entry.id, {"level": level, "name": name})
    db.session.commit()
    flash(_("Added: %(name)s.", name=name))
    return redirect(url_for("property.settings") + "#classifier")


@bp.route("/settings/classes/<int:class_id>", methods=["POST"])
def class_edit(class_id: int) -> Any:
    _require_manager()
    entry = _get(ComplaintClass, class_id)
    _csrf()
    action = request.form.get("action") or "rename"
    if action in ("deactivate", "activate"):
        entry.active = action == "activate"
    else:
        name = (request.form.get("name") or "").strip()
        name_en = (request.form.get("name_en") or "").strip()
        if not name or len(name) > 80 or "\x00" in name or len(name_en) > 80:
            return _settings_page({f"class-{entry.id}": _("Give a name of at most 80 characters.")})
        entry.name, entry.name_en = name, name_en or None
    audit.record("update", ComplaintClass.__tablename__, entry.id, {"action": action})
    db.session.commit()
    flash(_("Saved."))
    return redirect(url_for("property.settings") + "#classifier")


@bp.route("/settings/rules", methods=["POST"])
def rule_add() -> Any:
    _require_manager()
    _csrf()
    form = request.form
    errors: dict[str, str] = {}
    company_id = svc.require_company()

    def pick_id(key: str, model: Any, check: Any = None) -> int | None:
        raw = (form.get(key) or "").strip()
        if not raw:
            return None
        value = _int(raw)
        row = db.session.get(model, value) if value else None
        if row is None or row.company_id != company_id or (check and not check(row)):
            errors[f"rule-{key}"] = _("Choose one of the list.")
            return None
        return value

    category_id = pick_id("category_id", ComplaintClass, lambda r: r.level == "category")
    estate_id = pick_id("estate_id", Estate)
    building_id = pick_id("building_id", Building)
    team_id = pick_id("team_id", Team)
    if team_id is None and "rule-team_id" not in errors:
        errors["rule-team_id"] = _("Choose the team.")
    assignee_id = None
    raw = (form.get("assignee_id") or "").strip()
    if raw:
        assignee_id = _int(raw)
        from core.web.ticket_forms import members

        if assignee_id not in {m[0] for m in members()}:
            errors["rule-assignee_id"] = _("Choose one of the list.")
    if building_id and estate_id:
        building = db.session.get(Building, building_id)
        if building is not None and building.estate_id != estate_id:
            errors["rule-building_id"] = _("The building is not in the chosen estate.")
    if errors:
        return _settings_page(errors)
    if building_id and not estate_id:
        estate_id = db.session.get(Building, building_id).estate_id  # type: ignore[union-attr]
    position = db.session.scalar(select(func.coalesce(func.max(DispatchRule.position), 0) + 1))
    rule = DispatchRule(
        category_id=category_id,
        estate_id=estate_id,
        building_id=building_id,
        team_id=team_id,
        assignee_id=assignee_id,
        position=position or 0,
    )
    db.session.add(rule)
    db.session.flush()
    audit.record("create", DispatchRule.__tablename__, rule.id, {"team_id": team_id})
    db.session.commit()
    flash(_("Dispatch rule added."))
    return redirect(url_for("property.settings") + "#dispatch")


@bp.route("/settings/rules/<int:rule_id>/delete", methods=["POST"])
def rule_delete(rule_id: int) -> Any:
    _require_manager()
    rule = _get(DispatchRule, rule_id)
    _csrf()
    audit.record("delete", DispatchRule.__tablename__, rule.id, {"team_id": rule.team_id})
    db.session.delete(rule)
    db.session.commit()
    flash(_("Dispatch rule removed."))
    return redirect(url_for("property.settings") + "#dispatch")


@bp.route("/settings/sla", methods=["POST"])
def sla_save() -> Any:
    """Add an SLA rule, or change the one the company has for that category and priority."""
    _require_manager()
    _csrf()
    form = request.form
    errors: dict[str, str] = {}
    category_id = None
    raw = (form.get("category_id") or "").strip()
    if raw:
        category_id = _int(raw)
        entry = db.session.get(ComplaintClass, category_id) if category_id else None
        if entry is None or entry.level != "category" or entry.company_id != svc.require_company():
            errors["sla-category_id"] = _("Choose one of the list.")
    priority = (form.get("priority") or "").strip()
    if priority not in PRIORITIES:
        errors["sla-priority"] = _("Choose one of the list.")
    minutes: dict[str, int] = {}
    for key in ("response_minutes", "resolution_minutes"):
        text = (form.get(key) or "").strip()
        if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 525600):
            errors[f"sla-{key}"] = _("Enter minutes from 1 to 525600.")
        else:
            minutes[key] = int(text)
    if len(minutes) == 2 and minutes["resolution_minutes"] < minutes["response_minutes"]:
        errors["sla-resolution_minutes"] = _(
            "The resolution time may not be shorter than the response time."
        )
    if errors:
        return _settings_page(errors)
    rule = db.session.scalar(
        select(SlaRule).where(
            SlaRule.priority == priority,
            SlaRule.category_id == category_id if category_id else SlaRule.category_id.is_(None),
        )
    )
    created = rule is None
    if rule is None:
        rule = SlaRule(category_id=category_id, priority=priority, **minutes)
        db.session.add(rule)
    else:
        rule.response_minutes = minutes["response_minutes"]
        rule.resolution_minutes = minutes["resolution_minutes"]
    db.session.flush()
    audit.record(
        "create" if created else "update",
        SlaRule.__tablename__,
        rule.id,
        {"priority": priority, "category_id": category_id, **minutes},
    )
    db.session.commit()
    flash(_("SLA rule saved."))
    return redirect(url_for("property.settings") + "#sla")


@bp.route("/settings/sla/<int:rule_id>/delete", methods=["POST"])
def sla_delete(rule_id: int) -> Any:
    _require_manager()
    rule = _get(SlaRule, rule_id)
    _csrf()
    audit.record("delete", SlaRule.__tablename__, rule.id, {"priority": rule.priority})
    db.session.delete(rule)
    db.session.commit()
    flash(_("SLA rule removed."))
    return redirect(url_for("property.settings") + "#sla")
