"""Agents, brokers and partner channels: profiles, licences, the team hierarchy, licence
expiry notices (DOMAIN §2, §6). See docs/insurance-agents.md.

Profiles (代理人档案)
    A selling channel of the core (type ``direct_staff``, ``insurance_agent``, ``broker`` or
    ``bancassurance``; the ``internet`` and ``mobile`` channels sell without anyone in between
    and have no profile) gets one :class:`~plugins.insurance.models.Agent` row: the licence
    (number, classes of products it covers, issuing region, expiry), a status (``active``,
    ``suspended``, ``terminated``: choice ``insurance_agent_status``), a team, an upline (the
    agent above, any depth; never the agent itself nor one of its own downline), the day the
    agent joined and an optional login (``user_id``). The channel row keeps the name, type,
    parent (a bank above its branches) and territory.
The licence gate (:func:`licence_problem`)
    A sale through an agent is allowed on a day when the agent is active, has a licence number,
    the licence has not expired (``licence_expires_on`` is the last valid day; no date: a
    licence without an expiry) and covers the product's class. Otherwise the message names the
    licence and what is wrong, for the clerk to act on. The policies part calls it from the
    issue guard.
The hierarchy
    :func:`upline_chain` walks up (direct upline first), :func:`downline_ids` down (one
    recursive CTE; a cycle written around the forms, e.g. by SQL, ends the walk instead of
    looping). :func:`upline_problem` refuses an upline that would close a cycle.
Licence expiry notices
    The obligation kind ``insurance.licence`` (date-bound) counts to the end of the expiry day
    and notifies at 60, 30 and 7 days before it, each once, then once when the licence has
    expired: the agent's own login when it has one, the company's managers otherwise. It is
    (re)started whenever the expiry or the status changes (:func:`restart_clock`); a
    terminated agent has no clock.

Pages are in :mod:`plugins.insurance.web_agents`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import String, case, cast, func, literal, or_, select

from core import audit, clocks
from core.choices import label as choice_label
from core.extend import (
    Choice,
    MenuItem,
    ObligationKind,
    Panel,
    Report,
    ReportColumn,
    ReportParam,
    db,
    require_company,
)
from core.i18n import pick
from core.models import Channel, Membership, User
from plugins.insurance.models import Agent

STATUS_LIST = "insurance_agent_status"
CLASS_LIST = "insurance_product_class"
STATUSES: tuple[tuple[str, str, str], ...] = (
    ("active", "Active", "在职"),
    ("suspended", "Suspended", "暂停展业"),
    ("terminated", "Terminated", "已解约"),
)
STATUS_KEYS = tuple(s for s, _l, _z in STATUSES)
#: Channel types whose channels sell in person and carry a profile.
PROFILE_TYPES = ("direct_staff", "insurance_agent", "broker", "bancassurance")
#: Channel types that sell without a person in between (no profile).
DIRECT_TYPES = ("internet", "mobile")
CLOCK = "insurance.licence"
NOTICES = (60, 30, 7)
#: Deepest hierarchy walked (a guard against a cycle written around the forms).
MAX_DEPTH = 64
MAX_ID = 2**31 - 1
EARLIEST = date(1950, 1, 1)
LATEST = date(2199, 12, 31)


def status_label(value: str | None) -> str:
    """The label of an agent status in the user's language."""
    for key, text, text_zh in STATUSES:
        if key == value:
            return pick(text, text_zh)
    return value or ""


def class_label(value: str | None) -> str:
    """The label of a product class (choice ``insurance_product_class``)."""
    return choice_label(CLASS_LIST, value)


def class_options() -> list[tuple[str, str]]:
    """``(value, label)`` of every product class, in declaration order."""
    from plugins.insurance import PRODUCT_CLASSES

    return [(v, pick(text, zh)) for v, text, zh in PRODUCT_CLASSES]


def today() -> date:
    """Today in the company's time zone."""
    from core.reports import today as company_today

    return company_today()


