"""Complaint pages (``/property/complaints…``) and the property box on a ticket's page.

Pages (on :data:`plugins.property.blueprint.bp`):

- ``/property/complaints/new`` -- staff intake: the resident (found by name or phone), the
  unit, place/category/problem, type, priority, emergency, paid, intake channel, subject,
  description and a photo; files through :func:`plugins.property.complaints.file_complaint`
  and goes to the ticket's page (``/tickets/<id>``), telling who the rules suggest;
- ``/property/complaints`` -- the list: filters estate, building, category, state, repeat
  only, emergency only, overdue (any clock breached); keyset pages, newest first, two queries
  whatever the page size;
- the box on the core's ticket page (:func:`panels`, complaints only): unit and estate,
  classification (with a form to correct it), flags, the repeat link, photos, the resident's
  tracking link, and the forms of the two steps the core's page cannot draw: **dispatch**
  (``#dispatch-form``: ``team_id``, ``assignee_id``, prefilled from the dispatch rules) and
  **resolve** (``#resolve-form``: ``root_cause``, ``action``, ``comment``). They post to
  ``/property/complaints/<id>/dispatch|resolve|classify``; a refusal redraws the ticket page
  with the message at its field (422; 409 when the ticket changed meanwhile);
- ``/property/photos/<id>`` -- a complaint photo, for signed-in members.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import (
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import exists, select
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.routing import BuildError

from core import access, keyset, workflow
from core.choices import options
from core.customers import search_clause
from core.db import capped_count
from core.extend import Panel, Sort, db, public_url, utcnow
from core.models import Customer, ServiceTicket, Team, User
from core.models.clock import Obligation
from core.web.helpers import role
from plugins.property import complaints as svc
from plugins.property import places
from plugins.property.blueprint import SERVICE_ROLES, bp
from plugins.property.models import (
    Building,
    Complaint,
    ComplaintClass,
    ComplaintPhoto,
    Estate,
    Unit,
)

SORT = Sort("created", ServiceTicket.created_at, True, False, "datetime")
TRUE_VALUES = ("1", "true", "on", "yes")
STATES = ("new", "assigned", "in_progress", "resolved", "closed", "cancelled")
INTAKE_KEYS = (
    "customer_id",
    "unit_id",
    "place_id",
    "category_id",
    "problem_id",
    "type",
    "priority",
    "intake_channel",
    "subject",
    "description",
    "emergency",
    "paid",
)
#: The most units the intake form's unit select offers (the resident's own come first).
MAX_UNIT_OPTIONS = 3000


class ActionForm(FlaskForm):
    """A form that only carries the CSRF token."""


def _csrf() -> None:
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))


def _require_service() -> None:
    if role() not in SERVICE_ROLES:
        abort(403, _("Your role (%(role)s) cannot take or work complaints.", role=role() or "-"))


def _int(raw: Any) -> int | None:
    text = str(raw or "").strip()
    if text.isascii() and text.isdigit() and 0 < int(text) <= places.MAX_ID:
        return int(text)
    return None


def _class_names() -> dict[int, str]:
    rows = db.session.execute(
        select(ComplaintClass.id, ComplaintClass.name, ComplaintClass.name_en)
    ).all()
    from core.i18n import pick

    return {r.id: pick(r.name_en or r.name, r.name) for r in rows}


# --- intake -------------------------------------------------------------------------------------


def _unit_options(customer_id: int | None) -> tuple[list[tuple[str, list[tuple[int, str]]]], list]:
    """Units grouped by ``estate building`` (one query), and the customer's own units."""
    rows = db.session.execute(
        select(Unit.id, Unit.label, Building.name, Estate.name)
        .join(Building, Building.id == Unit.building_id)
        .join(Estate, Estate.id == Building.estate_id)
        .order_by(Estate.code, Building.name, Unit.floor, Unit.label)
        .limit(MAX_UNIT_OPTIONS)
    ).all()
    groups: dict[str, list[tuple[int, str]]] = {}
    for uid, label, bname, ename in rows:
        groups.setdefault(f"{ename} {bname}", []).append((uid, label))
    homes = places.customer_units(customer_id) if customer_id else []
    return list(groups.items()), homes


