"""Residents' pages without login: the complaint form and the tracking page.

Routes (``/p/<company code>/property/…``, :data:`bp`; the core scopes each request to the
company of the URL and answers 404 for an unknown company or one without the plugin):

``GET /complaint``
    Step 1: where the resident lives (estate and building, one select grouped by estate).
``GET|POST /complaint?building_id=<id>``
    Step 2: the form -- name, mobile phone, unit, complaint or repair, place, category,
    problem, description, emergency, an optional photo. A valid post finds the resident by
    phone (or makes a new resident of the unit), files the complaint on the
    ``property_complaint`` workflow (intake channel ``web``), keeps the photo, commits once
    and redirects to the tracking page. Refused input re-renders the form with a message at
    each field (422) and writes nothing: a refused photo means no complaint either. Posts are
    limited per company and client address by the company's ``public_rate_limit`` (429).
``GET /track/<tracking code>``
    The complaint's number, category, time, current state and every step it went through
    (from the workflow history), the team handling it, the action taken and the follow-up
    score. It shows nothing of other residents, no staff names and the phone masked.
``GET /track/<tracking code>/photos/<id>``
    A photo of that complaint (and of no other).

The form view is exempt from the app-wide CSRF check and checks the token itself: it first
raises the request's body limit so that a photo as large as the company allows is read, and a
body beyond even that becomes a message at the photo field instead of a 413 page.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from sqlalchemy import select
from werkzeug.exceptions import RequestEntityTooLarge

from core import choices as core_choices
from core.extend import (
    PublicBlueprint,
    check_csrf,
    csrf_checked_in_view,
    db,
    rate_allow,
    require_company,
)
from core.models import Interaction, ServiceTicket, Team, WorkflowHistory
from core.tenancy import company_zone
from core.workflow import workflow_for
from plugins.property import complaints
from plugins.property.complaints import ComplaintError
from plugins.property.models import (
    Building,
    Complaint,
    ComplaintClass,
    ComplaintPhoto,
    Estate,
    Unit,
)

bp = PublicBlueprint(
    "property_public", __name__, url_prefix="/property", template_folder="templates"
)

#: A mainland China mobile number (after spaces, dashes and a +86 prefix are removed).
MOBILE = re.compile(r"1[3-9]\d{9}")
#: Room for the form's text fields around the photo when the body limit is raised.
FORM_SLACK = 1024 * 1024
NAME_MAX = 80
DESCRIPTION_MAX = 2000
TEXT_FIELDS = ("name", "phone", "unit_id", "type", "place_id", "category_id", "problem_id")


def blueprints() -> list[Any]:
    return [bp]


# --- helpers ----------------------------------------------------------------------------------


def normalize_phone(raw: str) -> str:
    """The digits of a phone number as typed: without spaces, dashes and a ``+86`` prefix."""
    phone = re.sub(r"[\s\-()]", "", raw or "")
    if phone.startswith("+86"):
        phone = phone[3:]
    elif phone.startswith("0086"):
        phone = phone[4:]
    elif phone.startswith("86") and len(phone) == 13:
        phone = phone[2:]
    return phone


def mask_phone(phone: str | None) -> str:
    """``138****1234``: the first three and last four digits."""
    phone = phone or ""
    if len(phone) < 8:
        return "*" * len(phone)
    return f"{phone[:3]}****{phone[-4:]}"


def mask_name(name: str | None) -> str:
    """``王*``, ``欧阳**``: the first character and a star for each other one (at most two)."""
    name = (name or "").strip()
    if not name:
        return ""
    return name[0] + "*" * min(max(len(name) - 1, 1), 2)


def _zone() -> ZoneInfo:
    return company_zone()


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else ""


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _building(value: Any) -> Building | None:
    building_id = _int(value)
    if building_id is None:
        return None
    building = db.session.get(Building, building_id)
    if building is None or building.company_id != require_company():
        return None
    return building


def _buildings_by_estate() -> list[tuple[Estate, list[Building]]]:
    rows = db.session.execute(
        select(Estate, Building)
        .join(Building, Building.estate_id == Estate.id)
        .order_by(Estate.name, Estate.id, Building.name, Building.id)
    ).all()
    grouped: dict[int, tuple[Estate, list[Building]]] = {}
    for estate, building in rows:
        grouped.setdefault(estate.id, (estate, []))[1].append(building)
    return list(grouped.values())


def _units(building: Building) -> list[Unit]:
    return list(
        db.session.scalars(
            select(Unit).where(Unit.building_id == building.id).order_by(Unit.label, Unit.id)
        )
    )


def _body_limit() -> int:
    app_limit = int(current_app.config.get("MAX_CONTENT_LENGTH") or 0)
    return max(app_limit, int(complaints.settings()["photo_max_bytes"]) + FORM_SLACK)


def _photo_too_large() -> str:
    limit = int(complaints.settings()["photo_max_bytes"])
    return _("The photo is larger than %(mb)s MB.", mb=round(limit / 1024 / 1024, 1))


def _photo_problem(data: bytes) -> str | None:
    """What :func:`complaints.add_photo` will refuse, said before anything is written (so that
    the resident sees every problem of the form at once)."""
    if len(data) > int(complaints.settings()["photo_max_bytes"]):
        return _photo_too_large()
    if complaints.image_type(data) is None:
        return _("Send a photo as a JPEG, PNG or WebP image.")
    return None


def _message(message: str, status: int, detail: str | None = None) -> ResponseReturnValue:
    return render_template("property/public_message.html", message=message, detail=detail), status


# --- the complaint form -------------------------------------------------------------------------


def _form_context(building: Building) -> dict[str, Any]:
    categories = complaints.classes("category")
    problems = complaints.classes("problem")
    by_category: dict[int | None, list[ComplaintClass]] = {}
    for problem in problems:
        by_category.setdefault(problem.parent_id, []).append(problem)
    return {
        "building": building,
        "estate": db.session.get(Estate, building.estate_id),
        "units": _units(building),
        "places": complaints.classes("place"),
        "categories": categories,
        "problem_groups": [(c, by_category.get(c.id, [])) for c in categories],
        "types": [
            (code, core_choices.label("ticket_type", code)) for code in complaints.TYPE_CODES
        ],
        "class_name": complaints.class_name,
    }


def _render_form(
    building: Building, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> ResponseReturnValue:
    return (
        render_template(
            "property/public_complaint.html",
            values=values,
            errors=errors,
            **_form_context(building),
        ),
        status,
    )


def _validate(values: dict[str, Any], building: Building) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = _("Give your name.")
    elif len(values["name"]) > NAME_MAX:
        errors["name"] = _("At most %(n)d characters.", n=NAME_MAX)
    if not values["phone"]:
        errors["phone"] = _("Give your mobile phone number.")
    elif not MOBILE.fullmatch(values["phone"]):
        errors["phone"] = _("Give a mainland mobile number of 11 digits, like 13812345678.")
    unit = db.session.get(Unit, _int(values["unit_id"]) or 0) if values["unit_id"] else None
    if not values["unit_id"]:
        errors["unit_id"] = _("Choose your unit.")
    elif unit is None or unit.building_id != building.id or unit.company_id != building.company_id:
        errors["unit_id"] = _("Choose one of the list.")
    if values["type"] not in complaints.TYPE_CODES:
        errors["type"] = _("Choose one of the list.")
    if not values["category_id"]:
        errors["category_id"] = _("Choose what it is about.")
    description = values["description"]
    if not description:
        errors["description"] = _("Tell us what happened.")
    elif len(description) > DESCRIPTION_MAX:
        errors["description"] = _("At most %(n)d characters.", n=DESCRIPTION_MAX)
    return errors


def _subject(values: dict[str, Any]) -> str:
    """The ticket's subject for staff: the problem (or category) and the start of the text."""
    entry = None
    for key in ("problem_id", "category_id"):
        if values[key]:
            entry = db.session.get(ComplaintClass, _int(values[key]) or 0)
            if entry is not None:
                break
    text = " ".join(values["description"].split())
    head = f"{entry.name}：" if entry is not None else ""
    return (head + text)[:80] if text else head.rstrip("：")


