"""Complaints and repairs (投诉/报事报修): intake, dispatch, SLA, resolution with root cause,
follow-up (回访), reopening and repeat detection.

A complaint is a core service ticket of type ``property_complaint`` or ``property_repair``;
the workflow :data:`WORKFLOW` selects those types, so every path that opens a ticket (the
property intake form, the public form, the core's new-ticket page, the API) puts it on these
steps. The state names are the core's, so the core's list, board, SLA badge, reports and
follow-up work unchanged; the labels and the steps differ::

    new 已受理 --dispatch--> assigned 已派单 --start--> in_progress 处理中
        --resolve (root cause + action)--> resolved 已解决·待回访
        --(good follow-up, or close)--> closed 已关闭
    resolved/closed --reopen--> in_progress      (a follow-up scored at or below the
                                                  company's threshold reopens, core.followup)
    new/assigned --cancel--> cancelled

* **Resolve** requires a root cause (choice ``property_root_cause``) and the action taken;
  **close** is refused while the root cause is missing (the Pareto of root causes is only as
  good as this rule).
* **Clocks** (:func:`obligation_kinds`), counted around the clock (a property service desk
  answers day and night): ``property.response`` (on site / first response,
  met when work starts) and ``property.resolution`` from intake, with targets from the
  company's :class:`~plugins.property.models.SlaRule` per category and priority (else
  :data:`DEFAULT_SLA`); ``property.followup`` from resolution, the follow-up window
  (:func:`settings` ``followup_window_hours``, default 48). At 75 % of a target the assignee
  is warned; at the deadline the team lead (the team's manager) is told; at 150 % the
  company's managers and administrators.
* **Dispatch** (:func:`suggest_dispatch`): the most specific :class:`DispatchRule` for the
  complaint's category and building proposes a team and a person at intake; staff confirm it
  with the *dispatch* step (and may change both), which notifies the person.
* **Repeat complaints**: a complaint about the same unit and category as one filed within
  ``repeat_window_days`` (default 30) is linked to it (``repeat_of_id``) and flagged.
* **Follow-up**: the core's follow-up form records it; a score above the threshold closes a
  resolved complaint (:func:`followup_saved`), one at or below reopens it.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import or_, select

from core import audit, clocks, notify, workflow
from core.extend import (
    Choice,
    ObligationKind,
    State,
    Transition,
    Workflow,
    db,
    require_company,
    utcnow,
)
from core.models import CompanySetting, Customer, Membership, ServiceTicket, Team, User
from plugins.property.models import (
    Building,
    Complaint,
    ComplaintClass,
    ComplaintPhoto,
    DispatchRule,
    SlaRule,
    Unit,
)

WORKFLOW = "property_complaint"
TYPES = (
    ("property_complaint", "Property complaint", "物业投诉"),
    ("property_repair", "Repair request", "报事报修"),
)
TYPE_CODES = tuple(t[0] for t in TYPES)
SERVICE_ROLES = ("admin", "manager", "service_agent")

ROOT_CAUSES = (
    ("equipment_ageing", "Equipment ageing", "设备老化"),
    ("maintenance_missed", "Maintenance not done", "维保不到位"),
    ("construction_defect", "Construction defect", "工程质量缺陷"),
    ("staff_service", "Staff service", "员工服务问题"),
    ("process_gap", "Process gap", "流程制度缺失"),
    ("contractor", "Contractor", "外包方问题"),
    ("resident_behaviour", "Residents' behaviour", "住户行为"),
    ("third_party", "Third party (utilities, city)", "第三方原因"),
    ("design", "Design", "规划设计缺陷"),
    ("other", "Other", "其他"),
)
ROOT_CAUSE_CODES = tuple(r[0] for r in ROOT_CAUSES)

#: (response, resolution) working minutes per priority when no SLA rule says otherwise.
DEFAULT_SLA: dict[str, tuple[int, int]] = {
    "urgent": (30, 240),
    "high": (120, 1440),
    "normal": (1440, 4320),
    "low": (2880, 7200),
}

SETTING_KEY = "property"
DEFAULTS: dict[str, Any] = {
    "followup_window_hours": 48,
    "repeat_window_days": 30,
    "public_rate_limit": "5/hour",
    "photo_max_bytes": 5 * 1024 * 1024,
}

#: The default classifier a company starts with (plugin enabled): places, categories and
#: the problems under each category, as ``(code, 中文, English)``.
PLACES = (
    ("home", "户内", "Inside the home"),
    ("common", "公共区域", "Common area"),
    ("parking", "停车场", "Car park"),
    ("outside", "小区环境", "Grounds"),
)
CATEGORIES: tuple[tuple[str, str, str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "cleaning",
        "保洁",
        "Cleaning",
        (
            ("rubbish", "垃圾未及时清运", "Rubbish not collected"),
            ("stairs", "楼道不洁", "Dirty stairs"),
        ),
    ),
    (
        "security",
        "安保",
        "Security",
        (("access", "门禁/陌生人进入", "Access control"), ("patrol", "巡逻不到位", "Patrols")),
    ),
    (
        "repairs",
        "维修",
        "Repairs",
        (
            ("leak", "漏水", "Water leak"),
            ("power", "停电/电路故障", "Power fault"),
            ("lift", "电梯故障", "Lift breakdown"),
        ),
    ),
    (
        "noise",
        "噪音",
        "Noise",
        (("renovation", "装修噪音", "Renovation noise"), ("night", "夜间扰民", "Night noise")),
    ),
    (
        "fees",
        "收费",
        "Fees",
        (("bill", "物业费账单疑问", "Bill query"), ("parking_fee", "停车费争议", "Parking fee")),
    ),
    (
        "greening",
        "绿化",
        "Greening",
        (("trim", "绿植未修剪", "Plants not trimmed"), ("damage", "绿地被破坏", "Damaged lawn")),
    ),
    (
        "facilities",
        "公共设施",
        "Facilities",
        (("lights", "路灯/楼道灯不亮", "Lights out"), ("play", "健身/游乐设施损坏", "Playground")),
    ),
    (
        "attitude",
        "服务态度",
        "Staff attitude",
        (("rude", "态度恶劣", "Rude staff"), ("slow", "推诿拖延", "Passing the buck")),
    ),
    (
        "parking",
        "停车",
        "Parking",
        (("occupied", "车位被占", "Space occupied"), ("fire_lane", "占用消防通道", "Fire lane")),
    ),
    (
        "illegal_build",
        "违章搭建",
        "Illegal construction",
        (("roof", "屋顶/露台搭建", "Roof structure"), ("yard", "圈占公共绿地", "Fenced green")),
    ),
)


class ComplaintError(ValueError):
    """Refused input; ``field`` names the form field the message belongs to (or ``None``)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# --- declarations (hooks) -------------------------------------------------------------------


