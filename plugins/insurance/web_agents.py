"""Agent pages (``/insurance/agents…``), the profile box on a channel's page and the API
resource ``insurance_agents``.

Pages (on :data:`plugins.insurance.blueprint.bp`):

- ``/insurance/agents`` -- the list: filters (channel type, status, team, licence expiring
  within N days, expired, expiry dates, upline, search by name, code or licence number), keyset
  pages by name or by expiry;
- ``/insurance/agents/<id>`` -- the profile: channel, licence with its expiry badge and notice
  clock, the upline chain, the downline tree, the agent's leads, and the boxes other parts add
  (``record_panels("insurance_agent", agent)``);
- ``/insurance/agents/new`` and ``/insurance/agents/<id>/edit`` -- managers: a new channel of a
  selling type created with its profile, or a profile attached to an existing channel without
  one; every refusal is a message at its field (422), nothing is written.

Who sees what: admins and managers see every agent; a member who is an agent (their login is
on a profile) sees themselves and their downline; other members read the whole list. Only
admins and managers change profiles (pages and API).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import marshmallow as ma
from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from core import clocks, keyset
from core.api.errors import ApiError
from core.api.resources import Resource, user
from core.api.schemas import Text, model_schema
from core.choices import label as choice_label
from core.db import capped_count
from core.extend import Sort, db
from core.models import Channel, User
from core.web.helpers import role
from plugins.insurance import agents as svc
from plugins.insurance.blueprint import MANAGERS, bp, is_manager
from plugins.insurance.models import Agent

SORTS: dict[str, Sort] = {
    "name": Sort("name", Channel.name, False, False, "text"),
    "expiry": Sort("expiry", Agent.licence_expires_on, False, True, "date"),
}
#: The most days the "expiring within" filter takes.
MAX_DAYS = 3650
TRUE_VALUES = ("1", "true", "on", "yes")


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
                "Agent profiles are kept by admins and managers; you are %(role)s.",
                role=role() or "-",
            ),
        )


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= svc.MAX_ID:
        return int(raw)
    return None


def _date(raw: str | None) -> date | None | bool:
    """A date from ``YYYY-MM-DD``; ``None`` when empty, ``False`` when malformed."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return False
    return day if svc.EARLIEST <= day <= svc.LATEST else False


# -- who sees which agents ------------------------------------------------------------------------


def visible_ids() -> set[int] | None:
    """The agents the current member may see: ``None`` for all (managers, and members who are
    not agents), else the member's own profile and downline."""
    if is_manager() or not current_user.is_authenticated:
        return None
    mine = svc.agent_for_user(current_user.id)
    if mine is None:
        return None
    return {mine.id, *svc.downline_ids(mine.id)}


def _get(agent_id: int) -> Agent:
    agent = db.session.get(Agent, agent_id) if agent_id <= svc.MAX_ID else None
    if agent is None or agent.company_id != svc.require_company():
        abort(404)
    seen = visible_ids()
    if seen is not None and agent.id not in seen:
        abort(403, _("You see your own profile and your downline only."))
    return agent


# -- the list -------------------------------------------------------------------------------------


@dataclass
class AgentRow:
    agent: Agent
    name: str
    type: str
    channel_code: str | None
    upline_name: str | None
    login: str | None


@dataclass
class AgentPage:
    rows: list[AgentRow] = field(default_factory=list)
    count: int = 0
    capped: bool = False
    next_after: str | None = None
    sort: str = "name"
    errors: dict[str, str] = field(default_factory=dict)


