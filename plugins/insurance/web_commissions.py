"""Pages, API resources, reports and record panels of commissions (``/insurance/commissions/…``).

Pages (on :data:`plugins.insurance.blueprint.bp`):

- ``/insurance/commissions/schedules`` -- commission schedules (佣金方案) and the clawback
  window; new, edit and delete a schedule (admins and managers only);
- ``/insurance/commissions/statements`` -- monthly statements (佣金结算): filters month
  (``YYYY-MM``), agent and state, keyset pages newest month first, the total of what matches;
  managers see every agent's and prepare the month's statements with a button (the job
  ``insurance.settlements``), an agent (a member whose login is an agent profile) sees their
  own, anyone else none;
- ``/insurance/commissions/statements/<id>`` -- one statement, printable (print CSS, no
  script): its lines with policy number, customer, product, kind, level, base, rate and amount,
  the total; confirm and mark paid (managers).

The panels show a policy's commission lines and frozen hierarchy (``insurance_policy``) and an
agent's recent statements (``insurance_agent``). The service code is
:mod:`plugins.insurance.commissions`; the pages and the API both go through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import case, false, func, select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError
from wtforms import DateField, HiddenField, IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from core import access, audit, keyset, workflow
from core.api.resources import Resource, member_role, user
from core.api.schemas import Money, model_schema
from core.choices import options
from core.db import capped_count
from core.extend import Report, ReportColumn, ReportParam, Sort, db
from core.keyset import MAX_ID
from core.models import Channel, Customer
from core.reports import months as report_months
from plugins.insurance import commissions as svc
from plugins.insurance.blueprint import MANAGERS, bp, is_manager
from plugins.insurance.models import (
    Agent,
    CommissionLine,
    CommissionSchedule,
    Lead,
    Policy,
    PolicyHierarchy,
    Product,
    Settlement,
)

MONTH_SORT = Sort("month", Settlement.month, True, False, "date")
#: Statements shown in an agent's panel.
PANEL_STATEMENTS = 6
COLORS = {
    "first_year": "#2b6cb0",
    "renewal": "#2f855a",
    "override": "#dd6b20",
    "clawback": "#c53030",
}


def fmt_money(value: Any) -> str:
    """``1,234.50``: how amounts read on the pages."""
    return f"{svc.money(value):,.2f}"


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    return None


def parse_month(raw: str | None) -> date | None | bool:
    """The first day of ``YYYY-MM``; ``None`` when empty, ``False`` when malformed."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        year, month = raw.split("-")
        if len(year) != 4 or len(month) != 2 or not (year + month).isdigit():
            return False
        day = date(int(year), int(month), 1)
    except ValueError:
        return False
    return day if svc.EARLIEST <= day <= svc.LATEST else False


def _require_manager() -> None:
    if not is_manager():
        abort(403, _("Only administrators and managers can do this."))


class ActionForm(FlaskForm):
    """A button that carries the CSRF token (and the record's version)."""

    version = HiddenField()


def _csrf() -> ActionForm:
    form = ActionForm()
    if not form.validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    return form


@bp.app_template_global("insurance_commission_kind")
def _kind_label(kind: str) -> str:
    return svc.kind_label(kind)


@bp.app_template_global("insurance_settlement_state")
def _state_label(state: str) -> str:
    return svc.state_label(state)


def own_agent() -> Agent | None:
    """The agent profile of the signed-in member, if any."""
    return svc.agent_for_user(getattr(current_user, "id", None))


def agent_options() -> list[tuple[int, str]]:
    """``(agent id, name)`` of the company's agents, by name."""
    return [
        (row.id, row.name)
        for row in db.session.execute(
            select(Agent.id, Channel.name)
            .join(Channel, Channel.id == Agent.channel_id)
            .order_by(Channel.name, Agent.id)
        )
    ]


def product_options() -> list[tuple[int, str]]:
    return [
        (row.id, f"{row.name} ({row.code})")
        for row in db.session.execute(
            select(Product.id, Product.name, Product.code).order_by(Product.name, Product.id)
        )
    ]


def statements_url(**query: Any) -> str:
    """The statement list filtered by ``query`` (empty values left out)."""
    pairs = [(k, v) for k, v in query.items() if v not in (None, "")]
    return url_for("insurance.statements") + ("?" + urlencode(pairs) if pairs else "")