def choices() -> list[Choice]:
    return [
        *(Choice("ticket_type", *t) for t in TYPES),
        *(Choice("property_root_cause", *r) for r in ROOT_CAUSES),
    ]


def _root_cause_given(ticket: Any, inputs: Mapping[str, Any]) -> tuple[str, str] | None:
    code = str(inputs.get("root_cause") or "").strip()
    if code not in ROOT_CAUSE_CODES:
        return ("root_cause", _("Choose the root cause."))
    if not str(inputs.get("action") or "").strip():
        return ("action", _("Say what was done about it."))
    return None


def _team_given(ticket: Any, inputs: Mapping[str, Any]) -> tuple[str, str] | None:
    try:
        team = db.session.get(Team, int(inputs.get("team_id") or 0))
    except (TypeError, ValueError):
        team = None
    if team is None or team.company_id != ticket.company_id:
        return ("team_id", _("Choose one of the list."))
    person = inputs.get("assignee_id")
    if person not in (None, ""):
        try:
            role = db.session.scalar(
                select(Membership.role).where(
                    Membership.user_id == int(person), Membership.company_id == ticket.company_id
                )
            )
        except (TypeError, ValueError):
            role = None
        if role is None or role == "viewer":
            return ("assignee_id", _("Choose one of the list."))
    return None