def filter_conditions(args: Mapping[str, Any], errors: dict[str, str]) -> list[Any]:
    """SQL conditions of the list's filters; messages go to ``errors`` by parameter."""
    conds: list[Any] = []
    day = svc.today()
    kind = (args.get("type") or "").strip()
    if kind:
        if kind not in svc.PROFILE_TYPES:
            errors["type"] = _("Must be one of: %(values)s.", values=", ".join(svc.PROFILE_TYPES))
        else:
            conds.append(Channel.type == kind)
    status = (args.get("status") or "").strip()
    if status == "current":
        conds.append(Agent.status != "terminated")
    elif status:
        if status not in svc.STATUS_KEYS:
            errors["status"] = _(
                "Must be one of: %(values)s.", values=", ".join((*svc.STATUS_KEYS, "current"))
            )
        else:
            conds.append(Agent.status == status)
    team = (args.get("team") or "").strip()
    if team:
        conds.append(Agent.team == team[:80])
    raw = (args.get("expiring") or "").strip()
    if raw:
        if not (raw.isascii() and raw.isdigit() and 0 <= int(raw) <= MAX_DAYS):
            errors["expiring"] = _("Enter a number of days from 0 to %(n)s.", n=MAX_DAYS)
        else:
            conds += [
                Agent.licence_expires_on >= day,
                Agent.licence_expires_on <= day + timedelta(days=int(raw)),
            ]
    if (args.get("expired") or "").lower() in TRUE_VALUES:
        conds.append(Agent.licence_expires_on < day)
    for name, op in (("expires_from", "ge"), ("expires_to", "le")):
        value = _date(args.get(name))
        if value is False:
            errors[name] = _("Enter a date as YYYY-MM-DD.")
        elif value is not None:
            column = Agent.licence_expires_on
            conds.append(column >= value if op == "ge" else column <= value)
    raw = args.get("upline")
    if raw:
        value = _int(raw)
        if value is None:
            errors["upline"] = _("Must be a number (an id).")
        else:
            conds.append(Agent.upline_id == value)
    q = (args.get("q") or "").strip()
    if "\x00" in q or len(q) > 100:
        errors["q"] = _("At most 100 characters of text.")
    elif q:
        conds.append(svc.search_clause(q))
    seen = visible_ids()
    if seen is not None:
        conds.append(Agent.id.in_(sorted(seen)))
    return conds


def agent_page(args: Mapping[str, Any], size: int, cap: int) -> AgentPage:
    """One keyset page of the agents matching ``args``: two queries whatever the page size."""
    page = AgentPage()
    conds = filter_conditions(args, page.errors)
    key = args.get("sort") or "name"
    if key not in SORTS:
        page.errors["sort"] = _("Must be one of: %(names)s.", names=", ".join(SORTS))
        key = "name"
    sort = SORTS[key]
    page.sort = key
    position = None
    after = args.get("after") or ""
    if after:
        position = keyset.decode(sort, after)
        if position is None:
            page.errors["after"] = _("Must be the link of the previous page.")
    if page.errors:
        return page
    up = aliased(Agent, name="up")
    up_channel = aliased(Channel, name="up_channel")
    stmt = (
        select(
            Agent,
            Channel.name.label("name"),
            Channel.type.label("type"),
            Channel.code.label("code"),
            up_channel.name.label("upline_name"),
            User.name.label("login"),
        )
        .join(Channel, Channel.id == Agent.channel_id)
        .outerjoin(up, up.id == Agent.upline_id)
        .outerjoin(up_channel, up_channel.id == up.channel_id)
        .outerjoin(User, User.id == Agent.user_id)
        .where(*conds)
    )
    page.count, page.capped = capped_count(stmt, Agent.id, cap)
    if position is not None:
        stmt = stmt.where(keyset.after(sort, Agent.id, *position))
    rows = db.session.execute(stmt.order_by(*keyset.order(sort, Agent.id)).limit(size + 1)).all()
    page.rows = [
        AgentRow(r[0], r.name, r.type, r.code, r.upline_name, r.login) for r in rows[:size]
    ]
    if len(rows) > size:
        last = page.rows[-1]
        value = last.name if key == "name" else last.agent.licence_expires_on
        page.next_after = keyset.encode(value, last.agent.id)
    return page


def _helpers() -> dict[str, Any]:
    return {
        "status_label": svc.status_label,
        "class_label": svc.class_label,
        "type_label": lambda v: choice_label("channel_type", v),
        "badge": svc.expiry_badge,
        "today": svc.today(),
    }


@bp.route("/agents")
def agents() -> Any:
    """Agents, brokers and bank branches with their licences; filters, keyset pages."""
    page = agent_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    html = render_template(
        "insurance/agents.html",
        page=page,
        types=[(t, choice_label("channel_type", t)) for t in svc.PROFILE_TYPES],
        statuses=[(k, svc.status_label(k)) for k in svc.STATUS_KEYS],
        teams=svc.teams(),
        can_manage=is_manager(),
        **_helpers(),
    )
    return html, 400 if page.errors else 200