# -- schedules ------------------------------------------------------------------------------------


class ScheduleForm(FlaskForm):
    product_id = SelectField(_l("Product"), validate_choice=False)
    channel_type = SelectField(_l("Channel type"), validate_choice=False)
    first_year_rate = StringField(
        _l("First-year rate (%)"),
        validators=[InputRequired(), Length(max=20)],
        description=_l("Per cent of the annual premium in policy year 1."),
    )
    renewal_rate = StringField(
        _l("Renewal rate (%)"),
        validators=[InputRequired(), Length(max=20)],
        description=_l("Per cent of the annual premium in later policy years."),
    )
    override_rates = StringField(
        _l("Override rates per upline level (%)"),
        validators=[Optional(), Length(max=200)],
        description=_l("E.g. “5, 2”: 5 % to the direct upline, 2 % to the next level."),
    )
    valid_from = DateField(_l("Valid from"), validators=[InputRequired()])
    valid_to = DateField(
        _l("Valid to"), validators=[Optional()], description=_l("Empty: no end date.")
    )


class ClawbackForm(FlaskForm):
    days = IntegerField(
        _l("Clawback window (days after issue)"),
        validators=[InputRequired(), NumberRange(0, svc.MAX_CLAWBACK_DAYS)],
    )


def _schedule_choices(form: ScheduleForm) -> None:
    form.product_id.choices = [("", _("(every product)"))] + [
        (str(i), name) for i, name in product_options()
    ]
    form.channel_type.choices = [("", _("(every channel type)"))] + options("channel_type")


def _schedule_input(form: ScheduleForm) -> svc.ScheduleInput | None:
    """The form as a :class:`~plugins.insurance.commissions.ScheduleInput`, or ``None`` with
    the messages put at the fields."""
    values: dict[str, Any] = {}
    for key in ("first_year_rate", "renewal_rate"):
        try:
            values[key] = svc.parse_rate(form[key].data)
        except ValueError as exc:
            form[key].errors = [*form[key].errors, str(exc)]
    try:
        values["override_rates"] = svc.parse_overrides(form.override_rates.data)
    except ValueError as exc:
        form.override_rates.errors = [*form.override_rates.errors, str(exc)]
    product = form.product_id.data or ""
    if product and _int(product) is None:
        form.product_id.errors = [_("Choose a product of this company.")]
    if any(f.errors for f in form):
        return None
    return svc.ScheduleInput(
        product_id=_int(product),
        channel_type=form.channel_type.data or None,
        valid_from=form.valid_from.data,
        valid_to=form.valid_to.data,
        **values,
    )


def _show_problems(form: ScheduleForm, problems: Mapping[str, str]) -> None:
    for key, message in problems.items():
        target = form._fields.get(key, form.valid_from)
        target.errors = [*target.errors, message]


def _schedule_rows() -> list[Any]:
    return list(
        db.session.execute(
            select(CommissionSchedule, Product.name.label("product"))
            .outerjoin(Product, Product.id == CommissionSchedule.product_id)
            .order_by(
                Product.name.is_(None),
                Product.name,
                CommissionSchedule.channel_type.is_(None),
                CommissionSchedule.channel_type,
                CommissionSchedule.valid_from.desc(),
                CommissionSchedule.id,
            )
        )
    )


def _render_schedules(
    form: ScheduleForm | None = None, clawback: ClawbackForm | None = None, status: int = 200
) -> Any:
    if form is None:
        form = ScheduleForm(formdata=None)
        _schedule_choices(form)
        form.valid_from.data = svc.month_of(svc.today())
    if clawback is None:
        clawback = ClawbackForm(formdata=None)
        clawback.days.data = svc.clawback_days()
    types = dict(options("channel_type"))
    return render_template(
        "insurance/schedules.html",
        rows=_schedule_rows(),
        form=form,
        clawback=clawback,
        type_label=lambda v: types.get(v, v) if v else _("Every channel type"),
        rate=svc.rate_text,
        action=ActionForm(formdata=None),
    ), status


