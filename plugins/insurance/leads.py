"""Leads and referrals: the conversion funnel per agent and channel, who referred whom
(DOMAIN §6). See docs/insurance-agents.md.

Leads (销售线索)
    A :class:`~plugins.insurance.models.Lead` is a prospect -- a core customer with status
    ``potential`` -- worked by an agent (or by a channel without one, such as the website) on
    the workflow ``insurance_lead``: new → contacted → proposal → converted, or lost (with a
    reason) from any open state; a lost lead may be reopened. :func:`create_lead` makes the
    customer (channel: the agent's; owner: the agent's login, else the member entering it) and
    the lead together, or puts a lead on an existing customer. Its ``source`` is a value of the
    choice ``insurance_lead_source`` (referral, walk-in, online, bank, event, cold call, other).
Conversion
    A lead converts by hand (the transition ``convert``) or by itself when a policy of its
    customer is issued (:func:`after_transition` watches the policies' workflow for the state
    ``issued``): ``converted_on`` is set to that day and the customer becomes ``existing``.
Referrals (转介绍)
    A customer may have been referred by an existing customer, an agent, or both
    (:class:`~plugins.insurance.models.Referral`, one per referred customer). A lead of source
    ``referral`` names its referrer.

Pages are in :mod:`plugins.insurance.web_leads`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import case, exists, func, select

from core import access, audit
from core.choices import label as choice_label
from core.extend import (
    Choice,
    MenuItem,
    Panel,
    Report,
    ReportColumn,
    ReportParam,
    State,
    TimelineEntry,
    Transition,
    Workflow,
    db,
    utcnow,
)
from core.i18n import pick
from core.models import Channel, Customer, Membership, User, WorkflowHistory
from plugins.insurance import agents
from plugins.insurance.models import Agent, Lead, Referral

WORKFLOW = "insurance_lead"
SOURCE_LIST = "insurance_lead_source"
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("referral", "Referral", "转介绍"),
    ("walk_in", "Walk-in", "上门咨询"),
    ("online", "Online", "网络咨询"),
    ("bank", "Bank counter", "银行网点"),
    ("event", "Event", "活动"),
    ("cold_call", "Cold call", "陌生拜访"),
    ("other", "Other", "其他"),
)
SOURCE_KEYS = tuple(s for s, _l, _z in SOURCES)
STATES: tuple[tuple[str, str, str, str], ...] = (
    ("new", "New", "新线索", "open"),
    ("contacted", "Contacted", "已联系", "open"),
    ("proposal", "Proposal", "已出方案", "open"),
    ("converted", "Converted", "已成交", "done"),
    ("lost", "Lost", "已流失", "cancelled"),
)
STATE_KEYS = tuple(s for s, *_r in STATES)
OPEN_STATES = ("new", "contacted", "proposal")
#: The policies' table and the state in which a policy counts as sold.
POLICY_TABLE = "insurance_policy"
ISSUED = "issued"
MAX_ID = 2**31 - 1

LEAD_WORKFLOW = Workflow(
    name=WORKFLOW,
    model=Lead,
    label="Insurance lead",
    label_zh="保险销售线索",
    initial="new",
    states=tuple(State(n, text, zh, cat) for n, text, zh, cat in STATES),
    transitions=(
        Transition("contact", ("new",), "contacted", "Contacted", "已联系"),
        Transition("propose", ("new", "contacted"), "proposal", "Proposal made", "已出方案"),
        Transition("convert", OPEN_STATES, "converted", "Converted", "成交"),
        Transition("lose", OPEN_STATES, "lost", "Lost", "流失", inputs=("lost_reason",)),
        Transition("reopen", ("lost",), "contacted", "Reopen", "重新跟进"),
    ),
)


def state_label(state: str | None) -> str:
    """The label of a lead state in the user's language."""
    for name, text, zh, _cat in STATES:
        if name == state:
            return pick(text, zh)
    return state or ""


def source_label(value: str | None) -> str:
    return choice_label(SOURCE_LIST, value)


def today() -> date:
    return agents.today()


def _local_day(at: datetime) -> date:
    from core.reports import zone

    moment = at if at.tzinfo else at.replace(tzinfo=UTC)
    return moment.astimezone(zone()).date()