# -- the licence gate -----------------------------------------------------------------------------


def licence_problem(agent: Agent | None, product_class: str, on: date) -> str | None:
    """Why ``agent`` may not sell a product of ``product_class`` on day ``on``, or ``None``
    when it may (``agent`` ``None``: a sale without an agent, e.g. on the internet -- allowed).

    Checked in this order: the agent is active (not suspended or terminated); it has a licence
    number; the licence has not expired (``licence_expires_on`` is the last valid day, no date
    is a licence without expiry); the licence covers ``product_class``. The message names the
    licence number and what to do.
    """
    if agent is None:
        return None
    name = agent_label(agent.id) if agent.id is not None else ""
    number = agent.licence_number
    if agent.status != "active":
        return _(
            "%(name)s (licence %(number)s) is %(status)s: only active agents may sell; "
            "reactivate the agent or choose another.",
            name=name,
            number=number or _("none"),
            status=status_label(agent.status).lower(),
        )
    if not (number or "").strip():
        return _(
            "%(name)s has no licence on file: enter the licence number on the agent's profile "
            "before selling through them.",
            name=name,
        )
    expires = agent.licence_expires_on
    if expires is not None and expires < on:
        return _(
            "Licence %(number)s of %(name)s expired on %(date)s: renew it on the agent's "
            "profile or choose another agent.",
            number=number,
            name=name,
            date=expires.isoformat(),
        )
    if product_class not in (agent.licence_classes or []):
        covered = ", ".join(class_label(c) for c in agent.licence_classes or []) or _("nothing")
        return _(
            "Licence %(number)s of %(name)s does not cover %(cls)s (it covers: %(covered)s).",
            number=number,
            name=name,
            cls=class_label(product_class),
            covered=covered,
        )
    return None


# -- the hierarchy --------------------------------------------------------------------------------


def upline_chain(agent: Agent) -> list[Agent]:
    """The agents above ``agent``: ``[direct upline, its upline, …]`` at any depth (one
    recursive query); a cycle stops the walk before an agent repeats (or ``agent`` itself)."""
    if agent.upline_id is None:
        return []
    company_id = require_company()
    t = Agent.__table__
    anchor = select(t.c.id.label("id"), t.c.upline_id.label("up"), literal(1).label("depth"))
    anchor = anchor.where(t.c.company_id == company_id, t.c.id == agent.upline_id)
    walk = anchor.cte("upline_walk", recursive=True)
    above = t.alias("upline_above")
    walk = walk.union_all(
        select(above.c.id, above.c.upline_id, walk.c.depth + 1).where(
            above.c.id == walk.c.up,
            above.c.company_id == company_id,
            walk.c.depth < MAX_DEPTH,
        )
    )
    rows = db.session.execute(
        select(Agent, walk.c.depth).join(walk, walk.c.id == Agent.id).order_by(walk.c.depth)
    ).all()
    chain: list[Agent] = []
    seen = {agent.id}
    for row, _depth in rows:
        if row.id in seen:
            break
        seen.add(row.id)
        chain.append(row)
    return chain


def _downline_cte(agent_id: int) -> Any:
    """Ids of every agent below ``agent_id`` (UNION: a cycle ends the recursion)."""
    company_id = require_company()
    t = Agent.__table__
    anchor = select(t.c.id.label("id")).where(
        t.c.company_id == company_id, t.c.upline_id == agent_id
    )
    walk = anchor.cte("downline_walk", recursive=True)
    below = t.alias("downline_below")
    return walk.union(
        select(below.c.id).where(below.c.upline_id == walk.c.id, below.c.company_id == company_id)
    )


def downline_ids(agent_id: int) -> list[int]:
    """Every agent below ``agent_id`` at any depth, not the agent itself (one recursive CTE)."""
    walk = _downline_cte(agent_id)
    return sorted(i for i in db.session.scalars(select(walk.c.id)) if i != agent_id)