@bp.route("/commissions/schedules", methods=["GET", "POST"])
def schedules() -> Any:
    """The schedules and a form for a new one (managers)."""
    _require_manager()
    if request.method == "GET":
        return _render_schedules()
    form = ScheduleForm()
    _schedule_choices(form)
    if not form.validate_on_submit():
        return _render_schedules(form, status=422)
    data = _schedule_input(form)
    if data is None:
        return _render_schedules(form, status=422)
    try:
        svc.save_schedule(data, user_id=current_user.id)
        db.session.commit()
    except svc.ScheduleError as exc:
        db.session.rollback()
        _show_problems(form, exc.errors)
        return _render_schedules(form, status=422)
    flash(_("Commission schedule saved."))
    return redirect(url_for(".schedules"))


def _schedule(schedule_id: int) -> CommissionSchedule:
    row = db.session.get(CommissionSchedule, schedule_id) if schedule_id <= MAX_ID else None
    if row is None:
        abort(404)
    return row


def _render_edit(form: ScheduleForm, schedule: CommissionSchedule, status: int = 200) -> Any:
    return render_template("insurance/schedule_form.html", form=form, schedule=schedule), status


@bp.route("/commissions/schedules/<int:schedule_id>/edit", methods=["GET", "POST"])
def schedule_edit(schedule_id: int) -> Any:
    """Change a schedule (lines already written keep their rates)."""
    _require_manager()
    schedule = _schedule(schedule_id)
    if request.method == "GET":
        form = ScheduleForm(formdata=None, obj=schedule)
        _schedule_choices(form)
        form.product_id.data = str(schedule.product_id or "")
        form.channel_type.data = schedule.channel_type or ""
        form.first_year_rate.data = svc.rate_text(schedule.first_year_rate)
        form.renewal_rate.data = svc.rate_text(schedule.renewal_rate)
        form.override_rates.data = ", ".join(svc.rate_text(r) for r in svc.overrides_of(schedule))
        return _render_edit(form, schedule)
    form = ScheduleForm()
    _schedule_choices(form)
    if not form.validate_on_submit():
        return _render_edit(form, schedule, 422)
    data = _schedule_input(form)
    if data is None:
        return _render_edit(form, schedule, 422)
    try:
        svc.save_schedule(data, schedule, user_id=current_user.id)
        db.session.commit()
    except svc.ScheduleError as exc:
        db.session.rollback()
        _show_problems(form, exc.errors)
        return _render_edit(form, _schedule(schedule_id), 422)
    flash(_("Commission schedule saved."))
    return redirect(url_for(".schedules"))


@bp.route("/commissions/schedules/<int:schedule_id>/delete", methods=["POST"])
def schedule_delete(schedule_id: int) -> Any:
    _require_manager()
    _csrf()
    svc.delete_schedule(_schedule(schedule_id), user_id=current_user.id)
    db.session.commit()
    flash(_("Commission schedule deleted; lines already written keep their rates."))
    return redirect(url_for(".schedules"))


@bp.route("/commissions/clawback", methods=["POST"])
def clawback_window() -> Any:
    _require_manager()
    form = ClawbackForm()
    if not form.validate_on_submit():
        return _render_schedules(clawback=form, status=422)
    svc.set_clawback_days(form.days.data, current_user.id)
    db.session.commit()
    flash(
        _(
            "Policies cancelled within %(n)s days of issue now give their first-year and "
            "override commissions back.",
            n=form.days.data,
        )
    )
    return redirect(url_for(".schedules"))


# -- statements -----------------------------------------------------------------------------------


@dataclass
class StatementRow:
    settlement: Settlement
    agent_name: str
    team: str | None
    lines: int


@dataclass
class StatementPage:
    rows: list[StatementRow] = field(default_factory=list)
    next_after: str | None = None
    count: int = 0
    capped: bool = False
    total: Decimal | None = None
    errors: dict[str, str] = field(default_factory=dict)


def visible_settlements(stmt: Any) -> Any:
    """``stmt`` narrowed to the statements the member may read: all for admins and managers,
    their own for an agent, none for anyone else."""
    if is_manager():
        return stmt
    agent = own_agent()
    return stmt.where(Settlement.agent_id == agent.id) if agent is not None else stmt.where(false())