def _intake_context(values: Mapping[str, Any], errors: Mapping[str, str]) -> dict[str, Any]:
    customer_id = _int(values.get("customer_id"))
    customer = (
        db.session.scalar(select(Customer).where(Customer.id == customer_id))
        if customer_id
        else None
    )
    q = (request.args.get("q") or "").strip()[:100]
    found = []
    if q and "\x00" not in q and customer is None:
        found = db.session.execute(
            select(Customer.id, Customer.name, Customer.phone, Customer.code)
            .where(search_clause(q))
            .order_by(Customer.name, Customer.id)
            .limit(20)
        ).all()
    groups, homes = _unit_options(customer.id if customer else None)
    categories = svc.classes("category")
    problems = svc.classes("problem")
    return {
        "values": values,
        "errors": errors,
        "customer": customer,
        "found": found,
        "q": q,
        "unit_groups": groups,
        "homes": homes,
        "places_": [(e.id, svc.class_name(e)) for e in svc.classes("place")],
        "categories": [(e.id, svc.class_name(e)) for e in categories],
        "problems": [
            (
                c.id,
                svc.class_name(c),
                [(p.id, svc.class_name(p)) for p in problems if p.parent_id == c.id],
            )
            for c in categories
        ],
        "types": [(t[0], _type_label(t[0])) for t in svc.TYPES],
        "priorities": options("ticket_priority"),
        "intakes": options("intake_channel"),
        "phone": access.phone,
    }


def _type_label(value: str) -> str:
    from core.choices import label

    return label("ticket_type", value)


@bp.route("/complaints/new", methods=["GET", "POST"])
def complaint_new() -> Any:
    """Staff intake of a complaint or repair."""
    _require_service()
    if request.method == "GET":
        values: dict[str, Any] = {
            "customer_id": request.args.get("customer_id", ""),
            "type": "property_complaint",
            "priority": "normal",
            "intake_channel": "phone",
        }
        customer_id = _int(values["customer_id"])
        if customer_id:
            homes = places.customer_units(customer_id)
            if homes:
                values["unit_id"] = str(homes[0].unit.id)
        return render_template("property/complaint_form.html", **_intake_context(values, {}))
    _csrf()
    form = request.form
    values = {k: (form.get(k) or "").strip() for k in INTAKE_KEYS}
    errors: dict[str, str] = {}
    customer_id = _int(values["customer_id"])
    if (
        customer_id is None
        or db.session.scalar(select(Customer.id).where(Customer.id == customer_id)) is None
    ):
        errors["customer_id"] = _("Find the resident and choose them.")
    if values["priority"] not in {v for v, _t in options("ticket_priority")}:
        errors["priority"] = _("Choose one of the list.")
    if values["intake_channel"] not in {v for v, _t in options("intake_channel")}:
        errors["intake_channel"] = _("Choose one of the list.")
    photo = request.files.get("photo")
    data = b""
    if photo is not None and photo.filename:
        limit = int(svc.settings()["photo_max_bytes"])
        data = photo.stream.read(limit + 1)
    ticket = None
    if not errors:
        try:
            ticket = svc.file_complaint(
                customer_id=customer_id,  # type: ignore[arg-type]
                subject=values["subject"],
                description=values["description"],
                unit_id=_int(values["unit_id"]) if values["unit_id"] else None,
                place_id=values["place_id"] or None,  # type: ignore[arg-type]
                category_id=values["category_id"] or None,  # type: ignore[arg-type]
                problem_id=values["problem_id"] or None,  # type: ignore[arg-type]
                type=values["type"],
                priority=values["priority"],
                emergency=values["emergency"] in TRUE_VALUES,
                paid=values["paid"] in TRUE_VALUES,
                intake_channel=values["intake_channel"],
                user_id=current_user.id,
            )
            if values["unit_id"] and _int(values["unit_id"]) is None:
                raise svc.ComplaintError(_("Choose one of the list."), field="unit_id")
            if data:
                svc.add_photo(ticket, data)
            db.session.commit()
        except svc.ComplaintError as exc:
            db.session.rollback()
            errors[exc.field or "subject"] = exc.message
    if errors or ticket is None:
        return render_template(
            "property/complaint_form.html", **_intake_context(values, errors)
        ), 422
    suggestion = _suggestion_text(ticket.team_id, ticket.assignee_id)
    flash(
        _("Complaint #%(id)s filed.", id=ticket.id)
        + (" " + _("Suggested dispatch: %(who)s.", who=suggestion) if suggestion else "")
    )
    return redirect(url_for("tickets.detail", ticket_id=ticket.id))