# -- a profile ------------------------------------------------------------------------------------


def detail_context(agent: Agent) -> dict[str, Any]:
    """What the profile page shows."""
    from core.web.panels import record_panels
    from plugins.insurance import leads

    channel = db.session.get(Channel, agent.channel_id)
    parent = db.session.get(Channel, channel.parent_id) if channel and channel.parent_id else None
    chain = svc.upline_chain(agent)
    tree, below = svc.downline_tree(agent)
    login = db.session.get(User, agent.user_id) if agent.user_id else None
    clock = next(
        (o for o in clocks.obligations_of(agent) if o.kind == svc.CLOCK),
        None,
    )
    return {
        "agent": agent,
        "channel": channel,
        "parent": parent,
        "chain": chain,
        "chain_names": svc.agent_names(a.id for a in chain),
        "tree": tree,
        "below": below,
        "login": login,
        "clock": clock,
        "notices": svc.NOTICES,
        "leads": leads.leads_of_agent(agent.id),
        "lead_counts": leads.counts_of_agent(agent.id),
        "lead_state_label": leads.state_label,
        "can_manage": is_manager(),
        "panels": record_panels("insurance_agent", agent),
        **_helpers(),
    }


@bp.route("/agents/<int:agent_id>")
def agent_detail(agent_id: int) -> Any:
    return render_template("insurance/agent.html", **detail_context(_get(agent_id)))


def render_channel_panel(channel: Channel) -> str:
    """The profile box on a channel's page: the licence and status, or a link to add one; a
    channel without a profile (a bank above its branches) lists its sub-channels' profiles."""
    agent = svc.agent_of_channel(channel.id)
    branches = (
        db.session.execute(
            select(Agent, Channel.name)
            .join(Channel, Channel.id == Agent.channel_id)
            .where(Channel.parent_id == channel.id)
            .order_by(Channel.name, Agent.id)
            .limit(50)
        ).all()
        if agent is None
        else []
    )
    return render_template(
        "insurance/agent_channel_panel.html",
        channel=channel,
        agent=agent,
        branches=branches,
        upline=svc.agent_label(agent.upline_id) if agent and agent.upline_id else "",
        can_manage=is_manager(),
        **_helpers(),
    )


# -- the form -------------------------------------------------------------------------------------

FORM_KEYS = (
    "mode",
    "channel_id",
    "channel_name",
    "channel_type",
    "channel_code",
    "channel_parent_id",
    "channel_territory",
    "licence_number",
    "licence_region",
    "licence_expires_on",
    "status",
    "team",
    "upline_id",
    "joined_on",
    "user_id",
    "version",
)


def parse_form(form: Any, creating: bool) -> tuple[svc.AgentInput, dict[str, str]]:
    """The profile in a submitted form, and the messages of what could not be read."""
    errors: dict[str, str] = {}
    data = svc.AgentInput()
    for key in ("licence_expires_on", "joined_on"):
        value = _date(form.get(key))
        if value is False:
            errors[key] = _("Enter a date as YYYY-MM-DD.")
        else:
            setattr(data, key, value)
    for key in ("upline_id", "user_id", "channel_id", "channel_parent_id"):
        raw = (form.get(key) or "").strip()
        if raw:
            value = _int(raw)
            if value is None:
                errors[key] = _("Choose one of the listed values.")
            setattr(data, key, value)
    for key in (
        "licence_number",
        "licence_region",
        "team",
        "channel_name",
        "channel_type",
        "channel_code",
        "channel_territory",
    ):
        setattr(data, key, (form.get(key) or "").strip() or None)
    data.status = (form.get("status") or "active").strip()
    data.licence_classes = [c for c in form.getlist("licence_classes") if c]
    if creating and (form.get("mode") or "new") == "new":
        data.channel_id = None
    elif creating and data.channel_id is None and "channel_id" not in errors:
        errors["channel_id"] = _("Choose the channel to give a profile.")
    if not creating:
        data.channel_id = None
    return data, errors