# -- creating leads -------------------------------------------------------------------------------


@dataclass
class LeadInput:
    """A lead as entered: a new prospect (``name``, ``phone``…) or an existing ``customer_id``;
    the ``agent_id`` working it (its channel becomes the lead's), else a ``channel_id``; the
    ``source``; an optional referrer (a customer and/or an agent)."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    region: str | None = None
    customer_id: int | None = None
    agent_id: int | None = None
    channel_id: int | None = None
    source: str = "other"
    notes: str | None = None
    referrer_customer_id: int | None = None
    referrer_agent_id: int | None = None
    created_on: date | None = None


class LeadRefused(ValueError):
    """A lead refused: ``errors`` by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _clean(value: str | None) -> str | None:
    return (value or "").strip() or None


def _too_long(value: str | None, limit: int) -> bool:
    return value is not None and (len(value) > limit or "\x00" in value)


def problems(data: LeadInput, allowed_agents: set[int] | None = None) -> dict[str, str]:
    """What is wrong with ``data``, by field. ``allowed_agents``: the agents the member may
    give the lead to (``None``: any)."""
    from core.customers import get_visible
    from core.search import phone_digits

    out: dict[str, str] = {}
    if data.customer_id is not None:
        customer = get_visible(data.customer_id) if data.customer_id <= MAX_ID else None
        if customer is None:
            out["customer_id"] = _("Choose a customer you see.")
        elif db.session.scalar(
            select(Lead.id).where(Lead.customer_id == customer.id, Lead.state.in_(OPEN_STATES))
        ):
            out["customer_id"] = _("This customer has an open lead already.")
    else:
        name = _clean(data.name)
        if not name or _too_long(name, 200):
            out["name"] = _("Name the prospect (at most 200 characters).")
        phone = _clean(data.phone)
        if _too_long(phone, 40):
            out["phone"] = _("At most %(n)s characters.", n=40)
        elif phone:
            digits = phone_digits(phone)
            with access.all_customers():
                found = db.session.execute(
                    select(Customer.id, Customer.name).where(
                        (Customer.phone == phone) | (Customer.phone == digits)
                    )
                ).first()
            if found is not None:
                seen = get_visible(found.id)
                out["phone"] = (
                    _(
                        "%(name)s has this phone number already: open their page and add the "
                        "lead there.",
                        name=found.name,
                    )
                    if seen is not None
                    else _("A customer of a colleague has this phone number already.")
                )
        email = _clean(data.email)
        if _too_long(email, 254) or (email and "@" not in email):
            out["email"] = _("Enter an e-mail address.")
        if _too_long(_clean(data.region), 80):
            out["region"] = _("At most %(n)s characters.", n=80)
    if data.source not in SOURCE_KEYS:
        out["source"] = _("Choose where the lead came from.")
    if data.agent_id is not None:
        agent = db.session.get(Agent, data.agent_id) if data.agent_id <= MAX_ID else None
        if agent is None or agent.company_id != agents.require_company():
            out["agent_id"] = _("Choose an agent of this company.")
        elif agent.status == "terminated":
            out["agent_id"] = _("This agent is terminated; choose another.")
        elif allowed_agents is not None and agent.id not in allowed_agents:
            out["agent_id"] = _("You can give leads to yourself and your downline only.")
    elif data.channel_id is not None and (
        data.channel_id > MAX_ID
        or db.session.scalar(select(Channel.id).where(Channel.id == data.channel_id)) is None
    ):
        out["channel_id"] = _("Choose a channel of this company.")
    if data.referrer_customer_id is not None:
        if data.referrer_customer_id > MAX_ID or (
            db.session.scalar(select(Customer.id).where(Customer.id == data.referrer_customer_id))
            is None
        ):
            out["referrer_customer_id"] = _("Choose a customer of this company.")
        elif data.referrer_customer_id == data.customer_id:
            out["referrer_customer_id"] = _("A customer cannot refer themselves.")
    if data.referrer_agent_id is not None and (
        data.referrer_agent_id > MAX_ID
        or db.session.scalar(select(Agent.id).where(Agent.id == data.referrer_agent_id)) is None
    ):
        out["referrer_agent_id"] = _("Choose an agent of this company.")
    referred = data.referrer_customer_id is not None or data.referrer_agent_id is not None
    if data.source == "referral" and not referred and "source" not in out:
        out["referrer_customer_id"] = _("Name who referred the prospect: a customer or an agent.")
    if (
        referred
        and data.customer_id is not None
        and "customer_id" not in out
        and db.session.scalar(select(Referral.id).where(Referral.customer_id == data.customer_id))
    ):
        out["referrer_customer_id"] = _("This customer's referrer is on file already.")
    if _too_long(_clean(data.notes), 2000):
        out["notes"] = _("At most %(n)s characters.", n=2000)
    if data.created_on is not None and data.created_on > today():
        out["created_on"] = _("The lead cannot be dated in the future.")
    return out