def statement_filters(args: Mapping[str, Any], errors: dict[str, str]) -> list[Any]:
    """SQL conditions of the list's filters ``month``, ``agent`` and ``state``."""
    conds: list[Any] = []
    month = parse_month(args.get("month"))
    if month is False:
        errors["month"] = _("Enter a month as YYYY-MM.")
    elif month is not None:
        conds.append(Settlement.month == month)
    raw = args.get("agent")
    if raw:
        agent_id = _int(raw)
        if agent_id is None:
            errors["agent"] = _("Must be a number (an id).")
        else:
            conds.append(Settlement.agent_id == agent_id)
    states = [s for s in args.getlist("state") if s] if hasattr(args, "getlist") else []
    known = {s for s, *_r in svc.STATES}
    if any(s not in known for s in states):
        errors["state"] = _("Must be one of: %(values)s.", values=", ".join(sorted(known)))
    elif states:
        conds.append(Settlement.state.in_(states))
    return conds


def statement_page(args: Mapping[str, Any], size: int, cap: int) -> StatementPage:
    """One keyset page (newest month first) of the statements matching ``args`` that the
    member may read, with agent names and line counts; the count (capped) and total. Four
    queries whatever the page size."""
    page = StatementPage()
    conds = statement_filters(args, page.errors)
    position = None
    after = args.get("after") or ""
    if after:
        position = keyset.decode(MONTH_SORT, after)
        if position is None:
            page.errors["after"] = _("Must be the next_after of the previous page.")
    if page.errors:
        return page
    counts = (
        select(CommissionLine.settlement_id, func.count(CommissionLine.id).label("n"))
        .group_by(CommissionLine.settlement_id)
        .subquery("counts")
    )
    base = visible_settlements(
        select(Settlement)
        .join(Agent, Agent.id == Settlement.agent_id)
        .join(Channel, Channel.id == Agent.channel_id)
        .where(*conds)
    )
    page.count, page.capped = capped_count(base, Settlement.id, cap)
    page.total = svc.money(
        db.session.scalar(base.with_only_columns(func.sum(Settlement.total)).order_by(None))
    )
    stmt = base.add_columns(
        Channel.name.label("agent_name"),
        Agent.team.label("team"),
        func.coalesce(counts.c.n, 0).label("lines"),
    ).outerjoin(counts, counts.c.settlement_id == Settlement.id)
    if position is not None:
        stmt = stmt.where(keyset.after(MONTH_SORT, Settlement.id, *position))
    found = db.session.execute(
        stmt.order_by(*keyset.order(MONTH_SORT, Settlement.id)).limit(size + 1)
    ).all()
    page.rows = [StatementRow(r[0], r.agent_name, r.team, r.lines) for r in found[:size]]
    if len(found) > size:
        last = page.rows[-1].settlement
        page.next_after = keyset.encode(last.month, last.id)
    return page


@bp.route("/commissions")
def commissions_home() -> Any:
    return redirect(url_for(".statements"))


@bp.route("/commissions/statements")
def statements() -> Any:
    """Monthly statements: every agent's for managers, an agent's own for the agent."""
    page = statement_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    manager = is_manager()
    html = render_template(
        "insurance/statements.html",
        page=page,
        states=[(s, svc.state_label(s)) for s, *_r in svc.STATES],
        agents=agent_options() if manager else [],
        is_manager=manager,
        own=None if manager else own_agent(),
        action=ActionForm(formdata=None),
        fmt_money=fmt_money,
    )
    return html, 400 if page.errors else 200


@bp.route("/commissions/statements/run", methods=["POST"])
def statements_run() -> Any:
    """The job ``insurance.settlements`` now (managers)."""
    _require_manager()
    _csrf()
    counts = svc.run_settlements()
    audit.record("run", Settlement.__tablename__, None, counts)
    db.session.commit()
    flash(
        _(
            "Statements prepared: %(created)s created, %(attached)s lines filed, "
            "%(corrected)s totals corrected.",
            **counts,
        )
    )
    return redirect(url_for(".statements"))


def _statement(settlement_id: int) -> Settlement:
    """The statement, 404 when it is not the company's, 403 when it is another agent's."""
    row = db.session.get(Settlement, settlement_id) if settlement_id <= MAX_ID else None
    if row is None:
        abort(404)
    if not is_manager():
        agent = own_agent()
        if agent is None or agent.id != row.agent_id:
            abort(403, _("This commission statement is another agent's."))
    return row