def _root_cause_recorded(ticket: Any, inputs: Mapping[str, Any]) -> tuple[str, str] | None:
    complaint = db.session.get(Complaint, ticket.id)
    if complaint is None or not complaint.root_cause:
        return (
            "root_cause",
            _("A complaint is closed only with its root cause: resolve it with one first."),
        )
    return None


def is_complaint(ticket: Any) -> bool:
    """Whether ``ticket`` is a property complaint or repair (on this plugin's workflow)."""
    return getattr(ticket, "workflow", None) == WORKFLOW or (
        getattr(ticket, "workflow", None) is None and getattr(ticket, "type", None) in TYPE_CODES
    )


def workflows() -> list[Workflow]:
    return [
        Workflow(
            name=WORKFLOW,
            model=ServiceTicket,
            initial="new",
            label="Property complaint",
            label_zh="物业投诉",
            selects=lambda ticket: ticket.type in TYPE_CODES,
            states=(
                State("new", "Received", "已受理"),
                State("assigned", "Dispatched", "已派单"),
                State("in_progress", "In progress", "处理中"),
                State("resolved", "Resolved, awaiting follow-up", "已解决·待回访", "done"),
                State("closed", "Closed", "已关闭", "done"),
                State("cancelled", "Cancelled", "已取消", "cancelled"),
            ),
            transitions=(
                Transition(
                    "dispatch",
                    ("new", "assigned"),
                    "assigned",
                    "Dispatch",
                    "派单",
                    SERVICE_ROLES,
                    inputs=("team_id",),
                    guard=_team_given,
                ),
                Transition("start", ("new", "assigned"), "in_progress", "On site", "到场处理"),
                Transition(
                    "resolve",
                    ("assigned", "in_progress"),
                    "resolved",
                    "Resolve",
                    "办结",
                    inputs=("comment", "root_cause", "action"),
                    guard=_root_cause_given,
                ),
                Transition(
                    "close",
                    ("resolved",),
                    "closed",
                    "Close",
                    "关闭",
                    SERVICE_ROLES,
                    guard=_root_cause_recorded,
                ),
                Transition(
                    "reopen",
                    ("resolved", "closed"),
                    "in_progress",
                    "Reopen",
                    "重新打开",
                    inputs=("comment",),
                ),
                Transition(
                    "cancel",
                    ("new", "assigned"),
                    "cancelled",
                    "Cancel",
                    "取消",
                    SERVICE_ROLES,
                    inputs=("comment",),
                ),
            ),
        )
    ]


def sla_minutes(ticket: ServiceTicket) -> tuple[int, int]:
    """(response, resolution) working minutes for ``ticket``: the company's rule for its
    category and priority, else its rule for the priority, else :data:`DEFAULT_SLA`."""
    complaint = db.session.get(Complaint, ticket.id) if ticket.id else None
    category_id = complaint.category_id if complaint is not None else None
    rules = db.session.scalars(
        select(SlaRule).where(
            SlaRule.priority == ticket.priority,
            or_(SlaRule.category_id.is_(None), SlaRule.category_id == category_id),
        )
    ).all()
    rules.sort(key=lambda r: r.category_id is None)
    if rules:
        return rules[0].response_minutes, rules[0].resolution_minutes
    return DEFAULT_SLA.get(ticket.priority, DEFAULT_SLA["normal"])


def obligation_kinds() -> list[ObligationKind]:
    common = {
        "model": ServiceTicket,
        "link": "/tickets/{id}",
        "applies": is_complaint,
        "team": "team_id",
        "around_the_clock": True,
    }
    return [
        ObligationKind(
            name="property.response",
            target=lambda t: sla_minutes(t)[0],
            label="On site / first response",
            label_zh="到场响应",
            met_states=("in_progress", "resolved", "closed", "cancelled"),
            **common,
        ),
        ObligationKind(
            name="property.resolution",
            target=lambda t: sla_minutes(t)[1],
            label="Resolution",
            label_zh="办结时限",
            met_states=("resolved", "closed", "cancelled"),
            **common,
        ),
        ObligationKind(
            name="property.followup",
            target=lambda t: int(settings()["followup_window_hours"]) * 60,
            label="Follow-up (回访)",
            label_zh="回访时限",
            met_states=("closed", "cancelled"),
            pause_states=("new", "assigned", "in_progress"),
            auto_start=False,
            **common,
        ),
    ]


