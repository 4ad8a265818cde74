"""Lead pages (``/insurance/leads…``) and the leads and referrals box on a customer's page.

Pages (on :data:`plugins.insurance.blueprint.bp`):

- ``/insurance/leads`` -- an agent's login sees "my leads" (``scope=mine``; ``scope=team`` adds
  their downline's); admins and managers see every lead; other members the leads of the
  customers their record rule shows. Filters: agent, channel, state, source, referrer, created
  dates, search by name or phone; keyset pages, newest first;
- ``/insurance/leads/new`` -- the prospect (a customer with status *potential*) and its lead
  in one form, with an optional referrer; ``?customer_id=`` puts a lead on an existing
  customer instead;
- ``/insurance/leads/<id>`` -- the lead, its referrer, its workflow history and buttons for
  its transitions (a lost lead needs the reason); reassigning and notes.

Every query joins the lead's customer, so the customer record rule applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from core import access, keyset, workflow
from core.customers import get_visible, search_clause
from core.db import capped_count
from core.extend import Sort, db
from core.models import Channel, Customer, User, WorkflowHistory
from core.web.helpers import role
from plugins.insurance import agents
from plugins.insurance import leads as svc
from plugins.insurance.blueprint import bp, is_manager
from plugins.insurance.models import Agent, Lead, Referral

DATE_SORT = Sort("created", Lead.created_on, True, False, "date")
SCOPES = ("mine", "team", "all")
PANEL_LEADS = 10


class ActionForm(FlaskForm):
    """A form that only carries the CSRF token."""


def _csrf() -> None:
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))


def can_write() -> bool:
    """Every role but ``viewer`` enters and works leads."""
    return role() not in (None, "viewer")


def _require_writer() -> None:
    if not can_write():
        abort(403, _("Your role can read leads but not change them."))


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= svc.MAX_ID:
        return int(raw)
    return None


def _date(raw: str | None) -> date | None | bool:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return False
    return day if date(1970, 1, 1) <= day <= date(2999, 12, 31) else False


def my_agent() -> Agent | None:
    """The current member's own agent profile, if they have one."""
    if not current_user.is_authenticated:
        return None
    return agents.agent_for_user(current_user.id)


def allowed_agents(mine: Agent | None) -> set[int] | None:
    """Agents the member may give leads to: any for managers and non-agents, else themselves
    and their downline."""
    if is_manager() or mine is None:
        return None
    return {mine.id, *agents.downline_ids(mine.id)}


# -- the list -------------------------------------------------------------------------------------


@dataclass
class LeadRow:
    lead: Lead
    name: str
    phone: str | None
    agent_name: str | None
    channel_name: str | None
    referrer: str | None


@dataclass
class LeadPage:
    rows: list[LeadRow] = field(default_factory=list)
    count: int = 0
    capped: bool = False
    next_after: str | None = None
    scope: str = "all"
    errors: dict[str, str] = field(default_factory=dict)


def default_scope(mine: Agent | None) -> str:
    return "mine" if mine is not None and not is_manager() else "all"