def statement_lines(settlement: Settlement) -> list[Any]:
    """The statement's lines with policy number, customer and product (one query; every
    customer named, whatever the reader's record rule: the statement is the agent's)."""
    with access.all_customers():
        return list(
            db.session.execute(
                select(
                    CommissionLine,
                    Policy.number.label("policy_number"),
                    Customer.name.label("customer"),
                    Product.name.label("product"),
                )
                .join(Policy, Policy.id == CommissionLine.policy_id)
                .outerjoin(Customer, Customer.id == Policy.customer_id)
                .outerjoin(Product, Product.id == Policy.product_id)
                .where(CommissionLine.settlement_id == settlement.id)
                .order_by(CommissionLine.created_at, CommissionLine.id)
            )
        )


def _render_statement(settlement: Settlement, status: int = 200, message: str | None = None) -> Any:
    agent = db.session.execute(
        select(Agent, Channel.name.label("name"), Channel.type.label("type"))
        .join(Channel, Channel.id == Agent.channel_id)
        .where(Agent.id == settlement.agent_id)
    ).one()
    lines = statement_lines(settlement)
    by_kind: dict[str, Decimal] = {}
    for row in lines:
        line = row[0]
        by_kind[line.kind] = by_kind.get(line.kind, Decimal(0)) + svc.money(line.amount)
    steps = [
        t
        for t in svc.SETTLEMENT_WORKFLOW.transitions
        if settlement.state in t.sources and is_manager() and workflow.allowed(t, _role())
    ]
    action = ActionForm(formdata=None)
    action.version.data = str(settlement.version)
    return render_template(
        "insurance/statement.html",
        settlement=settlement,
        agent=agent[0],
        agent_name=agent.name,
        agent_type=agent.type,
        lines=lines,
        by_kind=[(k, by_kind[k]) for k in svc.KIND_KEYS if k in by_kind],
        steps=steps,
        action=action,
        message=message,
        locked=settlement.state in svc.LOCKED,
        fmt_money=fmt_money,
        rate=svc.rate_text,
        local_day=lambda moment: svc.local_day(moment).isoformat() if moment else "",
        company=_company_name(),
    ), status


def _role() -> str | None:
    from core.web.helpers import role

    return role()


def _company_name() -> str:
    from core.models import Company
    from core.tenancy import require_company

    return db.session.scalar(select(Company.name).where(Company.id == require_company())) or ""


@bp.route("/commissions/statements/<int:settlement_id>")
def statement(settlement_id: int) -> Any:
    """One statement, printable."""
    return _render_statement(_statement(settlement_id))


@bp.route("/commissions/statements/<int:settlement_id>/<any(confirm, pay):name>", methods=["POST"])
def statement_transition(settlement_id: int, name: str) -> Any:
    """Confirm (locks the month) or mark paid (managers)."""
    _require_manager()
    settlement = _statement(settlement_id)
    form = _csrf()
    if (form.version.data or "") != str(settlement.version):
        flash(_("This statement changed meanwhile; check it again before you confirm it."))
        return redirect(url_for(".statement", settlement_id=settlement_id)), 303
    try:
        workflow.transition(settlement, name, user=current_user)
        db.session.commit()
    except workflow.WorkflowError as exc:
        db.session.rollback()
        return _render_statement(_statement(settlement_id), exc.status, exc.message)
    except StaleDataError:
        db.session.rollback()
        flash(_("This statement changed meanwhile; check it again before you confirm it."))
        return redirect(url_for(".statement", settlement_id=settlement_id)), 303
    flash(_("Statement is now: %(state)s.", state=svc.state_label(settlement.state)))
    return redirect(url_for(".statement", settlement_id=settlement_id))


# -- panels ---------------------------------------------------------------------------------------