# --- settings and defaults ------------------------------------------------------------------


def settings() -> dict[str, Any]:
    """The company's property settings (company setting ``property``) over :data:`DEFAULTS`."""
    stored = db.session.scalar(
        select(CompanySetting.value).where(CompanySetting.key == SETTING_KEY)
    )
    out = dict(DEFAULTS)
    if isinstance(stored, dict):
        out.update({k: v for k, v in stored.items() if k in DEFAULTS})
    return out


def save_settings(values: Mapping[str, Any], user_id: int | None = None) -> None:
    """Store the company's property settings (known keys only); the caller commits."""
    row = db.session.scalar(select(CompanySetting).where(CompanySetting.key == SETTING_KEY))
    payload = {**settings(), **{k: v for k, v in values.items() if k in DEFAULTS}}
    if row is None:
        db.session.add(CompanySetting(key=SETTING_KEY, value=payload))
    else:
        row.value = payload
    audit.record(
        "update", "company_setting", None, {"key": SETTING_KEY, **payload}, user_id=user_id
    )


def seed_classifier() -> None:
    """Give the company in scope the default classifier (idempotent: codes it has are kept)."""
    have = {
        (r.level, r.code)
        for r in db.session.execute(select(ComplaintClass.level, ComplaintClass.code))
    }
    for n, (code, name, name_en) in enumerate(PLACES):
        if ("place", code) not in have:
            db.session.add(
                ComplaintClass(level="place", code=code, name=name, name_en=name_en, position=n)
            )
    for n, (code, name, name_en, problems) in enumerate(CATEGORIES):
        category = db.session.scalar(
            select(ComplaintClass).where(
                ComplaintClass.level == "category", ComplaintClass.code == code
            )
        )
        if category is None:
            category = ComplaintClass(
                level="category", code=code, name=name, name_en=name_en, position=n
            )
            db.session.add(category)
            db.session.flush()
        for m, (pcode, pname, pname_en) in enumerate(problems):
            if ("problem", pcode) not in have:
                db.session.add(
                    ComplaintClass(
                        level="problem",
                        code=pcode,
                        name=pname,
                        name_en=pname_en,
                        parent_id=category.id,
                        position=m,
                    )
                )
    db.session.flush()


def classes(level: str, parent_id: int | None = None) -> list[ComplaintClass]:
    """Active classifier entries of ``level`` (problems: of category ``parent_id``)."""
    stmt = select(ComplaintClass).where(
        ComplaintClass.level == level, ComplaintClass.active.is_(True)
    )
    if parent_id is not None:
        stmt = stmt.where(ComplaintClass.parent_id == parent_id)
    return list(db.session.scalars(stmt.order_by(ComplaintClass.position, ComplaintClass.id)))


def class_name(entry: ComplaintClass | None) -> str:
    """The entry's name in the user's language (the Chinese name when there is no English)."""
    from core.i18n import pick

    if entry is None:
        return ""
    return pick(entry.name_en or entry.name, entry.name)


# --- intake ---------------------------------------------------------------------------------


def new_tracking_code() -> str:
    """A random, unguessable code for the resident's tracking link."""
    return secrets.token_urlsafe(16)


def _entry(entry_id: int | None, level: str, field: str) -> ComplaintClass | None:
    if entry_id in (None, ""):
        return None
    try:
        entry = db.session.get(ComplaintClass, int(entry_id))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        entry = None
    if entry is None or entry.level != level or entry.company_id != require_company():
        raise ComplaintError(_("Choose one of the list."), field=field)
    return entry