@bp.route("/complaint", methods=["GET", "POST"])
def complaint() -> ResponseReturnValue:
    building_arg = request.args.get("building_id")
    building = _building(building_arg)
    if building is None:
        groups = _buildings_by_estate()
        if not groups:
            return _message(
                _("Complaints cannot be filed online here yet."),
                200,
                _("Please call the property service centre."),
            )
        if (
            request.method == "GET"
            and not building_arg
            and len(groups) == 1
            and (len(groups[0][1]) == 1)
        ):
            return redirect(url_for(".complaint", building_id=groups[0][1][0].id))
        error = _("Choose one of the list.") if building_arg or request.method == "POST" else None
        return (
            render_template("property/public_place.html", groups=groups, error=error),
            422 if error else 200,
        )
    if request.method == "GET":
        return _render_form(building, {"type": "property_complaint"}, {})

    request.max_content_length = _body_limit()
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        errors = {
            "photo": _photo_too_large(),
            "form": _("The photo was too large to receive; please fill in the form again."),
        }
        return _render_form(building, {"type": "property_complaint"}, errors, 422)
    check_csrf(form.get("csrf_token"))

    values: dict[str, Any] = {key: (form.get(key) or "").strip() for key in TEXT_FIELDS}
    values["phone"] = normalize_phone(values["phone"])
    values["description"] = (form.get("description") or "").strip()
    values["emergency"] = form.get("emergency") == "1"
    errors = _validate(values, building)
    upload = files.get("photo")
    data = b""
    if upload is not None and upload.filename:
        data = upload.read()
        problem = _photo_problem(data)
        if problem:
            errors["photo"] = problem
    if errors:
        return _render_form(building, values, errors, 422)

    key = f"{require_company()}:{request.remote_addr}"
    if not rate_allow("property.complaint", str(complaints.settings()["public_rate_limit"]), key):
        return _message(
            _("Too many complaints were sent from your address; please try again later."),
            429,
            _("If it is urgent, please call the property service centre."),
        )
    unit_id = int(values["unit_id"])
    try:
        customer_id = complaints.resident_for(values["name"], values["phone"], unit_id)
        ticket = complaints.file_complaint(
            customer_id=customer_id,
            subject=_subject(values),
            description=values["description"],
            unit_id=unit_id,
            place_id=_int(values["place_id"]),
            category_id=_int(values["category_id"]),
            problem_id=_int(values["problem_id"]),
            type=values["type"],
            emergency=values["emergency"],
            intake_channel="web",
            reporter_name=values["name"],
            reporter_phone=values["phone"],
        )
        if data:
            complaints.add_photo(ticket, data)
        code = db.session.get(Complaint, ticket.id).tracking_code  # type: ignore[union-attr]
        db.session.commit()
    except ComplaintError as exc:
        db.session.rollback()
        field = exc.field if exc.field in (*TEXT_FIELDS, "photo") else "description"
        return _render_form(building, values, {field or "form": exc.message}, 422)
    return redirect(url_for(".track", code=code))