def policy_panel(policy: Policy) -> str:
    """The box on a policy's page: its frozen hierarchy and its commission lines (managers
    see every line, an agent their own), or why there are none. Two queries."""
    upline = aliased(Channel)
    hierarchy = db.session.execute(
        select(PolicyHierarchy.level, Agent.id, upline.name, Agent.team)
        .join(Agent, Agent.id == PolicyHierarchy.agent_id)
        .join(upline, upline.id == Agent.channel_id)
        .where(PolicyHierarchy.policy_id == policy.id)
        .order_by(PolicyHierarchy.level)
    ).all()
    stmt = (
        select(CommissionLine, Channel.name.label("agent"), Settlement.state.label("state"))
        .join(Agent, Agent.id == CommissionLine.agent_id)
        .join(Channel, Channel.id == Agent.channel_id)
        .outerjoin(Settlement, Settlement.id == CommissionLine.settlement_id)
        .where(CommissionLine.policy_id == policy.id)
        .order_by(CommissionLine.id)
    )
    manager = is_manager()
    own = None if manager else own_agent()
    if not manager:
        stmt = stmt.where(CommissionLine.agent_id == (own.id if own is not None else -1))
    lines = db.session.execute(stmt).all()
    return render_template(
        "insurance/commission_policy_panel.html",
        policy=policy,
        hierarchy=hierarchy,
        lines=lines,
        total=sum((svc.money(r[0].amount) for r in lines), Decimal(0)),
        may_see=manager or own is not None,
        fmt_money=fmt_money,
        rate=svc.rate_text,
    )


def agent_panel(agent: Agent) -> str:
    """The box on an agent's page: the agent's latest statements (managers and the agent)."""
    own = own_agent()
    if not is_manager() and (own is None or own.id != agent.id):
        return render_template("insurance/commission_agent_panel.html", rows=None, agent=agent)
    rows = db.session.scalars(
        select(Settlement)
        .where(Settlement.agent_id == agent.id)
        .order_by(Settlement.month.desc(), Settlement.id.desc())
        .limit(PANEL_STATEMENTS)
    ).all()
    return render_template(
        "insurance/commission_agent_panel.html",
        rows=rows,
        agent=agent,
        fmt_money=fmt_money,
        more=statements_url(agent=agent.id),
    )


# -- API ------------------------------------------------------------------------------------------


def _api_visible(stmt: Any, agent_column: Any) -> Any:
    """API reads: all for admins and managers, an agent's own, nothing for others."""
    if member_role() in MANAGERS:
        return stmt
    agent = svc.agent_for_user(user().id)
    return stmt.where(agent_column == agent.id) if agent is not None else stmt.where(false())


class SettlementsResource(Resource):
    """Monthly commission statements (佣金结算单), one per agent and month; ``total`` is the
    sum of its lines (``insurance_commission_lines``). Read-only; ``confirm`` (locks the
    month) and ``pay`` are workflow transitions for admins and managers. An agent reads their
    own statements only."""

    name = "insurance_settlements"
    model = Settlement
    label, label_zh = "Commission statements", "佣金结算单"
    schema = model_schema(
        Settlement,
        dump_only=("agent_id", "month", "total", "state", "confirmed_at", "paid_at"),
        fields={"total": Money(dump_only=True)},
    )
    filters = ("agent_id", "month", "state")
    sorts = (MONTH_SORT, Sort("newest", Settlement.id, True, False, "integer"))
    read_only = True

    def query(self) -> Any:
        return _api_visible(select(Settlement), Settlement.agent_id)


class CommissionLinesResource(Resource):
    """Commission lines (佣金明细): ``kind`` first_year, renewal, override (an upline at
    ``level`` ≥ 1) or clawback (negative, taking back ``reverses_id``); ``amount`` = ``base``
    × ``rate`` / 100 rounded half-up to the fen. Read-only; written when policies are issued
    and cancelled. An agent reads their own lines only."""

    name = "insurance_commission_lines"
    model = CommissionLine
    label, label_zh = "Commission lines", "佣金明细"
    schema = model_schema(
        CommissionLine,
        dump_only=tuple(c.key for c in CommissionLine.__table__.columns),
        fields={
            "base": Money(dump_only=True),
            "rate": Money(dump_only=True),
            "amount": Money(dump_only=True),
        },
    )
    choice_fields = {"kind": "insurance_commission_kind"}
    filters = ("agent_id", "policy_id", "settlement_id", "month", "kind")
    sorts = (Sort("newest", CommissionLine.id, True, False, "integer"),)
    read_only = True

    def query(self) -> Any:
        return _api_visible(select(CommissionLine), CommissionLine.agent_id)


def resources() -> list[Resource]:
    return [SettlementsResource(), CommissionLinesResource()]


# -- reports --------------------------------------------------------------------------------------


def shift_months(day: date, n: int) -> date:
    """The same day ``n`` months later (earlier when negative), at most the month's last day."""
    first = svc.add_months(day.replace(day=1), n)
    last = (svc.add_months(first, 1) - timedelta(days=1)).day
    return first.replace(day=min(day.day, last))


