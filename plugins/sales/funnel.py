"""Sales part: the opportunity funnel (销售漏斗, DOMAIN §4).

Stages are company data (:class:`~plugins.sales.models.Stage`), seeded from :data:`DEFAULT_STAGES`
when the plugin is enabled: the seed's funnel from target customer to collecting payment, then
won and lost. The workflow ``sales_opportunity`` is built per company from those rows
(``Workflow.per_company``): from every open stage an opportunity may move to any other active
open stage (``to_<key>``, the kanban's move), be won (``win``) or lost (``lose``, which needs a
``lost_reason`` from the list ``sales_lost_reason``); a closed one may be reopened (``reopen``)
into the first active open stage. :func:`after_transition` stamps when the opportunity entered
its stage and when it closed.

An opportunity's probability is its stage's default unless set by hand
(:func:`probability_of`, :func:`probability_expr`). Calls about an opportunity are core
interactions (``subject_type = "sales_opportunity"``) whose outcome -- order, advance, continuation,
no-sale -- is the interaction extension field ``sales__call_outcome`` (:func:`log_call`).

Declared here: the lost reasons and the call outcome field, the workflow, the API resource
``sales_opportunities``, the reports ``sales_funnel`` and ``sales_forecast``, the menu entry, the
customer panel and timeline entries, and the demo. The pages are in :mod:`plugins.sales.web_funnel`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import marshmallow as ma
from flask import g, has_request_context, render_template
from flask_babel import gettext as _
from sqlalchemy import (
    Float,
    Integer,
    Numeric,
    and_,
    case,
    cast,
    extract,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from core import audit, interactions, workflow
from core import fields as ext
from core.api.errors import ApiError
from core.choices import options
from core.extend import (
    Choice,
    Field,
    MenuItem,
    Panel,
    ReportColumn,
    ReportParam,
    Resource,
    Sort,
    State,
    TimelineEntry,
    Transition,
    Workflow,
    company_scope,
    customer_joined,
    date_range,
    db,
    model_schema,
    require_company,
    utcnow,
)
from core.i18n import pick
from core.models import Channel, Contact, Customer, Interaction, Membership, User, WorkflowHistory
from core.reports import Report, minutes_between, months, within
from plugins.sales.models import Opportunity, OpportunityContact, Stage

WORKFLOW = "sales_opportunity"
#: ``subject_type`` of interactions, comments and history rows about an opportunity.
SUBJECT = Opportunity.__tablename__

#: ``(key, label, label_zh, probability %, outcome)`` in funnel order.
DEFAULT_STAGES: tuple[tuple[str, str, str, int, str], ...] = (
    ("target", "Target customer", "目标客户", 5, "open"),
    ("analysis", "Customer analysis", "客户分析", 10, "open"),
    ("trust", "Build trust", "建立信任", 20, "open"),
    ("needs", "Uncover needs", "挖掘需求", 35, "open"),
    ("value", "Present value", "呈现价值", 50, "open"),
    ("commitment", "Win commitment", "赢取承诺", 75, "open"),
    ("payment", "Collect payment", "回收账款", 90, "open"),
    ("won", "Won", "赢单", 100, "won"),
    ("lost", "Lost", "输单", 0, "lost"),
)

CATEGORY = {"open": "open", "won": "done", "lost": "cancelled"}
#: Funnel order of the outcomes: open stages (by sequence), then won, then lost.
OUTCOME_ORDER = {"open": 0, "won": 1, "lost": 2}

#: The "buying climate" (采购氛围) of key-account selling: who plays which part.
CLIMATE_ROLES: tuple[tuple[str, str, str], ...] = (
    ("purchaser", "Purchaser", "采购人员"),
    ("user", "User", "使用者"),
    ("gatekeeper", "Gatekeeper (technical/financial)", "技术/财务把关者"),
    ("decider", "Decider", "决策人"),
)

#: Why opportunities are lost: the choice list ``sales_lost_reason`` (plugins may add values).
LOST_REASON_LIST = "sales_lost_reason"
LOST_REASONS: tuple[tuple[str, str, str], ...] = (
    ("price", "Price", "价格"),
    ("competitor", "Went to a competitor", "选择了竞争对手"),
    ("no_budget", "No budget", "没有预算"),
    ("no_decision", "No decision", "迟迟不做决定"),
    ("timing", "Timing", "时机不对"),
    ("product_fit", "Product does not fit", "产品不匹配"),
    ("other", "Other", "其他"),
)

#: Outcomes of a sales call (DOMAIN §4): judge by the customer's actions, not words.
CALL_OUTCOMES: tuple[tuple[str, str, str], ...] = (
    ("order", "Order", "订单"),
    ("advance", "Advance (agreed next action)", "进展（约定下一步行动）"),
    ("continuation", "Continuation (no action agreed)", "暂时中止（无具体行动）"),
    ("no_sale", "No sale", "无销售"),
)
OUTCOME_FIELD = "sales__call_outcome"

#: Largest amount a Numeric(14, 2) column holds.
MAX_AMOUNT = Decimal("999999999999.99")
#: Rank of the won stage when comparing how far opportunities got (beyond every open stage).
WON_RANK = 2_000_000_000


# -- declarations ---------------------------------------------------------------------------------


def choices() -> list[Choice]:
    """The lost reasons (list ``sales_lost_reason``)."""
    return [Choice(LOST_REASON_LIST, v, label, zh) for v, label, zh in LOST_REASONS]


def fields() -> list[Field]:
    """The outcome of a call, on every interaction (filled by the opportunity's call form)."""
    return [
        Field(
            "interaction",
            "call_outcome",
            "choice",
            "Call outcome",
            "拜访结果",
            choices=CALL_OUTCOMES,
            indexed=True,
        )
    ]


def lost_reason_label(value: str | None) -> str:
    """The label of a lost reason (any installed plugin's), or the value itself."""
    from core.choices import label

    return label(LOST_REASON_LIST, value) if value else ""


def outcome_label(value: str | None) -> str:
    for key, label, zh in CALL_OUTCOMES:
        if key == value:
            return pick(label, zh)
    return value or ""


def climate_label(value: str | None) -> str:
    for key, label, zh in CLIMATE_ROLES:
        if key == value:
            return pick(label, zh)
    return value or ""


# -- stages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageInfo:
    """A stage as read for one request (plain values, safe after commits)."""

    id: int
    key: str
    label: str
    label_zh: str
    sequence: int
    probability: int
    outcome: str
    active: bool

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


def enabled(company: Any) -> None:
    """Seed the default stages for ``company`` (idempotent: existing keys are kept as edited)."""
    with company_scope(company.id):
        have = set(db.session.scalars(select(Stage.key)))
        for sequence, (key, label, label_zh, probability, outcome) in enumerate(DEFAULT_STAGES):
            if key not in have:
                db.session.add(
                    Stage(
                        key=key,
                        label=label,
                        label_zh=label_zh,
                        sequence=(sequence + 1) * 10,
                        probability=probability,
                        outcome=outcome,
                    )
                )
        db.session.flush()
    forget_stages()


def _cache() -> dict[str, Any] | None:
    return g.setdefault("sales_funnel", {}) if has_request_context() else None


def forget_stages() -> None:
    """Drop the request's cached stages and workflow (after the stages were edited)."""
    if has_request_context():
        g.pop("sales_funnel", None)


def stages(company_id: int | None = None) -> list[StageInfo]:
    """The company's stages in funnel order (open by sequence, won, lost; inactive ones
    included), read once per request."""
    company_id = company_id or require_company()
    cache = _cache()
    if cache is not None and ("stages", company_id) in cache:
        return cache[("stages", company_id)]
    with company_scope(company_id):
        rows = db.session.execute(
            select(
                Stage.id,
                Stage.key,
                Stage.label,
                Stage.label_zh,
                Stage.sequence,
                Stage.probability,
                Stage.outcome,
                Stage.active,
            )
        ).all()
    found = sorted(
        (StageInfo(*row) for row in rows),
        key=lambda s: (OUTCOME_ORDER.get(s.outcome, 3), s.sequence, s.id),
    )
    if cache is not None:
        cache[("stages", company_id)] = found
    return found


def stage_map(company_id: int | None = None) -> dict[str, StageInfo]:
    """The company's stages by key."""
    return {s.key: s for s in stages(company_id)}


def stage_label(key: str, company_id: int | None = None) -> str:
    found = stage_map(company_id).get(key)
    return found.text if found else key


def _lost_reason_guard(subject: Any, inputs: Mapping[str, Any]) -> tuple[str, str] | None:
    """Refuse a lost reason that is not on the company's list (at the ``lost_reason`` field)."""
    reason = str(inputs.get("lost_reason") or "").strip()
    if reason not in {value for value, _label in options(LOST_REASON_LIST)}:
        return "lost_reason", _("Choose a lost reason from the list.")
    return None


def build_workflow(rows: list[tuple[str, str, str, str, bool]], plugin: str = "sales") -> Workflow:
    """The opportunity workflow over stages ``(key, label, label_zh, outcome, active)``."""
    states = tuple(State(key, label, zh, CATEGORY[outcome]) for key, label, zh, outcome, _ in rows)
    open_keys = [key for key, _, _, outcome, _ in rows if outcome == "open"]
    active_open = [
        (key, label, zh) for key, label, zh, outcome, active in rows if outcome == "open" and active
    ]
    won = next((r for r in rows if r[3] == "won"), None)
    lost = next((r for r in rows if r[3] == "lost"), None)
    transitions: list[Transition] = [
        Transition(
            f"to_{key}",
            tuple(k for k in open_keys if k != key),
            key,
            f"Move to {label}",
            f"推进到{zh}",
        )
        for key, label, zh in active_open
    ]
    if won is not None:
        transitions.append(Transition("win", tuple(open_keys), won[0], "Won", "赢单"))
    if lost is not None:
        transitions.append(
            Transition(
                "lose",
                tuple(open_keys),
                lost[0],
                "Lost",
                "输单",
                inputs=("lost_reason",),
                guard=_lost_reason_guard,
            )
        )
    if active_open and (won or lost):
        closed = tuple(r[0] for r in (won, lost) if r is not None)
        transitions.append(Transition("reopen", closed, active_open[0][0], "Reopen", "重新打开"))
    return Workflow(
        name=WORKFLOW,
        model=Opportunity,
        states=states,
        transitions=tuple(transitions),
        initial=active_open[0][0] if active_open else rows[0][0],
        label="Opportunity",
        label_zh="销售机会",
        plugin=plugin,
        per_company=company_workflow,
    )


def company_workflow(company_id: int) -> Workflow:
    """The opportunity workflow of ``company_id``, from its stage rows (defaults if none);
    built once per request."""
    cache = _cache()
    if cache is not None and ("workflow", company_id) in cache:
        return cache[("workflow", company_id)]
    rows = [(s.key, s.label, s.label_zh, s.outcome, s.active) for s in stages(company_id)]
    if not rows:
        rows = [(k, label, zh, outcome, True) for k, label, zh, _, outcome in DEFAULT_STAGES]
    found = build_workflow(rows)
    if cache is not None:
        cache[("workflow", company_id)] = found
    return found


def workflows() -> list[Workflow]:
    """Declared once with the default stages; each company's own is built from its rows."""
    return [
        build_workflow(
            [(k, label, zh, outcome, True) for k, label, zh, _, outcome in DEFAULT_STAGES]
        )
    ]


def moves(wf: Workflow, state: str, role: str | None) -> list[Transition]:
    """Transitions a member of ``role`` may take from ``state`` (no query: the role is known),
    the next stage first: the stages ahead, won, lost, then the stages behind."""
    order = [s.name for s in wf.states]
    here = order.index(state) if state in order else 0

    def rank(t: Transition) -> tuple[int, int]:
        there = order.index(t.target) if t.target in order else 0
        if t.name.startswith("to_"):
            return (0, there) if there > here else (3, there)
        return {"win": (1, 0), "lose": (2, 0)}.get(t.name, (0, 0))

    found = [t for t in wf.transitions if state in t.sources and workflow.allowed(t, role)]
    return sorted(found, key=rank)


def after_transition(
    subject: Any, from_state: str, to_state: str, at: datetime, inputs: Mapping[str, Any]
) -> None:
    """Stamp when an opportunity entered its stage and when it closed (won or lost; cleared
    when reopened), and keep the lost reason given to ``lose``."""
    if not isinstance(subject, Opportunity):
        return
    subject.stage_entered_at = at
    stage = stage_map(subject.company_id).get(to_state)
    outcome = stage.outcome if stage else "open"
    if outcome == "open":
        subject.closed_at = None
        subject.lost_reason = None
        return
    subject.closed_at = at
    reason = str(inputs.get("lost_reason") or "").strip()
    subject.lost_reason = reason[:40] or None if outcome == "lost" else None


# -- opportunities --------------------------------------------------------------------------------


def probability_of(opportunity: Opportunity, stage: StageInfo | None) -> int:
    """The opportunity's probability (%): its own for an open one when set, else its stage's."""
    if stage is None:
        return opportunity.probability or 0
    if stage.outcome == "open" and opportunity.probability is not None:
        return opportunity.probability
    return stage.probability


def stage_join(stmt: Select) -> Select:
    """``stmt`` (over opportunities) outer-joined to the stage each one is in."""
    return stmt.outerjoin(
        Stage, and_(Stage.key == Opportunity.state, Stage.company_id == Opportunity.company_id)
    )


def probability_expr() -> Any:
    """SQL of :func:`probability_of` (needs :func:`stage_join`)."""
    own = func.coalesce(Opportunity.probability, Stage.probability, 0)
    return case((Stage.outcome == "open", own), else_=func.coalesce(Stage.probability, 0))


class OpportunityError(ValueError):
    """A refused change; ``field`` names the form field the message belongs to."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def contact_of(customer_id: int, contact_id: int | None) -> bool:
    """Whether ``contact_id`` is a contact of ``customer_id`` (``None`` is fine)."""
    if contact_id is None:
        return True
    owner = db.session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
    return owner == customer_id


def check(values: Mapping[str, Any], record: Opportunity | None = None) -> None:
    """Rules across fields: the guide is a contact of the customer, the channel and the owner
    are the company's. Raises :class:`OpportunityError`."""
    customer_id = values.get("customer_id", getattr(record, "customer_id", None))
    if not contact_of(customer_id, values.get("guide_contact_id")):
        raise OpportunityError(_("This contact is not one of this customer's."), "guide_contact_id")
    channel_id = values.get("channel_id")
    if channel_id is not None and db.session.get(Channel, channel_id) is None:
        raise OpportunityError(_("Choose a channel of this company."), "channel_id")
    owner_id = values.get("owner_id")
    if owner_id is not None and not db.session.scalar(
        select(Membership.id).where(Membership.user_id == owner_id)
    ):
        raise OpportunityError(_("Choose a member of this company."), "owner_id")


def open_opportunity(user: Any, *, at: datetime | None = None, **values: Any) -> Opportunity:
    """Create an opportunity in the first active open stage (``values``: its columns); the
    caller commits. ``at`` backdates it (demo data)."""
    at = at or utcnow()
    check(values)
    values.setdefault("owner_id", user.id if user is not None else None)
    record = Opportunity(
        state=company_workflow(require_company()).initial,
        stage_entered_at=at,
        created_at=at,
        **values,
    )
    db.session.add(record)
    db.session.flush()
    audit.record("create", SUBJECT, record.id, user_id=user.id if user is not None else None)
    return record


def set_role(opportunity: Opportunity, contact_id: int, role: str) -> OpportunityContact:
    """Give a contact of the customer its part in the buying climate (a contact has one part;
    giving another replaces it). Raises :class:`OpportunityError`."""
    if role not in {key for key, _l, _z in CLIMATE_ROLES}:
        raise OpportunityError(_("Choose a role from the list."), "role")
    if not contact_of(opportunity.customer_id, contact_id):
        raise OpportunityError(_("This contact is not one of this customer's."), "contact_id")
    row = next((r for r in opportunity.roles if r.contact_id == contact_id), None)
    if row is None:
        row = OpportunityContact(contact_id=contact_id, role=role)
        opportunity.roles.append(row)
    row.role = role
    db.session.flush()
    audit.record("update", SUBJECT, opportunity.id, {"climate": {str(contact_id): role}})
    return row


def remove_role(opportunity: Opportunity, row_id: int) -> bool:
    """Take a contact out of the buying climate; ``False`` when no such row."""
    row = next((r for r in opportunity.roles if r.id == row_id), None)
    if row is None:
        return False
    opportunity.roles.remove(row)
    audit.record("update", SUBJECT, opportunity.id, {"climate": {str(row.contact_id): None}})
    return True


# -- calls ----------------------------------------------------------------------------------------


def outcome_field() -> ext.Field | None:
    """The call outcome field as declared (``None`` when the plugin is off)."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    found = current().registry.fields_for("interaction", enabled_plugins())
    return next((f for f in found if f.key == OUTCOME_FIELD), None)


def log_call(
    opportunity: Opportunity,
    user: Any,
    outcome: str,
    *,
    result: str | None = None,
    next_step: str | None = None,
    next_step_due: datetime | None = None,
    contact_id: int | None = None,
    at: datetime | None = None,
) -> Interaction:
    """Log a call about ``opportunity`` with its outcome (a core interaction of kind ``call``
    on the customer's timeline). An advance needs the next action the customer agreed to (and
    its due date). Raises :class:`core.interactions.InteractionError`; the caller commits."""
    if outcome not in {key for key, _l, _z in CALL_OUTCOMES}:
        raise interactions.InteractionError(_("Choose an outcome from the list."), "outcome")
    if outcome == "advance" and not (next_step or "").strip():
        raise interactions.InteractionError(
            _(
                "An advance needs the next action the customer agreed to (a demo, a meeting "
                "with the decider, a trial…); without one it is a continuation."
            ),
            "next_step",
        )
    field = outcome_field()  # (read before writing: it may query outside the company scope)
    customer = db.session.get(Customer, opportunity.customer_id)
    row = interactions.log(
        customer,
        user,
        kind="call",
        occurred_at=at or utcnow(),
        purpose=opportunity.name[:200],
        result=result,
        next_step=next_step,
        next_step_due=next_step_due,
        contact_id=contact_id,
        subject_type=SUBJECT,
        subject_id=opportunity.id,
    )
    if field is not None:
        ext.save([field], row.id, {OUTCOME_FIELD: outcome})
    return row


def calls_of(opportunity_id: int, limit: int = 100) -> list[Any]:
    """The calls (and any other interactions) logged about an opportunity, newest first, with
    the caller's and the contact's names and the outcome (one query)."""
    field = outcome_field()
    stmt = (
        select(
            Interaction,
            User.name.label("user_name"),
            Contact.name.label("contact_name"),
        )
        .outerjoin(User, User.id == Interaction.user_id)
        .outerjoin(Contact, Contact.id == Interaction.contact_id)
        .where(Interaction.subject_type == SUBJECT, Interaction.subject_id == opportunity_id)
        .order_by(Interaction.occurred_at.desc(), Interaction.id.desc())
        .limit(limit)
    )
    if field is not None:
        stmt = ext.join(stmt, Interaction, [field])
    return [
        {
            "interaction": row[0],
            "user_name": row.user_name,
            "contact_name": row.contact_name,
            "outcome": row._mapping.get(OUTCOME_FIELD) if field is not None else None,
        }
        for row in db.session.execute(stmt)
    ]


# -- reports --------------------------------------------------------------------------------------


def _url(path: str, **query: Any) -> str:
    from urllib.parse import urlencode

    pairs = [(k, v) for k, v in query.items() if v not in (None, "")]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _opportunity_filters(p: Mapping[str, Any]) -> list[Any]:
    """Conditions of the owner and channel parameters (and the company, explicitly)."""
    out = [Opportunity.company_id == require_company()]
    if p.get("owner"):
        out.append(Opportunity.owner_id == p["owner"])
    if p.get("channel"):
        out.append(Opportunity.channel_id == p["channel"])
    return out


def _funnel_query(p: Mapping[str, Any]) -> Any:
    """One statement: per stage, the opportunities in it now (count, amount), how many ever
    reached it (or went further), the average days of finished stays in it and how many were
    lost from it -- as ``(measure, stage, n, amount, minutes)`` rows."""
    company_id = require_company()
    base = (
        select(Opportunity.id)
        .join(Customer, Customer.id == Opportunity.customer_id)
        .where(*_opportunity_filters(p), *within(Opportunity.created_at, p))
    )
    history = and_(
        WorkflowHistory.subject_type == SUBJECT,
        WorkflowHistory.company_id == company_id,
        WorkflowHistory.subject_id.in_(base),
    )
    money, minutes = cast(null(), Numeric(16, 2)), cast(null(), Float)
    now = (
        select(
            literal_column("1").label("measure"),
            Opportunity.state.label("stage"),
            func.count(Opportunity.id).label("n"),
            func.sum(Opportunity.amount).label("amount"),
            minutes.label("minutes"),
        )
        .where(Opportunity.id.in_(base))
        .group_by(Opportunity.state)
    )
    visits = union_all(
        select(WorkflowHistory.subject_id.label("opp"), WorkflowHistory.to_state.label("st")).where(
            history
        ),
        select(WorkflowHistory.subject_id, WorkflowHistory.from_state).where(history),
        select(Opportunity.id, Opportunity.state).where(Opportunity.id.in_(base)),
    ).subquery("visits")
    rank = case(
        (Stage.outcome == "won", WON_RANK), (Stage.outcome == "open", Stage.sequence), else_=None
    )
    best = (
        select(visits.c.opp, func.max(rank).label("best"))
        .join(Stage, and_(Stage.key == visits.c.st, Stage.company_id == company_id))
        .group_by(visits.c.opp)
        .subquery("best")
    )
    step = aliased(Stage)
    step_rank = case((step.outcome == "won", WON_RANK), else_=step.sequence)
    reached = (
        select(
            literal_column("2"),
            step.key,
            func.count(best.c.opp),
            money,
            minutes,
        )
        .select_from(step)
        .join(best, best.c.best >= step_rank)
        .where(step.outcome != "lost", step.company_id == company_id)
        .group_by(step.key)
    )
    entered = func.lag(WorkflowHistory.created_at).over(
        partition_by=WorkflowHistory.subject_id,
        order_by=(WorkflowHistory.created_at, WorkflowHistory.id),
    )
    stays = (
        select(
            WorkflowHistory.subject_id.label("opp"),
            WorkflowHistory.from_state.label("st"),
            WorkflowHistory.created_at.label("left_at"),
            entered.label("entered_at"),
        )
        .where(history)
        .subquery("stays")
    )
    days = (
        select(
            literal_column("3"),
            stays.c.st,
            func.count(),
            money,
            func.avg(
                minutes_between(
                    stays.c.left_at, func.coalesce(stays.c.entered_at, Opportunity.created_at)
                )
            ),
        )
        .select_from(stays)
        .join(Opportunity, Opportunity.id == stays.c.opp)
        .group_by(stays.c.st)
    )
    lost = (
        select(
            literal_column("4"),
            WorkflowHistory.from_state,
            func.count(func.distinct(WorkflowHistory.subject_id)),
            money,
            minutes,
        )
        .where(history, WorkflowHistory.transition == "lose")
        .group_by(WorkflowHistory.from_state)
    )
    parts = union_all(now, reached, days, lost).subquery("measures")
    return select(
        parts.c.measure,
        parts.c.stage,
        func.sum(parts.c.n).label("n"),
        func.sum(parts.c.amount).label("amount"),
        func.max(parts.c.minutes).label("minutes"),
    ).group_by(parts.c.measure, parts.c.stage)


def _funnel_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per open stage in funnel order (inactive ones only while they hold data), then
    won: reached, in it now, amount now, conversion to the next row, average days, lost."""
    data = {(int(r["measure"]), r["stage"]): r for r in rows}

    def value(measure: int, key: str, column: str = "n") -> Any:
        found = data.get((measure, key))
        return found[column] if found is not None else None

    chain = [
        s
        for s in stages()
        if s.outcome == "won"
        or (s.outcome == "open" and (s.active or any((m, s.key) in data for m in (1, 2, 3, 4))))
    ]
    out = []
    for i, s in enumerate(chain):
        reached = int(value(2, s.key) or 0)
        following = int(value(2, chain[i + 1].key) or 0) if i + 1 < len(chain) else None
        minutes = value(3, s.key, "minutes")
        out.append(
            {
                "value": s.key,
                "label": s.text,
                "reached": reached,
                "now": int(value(1, s.key) or 0),
                "amount": Decimal(str(value(1, s.key, "amount") or 0)).quantize(Decimal("0.01")),
                "conversion": following / reached if following is not None and reached else None,
                "days": round(float(minutes) / 1440, 1) if minutes is not None else None,
                "lost": int(value(4, s.key) or 0) if s.outcome == "open" else None,
            }
        )
    return out if any(r["reached"] for r in out) else []


def _funnel_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    """The opportunities now in the row's stage (the lost ones for the "lost" column)."""
    return _url(
        "/sales/opportunities",
        stage="lost" if series == "lost" else row.get("value"),
        owner=p.get("owner"),
        channel=p.get("channel"),
    )


FUNNEL_REPORT = Report(
    name="sales_funnel",
    label="Sales funnel",
    label_zh="销售漏斗",
    description="Opportunities created in the period, stage by stage in funnel order: how many "
    "reached each stage (or went further), how many are in it now and for how much, the share "
    "that went on to the next stage (those still in a stage count as not yet), the average days "
    "of finished stays in it and how many were lost from it.",
    description_zh="期间内创建的销售机会按漏斗阶段统计：到达（或越过）各阶段的数量、当前所在数量与金额、"
    "进入下一阶段的转化率（仍在本阶段的视为尚未转化）、已结束停留的平均天数，以及在该阶段输单的数量。",
    params=(
        *date_range(365, "Created", "创建日期"),
        ReportParam("owner", "Owner", "负责人", "member"),
        ReportParam("channel", "Channel", "渠道", "channel"),
    ),
    query=_funnel_query,
    shape=_funnel_shape,
    columns=(
        ReportColumn("label", "Stage", "阶段", "text"),
        ReportColumn("reached", "Reached", "到达数"),
        ReportColumn("now", "In stage now", "当前数量"),
        ReportColumn("amount", "Amount in stage now", "当前金额", "money"),
        ReportColumn("conversion", "To the next stage", "下一阶段转化率", "percent"),
        ReportColumn("days", "Average days in stage", "平均停留天数", "number"),
        ReportColumn("lost", "Lost at this stage", "本阶段输单数"),
    ),
    series=("reached",),
    chart="funnel",
    drill=_funnel_drill,
    group="sales",
    order=10,
)


FORECAST_VIEWS = (
    ("month", "By expected close month", "按预计成交月份"),
    ("owner", "By owner", "按负责人"),
)


def _forecast_query(p: Mapping[str, Any]) -> Any:
    """Open opportunities' count, amount and weighted amount (× probability, in hundredths)
    per expected-close month or per owner."""
    by_owner = (p.get("view") or "month") == "owner"
    measures = (
        func.count(Opportunity.id).label("opportunities"),
        func.coalesce(func.sum(Opportunity.amount), 0).label("pipeline"),
        func.coalesce(func.sum(Opportunity.amount * probability_expr()), 0).label("weighted100"),
    )
    if by_owner:
        keys: tuple[Any, ...] = (Opportunity.owner_id.label("owner_id"), User.name.label("name"))
    else:
        keys = (
            cast(extract("year", Opportunity.expected_close), Integer).label("year"),
            cast(extract("month", Opportunity.expected_close), Integer).label("month"),
        )
    stmt = stage_join(
        select(*keys, *measures)
        .select_from(Opportunity)
        .join(Customer, Customer.id == Opportunity.customer_id)
    )
    if by_owner:
        stmt = stmt.outerjoin(User, User.id == Opportunity.owner_id)
    start, end = p.get("start"), p.get("end")
    stmt = stmt.where(Stage.outcome == "open", *_opportunity_filters(p))
    if start:
        stmt = stmt.where(Opportunity.expected_close >= start)
    if end:
        stmt = stmt.where(Opportunity.expected_close <= end)
    return stmt.group_by(*keys)


def _money(value: Any, divide: int = 1) -> Decimal:
    return (Decimal(str(value or 0)) / divide).quantize(Decimal("0.01"))


def _forecast_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Label the groups (months zero-filled over a chosen range, then "no date"; owners by
    weighted amount) and turn hundredths into money."""
    out = []
    for r in rows:
        if (p.get("view") or "month") == "owner":
            key = r["owner_id"]
            label = r["name"] or _("No owner")
        else:
            key = f"{int(r['year']):04d}-{int(r['month']):02d}" if r["year"] else ""
            label = key or _("No expected close")
        out.append(
            {
                "value": key,
                "label": label,
                "opportunities": int(r["opportunities"] or 0),
                "pipeline": _money(r["pipeline"]),
                "weighted": _money(r["weighted100"], 100),
            }
        )
    if (p.get("view") or "month") == "owner":
        return sorted(out, key=lambda r: (-r["weighted"], r["label"]))
    found = {r["value"]: r for r in out}
    filled = [
        found.pop(m, None)
        or {
            "value": m,
            "label": m,
            "opportunities": 0,
            "pipeline": Decimal("0.00"),
            "weighted": Decimal("0.00"),
        }
        for m in months(p)
    ]
    rest = sorted(found.values(), key=lambda r: (r["value"] == "", r["value"]))
    return filled + rest


def _forecast_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    query: dict[str, Any] = {"status": "open", "owner": p.get("owner"), "channel": p.get("channel")}
    if (p.get("view") or "month") == "owner":
        query["owner"] = row.get("value") or "none"
    elif row.get("value"):
        year, month = (int(x) for x in str(row["value"]).split("-"))
        after = date(year + month // 12, month % 12 + 1, 1)
        query["close_from"] = date(year, month, 1).isoformat()
        query["close_to"] = (after - timedelta(days=1)).isoformat()
    else:
        query["close"] = "none"
    return _url("/sales/opportunities", **query)


FORECAST_REPORT = Report(
    name="sales_forecast",
    label="Weighted sales forecast",
    label_zh="销售预测（加权）",
    description="Open opportunities by expected close month (or by owner): their amount and the "
    "weighted amount, each opportunity's amount times its probability (the stage's default "
    "unless set by hand).",
    description_zh="按预计成交月份（或负责人）统计未结束的销售机会：金额，以及加权金额"
    "（金额 × 成交概率；概率默认取所在阶段的值，可单独设置）。",
    params=(
        ReportParam("view", "View", "视图", choices=FORECAST_VIEWS, default="month"),
        *date_range(None, "Expected close", "预计成交日期"),
        ReportParam("owner", "Owner", "负责人", "member"),
        ReportParam("channel", "Channel", "渠道", "channel"),
    ),
    query=_forecast_query,
    shape=_forecast_shape,
    columns=lambda p: (
        ReportColumn(
            "label",
            *(("Owner", "负责人") if p.get("view") == "owner" else ("Month", "月份")),
            "text",
        ),
        ReportColumn("opportunities", "Opportunities", "机会数"),
        ReportColumn("pipeline", "Amount", "金额", "money", color="#a0aec0"),
        ReportColumn("weighted", "Weighted amount", "加权金额", "money", color="#2b6cb0"),
    ),
    series=("pipeline", "weighted"),
    chart=lambda p: "hbar" if p.get("view") == "owner" else "bar",
    drill=_forecast_drill,
    group="sales",
    order=20,
)


def reports() -> list[Report]:
    return [FUNNEL_REPORT, FORECAST_REPORT]


# -- API ------------------------------------------------------------------------------------------


CLIMATE_ENTRY = ma.Schema.from_dict(
    {"contact_id": ma.fields.Integer(), "role": ma.fields.String()}, name="ClimateEntry"
)


class Opportunities(Resource):
    """Sales opportunities (销售机会). The stage moves only by workflow transitions
    (``POST /sales_opportunities/{id}/transitions/{name}``; ``lose`` needs ``lost_reason``);
    ``contacts`` lists the buying climate (read-only here)."""

    name = "sales_opportunities"
    model = Opportunity
    label, label_zh = "Opportunities", "销售机会"
    schema = model_schema(
        Opportunity,
        dump_only=("state", "lost_reason", "stage_entered_at", "closed_at"),
        fields={
            "contacts": ma.fields.List(
                ma.fields.Nested(CLIMATE_ENTRY),
                dump_only=True,
                metadata={"description": "The buying climate: contacts with their roles."},
            )
        },
    )
    filters = (
        "customer_id",
        "owner_id",
        "channel_id",
        "state",
        "amount",
        "expected_close",
        "created_at",
    )
    sorts = (
        Sort("newest", Opportunity.id, True, False, "integer"),
        Sort("close", Opportunity.expected_close, False, True, "date"),
        Sort("amount", Opportunity.amount, True, False, "decimal"),
    )
    searchable = True
    rule_hides = True
    create_only = ("customer_id",)

    def query(self) -> Select:
        return customer_joined(Opportunity)

    def search(self, q: str) -> Any:
        return or_(
            Opportunity.name.contains(q, autoescape=True),
            Customer.name.contains(q, autoescape=True),
        )

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        probability = values.get("probability")
        if probability is not None and not 0 <= probability <= 100:
            errors["probability"] = ["A percentage from 0 to 100 (or null: the stage's)."]
        amount = values.get("amount")
        if amount is not None and amount < 0:
            errors["amount"] = ["Must not be negative."]
        if "name" in values and not (values["name"] or "").strip():
            errors["name"] = ["Must not be blank."]
        if errors:
            return errors
        try:
            check(values, record)
        except OpportunityError as exc:
            return {exc.field: [exc.message]}
        return {}

    def create(self, values: dict[str, Any]) -> Any:
        from core.api.resources import user

        return open_opportunity(user(), **values)

    def transition_inputs(self, record: Any, name: str, body: dict[str, Any]) -> dict[str, Any]:
        inputs = super().transition_inputs(record, name, body)
        reason = body.get("lost_reason")
        if reason is not None and not isinstance(reason, str):
            raise ApiError(
                422, "invalid", "lost_reason must be text", {"lost_reason": ["Not text."]}
            )
        if reason:
            inputs["lost_reason"] = reason.strip()
        return inputs

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        out = super().dump_many(records, ext_values)
        climate: dict[int, list[dict[str, Any]]] = {}
        if records:
            rows = db.session.execute(
                select(
                    OpportunityContact.opportunity_id,
                    OpportunityContact.contact_id,
                    OpportunityContact.role,
                )
                .where(OpportunityContact.opportunity_id.in_([r.id for r in records]))
                .order_by(OpportunityContact.id)
            )
            for opportunity_id, contact_id, role in rows:
                climate.setdefault(opportunity_id, []).append(
                    {"contact_id": contact_id, "role": role}
                )
        for data, record in zip(out, records, strict=True):
            data["contacts"] = climate.get(record.id, [])
        return out


def resources() -> list[Resource]:
    return [Opportunities()]


# -- navigation, customer page, timeline ---------------------------------------------------------


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "sales.opportunities", "Opportunities", "销售机会", 20, group="Sales", group_zh="销售"
        )
    ]


def open_opportunities_of(customer_id: int) -> list[Any]:
    """The customer's open opportunities with their stage and owner (one query)."""
    stmt = stage_join(
        select(
            Opportunity,
            probability_expr().label("probability"),
            User.name.label("owner_name"),
        ).outerjoin(User, User.id == Opportunity.owner_id)
    ).where(Opportunity.customer_id == customer_id, Stage.outcome == "open")
    return list(db.session.execute(stmt.order_by(Stage.sequence.desc(), Opportunity.id)).all())


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """On the customer's page: its open opportunities and a link to open one."""
    if subject_type != "customer":
        return []

    def render() -> str:
        return render_template(
            "sales/funnel/_customer_panel.html",
            customer=subject,
            rows=open_opportunities_of(subject.id),
            stage_label=stage_label,
            can_write=_can_write(),
        )

    return [Panel("Opportunities", render, "销售机会", order=20)]


def widgets(company: Any, user: Any) -> list[Panel]:
    """The dashboard box: open opportunities by stage and the weighted pipeline."""
    return [Panel("Sales funnel", web_funnel.widget, "销售漏斗", order=12)]


def _can_write() -> bool:
    member = g.get("membership") if has_request_context() else None
    return member is not None and member.role != "viewer"


def timeline(customer: Any) -> list[TimelineEntry]:
    """Opportunities created, won and lost, for the customer's timeline (one query)."""
    rows = db.session.execute(
        select(Opportunity, Stage.outcome)
        .outerjoin(
            Stage, and_(Stage.key == Opportunity.state, Stage.company_id == Opportunity.company_id)
        )
        .where(Opportunity.customer_id == customer.id)
        .order_by(Opportunity.id.desc())
        .limit(200)
    ).all()
    out = []
    for opp, outcome in rows:
        link = f"/sales/opportunities/{opp.id}"
        amount = f"¥{opp.amount:,.2f}"
        out.append(
            TimelineEntry(
                opp.created_at,
                "opportunity",
                _("Opportunity: %(name)s", name=opp.name),
                amount,
                link,
            )
        )
        if opp.closed_at is not None and outcome == "won":
            out.append(
                TimelineEntry(opp.closed_at, "won", _("Won: %(name)s", name=opp.name), amount, link)
            )
        elif opp.closed_at is not None and outcome == "lost":
            reason = lost_reason_label(opp.lost_reason)
            out.append(
                TimelineEntry(
                    opp.closed_at, "lost", _("Lost: %(name)s", name=opp.name), reason, link
                )
            )
    return out


# -- demo -----------------------------------------------------------------------------------------

DEMO_PROJECTS = (
    "年度采购合同",
    "设备升级项目",
    "增值服务包",
    "系统集成项目",
    "续约及扩容",
    "试点合作",
)
DEMO_ADVANCES = ("安排产品演示", "约见采购总监", "两周免费试用", "提交联合实施方案", "部分预算已批")
DEMO_CLIMATE = {
    "buyer": "purchaser",
    "user": "user",
    "gatekeeper": "gatekeeper",
    "decider": "decider",
}


def demo(company: Any, fake: Any) -> None:
    """About 30 opportunities spread over the funnel, their stages replayed through the workflow
    at past moments (so the funnel report has conversion and time in stage), about a quarter
    won and a fifth lost with reasons, one reopened; buying climates, guides and calls with
    their outcomes."""
    rng = random.Random(f"sales-funnel-{company.code}")
    people = _demo_people()
    if not people:
        return
    customers = list(
        db.session.scalars(select(Customer).order_by(Customer.is_organization.desc(), Customer.id))
    )[:40]
    contacts: dict[int, list[Contact]] = {}
    for contact in db.session.scalars(select(Contact).order_by(Contact.id)):
        contacts.setdefault(contact.customer_id, []).append(contact)
    now = utcnow()
    for i in range(30):
        customer = customers[i % len(customers)]
        owner = people.get(customer.owner_id) or rng.choice(list(people.values()))
        created = now - timedelta(days=rng.randint(25, 240), hours=rng.randint(0, 9))
        opp = open_opportunity(
            owner,
            at=created,
            name=f"{customer.name[:12]}·{rng.choice(DEMO_PROJECTS)}",
            customer_id=customer.id,
            channel_id=customer.channel_id,
            amount=Decimal(rng.choice([30, 60, 120, 250, 480, 900, 1500])) * 1000,
            probability=rng.choice([None] * 6 + [40, 60]),
            notes=fake.sentence(),
        )
        _demo_climate(opp, contacts.get(customer.id, []), rng)
        db.session.flush()  # before the workflow reads the enabled plugins (unscoped)
        _demo_path(opp, owner, created, now, rng, i)
        _demo_calls(opp, owner, contacts.get(customer.id, []), rng)
    db.session.flush()


def _demo_people() -> dict[int, User]:
    """Sales reps and managers of the company, by id."""
    rows = db.session.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role.in_(("sales_rep", "manager")))
        .order_by(User.id)
    )
    return {u.id: u for u in rows}