def _unit(unit_id: int | None) -> Unit | None:
    if unit_id in (None, ""):
        return None
    try:
        unit = db.session.get(Unit, int(unit_id))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        unit = None
    if unit is None or unit.company_id != require_company():
        raise ComplaintError(_("Choose one of the list."), field="unit_id")
    return unit


@dataclass(frozen=True)
class Suggestion:
    """Who a dispatch rule proposes: a team and maybe a person."""

    team_id: int | None
    assignee_id: int | None
    rule_id: int | None


def suggest_dispatch(category_id: int | None, building_id: int | None) -> Suggestion:
    """The most specific dispatch rule for a category and a building (see :class:`DispatchRule`);
    without any, the company's first team with no person."""
    estate_id = (
        db.session.scalar(select(Building.estate_id).where(Building.id == building_id))
        if building_id
        else None
    )
    rules = db.session.scalars(
        select(DispatchRule).where(
            or_(DispatchRule.category_id.is_(None), DispatchRule.category_id == category_id),
            or_(DispatchRule.estate_id.is_(None), DispatchRule.estate_id == estate_id),
            or_(DispatchRule.building_id.is_(None), DispatchRule.building_id == building_id),
        )
    ).all()
    if rules:
        best = min(
            rules,
            key=lambda r: (
                r.building_id is None,
                r.estate_id is None,
                r.category_id is None,
                r.position,
                r.id,
            ),
        )
        return Suggestion(best.team_id, best.assignee_id, best.id)
    return Suggestion(None, None, None)


def find_repeat(unit_id: int | None, category_id: int | None, at: datetime) -> int | None:
    """The newest complaint about the same unit and category filed within the repeat window
    before ``at`` (its ticket id), or ``None``."""
    if unit_id is None or category_id is None:
        return None
    since = at - timedelta(days=int(settings()["repeat_window_days"]))
    return db.session.scalar(
        select(Complaint.ticket_id)
        .join(ServiceTicket, ServiceTicket.id == Complaint.ticket_id)
        .where(
            Complaint.unit_id == unit_id,
            Complaint.category_id == category_id,
            ServiceTicket.created_at >= since,
            ServiceTicket.created_at <= at,
        )
        .order_by(ServiceTicket.created_at.desc(), ServiceTicket.id.desc())
        .limit(1)
    )


def file_complaint(
    *,
    customer_id: int,
    subject: str,
    description: str | None = None,
    unit_id: int | None = None,
    place_id: int | None = None,
    category_id: int | None = None,
    problem_id: int | None = None,
    type: str = "property_complaint",
    priority: str = "normal",
    emergency: bool = False,
    paid: bool = False,
    intake_channel: str = "phone",
    reporter_name: str | None = None,
    reporter_phone: str | None = None,
    contact_id: int | None = None,
    user_id: int | None = None,
    at: datetime | None = None,
) -> ServiceTicket:
    """Open a complaint or repair ticket with its property half; the caller commits.

    Checks the classifier entries and the unit belong to the company (:class:`ComplaintError`
    with the field otherwise), makes an emergency ``urgent``, proposes the team and person of
    the best dispatch rule (the *dispatch* step confirms them), links a repeat complaint, and
    starts the response and resolution clocks.
    """
    at = at or utcnow()
    if type not in TYPE_CODES:
        raise ComplaintError(_("Choose one of the list."), field="type")
    subject = (subject or "").strip()
    if not subject:
        raise ComplaintError(_("Give a short subject."), field="subject")
    unit = _unit(unit_id)
    place = _entry(place_id, "place", "place_id")
    category = _entry(category_id, "category", "category_id")
    problem = _entry(problem_id, "problem", "problem_id")
    if problem is not None and category is not None and problem.parent_id != category.id:
        raise ComplaintError(_("This problem is not of the chosen category."), field="problem_id")
    if problem is not None and category is None:
        category = db.session.get(ComplaintClass, problem.parent_id)
    if emergency:
        priority = "urgent"
    building_id = unit.building_id if unit is not None else None
    suggestion = suggest_dispatch(category.id if category else None, building_id)
    ticket = ServiceTicket(
        customer_id=customer_id,
        contact_id=contact_id,
        type=type,
        priority=priority,
        intake_channel=intake_channel,
        subject=subject[:200],
        description=(description or "").strip() or None,
        team_id=suggestion.team_id,
        assignee_id=suggestion.assignee_id,
        created_at=at,
        workflow=WORKFLOW,
        state="new",
    )
    db.session.add(ticket)
    db.session.flush()
    complaint = Complaint(
        ticket_id=ticket.id,
        unit_id=unit.id if unit else None,
        building_id=building_id,
        place_id=place.id if place else None,
        category_id=category.id if category else None,
        problem_id=problem.id if problem else None,
        emergency=bool(emergency),
        paid=bool(paid),
        reporter_name=(reporter_name or "").strip()[:80] or None,
        reporter_phone=(reporter_phone or "").strip()[:40] or None,
        repeat_of_id=find_repeat(unit.id if unit else None, category.id if category else None, at),
        tracking_code=new_tracking_code(),
        created_at=at,
    )
    db.session.add(complaint)
    db.session.flush()
    clocks.start_all(ticket, at=at)
    audit.record(
        "create",
        "service_ticket",
        ticket.id,
        {"property": True, "repeat_of": complaint.repeat_of_id, "rule": suggestion.rule_id},
        user_id=user_id,
    )
    return ticket