def _suggestion_text(team_id: int | None, assignee_id: int | None) -> str:
    parts = []
    if team_id:
        parts.append(db.session.scalar(select(Team.name).where(Team.id == team_id)) or "")
    if assignee_id:
        parts.append(db.session.scalar(select(User.name).where(User.id == assignee_id)) or "")
    return " · ".join(p for p in parts if p)


# --- the list -----------------------------------------------------------------------------------


@dataclass
class ComplaintPage:
    rows: list[Any] = field(default_factory=list)
    count: int = 0
    capped: bool = False
    next_after: str | None = None
    errors: dict[str, str] = field(default_factory=dict)


def filter_conditions(args: Mapping[str, Any], errors: dict[str, str]) -> list[Any]:
    conds: list[Any] = []
    for param, column in (
        ("estate", Building.estate_id),
        ("building", Complaint.building_id),
        ("category", Complaint.category_id),
    ):
        raw = (args.get(param) or "").strip()
        if raw:
            value = _int(raw)
            if value is None:
                errors[param] = _("Must be a number (an id).")
            else:
                conds.append(column == value)
    state = (args.get("state") or "").strip()
    if state:
        if state == "open":
            conds.append(ServiceTicket.state.in_(("new", "assigned", "in_progress")))
        elif state not in STATES:
            errors["state"] = _("Must be one of: %(values)s.", values=", ".join(("open", *STATES)))
        else:
            conds.append(ServiceTicket.state == state)
    if (args.get("repeat") or "").lower() in TRUE_VALUES:
        conds.append(Complaint.repeat_of_id.is_not(None))
    if (args.get("emergency") or "").lower() in TRUE_VALUES:
        conds.append(Complaint.emergency.is_(True))
    if (args.get("overdue") or "").lower() in TRUE_VALUES:
        conds.append(_breached())
    q = (args.get("q") or "").strip()
    if "\x00" in q or len(q) > 100:
        errors["q"] = _("At most 100 characters of text.")
    elif q:
        conds.append(ServiceTicket.subject.contains(q, autoescape=True))
    return conds


def _breached() -> Any:
    status = Obligation.status_expr(utcnow())
    return exists().where(
        Obligation.subject_type == ServiceTicket.__tablename__,
        Obligation.subject_id == ServiceTicket.id,
        status == "breached",
    )


def complaint_page(args: Mapping[str, Any], size: int, cap: int) -> ComplaintPage:
    """One keyset page (newest first): a count and a page query, whatever the page size."""
    page = ComplaintPage()
    conds = filter_conditions(args, page.errors)
    position = None
    after = args.get("after") or ""
    if after:
        position = keyset.decode(SORT, after)
        if position is None:
            page.errors["after"] = _("Must be the link of the previous page.")
    if page.errors:
        return page
    stmt = (
        select(
            ServiceTicket,
            Complaint,
            Customer.name.label("customer"),
            Unit.label.label("unit"),
            Building.name.label("building"),
            Estate.name.label("estate"),
            _breached().label("overdue"),
        )
        .join(Complaint, Complaint.ticket_id == ServiceTicket.id)
        .join(Customer, Customer.id == ServiceTicket.customer_id)
        .outerjoin(Unit, Unit.id == Complaint.unit_id)
        .outerjoin(Building, Building.id == Complaint.building_id)
        .outerjoin(Estate, Estate.id == Building.estate_id)
        .where(*conds)
    )
    page.count, page.capped = capped_count(stmt, ServiceTicket.id, cap)
    if position is not None:
        stmt = stmt.where(keyset.after(SORT, ServiceTicket.id, *position))
    rows = db.session.execute(
        stmt.order_by(*keyset.order(SORT, ServiceTicket.id)).limit(size + 1)
    ).all()
    page.rows = rows[:size]
    if len(rows) > size:
        last = page.rows[-1][0]
        page.next_after = keyset.encode(last.created_at, last.id)
    return page