def _year_ago() -> date:
    return svc.add_months(svc.month_of(svc.today()), -11)


def _months_params(label: str, label_zh: str) -> tuple[ReportParam, ReportParam]:
    return (
        ReportParam("start", f"{label} from", f"{label_zh}起", "date", default=_year_ago),
        ReportParam("end", f"{label} to", f"{label_zh}止", "date", default=svc.today),
    )


LEAGUE_SORTS = (
    ("premium", "Annual premium issued", "新单年化保费"),
    ("policies", "Policies", "保单数"),
    ("conversion", "Lead conversion", "线索转化率"),
    ("persistency", "Persistency", "继续率"),
    ("commission", "Commission earned", "佣金收入"),
)


def persistency_cohort(end: date) -> tuple[date, date]:
    """The issue dates whose policies the league's persistency counts for a period ending
    ``end``: from 24 months before ``end`` to 13 months before it, both included."""
    return shift_months(end, -24), shift_months(end, -13)


def _league_query(p: Mapping[str, Any]) -> Any:
    start = p.get("start") or svc.EARLIEST
    end = p.get("end") or svc.today()
    issued = (
        select(
            Policy.agent_id.label("agent_id"),
            func.count(Policy.id).label("policies"),
            func.coalesce(func.sum(Policy.annual_premium), 0).label("premium"),
        )
        .where(Policy.agent_id.is_not(None), Policy.issued_on >= start, Policy.issued_on <= end)
        .group_by(Policy.agent_id)
        .subquery("issued")
    )
    leads = (
        select(
            Lead.agent_id.label("agent_id"),
            func.count(Lead.id).label("leads"),
            func.sum(case((Lead.state == "converted", 1), else_=0)).label("converted"),
        )
        .where(Lead.agent_id.is_not(None), Lead.created_on >= start, Lead.created_on <= end)
        .group_by(Lead.agent_id)
        .subquery("leads")
    )
    low, high = persistency_cohort(end)
    cohort = (
        select(
            Policy.agent_id.label("agent_id"),
            func.count(Policy.id).label("cohort"),
            func.sum(case((Policy.state.in_(svc.PERSISTING), 1), else_=0)).label("kept"),
        )
        .where(Policy.agent_id.is_not(None), Policy.issued_on >= low, Policy.issued_on <= high)
        .group_by(Policy.agent_id)
        .subquery("cohort")
    )
    earned = (
        select(
            CommissionLine.agent_id.label("agent_id"),
            func.coalesce(func.sum(CommissionLine.amount), 0).label("commission"),
        )
        .where(CommissionLine.month >= svc.month_of(start), CommissionLine.month <= end)
        .group_by(CommissionLine.agent_id)
        .subquery("earned")
    )
    return (
        select(
            Agent.id.label("value"),
            Channel.name.label("label"),
            Agent.team.label("team"),
            func.coalesce(issued.c.premium, 0).label("premium"),
            func.coalesce(issued.c.policies, 0).label("policies"),
            func.coalesce(leads.c.leads, 0).label("leads"),
            func.coalesce(leads.c.converted, 0).label("converted"),
            func.coalesce(cohort.c.cohort, 0).label("cohort"),
            func.coalesce(cohort.c.kept, 0).label("kept"),
            func.coalesce(earned.c.commission, 0).label("commission"),
        )
        .join(Channel, Channel.id == Agent.channel_id)
        .outerjoin(issued, issued.c.agent_id == Agent.id)
        .outerjoin(leads, leads.c.agent_id == Agent.id)
        .outerjoin(cohort, cohort.c.agent_id == Agent.id)
        .outerjoin(earned, earned.c.agent_id == Agent.id)
    )


def _league_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        row = dict(r)
        row["premium"] = svc.money(row["premium"])
        row["commission"] = svc.money(row["commission"])
        leads, cohort = int(row["leads"] or 0), int(row["cohort"] or 0)
        row["conversion"] = int(row["converted"] or 0) / leads if leads else None
        row["persistency"] = int(row["kept"] or 0) / cohort if cohort else None
        row["team"] = row.get("team") or ""
        if row["policies"] or leads or cohort or row["commission"]:
            out.append(row)
    key = p.get("sort") or "premium"
    return sorted(
        out,
        key=lambda r: (r[key] is None, -float(r[key] or 0), str(r["label"])),
    )