def filter_conditions(
    args: Mapping[str, Any], errors: dict[str, str], mine: Agent | None
) -> tuple[list[Any], str]:
    """SQL conditions of the list's filters and the scope used."""
    conds: list[Any] = []
    scope = (args.get("scope") or "").strip() or default_scope(mine)
    if scope not in SCOPES or (scope != "all" and mine is None):
        errors["scope"] = _("Must be one of: %(values)s.", values=", ".join(SCOPES))
    elif scope == "all" and mine is not None and not is_manager():
        errors["scope"] = _("You see your own leads and your downline's.")
    elif scope == "mine" and mine is not None:
        conds.append(Lead.agent_id == mine.id)
    elif scope == "team" and mine is not None:
        conds.append(Lead.agent_id.in_([mine.id, *agents.downline_ids(mine.id)]))
    for name, column in (("agent", Lead.agent_id), ("channel", Lead.channel_id)):
        raw = (args.get(name) or "").strip()
        if raw == "none":
            conds.append(column.is_(None))
        elif raw:
            value = _int(raw)
            if value is None:
                errors[name] = _("Must be a number (an id) or 'none'.")
            else:
                conds.append(column == value)
    for name, column in (
        ("referrer_customer", Referral.referrer_customer_id),
        ("referrer_agent", Referral.referrer_agent_id),
    ):
        raw = (args.get(name) or "").strip()
        if raw:
            value = _int(raw)
            if value is None:
                errors[name] = _("Must be a number (an id).")
            else:
                conds.append(column == value)
    getlist = getattr(args, "getlist", None)
    states = [s for s in (getlist("state") if getlist else [args.get("state")]) if s]
    if any(s not in svc.STATE_KEYS for s in states):
        errors["state"] = _("Must be one of: %(values)s.", values=", ".join(svc.STATE_KEYS))
    elif states:
        conds.append(Lead.state.in_(states))
    source = (args.get("source") or "").strip()
    if source:
        if source not in svc.SOURCE_KEYS:
            errors["source"] = _("Must be one of: %(values)s.", values=", ".join(svc.SOURCE_KEYS))
        else:
            conds.append(Lead.source == source)
    for name, op in (("from", "ge"), ("to", "le")):
        day = _date(args.get(name))
        if day is False:
            errors[name] = _("Enter a date as YYYY-MM-DD.")
        elif day is not None:
            conds.append(Lead.created_on >= day if op == "ge" else Lead.created_on <= day)
    q = (args.get("q") or "").strip()
    if "\x00" in q or len(q) > 100:
        errors["q"] = _("At most 100 characters of text.")
    elif q:
        conds.append(search_clause(q))
    return conds, scope


def lead_page(args: Mapping[str, Any], size: int, cap: int, mine: Agent | None) -> LeadPage:
    """One keyset page (newest first) of the leads matching ``args``: two queries whatever the
    page size."""
    page = LeadPage()
    conds, page.scope = filter_conditions(args, page.errors, mine)
    position = None
    after = args.get("after") or ""
    if after:
        position = keyset.decode(DATE_SORT, after)
        if position is None:
            page.errors["after"] = _("Must be the link of the previous page.")
    if page.errors:
        return page
    agent_channel = aliased(Channel, name="agent_channel")
    lead_channel = aliased(Channel, name="lead_channel")
    referrer = Customer.__table__.alias("referrer")
    ref_agent = aliased(Agent, name="ref_agent")
    ref_channel = aliased(Channel, name="ref_channel")
    stmt = (
        select(
            Lead,
            Customer.name.label("name"),
            Customer.phone.label("phone"),
            agent_channel.name.label("agent_name"),
            lead_channel.name.label("channel_name"),
            referrer.c.name.label("ref_customer"),
            ref_channel.name.label("ref_agent"),
        )
        .join(Customer, Customer.id == Lead.customer_id)
        .outerjoin(Agent, Agent.id == Lead.agent_id)
        .outerjoin(agent_channel, agent_channel.id == Agent.channel_id)
        .outerjoin(lead_channel, lead_channel.id == Lead.channel_id)
        .outerjoin(Referral, Referral.customer_id == Lead.customer_id)
        .outerjoin(referrer, referrer.c.id == Referral.referrer_customer_id)
        .outerjoin(ref_agent, ref_agent.id == Referral.referrer_agent_id)
        .outerjoin(ref_channel, ref_channel.id == ref_agent.channel_id)
        .where(*conds)
    )
    page.count, page.capped = capped_count(stmt, Lead.id, cap)
    if position is not None:
        stmt = stmt.where(keyset.after(DATE_SORT, Lead.id, *position))
    rows = db.session.execute(
        stmt.order_by(*keyset.order(DATE_SORT, Lead.id)).limit(size + 1)
    ).all()
    page.rows = [
        LeadRow(
            r[0],
            r.name,
            r.phone,
            r.agent_name,
            r.channel_name,
            " · ".join(x for x in (r.ref_customer, r.ref_agent) if x) or None,
        )
        for r in rows[:size]
    ]
    if len(rows) > size:
        last = page.rows[-1].lead
        page.next_after = keyset.encode(last.created_on, last.id)
    return page


def _labels() -> dict[str, Any]:
    return {
        "state_label": svc.state_label,
        "source_label": svc.source_label,
        "phone": access.phone,
    }