@dataclass
class Node:
    """An agent of a downline tree with its channel's name and its own downline."""

    agent: Agent
    name: str
    type: str
    depth: int
    children: list[Node] = field(default_factory=list)


def downline_tree(agent: Agent, limit: int = 500) -> tuple[list[Node], int]:
    """The downline of ``agent`` as a tree (direct downline first, by name) and its size;
    two queries whatever the depth. At most ``limit`` agents are placed in the tree."""
    ids = downline_ids(agent.id)
    if not ids:
        return [], 0
    rows = db.session.execute(
        select(Agent, Channel.name, Channel.type)
        .join(Channel, Channel.id == Agent.channel_id)
        .where(Agent.id.in_(ids[: limit * 4]))
        .order_by(Channel.name, Agent.id)
    ).all()
    children: dict[int | None, list[tuple[Agent, str, str]]] = {}
    for row, name, ctype in rows:
        children.setdefault(row.upline_id, []).append((row, name, ctype))
    placed: set[int] = {agent.id}

    def build(parent_id: int, depth: int) -> list[Node]:
        out = []
        for row, name, ctype in children.get(parent_id, []):
            if row.id in placed or len(placed) > limit:
                continue
            placed.add(row.id)
            node = Node(row, name, ctype, depth)
            node.children = build(row.id, depth + 1)
            out.append(node)
        return out

    return build(agent.id, 1), len(ids)


def upline_problem(agent_id: int | None, upline_id: int | None) -> str | None:
    """Why ``upline_id`` cannot be the upline of agent ``agent_id`` (``None``: a new agent), or
    ``None`` when it can: no such agent of the company, the agent itself, or one of its own
    downline (a cycle)."""
    if upline_id is None:
        return None
    if (
        not 0 < upline_id <= MAX_ID
        or db.session.scalar(select(Agent.id).where(Agent.id == upline_id)) is None
    ):
        return _("Choose an agent of this company.")
    if agent_id is not None and upline_id == agent_id:
        return _("An agent cannot be their own upline.")
    if agent_id is not None and upline_id in downline_ids(agent_id):
        return _("This agent is below the agent being edited: the hierarchy would go in a circle.")
    return None


# -- looking agents up ----------------------------------------------------------------------------


def agent_for_user(user_id: int) -> Agent | None:
    """The current company's agent profile of login ``user_id`` (the oldest when several)."""
    return db.session.scalars(
        select(Agent).where(Agent.user_id == user_id).order_by(Agent.id).limit(1)
    ).first()


def agent_of_channel(channel_id: int) -> Agent | None:
    """The profile of channel ``channel_id``, if it has one."""
    return db.session.scalars(select(Agent).where(Agent.channel_id == channel_id)).first()