def _demo_climate(opp: Opportunity, people: list[Contact], rng: random.Random) -> None:
    for contact in people:
        role = DEMO_CLIMATE.get(contact.decision_role or "")
        if role:
            opp.roles.append(OpportunityContact(contact_id=contact.id, role=role))
    if people and rng.random() < 0.6:
        opp.guide_contact_id = rng.choice(people).id


def _demo_path(
    opp: Opportunity, owner: User, created: datetime, now: datetime, rng: random.Random, i: int
) -> None:
    """Replay the opportunity's way through the funnel at plausible past moments."""
    info = stages(opp.company_id)
    open_keys = [s.key for s in info if s.outcome == "open" and s.active]
    end = rng.choice(["won"] * 5 + ["lost"] * 4 + ["open"] * 11)
    depth = rng.randint(1, len(open_keys)) if end != "lost" else rng.randint(1, 5)
    path = [f"to_{k}" for k in open_keys[1:depth]]
    if end == "won":
        path.append("win")
    elif end == "lost":
        path.append("lose")
    if i == 7 and end != "open":
        path += ["reopen", f"to_{open_keys[1]}"]
    moment = created
    span = (now - created) * 0.8
    for step in path:
        moment += span / (len(path) + 1) * rng.uniform(0.5, 1.5)
        moment = min(moment, now - timedelta(hours=1))
        inputs: dict[str, Any] = {}
        if step == "lose":
            inputs["lost_reason"] = rng.choice([v for v, _l, _z in LOST_REASONS])
            inputs["comment"] = "客户最终未采购"
        workflow.transition(opp, step, user=owner, inputs=inputs, at=moment)
    if end == "open":
        opp.expected_close = (now + timedelta(days=rng.randint(5, 150))).date()
    else:
        opp.expected_close = (opp.closed_at or now).astimezone(UTC).date()