csrf_checked_in_view(complaint)


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(exc: RequestEntityTooLarge) -> ResponseReturnValue:
    """A body beyond the limit read outside the form view: a page that says so, not a crash."""
    return _message(_photo_too_large(), 413)


# --- tracking -----------------------------------------------------------------------------------


def _complaint_for(code: str) -> Complaint:
    if not code or len(code) > 40:
        abort(404)
    found = db.session.scalar(
        select(Complaint).where(
            Complaint.tracking_code == code, Complaint.company_id == require_company()
        )
    )
    if found is None:
        abort(404)
    return found


def tracking_steps(ticket: ServiceTicket, zone: ZoneInfo) -> list[dict[str, Any]]:
    """The steps the resident sees: the filing, each workflow step (its transition and the
    state it reached) and each follow-up score, oldest first."""
    flow = workflow_for(ticket)

    def state_text(name: str) -> str:
        try:
            return flow.state(name).text
        except KeyError:
            return name

    steps: list[tuple[datetime, int, dict[str, Any]]] = [
        (
            ticket.created_at,
            0,
            {
                "kind": "filed",
                "at": _local(ticket.created_at, zone),
                "step": _("Submitted"),
                "state": state_text(flow.initial),
                "state_name": flow.initial,
            },
        )
    ]
    history = db.session.execute(
        select(
            WorkflowHistory.id,
            WorkflowHistory.transition,
            WorkflowHistory.to_state,
            WorkflowHistory.created_at,
        )
        .where(
            WorkflowHistory.subject_type == ServiceTicket.__tablename__,
            WorkflowHistory.subject_id == ticket.id,
            WorkflowHistory.company_id == ticket.company_id,
        )
        .order_by(WorkflowHistory.created_at, WorkflowHistory.id)
    ).all()
    for row_id, name, to_state, at in history:
        transition = flow.get(name)
        steps.append(
            (
                at,
                row_id,
                {
                    "kind": "step",
                    "transition": name,
                    "at": _local(at, zone),
                    "step": transition.text if transition is not None else name,
                    "state": state_text(to_state),
                    "state_name": to_state,
                },
            )
        )
    visits = db.session.execute(
        select(Interaction.occurred_at, Interaction.customer_score)
        .where(
            Interaction.ticket_id == ticket.id,
            Interaction.kind == "follow_up",
            Interaction.company_id == ticket.company_id,
        )
        .order_by(Interaction.occurred_at, Interaction.id)
    ).all()
    for at, score in visits:
        steps.append(
            (
                at,
                -1,  # a follow-up comes before the reopening it caused at the same moment
                {
                    "kind": "followup",
                    "at": _local(at, zone),
                    "step": _("Follow-up"),
                    "score": score,
                },
            )
        )
    steps.sort(key=lambda item: (item[0], item[1]))
    return [step for _at, _order, step in steps]