def ensure_complaint(ticket: ServiceTicket) -> Complaint:
    """The property half of ``ticket``, created empty when the ticket was opened elsewhere
    (the core's new-ticket page, the API)."""
    complaint = db.session.get(Complaint, ticket.id)
    if complaint is None:
        complaint = Complaint(ticket_id=ticket.id, tracking_code=new_tracking_code())
        db.session.add(complaint)
        db.session.flush()
    return complaint


def classify(
    ticket: ServiceTicket,
    *,
    unit_id: int | None,
    place_id: int | None,
    category_id: int | None,
    problem_id: int | None,
    emergency: bool,
    paid: bool,
    user_id: int | None = None,
) -> Complaint:
    """Set or correct where and what a complaint is about; the caller commits."""
    unit = _unit(unit_id)
    place = _entry(place_id, "place", "place_id")
    category = _entry(category_id, "category", "category_id")
    problem = _entry(problem_id, "problem", "problem_id")
    if problem is not None and (category is None or problem.parent_id != category.id):
        raise ComplaintError(_("This problem is not of the chosen category."), field="problem_id")
    complaint = ensure_complaint(ticket)
    complaint.unit_id = unit.id if unit else None
    complaint.building_id = unit.building_id if unit else None
    complaint.place_id = place.id if place else None
    complaint.category_id = category.id if category else None
    complaint.problem_id = problem.id if problem else None
    complaint.emergency, complaint.paid = bool(emergency), bool(paid)
    if emergency and ticket.priority != "urgent":
        ticket.priority = "urgent"
    if complaint.repeat_of_id is None:
        found = find_repeat(complaint.unit_id, complaint.category_id, ticket.created_at)
        complaint.repeat_of_id = found if found != ticket.id else None
    audit.record(
        "update",
        "property_complaint",
        ticket.id,
        {"category_id": complaint.category_id, "unit_id": complaint.unit_id},
        user_id=user_id,
    )
    return complaint


# --- steps ------------------------------------------------------------------------------------