def _demo_calls(opp: Opportunity, owner: User, people: list[Contact], rng: random.Random) -> None:
    """One to three calls; the last one's outcome agrees with where the opportunity stands."""
    if rng.random() < 0.4:
        return
    start = opp.created_at
    gap = max(((opp.closed_at or utcnow()) - start) / 4, timedelta(hours=2))
    last = {"won": "order", "lost": "no_sale"}.get(opp.state, "advance")
    count = rng.randint(1, 3)
    for n in range(count):
        at = start + gap * (n + rng.uniform(0.2, 0.9))
        outcome = last if n == count - 1 else rng.choice(["advance", "advance", "continuation"])
        step = rng.choice(DEMO_ADVANCES) if outcome == "advance" else None
        result = {
            "advance": "客户同意推进，约定了下一步行动",
            "continuation": "客户表示再考虑考虑，没有具体行动",
            "no_sale": "客户暂时没有需求",
            "order": "客户确认下单",
        }[outcome]
        log_call(
            opp,
            owner,
            outcome,
            result=result,
            next_step=step,
            next_step_due=at + timedelta(days=rng.randint(3, 14)) if step else None,
            contact_id=rng.choice(people).id if people else None,
            at=min(at, utcnow()),
        )


# Register the pages on the plugin's blueprint (imported last: the pages use this module).
from plugins.sales import web_funnel  # noqa: E402