@bp.get("/track/<code>")
def track(code: str) -> ResponseReturnValue:
    found = _complaint_for(code)
    ticket = db.session.get(ServiceTicket, found.ticket_id)
    if ticket is None:
        abort(404)
    zone = _zone()
    flow = workflow_for(ticket)
    try:
        state = flow.state(ticket.state).text
    except KeyError:
        state = ticket.state
    building = db.session.get(Building, found.building_id) if found.building_id else None
    estate = db.session.get(Estate, building.estate_id) if building is not None else None
    team = db.session.get(Team, ticket.team_id) if ticket.team_id else None
    steps = tracking_steps(ticket, zone)
    scores = [s["score"] for s in steps if s["kind"] == "followup"]
    photos = db.session.scalars(
        select(ComplaintPhoto.id)
        .where(ComplaintPhoto.ticket_id == ticket.id)
        .order_by(ComplaintPhoto.id)
    ).all()
    html = render_template(
        "property/public_track.html",
        complaint=found,
        ticket=ticket,
        code=code,
        type_label=core_choices.label("ticket_type", ticket.type),
        category=complaints.class_name(
            db.session.get(ComplaintClass, found.category_id) if found.category_id else None
        ),
        problem=complaints.class_name(
            db.session.get(ComplaintClass, found.problem_id) if found.problem_id else None
        ),
        submitted=_local(ticket.created_at, zone),
        state=state,
        steps=steps,
        team=team.name if team is not None else None,
        last_score=scores[-1] if scores else None,
        place=" ".join(
            x for x in (estate.name if estate else "", building.name if building else "") if x
        ),
        reporter=mask_name(found.reporter_name),
        phone=mask_phone(found.reporter_phone),
        photos=photos,
    )
    response = Response(html)
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.get("/track/<code>/photos/<int:photo_id>")
def photo(code: str, photo_id: int) -> ResponseReturnValue:
    found = _complaint_for(code)
    row = db.session.get(ComplaintPhoto, photo_id)
    if row is None or row.ticket_id != found.ticket_id or row.company_id != found.company_id:
        abort(404)
    response = Response(row.data, mimetype=row.content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Disposition"] = "inline"
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