AGENT_LEAGUE = Report(
    name="insurance_agent_league",
    label="Agent league table",
    label_zh="代理人业绩排行",
    description="Per agent over the chosen dates: the annual premium and number of the "
    "policies issued, lead conversion (leads created in the period that converted), "
    "persistency (of the policies issued 13 to 24 months before the end date, the share still "
    "in force or renewed) and the commission earned (statement months in the period, "
    "clawbacks deducted). Sorted by the chosen measure, which the chart draws.",
    description_zh="所选期间内每位代理人：出单保单的年化保费与件数、线索转化率（期间内新建线索的转化比例）、"
    "继续率（截止日前13至24个月内出单的保单中仍有效或已续保的比例）以及佣金收入（期间内结算月份，"
    "已扣除追回）。按所选指标排序并绘图。",
    params=(
        ReportParam("sort", "Sort by", "排序", choices=LEAGUE_SORTS, default="premium"),
        *_months_params("Issued", "出单日期"),
    ),
    query=_league_query,
    shape=_league_shape,
    columns=(
        ReportColumn("label", "Agent", "代理人", "text"),
        ReportColumn("team", "Team", "团队", "text"),
        ReportColumn("premium", "Annual premium issued", "新单年化保费", "money", color="#2b6cb0"),
        ReportColumn("policies", "Policies", "保单数", color="#4a5568"),
        ReportColumn("conversion", "Lead conversion", "线索转化率", "percent", color="#6b46c1"),
        ReportColumn("persistency", "Persistency", "继续率", "percent", color="#2c7a7b"),
        ReportColumn("commission", "Commission earned", "佣金收入", "money", color="#2f855a"),
    ),
    series=lambda p: (p.get("sort") or "premium",),
    chart="hbar",
    drill=lambda row, p, series: statements_url(agent=row["value"]),
    roles=MANAGERS,
    group="insurance",
    order=420,
)


def _by_month_query(p: Mapping[str, Any]) -> Any:
    stmt = select(
        CommissionLine.month.label("month"),
        CommissionLine.kind.label("kind"),
        func.coalesce(func.sum(CommissionLine.amount), 0).label("amount"),
    ).group_by(CommissionLine.month, CommissionLine.kind)
    if p.get("start"):
        stmt = stmt.where(CommissionLine.month >= svc.month_of(p["start"]))
    if p.get("end"):
        stmt = stmt.where(CommissionLine.month <= p["end"])
    return stmt


def _by_month_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        key = str(r["month"])[:7]
        row = found.setdefault(key, {})
        row[r["kind"]] = row.get(r["kind"], Decimal(0)) + svc.money(r["amount"])
    out = []
    for key in report_months(p) or sorted(found):
        row = {"value": key, "label": key}
        for kind in svc.KIND_KEYS:
            row[kind] = found.get(key, {}).get(kind, svc.ZERO)
        row["total"] = sum((row[k] for k in svc.KIND_KEYS), svc.ZERO)
        out.append(row)
    return out


COMMISSION_BY_MONTH = Report(
    name="insurance_commission_by_month",
    label="Commission by month",
    label_zh="月度佣金",
    description="Commission lines per statement month and kind: first-year, renewal, "
    "override and clawback (negative), and the month's total.",
    description_zh="按结算月份和类型统计佣金：首年佣金、续期佣金、管理津贴和佣金追回（负数），及当月合计。",
    params=_months_params("Month", "月份"),
    query=_by_month_query,
    shape=_by_month_shape,
    columns=(
        ReportColumn("label", "Month", "月份", "text"),
        *(ReportColumn(key, label, zh, "money", color=COLORS[key]) for key, label, zh in svc.KINDS),
        ReportColumn("total", "Total", "合计", "money"),
    ),
    series=svc.KIND_KEYS,
    chart="stacked",
    drill=lambda row, p, series: statements_url(month=row["value"]),
    roles=MANAGERS,
    group="insurance",
    order=430,
)


def reports() -> list[Report]:
    return [AGENT_LEAGUE, COMMISSION_BY_MONTH]


__all__ = [
    "CommissionLinesResource",
    "SettlementsResource",
    "agent_panel",
    "policy_panel",
    "reports",
    "resources",
    "statement_page",
]