@bp.route("/leads")
def leads() -> Any:
    """My leads (an agent), the team's, or every lead (managers); filters, keyset pages."""
    from core.customers import channel_options

    mine = my_agent()
    page = lead_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"], mine
    )
    visible = allowed_agents(mine)
    html = render_template(
        "insurance/leads.html",
        page=page,
        mine=mine,
        manager=is_manager(),
        agent_choices=[
            (i, n) for i, n in agents.agent_options() if visible is None or i in visible
        ],
        channels=channel_options(),
        states=[(s, svc.state_label(s)) for s in svc.STATE_KEYS],
        sources=[(s, svc.source_label(s)) for s in svc.SOURCE_KEYS],
        chosen_states=request.args.getlist("state"),
        can_write=can_write(),
        **_labels(),
    )
    return html, 400 if page.errors else 200


# -- a new lead -----------------------------------------------------------------------------------

FORM_KEYS = (
    "name",
    "phone",
    "email",
    "region",
    "agent_id",
    "channel_id",
    "source",
    "referrer_customer",
    "referrer_agent_id",
    "notes",
    "customer_id",
)


def _find_customer(text: str) -> int | None | bool:
    """The customer a text names: ``#12 …`` (as the list offers), a code, or an exact name
    that only one customer has. ``None`` when empty, ``False`` when nothing matches."""
    text = text.strip()
    if not text:
        return None
    if text.startswith("#"):
        parts = text[1:].split()
        number = _int(parts[0]) if parts else None
        return number if number and get_visible(number) else False
    found = db.session.scalars(select(Customer.id).where(Customer.code == text).limit(2)).all()
    if len(found) != 1:
        found = db.session.scalars(select(Customer.id).where(Customer.name == text).limit(2)).all()
    return found[0] if len(found) == 1 else False


def parse_form(form: Any) -> tuple[svc.LeadInput, dict[str, str]]:
    """The lead of a submitted form, and messages of what could not be read."""
    errors: dict[str, str] = {}
    data = svc.LeadInput(
        name=form.get("name"),
        phone=form.get("phone"),
        email=form.get("email"),
        region=form.get("region"),
        source=(form.get("source") or "").strip(),
        notes=form.get("notes"),
    )
    for key in ("agent_id", "channel_id", "referrer_agent_id", "customer_id"):
        raw = (form.get(key) or "").strip()
        if raw:
            value = _int(raw)
            if value is None:
                errors[key] = _("Choose one of the listed values.")
            setattr(data, key, value)
    found = _find_customer(form.get("referrer_customer") or "")
    if found is False:
        errors["referrer_customer_id"] = _(
            "No customer you see by this name, code or number; pick one from the list."
        )
    else:
        data.referrer_customer_id = found
    return data, errors


def _form_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    from core.customers import channel_options

    mine = my_agent()
    visible = allowed_agents(mine)
    customer_id = _int(str(values.get("customer_id") or ""))
    customer = get_visible(customer_id) if customer_id else None
    return {
        "values": values,
        "errors": errors,
        "customer": customer,
        "agent_choices": [
            (i, n) for i, n in agents.agent_options() if visible is None or i in visible
        ],
        "all_agents": agents.agent_options(),
        "channels": channel_options(),
        "sources": [(s, svc.source_label(s)) for s in svc.SOURCE_KEYS],
        "referrers": db.session.execute(
            select(Customer.id, Customer.name, Customer.code)
            .where(Customer.status == "existing")
            .order_by(Customer.updated_at.desc(), Customer.id.desc())
            .limit(300)
        ).all(),
    }


@bp.route("/leads/new", methods=["GET", "POST"])
def lead_new() -> Any:
    """A prospect and its lead in one form (or a lead on an existing customer)."""
    _require_writer()
    if request.method == "GET":
        mine = my_agent()
        values: dict[str, Any] = {
            "source": "referral" if request.args.get("referrer_customer") else "walk_in",
            "agent_id": str(mine.id) if mine else "",
            "customer_id": request.args.get("customer_id", ""),
        }
        ref = _int(request.args.get("referrer_customer"))
        referrer = get_visible(ref) if ref else None
        if referrer is not None:
            values["referrer_customer"] = f"#{referrer.id} {referrer.name}"
        return render_template("insurance/lead_form.html", **_form_context(values, {}))
    _csrf()
    values = {k: (request.form.get(k) or "").strip() for k in FORM_KEYS}
    data, errors = parse_form(request.form)
    if not errors:
        try:
            lead = svc.create_lead(data, current_user, allowed_agents=allowed_agents(my_agent()))
            db.session.commit()
        except svc.LeadRefused as exc:
            db.session.rollback()
            errors = exc.errors
    if errors:
        return render_template("insurance/lead_form.html", **_form_context(values, errors)), 422
    flash(_("Lead saved: %(name)s is a prospect now.", name=_customer_name(lead.customer_id)))
    return redirect(url_for("insurance.lead_detail", lead_id=lead.id))