def _values(agent: Agent | None) -> dict[str, Any]:
    if agent is None:
        channel_id = _int(request.args.get("channel_id"))
        return {
            "mode": "existing" if channel_id else "new",
            "channel_id": str(channel_id or ""),
            "channel_type": "insurance_agent",
            "status": "active",
            "licence_classes": [],
        }
    return {
        "licence_number": agent.licence_number or "",
        "licence_classes": list(agent.licence_classes or []),
        "licence_region": agent.licence_region or "",
        "licence_expires_on": agent.licence_expires_on.isoformat()
        if agent.licence_expires_on
        else "",
        "status": agent.status,
        "team": agent.team or "",
        "upline_id": str(agent.upline_id or ""),
        "joined_on": agent.joined_on.isoformat() if agent.joined_on else "",
        "user_id": str(agent.user_id or ""),
        "version": str(agent.version),
    }


def _free_channels() -> list[tuple[int, str, str]]:
    """Channels of a selling type without a profile: ``(id, name, type label)``."""
    rows = db.session.execute(
        select(Channel.id, Channel.name, Channel.type)
        .outerjoin(Agent, Agent.channel_id == Channel.id)
        .where(Channel.type.in_(svc.PROFILE_TYPES), Agent.id.is_(None))
        .order_by(Channel.name, Channel.id)
        .limit(1000)
    ).all()
    return [(i, name, choice_label("channel_type", t)) for i, name, t in rows]


def _members() -> list[tuple[int, str]]:
    from core.customers import members

    return members()