def create_lead(
    data: LeadInput,
    user: Any = None,
    *,
    allowed_agents: set[int] | None = None,
    at: datetime | None = None,
    via: str = "web",
) -> Lead:
    """The prospect (a new customer with status ``potential``, unless ``data.customer_id``
    names one), its lead in state ``new`` and the referral when a referrer is given; raises
    :class:`LeadRefused`. Audited; the caller commits."""
    found = problems(data, allowed_agents)
    if found:
        raise LeadRefused(found)
    user_id = getattr(user, "id", None)
    agent = db.session.get(Agent, data.agent_id) if data.agent_id else None
    channel_id = agent.channel_id if agent is not None else data.channel_id
    created_on = data.created_on or today()
    moment = at or utcnow()
    if data.customer_id is not None:
        customer = db.session.get(Customer, data.customer_id)
    else:
        customer = Customer(
            name=_clean(data.name),
            phone=_clean(data.phone),
            email=_clean(data.email),
            region=_clean(data.region),
            kind="consumer",
            is_organization=False,
            status="potential",
            owner_id=(agent.user_id if agent is not None and agent.user_id else user_id),
            channel_id=channel_id,
            created_at=moment,
        )
        db.session.add(customer)
        db.session.flush()
        audit.record("create", "customer", customer.id, {"via": f"lead:{via}"}, user_id=user_id)
        from core import classify

        with access.all_customers():
            classify.classify_customers([customer.id])
    lead = Lead(
        customer_id=customer.id,
        agent_id=agent.id if agent is not None else None,
        channel_id=channel_id,
        source=data.source,
        state="new",
        created_on=created_on,
        notes=_clean(data.notes),
        created_at=moment,
    )
    db.session.add(lead)
    if data.referrer_customer_id is not None or data.referrer_agent_id is not None:
        db.session.add(
            Referral(
                customer_id=customer.id,
                referrer_customer_id=data.referrer_customer_id,
                referrer_agent_id=data.referrer_agent_id,
                referred_on=created_on,
                created_at=moment,
            )
        )
    db.session.flush()
    audit.record(
        "create",
        "insurance_lead",
        lead.id,
        {"via": via, "customer_id": customer.id, "agent_id": lead.agent_id, "source": lead.source},
        user_id=user_id,
    )
    return lead


def update_lead(
    lead: Lead, *, agent_id: int | None, source: str, notes: str | None, user: Any = None
) -> dict[str, str]:
    """Reassign ``lead`` (its channel follows the agent), correct its source or notes; returns
    the messages by field (nothing saved then). The caller commits."""
    errors: dict[str, str] = {}
    if source not in SOURCE_KEYS:
        errors["source"] = _("Choose where the lead came from.")
    agent = None
    if agent_id is not None:
        agent = db.session.get(Agent, agent_id) if agent_id <= MAX_ID else None
        if agent is None or agent.company_id != agents.require_company():
            errors["agent_id"] = _("Choose an agent of this company.")
        elif agent.status == "terminated" and agent.id != lead.agent_id:
            errors["agent_id"] = _("This agent is terminated; choose another.")
    notes = _clean(notes)
    if _too_long(notes, 2000):
        errors["notes"] = _("At most %(n)s characters.", n=2000)
    if errors:
        return errors
    changed: dict[str, Any] = {}
    if lead.agent_id != agent_id:
        changed["agent_id"] = agent_id
        lead.agent_id = agent_id
        if agent is not None:
            lead.channel_id = agent.channel_id
    if lead.source != source:
        changed["source"] = lead.source = source
    if lead.notes != notes:
        lead.notes = notes
        changed["notes"] = True
    if changed:
        db.session.flush()
        audit.record(
            "update", "insurance_lead", lead.id, changed, user_id=getattr(user, "id", None)
        )
    return {}