def agent_names(ids: Iterable[int]) -> dict[int, str]:
    """Agent id → its channel's name, for any number of agents (one query)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    return dict(
        db.session.execute(
            select(Agent.id, Channel.name)
            .join(Channel, Channel.id == Agent.channel_id)
            .where(Agent.id.in_(wanted))
        ).all()
    )


def agent_label(agent_id: int | None) -> str:
    """The name of agent ``agent_id`` (its channel's), or ``""``."""
    if agent_id is None:
        return ""
    return agent_names([agent_id]).get(agent_id, "")


def agent_options(exclude: Iterable[int] = ()) -> list[tuple[int, str]]:
    """``(id, "name · licence")`` of the company's agents that are not terminated, by name."""
    skip = set(exclude)
    rows = db.session.execute(
        select(Agent.id, Channel.name, Agent.licence_number, Agent.status)
        .join(Channel, Channel.id == Agent.channel_id)
        .order_by(Channel.name, Agent.id)
    ).all()
    return [
        (i, f"{name} · {number}" if number else name)
        for i, name, number, status in rows
        if i not in skip and status != "terminated"
    ]


def teams() -> list[str]:
    """The team names in use, sorted."""
    return sorted(t for t in db.session.scalars(select(Agent.team).distinct()) if t)


# -- saving profiles ------------------------------------------------------------------------------


@dataclass
class AgentInput:
    """A profile as entered. To create one, either ``channel_id`` names an existing channel
    without a profile, or ``channel_name`` and ``channel_type`` (with optional code, parent
    and territory) describe the channel to create with it."""

    licence_number: str | None = None
    licence_classes: list[str] = field(default_factory=list)
    licence_region: str | None = None
    licence_expires_on: date | None = None
    status: str = "active"
    team: str | None = None
    upline_id: int | None = None
    joined_on: date | None = None
    user_id: int | None = None
    channel_id: int | None = None
    channel_name: str | None = None
    channel_type: str | None = None
    channel_code: str | None = None
    channel_parent_id: int | None = None
    channel_territory: str | None = None


def _text(value: str | None, limit: int) -> tuple[str | None, bool]:
    text = (value or "").strip()
    return (text or None), len(text) <= limit and "\x00" not in text


def problems(data: AgentInput, agent: Agent | None = None) -> dict[str, str]:
    """What is wrong with saving ``data`` as a new profile (``agent`` ``None``) or over
    ``agent``, by field (``channel_name``, ``licence_number``, ``upline_id`` …)."""
    from core.channels import parent_error
    from core.choices import options

    out: dict[str, str] = {}
    if agent is None:
        if data.channel_id is not None:
            found = data.channel_id <= MAX_ID
            channel = db.session.get(Channel, data.channel_id) if found else None
            if channel is None or channel.company_id != require_company():
                out["channel_id"] = _("Choose a channel of this company.")
            elif agent_of_channel(channel.id) is not None:
                out["channel_id"] = _("This channel has a profile already.")
        else:
            name, ok = _text(data.channel_name, 200)
            if not name or not ok:
                out["channel_name"] = _(
                    "Name the agent, broker or branch (at most 200 characters)."
                )
            if data.channel_type not in PROFILE_TYPES or data.channel_type not in {
                v for v, _l in options("channel_type")
            }:
                out["channel_type"] = _(
                    "Choose direct sales staff, insurance agent, broker or bancassurance."
                )
            if not _text(data.channel_code, 40)[1]:
                out["channel_code"] = _("At most %(n)s characters.", n=40)
            if not _text(data.channel_territory, 120)[1]:
                out["channel_territory"] = _("At most %(n)s characters.", n=120)
            if data.channel_parent_id is not None and parent_error(None, data.channel_parent_id):
                out["channel_parent_id"] = _("Choose a channel of this company.")
    number, ok = _text(data.licence_number, 40)
    if not ok:
        out["licence_number"] = _("At most %(n)s characters.", n=40)
    elif number and db.session.scalar(
        select(Agent.id).where(
            Agent.licence_number == number, Agent.id != (agent.id if agent else -1)
        )
    ):
        out["licence_number"] = _("Another agent has this licence number.")
    known = {v for v, _l in class_options()}
    unknown = [c for c in data.licence_classes if c not in known]
    if unknown:
        out["licence_classes"] = _("Unknown product class: %(value)s.", value=unknown[0][:40])
    elif number and not data.licence_classes:
        out["licence_classes"] = _("Tick the product classes the licence covers.")
    if not _text(data.licence_region, 80)[1]:
        out["licence_region"] = _("At most %(n)s characters.", n=80)
    for key in ("licence_expires_on", "joined_on"):
        day = getattr(data, key)
        if day is not None and not EARLIEST <= day <= LATEST:
            out[key] = _("Enter a date from %(low)s to %(high)s.", low=EARLIEST, high=LATEST)
    if data.joined_on is not None and data.joined_on > today() and "joined_on" not in out:
        out["joined_on"] = _("The day the agent joined cannot be in the future.")
    if data.status not in STATUS_KEYS:
        out["status"] = _("Choose active, suspended or terminated.")
    if not _text(data.team, 80)[1]:
        out["team"] = _("At most %(n)s characters.", n=80)
    problem = upline_problem(agent.id if agent else None, data.upline_id)
    if problem:
        out["upline_id"] = problem
    if data.user_id is not None:
        member = db.session.scalar(select(Membership.id).where(Membership.user_id == data.user_id))
        if member is None:
            out["user_id"] = _("Choose a member of this company.")
        else:
            other = agent_for_user(data.user_id)
            if other is not None and (agent is None or other.id != agent.id):
                out["user_id"] = _(
                    "This login is the profile of %(name)s already.", name=agent_label(other.id)
                )
    return out


class AgentRefused(ValueError):
    """A profile refused: ``errors`` by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


_PROFILE_FIELDS = (
    "licence_number",
    "licence_classes",
    "licence_region",
    "licence_expires_on",
    "status",
    "team",
    "upline_id",
    "joined_on",
    "user_id",
)


def _apply(agent: Agent, data: AgentInput) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key in _PROFILE_FIELDS:
        value = getattr(data, key)
        if isinstance(value, str):
            value = value.strip() or None
        if key == "licence_classes":
            value = [c for c, _l in class_options() if c in set(value or [])]
        if key == "status" and value is None:
            value = "active"
        if getattr(agent, key) != value:
            changed[key] = value.isoformat() if isinstance(value, date) else value
            setattr(agent, key, value)
    return changed


def create_agent(data: AgentInput, user_id: int | None = None, via: str = "web") -> Agent:
    """A new profile (and its channel when ``data`` describes one); raises
    :class:`AgentRefused`. Starts the licence clock; audited; the caller commits."""
    found = problems(data)
    if found:
        raise AgentRefused(found)
    channel_id = data.channel_id
    if channel_id is None:
        channel = Channel(
            name=(data.channel_name or "").strip(),
            type=data.channel_type or "insurance_agent",
            code=(data.channel_code or "").strip() or None,
            parent_id=data.channel_parent_id,
            territory=(data.channel_territory or "").strip() or None,
            status="active",
        )
        db.session.add(channel)
        db.session.flush()
        audit.record("create", "channel", channel.id, {"via": via}, user_id=user_id)
        channel_id = channel.id
    agent = Agent(channel_id=channel_id, licence_classes=[])
    changed = _apply(agent, data)
    db.session.add(agent)
    db.session.flush()
    audit.record("create", "insurance_agent", agent.id, {"via": via, **changed}, user_id=user_id)
    restart_clock(agent)
    return agent


def update_agent(
    agent: Agent, data: AgentInput, user_id: int | None = None, via: str = "web"
) -> dict[str, Any]:
    """Save ``data`` over ``agent``'s profile (the channel stays as it is); raises
    :class:`AgentRefused`. Restarts the licence clock when the expiry or status changed;
    audited; returns what changed. The caller commits."""
    found = problems(data, agent)
    if found:
        raise AgentRefused(found)
    changed = _apply(agent, data)
    if changed:
        db.session.flush()
        audit.record(
            "update", "insurance_agent", agent.id, {"via": via, **changed}, user_id=user_id
        )
    if {"licence_expires_on", "status"} & set(changed):
        restart_clock(agent)
    return changed


# -- the licence clock ----------------------------------------------------------------------------


def licence_deadline(agent: Agent) -> date | None:
    """The last day of ``agent``'s licence, or ``None`` (no expiry, or a terminated agent:
    no clock)."""
    if agent.status == "terminated":
        return None
    return agent.licence_expires_on


LICENCE_CLOCK = ObligationKind(
    CLOCK,
    Agent,
    None,
    "Licence expiry",
    "执业证到期",
    deadline=licence_deadline,
    notices=NOTICES,
    assignee="user_id",
    link="/insurance/agents/{id}",
    auto_start=False,
)


def obligation_kinds() -> list[ObligationKind]:
    return [LICENCE_CLOCK]


def restart_clock(agent: Agent) -> None:
    """Count ``agent``'s licence clock afresh to its expiry as it is now (removed when there is
    no expiry or the agent is terminated); each notice is sent again for the new date."""
    db.session.flush()
    clocks.restart(LICENCE_CLOCK, agent)
    db.session.flush()  # now, while the company is in scope (the row takes its company_id)


# -- hooks gathered by plugins.insurance ----------------------------------------------------------


def choices() -> list[Choice]:
    return [Choice(STATUS_LIST, v, text, zh) for v, text, zh in STATUSES]


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "insurance.agents", "Agents", "代理人", order=26, group="Insurance", group_zh="保险"
        )
    ]


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The profile box on a channel's page (a channel that sells in person)."""
    if subject_type != "channel":
        return []
    if getattr(subject, "type", None) not in PROFILE_TYPES:
        return []
    return [
        Panel(
            "Agent profile",
            lambda: web_agents.render_channel_panel(subject),
            "代理人档案",
            order=20,
        )
    ]