def _render_form(
    agent: Agent | None, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> tuple[str, int]:
    from core.channels import tree_options

    exclude = {agent.id, *svc.downline_ids(agent.id)} if agent else set()
    return (
        render_template(
            "insurance/agent_form.html",
            agent=agent,
            channel=db.session.get(Channel, agent.channel_id) if agent else None,
            values=values,
            errors=errors,
            types=[(t, choice_label("channel_type", t)) for t in svc.PROFILE_TYPES],
            classes=svc.class_options(),
            statuses=[(k, svc.status_label(k)) for k in svc.STATUS_KEYS],
            uplines=svc.agent_options(exclude=exclude),
            members=_members(),
            free_channels=_free_channels() if agent is None else [],
            parents=tree_options(),
            teams=svc.teams(),
        ),
        status,
    )


def _submitted() -> dict[str, Any]:
    values: dict[str, Any] = {k: (request.form.get(k) or "").strip() for k in FORM_KEYS}
    values["licence_classes"] = request.form.getlist("licence_classes")
    return values


@bp.route("/agents/new", methods=["GET", "POST"])
def agent_new() -> Any:
    """A new profile: with a new channel of a selling type, or on an existing channel."""
    _require_manager()
    if request.method == "GET":
        return _render_form(None, _values(None), {})
    _csrf()
    values = _submitted()
    data, errors = parse_form(request.form, creating=True)
    if not errors:
        try:
            agent = svc.create_agent(data, user_id=current_user.id)
            db.session.commit()
        except svc.AgentRefused as exc:
            db.session.rollback()
            errors = exc.errors
    if errors:
        return _render_form(None, values, errors, 422)
    flash(_("Agent profile saved."))
    return redirect(url_for("insurance.agent_detail", agent_id=agent.id))


@bp.route("/agents/<int:agent_id>/edit", methods=["GET", "POST"])
def agent_edit(agent_id: int) -> Any:
    """Change a profile (the channel's own data is edited on the channel's page)."""
    _require_manager()
    agent = _get(agent_id)
    if request.method == "GET":
        return _render_form(agent, _values(agent), {})
    _csrf()
    values = _submitted()
    data, errors = parse_form(request.form, creating=False)
    sent = values.get("version") or ""
    if not errors and sent != str(agent.version):
        errors["version"] = _(
            "Someone changed this profile while you edited it; reload the page to see their "
            "change, then make yours again."
        )
        return _render_form(agent, values, errors, 409)
    if not errors:
        try:
            svc.update_agent(agent, data, user_id=current_user.id)
            db.session.commit()
        except svc.AgentRefused as exc:
            db.session.rollback()
            errors = exc.errors
        except StaleDataError:
            db.session.rollback()
            errors = {"version": _("Someone changed this profile meanwhile; reload the page.")}
            return _render_form(_get(agent_id), values, errors, 409)
    if errors:
        return _render_form(_get(agent_id), values, errors, 422)
    flash(_("Agent profile saved."))
    return redirect(url_for("insurance.agent_detail", agent_id=agent.id))


# -- API ------------------------------------------------------------------------------------------


def _known_class(value: str) -> None:
    """Refuse a value that is no product class (read when validating: the list lives in the
    plugin's package, imported after this module)."""
    from plugins.insurance import PRODUCT_CLASSES

    known = [v for v, _l, _z in PRODUCT_CLASSES]
    if value not in known:
        raise ma.ValidationError(f"Must be one of: {', '.join(known)}.")


class AgentsResource(Resource):
    """Producer profiles (代理人档案): the licence (number, classes, region, expiry), status,
    team, upline and login of a selling channel. ``name`` and ``channel_type`` are the
    channel's (read-only here). A profile is created on an existing channel without one
    (``channel_id``); an upline that would close a cycle, a licence number another agent has, or
    a login that is another agent's are refused (422). Admins and managers write."""

    name = "insurance_agents"
    model = Agent
    label, label_zh = "Agents", "代理人"
    schema = model_schema(
        Agent,
        fields={
            "licence_classes": ma.fields.List(
                Text(validate=_known_class),
                load_default=list,
                validate=ma.validate.Length(max=20),
            ),
            "name": Text(dump_only=True),
            "channel_type": Text(dump_only=True),
        },
    )
    choice_fields = {"status": svc.STATUS_LIST}
    filters = (
        "status",
        "team",
        "upline_id",
        "channel_id",
        "user_id",
        "licence_number",
        "licence_expires_on",
    )
    sorts = (
        Sort("newest", Agent.id, True, False, "integer"),
        Sort("expiry", Agent.licence_expires_on, False, True, "date"),
    )
    searchable = True
    write_roles = MANAGERS
    create_only = ("channel_id",)

    def query(self) -> Any:
        stmt = select(Agent)
        seen = visible_ids()
        return stmt if seen is None else stmt.where(Agent.id.in_(sorted(seen)))

    def search(self, q: str) -> Any:
        return Agent.licence_number.contains(q, autoescape=True) | Agent.channel_id.in_(
            select(Channel.id).where(Channel.name.contains(q, autoescape=True))
        )

    def dump_many(self, records: Any, ext_values: Any) -> list[dict]:
        out = super().dump_many(records, ext_values)
        ids = [r.channel_id for r in records]
        channels = (
            dict(
                (i, (n, t))
                for i, n, t in db.session.execute(
                    select(Channel.id, Channel.name, Channel.type).where(Channel.id.in_(ids))
                )
            )
            if ids
            else {}
        )
        for item, record in zip(out, records, strict=True):
            name, ctype = channels.get(record.channel_id, (None, None))
            item["name"], item["channel_type"] = name, ctype
        return out

    def _data(self, values: dict[str, Any], record: Agent | None) -> svc.AgentInput:
        def value(key: str) -> Any:
            return values[key] if key in values else getattr(record, key, None)

        return svc.AgentInput(
            licence_number=value("licence_number"),
            licence_classes=list(value("licence_classes") or []),
            licence_region=value("licence_region"),
            licence_expires_on=value("licence_expires_on"),
            status=value("status") or "active",
            team=value("team"),
            upline_id=value("upline_id"),
            joined_on=value("joined_on"),
            user_id=value("user_id"),
            channel_id=values.get("channel_id") if record is None else None,
        )

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        found = svc.problems(self._data(values, record), record)
        return {k: [v] for k, v in found.items()}

    def create(self, values: dict[str, Any]) -> Any:
        try:
            return svc.create_agent(self._data(values, None), user_id=user().id, via="api")
        except svc.AgentRefused as exc:
            raise ApiError(
                422, "invalid", "some fields are invalid", {k: [v] for k, v in exc.errors.items()}
            ) from exc

    def update(self, record: Any, values: dict[str, Any]) -> None:
        try:
            svc.update_agent(record, self._data(values, record), user_id=user().id, via="api")
        except svc.AgentRefused as exc:
            raise ApiError(
                422, "invalid", "some fields are invalid", {k: [v] for k, v in exc.errors.items()}
            ) from exc


def resources() -> list[Resource]:
    return [AgentsResource()]