# -- conversion -----------------------------------------------------------------------------------


def _converted(lead: Lead, at: datetime) -> None:
    lead.converted_on = _local_day(at)
    lead.lost_reason = None
    customer = db.session.get(Customer, lead.customer_id)
    if customer is not None and customer.status != "existing":
        customer.status = "existing"


def convert_customer_leads(customer_id: int, at: datetime, comment: str | None = None) -> int:
    """Convert every open lead of ``customer_id`` (a policy of theirs was issued): state,
    ``converted_on``, a workflow history row (no user: the system did it) and the audit log;
    the customer becomes ``existing``. Returns how many leads converted."""
    rows = db.session.scalars(
        select(Lead).where(Lead.customer_id == customer_id, Lead.state.in_(OPEN_STATES))
    ).all()
    for lead in rows:
        source = lead.state
        lead.state = "converted"
        _converted(lead, at)
        db.session.add(
            WorkflowHistory(
                workflow=WORKFLOW,
                subject_type=Lead.__tablename__,
                subject_id=lead.id,
                transition="convert",
                from_state=source,
                to_state="converted",
                user_id=None,
                comment=comment,
                created_at=at,
            )
        )
        audit.record(
            "transition",
            Lead.__tablename__,
            lead.id,
            {"transition": "convert", "from": source, "to": "converted", "via": "policy"},
        )
    if rows:
        db.session.flush()
    return len(rows)


def after_transition(
    subject: Any, from_state: str, to_state: str, at: datetime, inputs: Mapping[str, Any]
) -> None:
    """A lead converted by hand: ``converted_on`` and the customer's status; lost: its reason;
    reopened: the reason cleared. A policy issued: its customer's open leads convert."""
    if isinstance(subject, Lead):
        if to_state == "converted":
            _converted(subject, at)
        elif to_state == "lost":
            reason = str((inputs or {}).get("lost_reason") or "").strip()
            subject.lost_reason = reason[:200] or None
        elif from_state == "lost":
            subject.lost_reason = None
        return
    if getattr(subject, "__tablename__", None) == POLICY_TABLE and to_state == ISSUED:
        number = getattr(subject, "number", "")
        convert_customer_leads(
            subject.customer_id, at, comment=_("Policy %(number)s issued", number=number)
        )


# -- reading --------------------------------------------------------------------------------------


def leads_of_agent(agent_id: int, limit: int = 10) -> list[tuple[Lead, str]]:
    """The agent's newest leads with their prospect's name (one query; record rule applies)."""
    return [
        (lead, name)
        for lead, name in db.session.execute(
            select(Lead, Customer.name)
            .join(Customer, Customer.id == Lead.customer_id)
            .where(Lead.agent_id == agent_id)
            .order_by(Lead.created_on.desc(), Lead.id.desc())
            .limit(limit)
        )
    ]


def counts_of_agent(agent_id: int) -> list[tuple[str, int]]:
    """``(state, leads)`` of an agent's leads in workflow order (one GROUP BY)."""
    found = dict(
        db.session.execute(
            select(Lead.state, func.count())
            .join(Customer, Customer.id == Lead.customer_id)
            .where(Lead.agent_id == agent_id)
            .group_by(Lead.state)
        ).all()
    )
    return [(s, found[s]) for s in STATE_KEYS if found.get(s)]


def referral_of(customer_id: int) -> Referral | None:
    return db.session.scalar(select(Referral).where(Referral.customer_id == customer_id))


# -- hooks gathered by plugins.insurance ----------------------------------------------------------


def choices() -> list[Choice]:
    return [Choice(SOURCE_LIST, v, text, zh) for v, text, zh in SOURCES]


def workflows() -> list[Workflow]:
    return [LEAD_WORKFLOW]


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem("insurance.leads", "Leads", "线索", order=27, group="Insurance", group_zh="保险")
    ]