def _customer_name(customer_id: int) -> str:
    return db.session.scalar(select(Customer.name).where(Customer.id == customer_id)) or ""


# -- a lead ---------------------------------------------------------------------------------------


def _get(lead_id: int) -> tuple[Lead, Customer]:
    """The lead and its customer, 404 when it is no lead of the company, 403 naming the record
    rule when its customer is hidden."""
    if not 0 < lead_id <= svc.MAX_ID:
        abort(404)
    row = db.session.execute(
        select(Lead, Customer)
        .join(Customer, Customer.id == Lead.customer_id)
        .where(Lead.id == lead_id)
    ).first()
    if row is None:
        with access.all_customers():
            hidden = db.session.scalar(select(Lead.id).where(Lead.id == lead_id))
        if hidden is not None:
            abort(
                403,
                _(
                    "This lead's customer is not assigned to you or your team "
                    "(record rule “%(rule)s” of your role %(role)s).",
                    rule=access.current_rule(),
                    role=role(),
                ),
            )
        abort(404)
    return row[0], row[1]


def detail_context(lead: Lead, customer: Customer) -> dict[str, Any]:
    referral = svc.referral_of(customer.id)
    history = db.session.execute(
        select(WorkflowHistory, User.name)
        .outerjoin(User, User.id == WorkflowHistory.user_id)
        .where(
            WorkflowHistory.subject_type == Lead.__tablename__,
            WorkflowHistory.subject_id == lead.id,
        )
        .order_by(WorkflowHistory.created_at.desc(), WorkflowHistory.id.desc())
        .limit(50)
    ).all()
    names = agents.agent_names([lead.agent_id, referral.referrer_agent_id if referral else None])
    channel = db.session.get(Channel, lead.channel_id) if lead.channel_id else None
    referrer_customer = (
        _customer_name(referral.referrer_customer_id)
        if referral and referral.referrer_customer_id
        else None
    )
    steps = workflow.available(lead, current_user) if can_write() else []
    policy_new = (
        url_for("insurance.policy_new", customer_id=customer.id)
        if "insurance.policy_new" in current_app.view_functions and lead.state in svc.OPEN_STATES
        else None
    )
    return {
        "lead": lead,
        "customer": customer,
        "referral": referral,
        "referrer_customer": referrer_customer,
        "agent_name": names.get(lead.agent_id) if lead.agent_id else None,
        "referrer_agent": names.get(referral.referrer_agent_id) if referral else None,
        "channel": channel,
        "history": history,
        "steps": steps,
        "policy_new": policy_new,
        "agent_choices": agents.agent_options(),
        "sources": [(s, svc.source_label(s)) for s in svc.SOURCE_KEYS],
        "can_write": can_write(),
        "can_reassign": is_manager(),
        **_labels(),
    }


def _render_detail(
    lead: Lead, customer: Customer, status: int = 200, errors: dict[str, str] | None = None
) -> tuple[str, int]:
    return (
        render_template(
            "insurance/lead.html", errors=errors or {}, **detail_context(lead, customer)
        ),
        status,
    )


@bp.route("/leads/<int:lead_id>")
def lead_detail(lead_id: int) -> Any:
    return _render_detail(*_get(lead_id))