@bp.route("/complaints")
def complaints() -> Any:
    page = complaint_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    estates = list(db.session.execute(select(Estate.id, Estate.name).order_by(Estate.code)))
    buildings = list(
        db.session.execute(
            select(Building.id, Building.name, Estate.name)
            .join(Estate, Estate.id == Building.estate_id)
            .order_by(Estate.code, Building.name)
        )
    )
    html = render_template(
        "property/complaints.html",
        page=page,
        estates=estates,
        buildings=buildings,
        categories=[(e.id, svc.class_name(e)) for e in svc.classes("category")],
        class_names=_class_names(),
        states=[("open", _("Open")), *((s, places.state_label(s)) for s in STATES)],
        state_label=places.state_label,
        type_label=_type_label,
        can_file=role() in SERVICE_ROLES,
    )
    return html, 400 if page.errors else 200


# --- the box on the ticket's page ---------------------------------------------------------------


def panels(subject_type: str, subject: Any) -> list[Panel]:
    if subject_type != "service_ticket" or not svc.is_complaint(subject):
        return []
    return [Panel("Property", lambda: render_ticket_panel(subject), "物业", order=5)]


def tracking_url(code: str) -> str | None:
    try:
        return public_url("property_public.track", code=code, external=True)
    except (BuildError, RuntimeError, KeyError):
        return None


def render_ticket_panel(ticket: ServiceTicket) -> str:
    complaint = db.session.get(Complaint, ticket.id)
    path = places.unit_path(complaint.unit_id) if complaint else None
    errors: dict[str, str] = g.get("property_errors") or {}
    posted: dict[str, str] = g.get("property_values") or {}
    steps = {t.name for t in workflow.available(ticket, current_user)}
    can_work = role() in SERVICE_ROLES
    suggestion = (
        svc.suggest_dispatch(complaint.category_id, complaint.building_id)
        if complaint is not None and "dispatch" in steps
        else None
    )
    dispatch_values = {
        "team_id": posted.get("team_id")
        or str(ticket.team_id or (suggestion.team_id if suggestion else "") or ""),
        "assignee_id": posted.get("assignee_id")
        or str(ticket.assignee_id or (suggestion.assignee_id if suggestion else "") or ""),
    }
    photos = (
        list(
            db.session.execute(
                select(ComplaintPhoto.id, ComplaintPhoto.content_type, ComplaintPhoto.size)
                .where(ComplaintPhoto.ticket_id == ticket.id)
                .order_by(ComplaintPhoto.id)
            )
        )
        if complaint is not None
        else []
    )
    from core.web.ticket_forms import members

    categories = svc.classes("category")
    problems = svc.classes("problem")
    residents_units = []
    if can_work:
        residents_units = places.customer_units(ticket.customer_id)
    return render_template(
        "property/ticket_panel.html",
        ticket=ticket,
        complaint=complaint,
        path=path,
        class_names=_class_names(),
        errors=errors,
        posted=posted,
        steps=steps,
        can_work=can_work,
        suggestion=suggestion,
        dispatch_values=dispatch_values,
        teams=list(db.session.execute(select(Team.id, Team.name).order_by(Team.name))),
        members=members(),
        root_causes=[(code, _root_cause_label(code)) for code in svc.ROOT_CAUSE_CODES],
        root_cause_label=_root_cause_label,
        photos=photos,
        tracking=tracking_url(complaint.tracking_code) if complaint else None,
        places_=[(e.id, svc.class_name(e)) for e in svc.classes("place")],
        categories=[(e.id, svc.class_name(e)) for e in categories],
        problems=[
            (
                c.id,
                svc.class_name(c),
                [(p.id, svc.class_name(p)) for p in problems if p.parent_id == c.id],
            )
            for c in categories
        ],
        homes=residents_units,
    )


def _root_cause_label(code: str | None) -> str:
    from core.i18n import pick

    for value, label, label_zh in svc.ROOT_CAUSES:
        if value == code:
            return pick(label, label_zh)
    return code or ""


def _ticket(ticket_id: int) -> ServiceTicket:
    ticket = db.session.get(ServiceTicket, ticket_id) if 0 < ticket_id <= places.MAX_ID else None
    if ticket is None or ticket.company_id != svc.require_company() or not svc.is_complaint(ticket):
        abort(404)
    visible = db.session.scalar(select(Customer.id).where(Customer.id == ticket.customer_id))
    if visible is None:
        abort(403, _("This ticket's customer is not assigned to you or your team."))
    return ticket