def resources() -> list[Any]:
    """The API resource ``insurance_leads`` (:mod:`plugins.insurance.api_leads`)."""
    from plugins.insurance import api_leads

    return api_leads.resources()


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The leads and referrals box on a customer's page."""
    if subject_type != "customer":
        return []
    return [
        Panel(
            "Leads and referrals",
            lambda: web_leads.render_customer_panel(subject),
            "线索与转介绍",
            order=22,
        )
    ]


def timeline(customer: Any) -> list[TimelineEntry]:
    """The customer's leads: when each came in, converted or was lost (one query)."""
    rows = db.session.execute(
        select(Lead.id, Lead.created_at, Lead.state, Lead.source, Lead.converted_on)
        .where(Lead.customer_id == customer.id)
        .order_by(Lead.id.desc())
        .limit(50)
    ).all()
    out = []
    for lead_id, created_at, state, source, converted_on in rows:
        link = f"/insurance/leads/{lead_id}"
        out.append(
            TimelineEntry(
                at=created_at,
                kind="lead",
                title=_("Lead from %(source)s", source=source_label(source)),
                detail=state_label(state),
                link=link,
            )
        )
        if converted_on is not None:
            out.append(
                TimelineEntry(
                    at=datetime.combine(converted_on, time(12), UTC),
                    kind="lead",
                    title=_("Lead converted"),
                    link=link,
                )
            )
    return out


# -- reports --------------------------------------------------------------------------------------

DIMENSIONS = (
    ("stage", "Stage (funnel)", "阶段（漏斗）"),
    ("agent", "Agent", "代理人"),
    ("channel", "Channel", "渠道"),
    ("source", "Source", "来源"),
)
STATE_COLORS = {
    "new": "#90cdf4",
    "contacted": "#4fd1c5",
    "proposal": "#9f7aea",
    "converted": "#38a169",
    "lost": "#a0aec0",
}
#: Funnel steps: a lead has reached a step when its state is one of these.
STEPS = (
    ("leads", "Leads", "线索", STATE_KEYS),
    ("contacted", "Contacted", "已联系", ("contacted", "proposal", "converted")),
    ("proposal", "Proposal", "已出方案", ("proposal", "converted")),
    ("converted", "Converted", "已成交", ("converted",)),
)


def _dim(p: Mapping[str, Any]) -> str:
    return p.get("by") or "stage"


def _in_dates(stmt: Any, p: Mapping[str, Any]) -> Any:
    if p.get("start"):
        stmt = stmt.where(Lead.created_on >= p["start"])
    if p.get("end"):
        stmt = stmt.where(Lead.created_on <= p["end"])
    if p.get("agent"):
        stmt = stmt.where(Lead.agent_id == int(p["agent"]))
    if p.get("channel"):
        stmt = stmt.where(Lead.channel_id == p["channel"])
    return stmt


def _funnel_query(p: Mapping[str, Any]) -> Any:
    dim = _dim(p)
    count = func.count(Lead.id).label("n")
    base = select().select_from(Lead).join(Customer, Customer.id == Lead.customer_id)
    if dim == "agent":
        agent_channel = Channel.__table__.alias("agent_channel")
        stmt = (
            base.add_columns(
                Lead.agent_id.label("value"), agent_channel.c.name.label("name"), Lead.state, count
            )
            .outerjoin(Agent, Agent.id == Lead.agent_id)
            .outerjoin(agent_channel, agent_channel.c.id == Agent.channel_id)
            .group_by(Lead.agent_id, agent_channel.c.name, Lead.state)
        )
    elif dim == "channel":
        lead_channel = Channel.__table__.alias("lead_channel")
        stmt = (
            base.add_columns(
                Lead.channel_id.label("value"), lead_channel.c.name.label("name"), Lead.state, count
            )
            .outerjoin(lead_channel, lead_channel.c.id == Lead.channel_id)
            .group_by(Lead.channel_id, lead_channel.c.name, Lead.state)
        )
    elif dim == "source":
        stmt = base.add_columns(
            Lead.source.label("value"), Lead.source.label("name"), Lead.state, count
        ).group_by(Lead.source, Lead.state)
    else:
        stmt = base.add_columns(Lead.state, count).group_by(Lead.state)
    return _in_dates(stmt, p)