@bp.route("/leads/<int:lead_id>/transition/<name>", methods=["POST"])
def lead_transition(lead_id: int, name: str) -> Any:
    """Take a transition of the lead (``lose`` needs ``lost_reason``)."""
    _require_writer()
    lead, customer = _get(lead_id)
    _csrf()
    inputs = {
        "lost_reason": (request.form.get("lost_reason") or "").strip()[:200],
        "comment": (request.form.get("comment") or "").strip()[:2000],
    }
    version = request.form.get("version", "")
    expected = int(version) if version.isdigit() else None
    try:
        workflow.transition(lead, name, user=current_user, inputs=inputs, expected_version=expected)
        db.session.commit()
    except (workflow.StaleRecord, StaleDataError):
        db.session.rollback()
        lead, customer = _get(lead_id)
        return _render_detail(
            lead,
            customer,
            409,
            {"transition": _("Someone changed this lead meanwhile; reload the page.")},
        )
    except workflow.WorkflowError as exc:
        db.session.rollback()
        lead, customer = _get(lead_id)
        message = exc.message
        key = "transition"
        if isinstance(exc, workflow.InputRequired):
            key, message = "lost_reason", _("Say why the lead was lost.")
        elif isinstance(exc, workflow.IllegalTransition):
            message = _(
                "This step is not possible from the lead's state (%(state)s).",
                state=svc.state_label(lead.state),
            )
        elif isinstance(exc, workflow.NotAllowed):
            message = _("Your role (%(role)s) cannot do this.", role=role() or "-")
        return _render_detail(lead, customer, exc.status, {key: message})
    flash(_("Lead is now %(state)s.", state=svc.state_label(lead.state)))
    return redirect(url_for("insurance.lead_detail", lead_id=lead.id))


@bp.route("/leads/<int:lead_id>/edit", methods=["POST"])
def lead_edit(lead_id: int) -> Any:
    """Correct the source or notes; managers also reassign the lead to another agent."""
    _require_writer()
    lead, customer = _get(lead_id)
    _csrf()
    if (request.form.get("version") or "") != str(lead.version):
        return _render_detail(
            lead,
            customer,
            409,
            {"edit": _("Someone changed this lead meanwhile; reload the page.")},
        )
    agent_id = lead.agent_id
    if is_manager():
        raw = (request.form.get("agent_id") or "").strip()
        agent_id = _int(raw) if raw else None
        if raw and agent_id is None:
            return _render_detail(
                lead, customer, 422, {"agent_id": _("Choose one of the listed values.")}
            )
    errors = svc.update_lead(
        lead,
        agent_id=agent_id,
        source=(request.form.get("source") or "").strip(),
        notes=request.form.get("notes"),
        user=current_user,
    )
    if errors:
        db.session.rollback()
        lead, customer = _get(lead_id)
        return _render_detail(lead, customer, 422, errors)
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        lead, customer = _get(lead_id)
        return _render_detail(
            lead, customer, 409, {"edit": _("Someone changed this lead meanwhile; reload.")}
        )
    flash(_("Lead saved."))
    return redirect(url_for("insurance.lead_detail", lead_id=lead.id))


# -- the customer's box ---------------------------------------------------------------------------


def render_customer_panel(customer: Customer) -> str:
    """The customer's leads, who referred them and whom they referred (four queries)."""
    rows = (
        db.session.execute(
            select(Lead)
            .where(Lead.customer_id == customer.id)
            .order_by(Lead.id.desc())
            .limit(PANEL_LEADS)
        )
        .scalars()
        .all()
    )
    referral = svc.referral_of(customer.id)
    referred = db.session.execute(
        select(Customer.id, Customer.name, Customer.status, Referral.referred_on)
        .join(Referral, Referral.customer_id == Customer.id)
        .where(Referral.referrer_customer_id == customer.id)
        .order_by(Referral.referred_on.desc(), Referral.id.desc())
        .limit(20)
    ).all()
    names = agents.agent_names(
        [r.agent_id for r in rows] + ([referral.referrer_agent_id] if referral else [])
    )
    referrer_customer = None
    if referral and referral.referrer_customer_id:
        found = db.session.execute(
            select(Customer.id, Customer.name).where(Customer.id == referral.referrer_customer_id)
        ).first()
        referrer_customer = found
    return render_template(
        "insurance/lead_customer_panel.html",
        customer=customer,
        leads=rows,
        names=names,
        referral=referral,
        referrer_customer=referrer_customer,
        referred=referred,
        open_lead=any(r.state in svc.OPEN_STATES for r in rows),
        can_write=can_write(),
        **_labels(),
    )