def dispatch(
    ticket: ServiceTicket,
    user: User,
    *,
    team_id: int | None,
    assignee_id: int | None,
    comment: str | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> None:
    """Send the complaint to a team and person (the *dispatch* step); the caller commits."""
    if team_id in (None, ""):
        raise ComplaintError(_("Choose the team."), field="team_id")
    team = db.session.get(Team, int(team_id))  # type: ignore[arg-type]
    if team is None or team.company_id != ticket.company_id:
        raise ComplaintError(_("Choose one of the list."), field="team_id")
    if assignee_id not in (None, ""):
        role = db.session.scalar(
            select(Membership.role).where(
                Membership.user_id == int(assignee_id),  # type: ignore[arg-type]
                Membership.company_id == ticket.company_id,
            )
        )
        if role is None or role == "viewer":
            raise ComplaintError(_("Choose one of the list."), field="assignee_id")
        ticket.assignee_id = int(assignee_id)  # type: ignore[arg-type]
    else:
        ticket.assignee_id = None
    ticket.team_id = team.id
    workflow.transition(
        ticket,
        "dispatch",
        user=user,
        inputs={"comment": comment or "", "team_id": team.id, "assignee_id": ticket.assignee_id},
        expected_version=expected_version,
        at=at,
    )
    if ticket.assignee_id is not None and ticket.assignee_id != user.id:
        notify.notify_users(
            [ticket.assignee_id],
            "ticket.assigned",
            f"/tickets/{ticket.id}",
            lambda: _(
                "Complaint #%(id)s “%(subject)s” was dispatched to you by %(name)s.",
                id=ticket.id,
                subject=ticket.subject,
                name=user.name,
            ),
        )


def resolve(
    ticket: ServiceTicket,
    user: User,
    *,
    root_cause: str,
    action: str,
    comment: str | None = None,
    expected_version: int | None = None,
    at: datetime | None = None,
) -> None:
    """Resolve with the root cause and the action taken (the *resolve* step); the caller
    commits. The comment, when empty, is the action."""
    workflow.transition(
        ticket,
        "resolve",
        user=user,
        inputs={
            "comment": (comment or "").strip() or (action or "").strip(),
            "root_cause": root_cause,
            "action": action,
        },
        expected_version=expected_version,
        at=at,
    )


def after_transition(
    subject: Any, from_state: str, to_state: str, at: datetime, inputs: Mapping[str, Any]
) -> None:
    """Keep the root cause and action of a resolution, count reopenings, run the follow-up
    window from each resolution."""
    if not isinstance(subject, ServiceTicket) or not is_complaint(subject):
        return
    complaint = ensure_complaint(subject)
    if to_state == "assigned" and inputs.get("team_id"):
        # The dispatch step taken through the API names the team (and person) in its inputs.
        subject.team_id = int(inputs["team_id"])
        if "assignee_id" in inputs:
            subject.assignee_id = int(inputs["assignee_id"]) if inputs["assignee_id"] else None
    if to_state == "resolved":
        complaint.root_cause = str(inputs.get("root_cause") or "").strip() or None
        complaint.action = str(inputs.get("action") or "").strip() or None
        kind = next(k for k in obligation_kinds() if k.name == "property.followup")
        kind = _registered(kind.name) or kind
        clocks.restart(kind, subject, at)
    elif to_state == "in_progress" and from_state in ("resolved", "closed"):
        complaint.reopen_count += 1


def _registered(name: str) -> ObligationKind | None:
    from core.plugins import current

    return current().registry.obligation_kinds.get(name)


def followup_saved(interaction: Any, created: bool) -> None:
    """A follow-up scored above the company's threshold closes a resolved complaint."""
    from core import followup

    if not created or interaction.kind != "follow_up" or interaction.ticket_id is None:
        return
    ticket = db.session.get(ServiceTicket, interaction.ticket_id)
    if ticket is None or not is_complaint(ticket) or ticket.state != "resolved":
        return
    if (interaction.customer_score or 0) <= followup.threshold():
        return
    complaint = db.session.get(Complaint, ticket.id)
    if complaint is None or not complaint.root_cause:
        return
    user = db.session.get(User, interaction.user_id)
    workflow.transition(
        ticket,
        "close",
        user=user,
        inputs={"comment": _("Closed after a satisfied follow-up.")},
        at=interaction.occurred_at,
    )


# --- photos -----------------------------------------------------------------------------------

#: Leading bytes of the image types a photo may have.
SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def image_type(data: bytes) -> str | None:
    """``image/jpeg``, ``image/png`` or ``image/webp`` by the file's own bytes (never by its
    name or the browser's word), else ``None``."""
    for magic, kind in SIGNATURES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def add_photo(ticket: ServiceTicket, data: bytes) -> ComplaintPhoto:
    """Keep a photo of the complaint: refused (:class:`ComplaintError` at ``photo``) when it is
    larger than the company's limit or not a JPEG, PNG or WebP image; the caller commits."""
    limit = int(settings()["photo_max_bytes"])
    if len(data) > limit:
        raise ComplaintError(
            _("The photo is larger than %(mb)s MB.", mb=round(limit / 1024 / 1024, 1)),
            field="photo",
        )
    kind = image_type(data)
    if kind is None:
        raise ComplaintError(_("Send a photo as a JPEG, PNG or WebP image."), field="photo")
    photo = ComplaintPhoto(ticket_id=ticket.id, content_type=kind, size=len(data), data=data)
    db.session.add(photo)
    return photo


# --- residents --------------------------------------------------------------------------------


def resident_for(name: str, phone: str, unit_id: int | None, at: datetime | None = None) -> int:
    """The customer id of the resident with ``phone`` (or a new resident customer named
    ``name``, linked to the unit); used by the public form, where people do not log in."""
    from plugins.property.models import Residence

    phone = (phone or "").strip()
    found = db.session.scalar(
        select(Customer.id).where(Customer.phone == phone).order_by(Customer.id).limit(1)
    )
    if found is not None:
        return found
    customer = Customer(
        name=(name or "").strip()[:200] or phone,
        phone=phone,
        kind="resident",
        status="active",
    )
    db.session.add(customer)
    db.session.flush()
    if unit_id is not None:
        db.session.add(Residence(unit_id=unit_id, customer_id=customer.id, role="owner"))
    audit.record("create", "customer", customer.id, {"source": "property_public_form"})
    return customer.id


# --- hook functions gathered by the plugin (see plugins/property/__init__.py) ------------------


def interaction_saved(interaction: Any, created: bool) -> None:
    followup_saved(interaction, created)


def enabled(company: Any) -> None:
    """Seed the default classifier for a company that enables the plugin."""
    from core.extend import company_scope

    with company_scope(company.id):
        seed_classifier()


def personal_data(customer: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """The person's units and complaints, for their copy of their data (core.privacy)."""
    from plugins.property.models import Residence

    residences = db.session.execute(
        select(Residence.role, Residence.since, Residence.until, Unit.label, Building.name)
        .join(Unit, Unit.id == Residence.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .where(Residence.customer_id == customer.id)
    ).all()
    filed = db.session.execute(
        select(Complaint, ServiceTicket.subject)
        .join(ServiceTicket, ServiceTicket.id == Complaint.ticket_id)
        .where(ServiceTicket.customer_id == customer.id)
        .order_by(Complaint.ticket_id)
    ).all()
    return [
        (
            "property_residences",
            [
                {"building": b, "unit": u, "role": r, "since": s, "until": t}
                for r, s, t, u, b in residences
            ],
        ),
        (
            "property_complaints",
            [
                {
                    "ticket": c.ticket_id,
                    "subject": subject,
                    "reporter_name": c.reporter_name,
                    "reporter_phone": c.reporter_phone,
                    "root_cause": c.root_cause,
                    "action": c.action,
                    "created_at": c.created_at,
                }
                for c, subject in filed
            ],
        ),
    ]


def erase_personal_data(customer: Any) -> None:
    """Blank the reporter's name and phone on the person's complaints; delete their photos."""
    from sqlalchemy import delete, update

    tickets = select(ServiceTicket.id).where(ServiceTicket.customer_id == customer.id)
    db.session.execute(
        update(Complaint)
        .where(Complaint.ticket_id.in_(tickets))
        .values(reporter_name=None, reporter_phone=None)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        delete(ComplaintPhoto)
        .where(ComplaintPhoto.ticket_id.in_(tickets))
        .execution_options(synchronize_session=False)
    )