def _funnel_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = _dim(p)
    if dim == "stage":
        found = {r["state"]: int(r["n"]) for r in rows}
        total = sum(found.values())
        out = []
        for key, text, zh, states in STEPS:
            n = sum(found.get(s, 0) for s in states)
            out.append(
                {
                    "label": pick(text, zh),
                    "step": key,
                    "leads": n,
                    "rate": (n / total) if total else None,
                }
            )
        return out
    none = {"agent": _("No agent"), "channel": _("No channel"), "source": ""}[dim]
    table: dict[Any, dict[str, Any]] = {}
    for r in rows:
        name = source_label(r["value"]) if dim == "source" else (r["name"] or none)
        row = table.setdefault(
            r["value"],
            {"value": r["value"], "label": name, **{s: 0 for s in STATE_KEYS}, "total": 0},
        )
        row[r["state"]] = row.get(r["state"], 0) + int(r["n"])
        row["total"] += int(r["n"])
    out = list(table.values())
    for row in out:
        row["rate"] = row["converted"] / row["total"] if row["total"] else None
    return sorted(out, key=lambda r: (-r["total"], str(r["label"])))


def _funnel_columns(p: Mapping[str, Any]) -> list[ReportColumn]:
    dim = _dim(p)
    if dim == "stage":
        return [
            ReportColumn("label", "Stage", "阶段", "text"),
            ReportColumn("leads", "Leads", "线索数", color="#2b6cb0"),
            ReportColumn("rate", "Share of all leads", "占全部线索", "percent"),
        ]
    head = {d: (text, zh) for d, text, zh in DIMENSIONS}[dim]
    return [
        ReportColumn("label", head[0], head[1], "text"),
        *[ReportColumn(s, text, zh, color=STATE_COLORS[s]) for s, text, zh, _c in STATES],
        ReportColumn("total", "Leads", "线索数"),
        ReportColumn("rate", "Conversion rate", "成交率", "percent"),
    ]


def _funnel_series(p: Mapping[str, Any]) -> list[str]:
    return ["leads"] if _dim(p) == "stage" else list(STATE_KEYS)


def _funnel_chart(p: Mapping[str, Any]) -> str:
    return "funnel" if _dim(p) == "stage" else "hstacked"