def resources() -> list[Any]:
    return web_agents.resources()


# -- report: licence expiry -----------------------------------------------------------------------


def _expiry_month() -> Any:
    """SQL: ``YYYY-MM`` of the licence expiry (a date: no time zone involved)."""
    return func.substr(cast(Agent.licence_expires_on, String), 1, 7)


def _expiry_default_start() -> date:
    day = today() - timedelta(days=90)
    return day.replace(day=1)


def _expiry_default_end() -> date:
    return today() + timedelta(days=365)


def _expiry_query(p: Mapping[str, Any]) -> Any:
    day = today()
    month = _expiry_month().label("month")
    stmt = (
        select(
            month,
            func.sum(case((Agent.licence_expires_on < day, 1), else_=0)).label("expired"),
            func.sum(case((Agent.licence_expires_on >= day, 1), else_=0)).label("expiring"),
            func.count().label("total"),
        )
        .select_from(Agent)
        .join(Channel, Channel.id == Agent.channel_id)
        .where(Agent.licence_expires_on.is_not(None), Agent.status != "terminated")
        .group_by(month)
    )
    if p.get("start"):
        stmt = stmt.where(Agent.licence_expires_on >= p["start"])
    if p.get("end"):
        stmt = stmt.where(Agent.licence_expires_on <= p["end"])
    if p.get("status"):
        stmt = stmt.where(Agent.status == p["status"])
    if p.get("type"):
        stmt = stmt.where(Channel.type == p["type"])
    return stmt