def _redraw(ticket_id: int, status: int, errors: dict[str, str], values: Mapping[str, str]):
    """The core's ticket page again, this box showing ``errors`` at their fields."""
    g.property_errors, g.property_values = errors, dict(values)
    html, _status = current_app.view_functions["tickets.detail"](ticket_id)
    return html, status


def _version() -> int | None:
    raw = (request.form.get("version") or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _step(ticket_id: int, run: Any, values: Mapping[str, str], done: str) -> Any:
    try:
        run()
        db.session.commit()
    except svc.ComplaintError as exc:
        db.session.rollback()
        return _redraw(ticket_id, 422, {exc.field or "step": exc.message}, values)
    except (workflow.StaleRecord, StaleDataError):
        db.session.rollback()
        message = _("Someone else changed this ticket meanwhile; reload it and try again.")
        return _redraw(ticket_id, 409, {"step": message}, values)
    except workflow.WorkflowError as exc:
        db.session.rollback()
        return _redraw(ticket_id, exc.status, {exc.field or "step": exc.message}, values)
    flash(done)
    return redirect(url_for("tickets.detail", ticket_id=ticket_id))


@bp.route("/complaints/<int:ticket_id>/dispatch", methods=["POST"])
def complaint_dispatch(ticket_id: int) -> Any:
    _require_service()
    ticket = _ticket(ticket_id)
    _csrf()
    values = {k: (request.form.get(k) or "").strip() for k in ("team_id", "assignee_id", "comment")}
    return _step(
        ticket_id,
        lambda: svc.dispatch(
            ticket,
            current_user,
            team_id=values["team_id"] or None,  # type: ignore[arg-type]
            assignee_id=values["assignee_id"] or None,  # type: ignore[arg-type]
            comment=values["comment"][:2000],
            expected_version=_version(),
        ),
        values,
        _("Dispatched."),
    )


@bp.route("/complaints/<int:ticket_id>/resolve", methods=["POST"])
def complaint_resolve(ticket_id: int) -> Any:
    ticket = _ticket(ticket_id)
    if role() in (None, "viewer"):
        abort(403, _("Your role (%(role)s) cannot take or work complaints.", role=role() or "-"))
    _csrf()
    values = {k: (request.form.get(k) or "").strip() for k in ("root_cause", "action", "comment")}
    return _step(
        ticket_id,
        lambda: svc.resolve(
            ticket,
            current_user,
            root_cause=values["root_cause"],
            action=values["action"][:4000],
            comment=values["comment"][:2000],
            expected_version=_version(),
        ),
        values,
        _("Resolved; the follow-up call is next."),
    )


@bp.route("/complaints/<int:ticket_id>/classify", methods=["POST"])
def complaint_classify(ticket_id: int) -> Any:
    _require_service()
    ticket = _ticket(ticket_id)
    _csrf()
    keys = ("unit_id", "place_id", "category_id", "problem_id", "emergency", "paid")
    values = {k: (request.form.get(k) or "").strip() for k in keys}
    if values["unit_id"] and _int(values["unit_id"]) is None:
        return _redraw(ticket_id, 422, {"unit_id": _("Choose one of the list.")}, values)
    return _step(
        ticket_id,
        lambda: svc.classify(
            ticket,
            unit_id=_int(values["unit_id"]),
            place_id=values["place_id"] or None,  # type: ignore[arg-type]
            category_id=values["category_id"] or None,  # type: ignore[arg-type]
            problem_id=values["problem_id"] or None,  # type: ignore[arg-type]
            emergency=values["emergency"] in TRUE_VALUES,
            paid=values["paid"] in TRUE_VALUES,
            user_id=current_user.id,
        ),
        values,
        _("Classification saved."),
    )


@bp.route("/photos/<int:photo_id>")
def photo(photo_id: int) -> Response:
    row = db.session.get(ComplaintPhoto, photo_id) if 0 < photo_id <= places.MAX_ID else None
    if row is None or row.company_id != svc.require_company():
        abort(404)
    _ticket(row.ticket_id)
    response = Response(row.data, mimetype=row.content_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