def _lead_filters(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    query: list[tuple[str, str]] = []
    if p.get("start"):
        query.append(("from", p["start"].isoformat()))
    if p.get("end"):
        query.append(("to", p["end"].isoformat()))
    if p.get("agent"):
        query.append(("agent", str(p["agent"])))
    if p.get("channel"):
        query.append(("channel", str(p["channel"])))
    return query


def _funnel_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    from urllib.parse import urlencode

    dim = _dim(p)
    query = _lead_filters(p)
    if dim == "stage":
        states = next((s for key, _t, _z, s in STEPS if key == row.get("step")), STATE_KEYS)
        if row.get("step") != "leads":
            query += [("state", s) for s in states]
    else:
        value = row.get("value")
        key = {"agent": "agent", "channel": "channel", "source": "source"}[dim]
        query = [(k, v) for k, v in query if k != key]
        query.append((key, "none" if value is None else str(value)))
        if series in STATE_KEYS:
            query.append(("state", series))
    return "/insurance/leads?" + urlencode(query)


def _agent_choices() -> list[tuple[str, str]]:
    return [(str(i), name) for i, name in agents.agent_options()]


def _referral_query(p: Mapping[str, Any]) -> Any:
    by_agent = (p.get("by") or "customer") == "agent"
    converted = (
        exists()
        .where(Lead.customer_id == Referral.customer_id, Lead.state == "converted")
        .correlate(Referral)
    )
    if by_agent:
        who = Channel.__table__.alias("referrer_channel")
        ref = Agent.__table__.alias("referrer_agent")
        key = Referral.referrer_agent_id
        stmt = (
            select(key.label("value"), who.c.name.label("name"))
            .select_from(Referral)
            .join(ref, ref.c.id == key)
            .join(who, who.c.id == ref.c.channel_id)
        )
        group = [key, who.c.name]
    else:
        who = Customer.__table__.alias("referrer")
        key = Referral.referrer_customer_id
        stmt = (
            select(key.label("value"), who.c.name.label("name"))
            .select_from(Referral)
            .join(who, who.c.id == key)
        )
        group = [key, who.c.name]
    stmt = (
        stmt.add_columns(
            func.count(Referral.id).label("referrals"),
            func.sum(case((converted, 1), else_=0)).label("converted"),
        )
        .join(Customer, Customer.id == Referral.customer_id)
        .group_by(*group)
    )
    if p.get("start"):
        stmt = stmt.where(Referral.referred_on >= p["start"])
    if p.get("end"):
        stmt = stmt.where(Referral.referred_on <= p["end"])
    return stmt


def _referral_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        n, won = int(r["referrals"]), int(r["converted"] or 0)
        out.append(
            {
                "value": r["value"],
                "label": r["name"],
                "referrals": n,
                "converted": won,
                "rate": won / n if n else None,
            }
        )
    return sorted(out, key=lambda r: (-r["referrals"], -r["converted"], str(r["label"])))


def _referral_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    from urllib.parse import urlencode

    key = "referrer_agent" if (p.get("by") or "customer") == "agent" else "referrer_customer"
    query = [(key, str(row["value"]))]
    if series == "converted":
        query.append(("state", "converted"))
    return "/insurance/leads?" + urlencode(query)


def reports() -> list[Report]:
    """The lead funnel (by stage, agent, channel or source) and referrals by referrer."""
    from core.extend import date_range

    return [
        Report(
            name="insurance_lead_funnel",
            label="Lead funnel",
            label_zh="线索转化漏斗",
            description="Leads created in the chosen dates: how many reached each stage "
            "(by stage), or their current stage and conversion rate per agent, channel or "
            "source. A lost lead counts as a lead only.",
            description_zh="所选日期内新建的线索：到达各阶段的数量（按阶段），或按代理人、"
            "渠道、来源统计当前阶段与成交率。流失的线索只计入线索数。",
            params=(
                *date_range(365, "Created", "创建日期"),
                ReportParam("by", "By", "维度", choices=DIMENSIONS, default="stage"),
                ReportParam("agent", "Agent", "代理人", choices=_agent_choices),
                ReportParam("channel", "Channel", "渠道", "channel"),
            ),
            query=_funnel_query,
            shape=_funnel_shape,
            columns=_funnel_columns,
            series=_funnel_series,
            chart=_funnel_chart,
            drill=_funnel_drill,
            group="insurance",
            order=220,
        ),
        Report(
            name="insurance_referrals",
            label="Referrals",
            label_zh="转介绍统计",
            description="Customers referred by each customer or agent in the chosen dates, and "
            "how many of them converted (have a converted lead).",
            description_zh="所选日期内每位客户或代理人转介绍的客户数，及其中已成交的人数。",
            params=(
                *date_range(365, "Referred", "转介绍日期"),
                ReportParam(
                    "by",
                    "Referrer",
                    "介绍人",
                    choices=(("customer", "Customer", "客户"), ("agent", "Agent", "代理人")),
                    default="customer",
                ),
            ),
            query=_referral_query,
            shape=_referral_shape,
            columns=(
                ReportColumn("label", "Referrer", "介绍人", "text"),
                ReportColumn("referrals", "Referred", "介绍客户数", color="#2b6cb0"),
                ReportColumn("converted", "Converted", "已成交", color="#38a169"),
                ReportColumn("rate", "Conversion rate", "成交率", "percent"),
            ),
            series=("referrals", "converted"),
            chart="hbar",
            drill=_referral_drill,
            group="insurance",
            order=221,
        ),
    ]


# -- demo -----------------------------------------------------------------------------------------

_LOST_REASONS = ("预算不足，暂缓投保", "已在他司投保", "对保障责任有疑虑", "联系不上")


def demo(company: Any, fake: Any) -> None:
    """30 leads over the last five months spread over the stages and sources, on the agents'
    and the bank branches' channels (two on the website without an agent), six of them
    referrals by existing customers or agents; the agent with a login has several, so "my
    leads" shows them. The converted leads are those of customers whose first policy the
    policies part's demo issued (the lead came in a few weeks before the issue and converted
    that day); new prospects fill in when there are too few."""
    from core import workflow
    from plugins.insurance.models import Policy

    rng = random.Random(f"leads-{company.code}")
    people = (
        db.session.execute(select(Agent).where(Agent.status == "active").order_by(Agent.id))
        .scalars()
        .all()
    )
    manager = db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "manager", User.email.like("%.demo"))
    )
    if not people or manager is None:
        return
    mine = next((a for a in people if a.user_id and a.user_id != manager.id), people[0])
    internet = db.session.scalar(select(Channel.id).where(Channel.type == "internet"))
    existing = db.session.scalars(
        select(Customer.id)
        .where(Customer.status == "existing", Customer.is_organization.is_(False))
        .order_by(Customer.id)
        .limit(20)
    ).all()
    sold: dict[int, tuple[int, date]] = {}
    for customer_id, agent_id, issued_on in db.session.execute(
        select(Policy.customer_id, Policy.agent_id, Policy.issued_on)
        .where(Policy.issued_on.is_not(None), Policy.agent_id.is_not(None))
        .order_by(Policy.issued_on, Policy.id)
    ):
        sold.setdefault(customer_id, (agent_id, issued_on))
    buyers = [(c, a, d) for c, (a, d) in sold.items() if d >= today() - timedelta(days=300)]
    buyers = buyers[:7]
    day = today()
    plan = ["new"] * 7 + ["contacted"] * 6 + ["proposal"] * 6 + ["lost"] * 4
    plan += ["converted"] * (7 - len(buyers))
    for customer_id, agent_id, issued_on in buyers:
        created = issued_on - timedelta(days=rng.randint(10, 40))
        at = datetime.combine(created, time(2), UTC) + timedelta(minutes=rng.randint(0, 300))
        lead = create_lead(
            LeadInput(
                customer_id=customer_id,
                agent_id=agent_id,
                source=rng.choice(SOURCE_KEYS[1:]),
                created_on=created,
            ),
            manager,
            at=at,
            via="demo",
        )
        lead.state, lead.converted_on = "converted", issued_on
        db.session.get(Customer, customer_id).status = "existing"
        db.session.add(
            WorkflowHistory(
                workflow=WORKFLOW,
                subject_type=Lead.__tablename__,
                subject_id=lead.id,
                transition="convert",
                from_state="new",
                to_state="converted",
                comment=_("Policy issued"),
                created_at=datetime.combine(issued_on, time(4), UTC),
            )
        )
    for n, target in enumerate(plan):
        agent = mine if n % 3 == 0 else rng.choice(people)
        no_agent = n in (5, 17) and internet is not None
        referral = n % 5 == 1
        created = day - timedelta(days=rng.randint(3, 150))
        source = "referral" if referral else rng.choice(SOURCE_KEYS[1:])
        if no_agent:
            source = "online"
        at = datetime.combine(created, time(2), UTC) + timedelta(minutes=rng.randint(0, 400))
        lead = create_lead(
            LeadInput(
                name=fake.name(),
                phone=f"139{rng.randint(10**7, 10**8 - 1)}",
                region=rng.choice(["上海市", "江苏省", "浙江省"]),
                agent_id=None if no_agent else agent.id,
                channel_id=internet if no_agent else None,
                source=source,
                referrer_customer_id=rng.choice(existing) if referral and existing else None,
                referrer_agent_id=agent.id if referral and (n % 2 or not existing) else None,
                created_on=created,
                notes=rng.choice([None, "关注重疾保障", "为孩子咨询教育年金", "希望补充医疗"]),
            ),
            manager,
            at=at,
            via="demo",
        )
        steps = {
            "new": [],
            "contacted": ["contact"],
            "proposal": ["contact", "propose"],
            "converted": ["contact", "propose", "convert"],
            "lost": ["contact", "lose"],
        }[target]
        moment = at
        for step in steps:
            moment = min(moment + timedelta(days=rng.randint(1, 6)), utcnow())
            workflow.transition(
                lead,
                step,
                user=manager,
                inputs={"lost_reason": rng.choice(_LOST_REASONS)} if step == "lose" else {},
                at=moment,
            )
    db.session.flush()


from plugins.insurance import web_leads  # noqa: E402  (registers the routes on the blueprint)