def _month_bounds(key: str) -> tuple[date, date]:
    first = date(int(key[:4]), int(key[5:7]), 1)
    after = (first + timedelta(days=32)).replace(day=1)
    return first, after - timedelta(days=1)


def _expiry_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from core.reports import months

    found = {r["month"]: r for r in rows}
    keys = months(p) if p.get("start") and p.get("end") else sorted(found)
    out = []
    for key in keys:
        r = found.get(key) or {}
        out.append(
            {
                "label": key,
                "month": key,
                "expired": int(r.get("expired") or 0),
                "expiring": int(r.get("expiring") or 0),
                "total": int(r.get("total") or 0),
            }
        )
    return out


def _expiry_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    from urllib.parse import urlencode

    first, last = _month_bounds(row["month"])
    if p.get("start") and p["start"] > first:
        first = p["start"]
    if p.get("end") and p["end"] < last:
        last = p["end"]
    query: dict[str, str] = {"expires_from": first.isoformat(), "expires_to": last.isoformat()}
    day = today()
    if series == "expired":
        query["expires_to"] = min(last, day - timedelta(days=1)).isoformat()
    elif series == "expiring":
        query["expires_from"] = max(first, day).isoformat()
    if p.get("status"):
        query["status"] = p["status"]
    else:
        query["status"] = "current"
    if p.get("type"):
        query["type"] = p["type"]
    return "/insurance/agents?" + urlencode(query)


def _type_choices() -> list[tuple[str, str]]:
    return [(t, choice_label("channel_type", t)) for t in PROFILE_TYPES]


def reports() -> list[Report]:
    """Licences expiring or expired, by month of expiry (drill into the agent list)."""
    return [
        Report(
            name="insurance_licence_expiry",
            label="Licence expiry",
            label_zh="执业证到期",
            description="Licences of active and suspended agents by month of expiry: already "
            "expired and still to expire. Terminated agents are left out.",
            description_zh="在职及暂停展业人员的执业证按到期月份统计：已过期与即将到期；"
            "已解约人员不计。",
            params=(
                ReportParam(
                    "start", "Expiry from", "到期日起", "date", default=_expiry_default_start
                ),
                ReportParam("end", "Expiry to", "到期日止", "date", default=_expiry_default_end),
                ReportParam(
                    "status",
                    "Status",
                    "状态",
                    choices=tuple(s for s in STATUSES if s[0] != "terminated"),
                ),
                ReportParam("type", "Channel type", "渠道类型", choices=_type_choices),
            ),
            query=_expiry_query,
            shape=_expiry_shape,
            columns=(
                ReportColumn("label", "Month of expiry", "到期月份", "text"),
                ReportColumn("expired", "Expired", "已过期", color="#c53030"),
                ReportColumn("expiring", "To expire", "即将到期", color="#dd6b20"),
                ReportColumn("total", "Licences", "执业证数"),
            ),
            series=("expired", "expiring"),
            chart="stacked",
            drill=_expiry_drill,
            roles=("admin", "manager"),
            group="insurance",
            order=210,
        )
    ]


# -- demo -----------------------------------------------------------------------------------------

#: The demo sales team: ``(name, role in the team, upline index, team, licence, classes)``.
_TEAM: tuple[tuple[str, str, int | None, str], ...] = (
    ("林婉清", "director", None, "鸿信营业部"),
    ("赵志刚", "manager", 0, "卓越一组"),
    ("孙丽娜", "manager", 0, "精英二组"),
    ("钱晓峰", "agent", 1, "卓越一组"),
    ("周敏", "agent", 1, "卓越一组"),
    ("吴海涛", "agent", 1, "卓越一组"),
    ("郑雅婷", "agent", 2, "精英二组"),
    ("王建军", "agent", 2, "精英二组"),
)
_PERSON_CLASSES = ["life", "health", "accident", "annuity"]


def _licence_number(rng: random.Random) -> str:
    return f"0201{rng.randint(10**13, 10**14 - 1)}"


def demo(company: Any, fake: Any) -> None:
    """The demo's selling network: a three-level agent team (a director, two team managers,
    five agents; one licence expires within 30 days, one has expired), a broker firm, a bank
    (中国工商银行) with two branches that sell, an internet and a mobile channel (no
    profiles); one agent logs in as a sales rep (``agent@insurance.demo``) to show "my
    leads"."""
    from core.demo import PASSWORD
    from core.models import Team

    rng = random.Random(f"agents-{company.code}")
    day = today()
    agents: list[Agent] = []
    region = "上海市"
    for n, (name, _role, upline, team) in enumerate(_TEAM):
        expires = day + timedelta(days=rng.randint(200, 900))
        if n == 4:
            expires = day + timedelta(days=21)  # a notice at 30 days was due
        if n == 6:
            expires = day - timedelta(days=12)  # expired: sales through her are refused
        agent = create_agent(
            AgentInput(
                channel_name=name,
                channel_type="insurance_agent",
                channel_code=f"AG{n + 1:03d}",
                channel_territory=region,
                licence_number=_licence_number(rng),
                licence_classes=list(_PERSON_CLASSES if n < 3 else _PERSON_CLASSES[: 2 + n % 3]),
                licence_region="上海银保监局",
                licence_expires_on=expires,
                team=team,
                upline_id=agents[upline].id if upline is not None else None,
                joined_on=day - timedelta(days=rng.randint(400, 3000) if n < 3 else 200 + 90 * n),
            ),
            via="demo",
        )
        agents.append(agent)
    # one agent works in Guanxi: a sales rep login tied to the profile
    email = f"agent@{(company.code or 'insurance').removeprefix('demo-')}.demo"
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, name=_TEAM[3][0], locale="zh_CN")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
    team_id = db.session.scalar(select(Team.id).where(Team.name == "销售一部"))
    db.session.add(Membership(user_id=user.id, role="sales_rep", team_id=team_id))
    agents[3].user_id = user.id
    # the director's login is the demo manager's
    manager = db.session.scalar(
        select(User.id)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "manager", User.email.like("%.demo"))
    )
    if manager is not None:
        agents[0].user_id = manager
    db.session.flush()
    # a broker firm
    create_agent(
        AgentInput(
            channel_name="明亚保险经纪有限公司",
            channel_type="broker",
            channel_code="BR001",
            channel_territory="全国",
            licence_number=f"2600{rng.randint(10**9, 10**10 - 1)}",
            licence_classes=["life", "health", "accident", "annuity", "property"],
            licence_region="国家金融监督管理总局",
            licence_expires_on=day + timedelta(days=540),
            team="经纪渠道",
            joined_on=day - timedelta(days=1200),
        ),
        via="demo",
    )
    # the bank partner and its two selling branches
    bank = Channel(name="中国工商银行", code="BK-ICBC", type="bancassurance", territory="上海市")
    db.session.add(bank)
    db.session.flush()
    for n, branch in enumerate(("工商银行上海分行营业部", "工商银行浦东支行")):
        create_agent(
            AgentInput(
                channel_name=branch,
                channel_type="bancassurance",
                channel_code=f"BK-ICBC-{n + 1:02d}",
                channel_parent_id=bank.id,
                channel_territory="上海市",
                licence_number=f"3100{rng.randint(10**9, 10**10 - 1)}",
                licence_classes=["life", "annuity"],
                licence_region="上海银保监局",
                licence_expires_on=day + timedelta(days=300 + 200 * n),
                team="银保渠道",
                joined_on=day - timedelta(days=800),
            ),
            via="demo",
        )
    # channels that sell without anyone in between
    db.session.add_all(
        [
            Channel(name="鸿信人寿官网", code="NET-01", type="internet", territory="全国"),
            Channel(name="鸿信人寿微信小程序", code="MOB-01", type="mobile", territory="全国"),
        ]
    )
    db.session.flush()


# -- SQL helpers ----------------------------------------------------------------------------------


def expiry_badge(expires: date | None, day: date | None = None) -> tuple[str, str]:
    """``(css class, text)`` of a licence's expiry: expired, within 7/30/60 days, valid."""
    if expires is None:
        return "muted", _("No expiry")
    day = day or today()
    left = (expires - day).days
    if left < 0:
        return "expired", _("Expired %(n)s days ago", n=-left)
    if left <= 30:
        return "soon", _("Expires in %(n)s days", n=left)
    if left <= 60:
        return "notice", _("Expires in %(n)s days", n=left)
    return "valid", _("Valid")


def search_clause(q: str) -> Any:
    """Agents whose name, channel code or licence number contains ``q``."""
    return or_(
        Channel.name.contains(q, autoescape=True),
        Channel.code.contains(q, autoescape=True),
        Agent.licence_number.contains(q, autoescape=True),
    )


def counts_by_status() -> dict[str, int]:
    """Profiles per status (one GROUP BY)."""
    return dict(db.session.execute(select(Agent.status, func.count()).group_by(Agent.status)).all())


from plugins.insurance import web_agents  # noqa: E402  (registers the routes on the blueprint)
