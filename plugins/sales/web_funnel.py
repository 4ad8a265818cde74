"""Opportunity pages (销售机会): list with filters and export, kanban board by stage, detail
with the workflow's steps, buying climate, calls and comments, the create and edit forms, and
the stage settings of administrators (``/sales/stages``). See :mod:`plugins.sales.funnel`.

Every write checks the role (viewers read only), keeps the record's ``version`` (a stale form
answers 409) and rolls back on any refusal, so a refused form writes nothing and answers 422
with the message at its field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, or_, select
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    DecimalField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional, Regexp

from core import audit, interactions, keyset, workflow
from core.choices import options
from core.customers import channel_options, get_visible, members
from core.db import capped_count
from core.extend import Sort, db
from core.keyset import MAX_ID
from core.models import Channel, Contact, Customer, User, WorkflowHistory
from core.web.channels import Amount
from core.web.helpers import role
from core.web.notifications import safe_next
from plugins.sales import funnel
from plugins.sales.blueprint import bp, is_manager
from plugins.sales.models import Opportunity, Stage

#: Cards shown per board column (the header shows the full count and amount).
BOARD_LIMIT = 20
DATE_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"]
TRUE_VALUES = ("1", "true", "on", "yes")
SORTS: dict[str, Sort] = {
    "newest": Sort("newest", Opportunity.id, True, False, "integer"),
    "close": Sort("close", Opportunity.expected_close, False, True, "date"),
    "amount": Sort("amount", Opportunity.amount, True, False, "decimal"),
}
SORT_LABELS = {
    "newest": _l("Newest first"),
    "close": _l("Expected close"),
    "amount": _l("Largest amount"),
}
STATUS_LABELS = {"open": _l("Open"), "won": _l("Won"), "lost": _l("Lost")}
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,38}$")


# -- access -------------------------------------------------------------------------------------


def can_write() -> bool:
    return role() not in (None, "viewer")


def _require_writer() -> None:
    if not can_write():
        abort(
            403, _("Your role (%(role)s) can read opportunities but not change them.", role=role())
        )


def _require_admin() -> None:
    if role() != "admin":
        abort(
            403,
            _(
                "Only administrators can change the funnel's stages; you are %(role)s.",
                role=role() or "-",
            ),
        )


def _int(raw: str | None) -> int | None:
    """A positive database id from a request value, else ``None``."""
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        return None
    return int(raw) or None


def money(value: Any) -> str:
    """``¥1,234.50`` ('' for none)."""
    if value is None:
        return ""
    return f"¥{Decimal(str(value)):,.2f}"


def local_time(moment: datetime | None) -> str:
    """``2026-11-25 14:30`` in the company's time zone."""
    if moment is None:
        return ""
    return moment.astimezone(interactions.company_zone()).strftime("%Y-%m-%d %H:%M")


def _helpers() -> dict[str, Any]:
    return {
        "money": money,
        "local_time": local_time,
        "stage_label": funnel.stage_label,
        "lost_reason_label": funnel.lost_reason_label,
        "outcome_label": funnel.outcome_label,
        "climate_label": funnel.climate_label,
        "can_write": can_write(),
    }


# -- list, board and export queries ------------------------------------------------------------


@dataclass
class Row:
    """An opportunity with its customer, owner and channel names and its probability."""

    opportunity: Opportunity
    customer_name: str
    owner_name: str | None
    channel_name: str | None
    probability: int

    @property
    def weighted(self) -> Decimal:
        amount = self.opportunity.amount or Decimal(0)
        return (amount * self.probability / 100).quantize(Decimal("0.01"))


@dataclass
class Page:
    rows: list[Row] = field(default_factory=list)
    next_after: str | None = None
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)


def _values(args: MultiDict, name: str) -> list[str]:
    return [v.strip() for v in args.getlist(name) if v.strip()]


def _ids_filter(stmt: Any, args: MultiDict, name: str, column: Any, errors: dict) -> Any:
    """``?name=3&name=none``: any of these ids (``none``: empty)."""
    wanted = _values(args, name)
    if not wanted:
        return stmt
    ids = [_int(v) for v in wanted if v != "none"]
    if any(i is None for i in ids):
        errors[name] = _("must be a number (or 'none')")
        return stmt
    clause = column.in_(ids)
    if "none" in wanted:
        clause = or_(clause, column.is_(None))
    return stmt.where(clause)


def _date_arg(args: MultiDict, name: str, errors: dict) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None or not 1900 <= day.year <= 2199:
        errors[name] = _("Enter a date as YYYY-MM-DD.")
    return day


def query(args: MultiDict, *, with_stage: bool = True) -> tuple[Any, dict[str, str]]:
    """The opportunity query for request ``args`` and its errors by parameter. Rows: the
    opportunity, customer, owner and channel names, probability. Filters: ``q``, ``stage``,
    ``status`` (open/won/lost), ``owner``, ``customer``, ``channel``, ``close_from``,
    ``close_to``, ``close=none``."""
    stmt = funnel.stage_join(
        select(
            Opportunity,
            Customer.name.label("customer_name"),
            User.name.label("owner_name"),
            Channel.name.label("channel_name"),
            funnel.probability_expr().label("probability"),
        )
        .join(Customer, Customer.id == Opportunity.customer_id)
        .outerjoin(User, User.id == Opportunity.owner_id)
        .outerjoin(Channel, Channel.id == Opportunity.channel_id)
    )
    errors: dict[str, str] = {}
    known = funnel.stage_map()
    wanted = _values(args, "stage") if with_stage else []
    if wanted:
        bad = [v for v in wanted if v not in known]
        if bad:
            errors["stage"] = _("unknown stage %(value)s", value=bad[0][:40])
        else:
            stmt = stmt.where(Opportunity.state.in_(wanted))
    status = _values(args, "status")
    if status:
        if any(v not in STATUS_LABELS for v in status):
            errors["status"] = _("must be open, won or lost")
        else:
            stmt = stmt.where(Stage.outcome.in_(status))
    stmt = _ids_filter(stmt, args, "owner", Opportunity.owner_id, errors)
    stmt = _ids_filter(stmt, args, "channel", Opportunity.channel_id, errors)
    customer = _values(args, "customer")
    if customer:
        if _int(customer[0]) is None:
            errors["customer"] = _("must be a customer's number")
        else:
            stmt = stmt.where(Opportunity.customer_id == _int(customer[0]))
    low, high = _date_arg(args, "close_from", errors), _date_arg(args, "close_to", errors)
    if low:
        stmt = stmt.where(Opportunity.expected_close >= low)
    if high:
        stmt = stmt.where(Opportunity.expected_close <= high)
    if (args.get("close") or "").strip() == "none":
        stmt = stmt.where(Opportunity.expected_close.is_(None))
    q = (args.get("q") or "").strip().lstrip("#")
    if q:
        if len(q) > 200 or "\x00" in q:
            errors["q"] = _("At most 200 characters of text.")
        else:
            clause = or_(
                Opportunity.name.contains(q, autoescape=True),
                Customer.name.contains(q, autoescape=True),
            )
            if _int(q) is not None:
                clause = or_(clause, Opportunity.id == _int(q))
            stmt = stmt.where(clause)
    return stmt, errors


def _rows(result: Iterable[Any]) -> list[Row]:
    return [
        Row(r[0], r.customer_name, r.owner_name, r.channel_name, int(r.probability or 0))
        for r in result
    ]


def list_page(args: MultiDict, size: int, cap: int) -> Page:
    """One keyset page of the list in the chosen order (``sort``, ``after``), a capped count."""
    stmt, errors = query(args)
    result = Page(errors=errors)
    sort_key = (args.get("sort") or "newest").strip()
    sort = SORTS.get(sort_key)
    if sort is None:
        result.errors["sort"] = _("must be one of %(names)s", names=", ".join(SORTS))
    position = None
    after = (args.get("after") or "").strip()
    if sort is not None and after:
        position = keyset.decode(sort, after)
        if position is None:
            result.errors["after"] = _("must be the cursor of the page before")
    if result.errors:
        return result
    result.count, result.capped = capped_count(stmt, Opportunity.id, cap)
    if position is not None:
        stmt = stmt.where(keyset.after(sort, Opportunity.id, *position))
    stmt = stmt.order_by(*keyset.order(sort, Opportunity.id)).limit(size + 1)
    rows = db.session.execute(stmt).all()
    result.rows = _rows(rows[:size])
    if len(rows) > size:
        result.next_after = keyset.cursor_after(sort, result.rows[-1].opportunity)
    return result


@dataclass
class Column:
    stage: funnel.StageInfo
    count: int
    amount: Decimal
    rows: list[Row]


def board(args: MultiDict, limit: int) -> tuple[list[Column], dict[str, str]]:
    """Kanban columns: the active open stages (and inactive ones still holding opportunities),
    then won and lost, each with its count, amount and newest ``limit`` cards (three queries)."""
    stmt, errors = query(args, with_stage=False)
    if errors:
        return [], errors
    inner = stmt.with_only_columns(
        Opportunity.state.label("state"), Opportunity.amount.label("amount")
    ).subquery()
    totals = {
        state: (n, amount)
        for state, n, amount in db.session.execute(
            select(inner.c.state, func.count(), func.sum(inner.c.amount)).group_by(inner.c.state)
        )
    }
    number = (
        func.row_number()
        .over(partition_by=Opportunity.state, order_by=Opportunity.id.desc())
        .label("n")
    )
    ranked = stmt.with_only_columns(Opportunity.id, number).subquery()
    top = select(ranked.c.id).where(ranked.c.n <= limit)
    found = db.session.execute(
        stmt.where(Opportunity.id.in_(top)).order_by(Opportunity.id.desc())
    ).all()
    by_state: dict[str, list[Row]] = {}
    for row in _rows(found):
        by_state.setdefault(row.opportunity.state, []).append(row)
    columns = []
    for stage in funnel.stages():
        n, amount = totals.get(stage.key, (0, 0))
        if stage.outcome == "open" and not stage.active and not n:
            continue
        amount = Decimal(str(amount or 0)).quantize(Decimal("0.01"))
        columns.append(Column(stage, n, amount, by_state.get(stage.key, [])))
    return columns, errors


def _filter_context() -> dict[str, Any]:
    return {
        "stage_list": funnel.stages(),
        "people": members(),
        "channel_list": channel_options(),
        "status_labels": STATUS_LABELS,
        "sort_labels": SORT_LABELS,
        "lost_reasons": options(funnel.LOST_REASON_LIST),
        **_helpers(),
    }


# -- pages: list, export, board -----------------------------------------------------------------


@bp.route("/opportunities")
def opportunities() -> tuple[str, int]:
    result = list_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    html = render_template("sales/funnel/index.html", page=result, **_filter_context())
    return html, 400 if result.errors else 200


EXPORT_COLUMNS = (
    "id",
    "name",
    "customer",
    "stage",
    "amount",
    "probability",
    "weighted_amount",
    "expected_close",
    "owner",
    "channel",
    "lost_reason",
    "created_at",
    "closed_at",
)


@bp.route("/opportunities/export.<any(csv, xlsx):fmt>")
def opportunity_export(fmt: str) -> Any:
    """The opportunities matching the list's filters as CSV or XLSX (1,000 per query, times in
    the company's zone); needs the ``export`` permission and is audited."""
    from core import access, exporter
    from core.tenancy import company_scope, current_company_id

    stmt, errors = query(request.args)
    if errors:
        return (
            "\n".join(f"{k}: {v}" for k, v in errors.items()),
            400,
            {"Content-Type": "text/plain"},
        )
    exporter.authorize(funnel.SUBJECT, request.args)
    company_id, owners = current_company_id(), access.visible_owner_ids()
    labels = {s.key: s.text for s in funnel.stages()}

    def rows() -> Any:
        with company_scope(company_id), access.owners_scope(owners):
            for batch in keyset.batches(stmt, Opportunity.id):
                for row in _rows(batch):
                    o = row.opportunity
                    yield [
                        o.id,
                        o.name,
                        row.customer_name,
                        labels.get(o.state, o.state),
                        o.amount,
                        row.probability,
                        row.weighted,
                        o.expected_close,
                        row.owner_name or "",
                        row.channel_name or "",
                        funnel.lost_reason_label(o.lost_reason),
                        local_time(o.created_at),
                        local_time(o.closed_at),
                    ]

    return exporter.download(fmt, "opportunities", EXPORT_COLUMNS, rows, title=_("Opportunities"))


@bp.route("/opportunities/board")
def opportunity_board() -> tuple[str, int]:
    limit = current_app.config.get("SALES_BOARD_LIMIT", BOARD_LIMIT)
    columns, errors = board(request.args, limit)
    wf = workflow.workflow_for(Opportunity())
    my_role = role()
    html = render_template(
        "sales/funnel/board.html",
        columns=columns,
        errors=errors,
        limit=limit,
        moves=lambda state: funnel.moves(wf, state, my_role) if can_write() else [],
        **_filter_context(),
    )
    return html, 400 if errors else 200


# -- forms ----------------------------------------------------------------------------------------


def _select(pairs: Iterable[tuple[Any, str]], blank: str = "—") -> list[SelectChoice]:
    return [SelectChoice("", blank)] + [SelectChoice(str(v), text) for v, text in pairs]


class OpportunityForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    amount = DecimalField(
        _l("Amount (¥)"),
        places=2,
        validators=[InputRequired(), Amount(Decimal(0), funnel.MAX_AMOUNT)],
    )
    probability = IntegerField(
        _l("Probability (%)"),
        validators=[Optional(), NumberRange(0, 100)],
        description=_l("Leave empty to use the stage's default."),
    )
    expected_close = DateField(_l("Expected close"), validators=[Optional()])
    owner_id = SelectField(_l("Owner"), validate_choice=False)
    channel_id = SelectField(_l("Channel"), validate_choice=False)
    guide_contact_id = SelectField(_l("Inside guide (向导)"), validate_choice=False)
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=5000)])

    def validate_expected_close(self, field: Any) -> None:
        if field.data is not None and not 1900 <= field.data.year <= 2199:
            from wtforms.validators import ValidationError

            raise ValidationError(_("Give a date between 1900 and 2199."))


class NewOpportunityForm(OpportunityForm):
    customer_id = IntegerField(
        _l("Customer number"),
        validators=[
            InputRequired(message=_l("Choose a customer.")),
            NumberRange(min=1, max=MAX_ID, message=_l("No such customer.")),
        ],
    )


def _contacts(customer_id: int | None) -> list[tuple[int, str]]:
    if customer_id is None:
        return []
    return list(
        db.session.execute(
            select(Contact.id, Contact.name)
            .where(Contact.customer_id == customer_id)
            .order_by(Contact.name, Contact.id)
        ).all()
    )


def _opportunity_form(
    form_class: type[OpportunityForm], customer_id: int | None, **kwargs: Any
) -> OpportunityForm:
    form = form_class(**kwargs)
    form.owner_id.choices = _select(members())
    form.channel_id.choices = _select(channel_options())
    form.guide_contact_id.choices = _select(_contacts(customer_id))
    return form


def _picked(form: Any, name: str) -> int | None:
    """The id chosen in select ``name`` (``None`` for the blank); a field error (and
    ``ValueError``) when it is not one of the choices."""
    raw = (form[name].data or "").strip()
    if not raw:
        return None
    allowed = {str(c.value) for c in form[name].choices}
    if raw not in allowed:
        form[name].errors = [*form[name].errors, _("Choose from the list.")]
        raise ValueError(name)
    return int(raw)


def _form_values(form: OpportunityForm) -> dict[str, Any]:
    picked = {}
    failed = False
    for name in ("owner_id", "channel_id", "guide_contact_id"):
        try:
            picked[name] = _picked(form, name)
        except ValueError:
            failed = True
    if failed:
        raise ValueError("choices")
    return {
        "name": form.name.data.strip(),
        "amount": form.amount.data,
        "probability": form.probability.data,
        "expected_close": form.expected_close.data,
        "notes": (form.notes.data or "").strip() or None,
        **picked,
    }


def _refused(form: Any, exc: funnel.OpportunityError) -> None:
    target = form._fields.get(exc.field) or form.name
    target.errors = [*target.errors, exc.message]


# -- pages: new, edit ---------------------------------------------------------------------------


def _find_customers(q: str) -> list[Any]:
    clause = or_(
        Customer.name.contains(q, autoescape=True),
        Customer.phone.contains(q, autoescape=True),
        Customer.code == q,
    )
    if _int(q) is not None:
        clause = or_(clause, Customer.id == _int(q))
    stmt = select(Customer.id, Customer.name, Customer.code).where(clause)
    return list(db.session.execute(stmt.order_by(Customer.name).limit(20)).all())


@bp.route("/opportunities/new", methods=["GET", "POST"])
def opportunity_new() -> Any:
    _require_writer()
    data: dict[str, Any] = {"owner_id": str(current_user.id)}
    picked = _int(request.args.get("customer_id"))
    if request.method == "GET" and picked is not None:
        data["customer_id"] = picked
        chosen = get_visible(picked)
        if chosen is not None and chosen.channel_id:
            data["channel_id"] = str(chosen.channel_id)
    raw_customer = request.form.get("customer_id") if request.method == "POST" else None
    customer_id = _int(raw_customer) if raw_customer is not None else picked
    form = _opportunity_form(
        NewOpportunityForm, customer_id, data=data if request.method == "GET" else None
    )
    chosen = get_visible(customer_id) if customer_id else None
    if form.validate_on_submit():
        if chosen is None:
            form.customer_id.errors = [_("No customer with this number.")]
        else:
            try:
                opp = funnel.open_opportunity(
                    current_user, customer_id=chosen.id, **_form_values(form)
                )
                db.session.commit()
                flash(_("Opportunity saved."))
                return redirect(url_for(".opportunity_detail", opportunity_id=opp.id))
            except funnel.OpportunityError as exc:
                _refused(form, exc)
            except ValueError:
                pass
    db.session.rollback()
    customer_q = (request.args.get("customer_q") or "").strip()[:200]
    return render_template(
        "sales/funnel/form.html",
        form=form,
        opportunity=None,
        chosen=chosen,
        customer_q=customer_q,
        found=_find_customers(customer_q) if customer_q else [],
        **_helpers(),
    ), (422 if form.errors else 200)


def _get(opportunity_id: int) -> Opportunity:
    """The opportunity if it exists here and the record rule shows its customer, else 404."""
    if opportunity_id > MAX_ID:
        abort(404)
    found = db.session.scalar(
        select(Opportunity)
        .join(Customer, Customer.id == Opportunity.customer_id)
        .where(Opportunity.id == opportunity_id)
    )
    if found is None:
        abort(404)
    return found


@bp.route("/opportunities/<int:opportunity_id>/edit", methods=["GET", "POST"])
def opportunity_edit(opportunity_id: int) -> Any:
    _require_writer()
    opp = _get(opportunity_id)
    data = None
    if request.method == "GET":
        data = {
            "name": opp.name,
            "amount": opp.amount,
            "probability": opp.probability,
            "expected_close": opp.expected_close,
            "owner_id": str(opp.owner_id or ""),
            "channel_id": str(opp.channel_id or ""),
            "guide_contact_id": str(opp.guide_contact_id or ""),
            "notes": opp.notes,
            "version": opp.version,
        }
    form = _opportunity_form(OpportunityForm, opp.customer_id, data=data)
    version = _int(request.form.get("version")) if request.method == "POST" else None
    if form.validate_on_submit():
        if version != opp.version:
            return _stale(opp.id)
        try:
            values = _form_values(form)
            funnel.check(values, opp)
            changed = sorted(k for k, v in values.items() if getattr(opp, k) != v)
            for key, value in values.items():
                setattr(opp, key, value)
            audit.record("update", funnel.SUBJECT, opp.id, {"fields": changed})
            db.session.commit()
            flash(_("Opportunity saved."))
            return redirect(url_for(".opportunity_detail", opportunity_id=opp.id))
        except funnel.OpportunityError as exc:
            _refused(form, exc)
        except StaleDataError:
            return _stale(opp.id)
        except ValueError:
            pass
    db.session.rollback()
    opp = _get(opportunity_id)
    return render_template(
        "sales/funnel/form.html",
        form=form,
        opportunity=opp,
        chosen=db.session.get(Customer, opp.customer_id),
        version=opp.version if version is None else version,
        **_helpers(),
    ), (422 if form.errors else 200)


# -- detail ---------------------------------------------------------------------------------------


class MoveForm(FlaskForm):
    """A workflow step: ``transition`` (``to_<stage>``, ``win``, ``lose``, ``reopen``) on the
    version the user saw; ``lose`` needs ``lost_reason``."""

    transition = StringField(validators=[InputRequired(), Length(max=60)])
    version = IntegerField(validators=[InputRequired()])
    lost_reason = StringField(validators=[Optional(), Length(max=40)])
    comment = StringField(validators=[Optional(), Length(max=1000)])
    next = StringField(validators=[Optional(), Length(max=500)])


class ClimateForm(FlaskForm):
    contact_id = SelectField(_l("Contact"), validate_choice=False)
    role = SelectField(_l("Part in the buying climate"), validate_choice=False)


class CallForm(FlaskForm):
    outcome = SelectField(
        _l("Outcome"),
        validators=[InputRequired(message=_l("Choose the call's outcome."))],
        validate_choice=False,
    )
    contact_id = SelectField(_l("Contact"), validate_choice=False)
    result = TextAreaField(_l("What happened"), validators=[Optional(), Length(max=5000)])
    next_step = StringField(
        _l("Agreed next action"),
        validators=[Optional(), Length(max=200)],
        description=_l("What the customer agreed to do: a demo, a meeting with the decider…"),
    )
    next_step_due = DateTimeLocalField(_l("Due"), format=DATE_FORMATS, validators=[Optional()])


def _climate_form(contacts: list[tuple[int, str]], formdata: Any = None) -> ClimateForm:
    form = ClimateForm(formdata=formdata)
    form.contact_id.choices = _select(contacts)
    form.role.choices = [
        SelectChoice(key, funnel.climate_label(key)) for key, _l2, _z in funnel.CLIMATE_ROLES
    ]
    return form


def _call_form(contacts: list[tuple[int, str]], formdata: Any = None) -> CallForm:
    form = CallForm(formdata=formdata)
    form.outcome.choices = _select(
        (key, funnel.outcome_label(key)) for key, _l2, _z in funnel.CALL_OUTCOMES
    )
    form.contact_id.choices = _select(contacts)
    return form


def _history(opportunity_id: int) -> list[Any]:
    return list(
        db.session.execute(
            select(WorkflowHistory, User.name)
            .outerjoin(User, User.id == WorkflowHistory.user_id)
            .where(
                WorkflowHistory.subject_type == funnel.SUBJECT,
                WorkflowHistory.subject_id == opportunity_id,
            )
            .order_by(WorkflowHistory.created_at, WorkflowHistory.id)
        ).all()
    )


def _render_detail(
    opp: Opportunity,
    status: int = 200,
    message: str | None = None,
    move: dict[str, Any] | None = None,
    **forms: Any,
) -> tuple[str, int]:
    """The detail page; ``forms`` replace blank ones and ``move`` holds a refused step's
    values and errors, to show them where they belong."""
    stage = funnel.stage_map().get(opp.state)
    contacts = db.session.execute(
        select(Contact).where(Contact.customer_id == opp.customer_id).order_by(Contact.name)
    ).scalars()
    people = {c.id: c for c in contacts}
    pairs = [(c.id, c.name) for c in people.values()]
    names = dict(
        db.session.execute(
            select(User.id, User.name).where(
                User.id.in_([i for i in (opp.owner_id,) if i is not None])
            )
        ).all()
    )
    wf = workflow.workflow_for(opp)
    probability = funnel.probability_of(opp, stage)
    html = render_template(
        "sales/funnel/detail.html",
        opp=opp,
        stage=stage,
        probability=probability,
        weighted=(opp.amount * probability / 100).quantize(Decimal("0.01")),
        customer=db.session.get(Customer, opp.customer_id),
        owner_name=names.get(opp.owner_id),
        channel=db.session.get(Channel, opp.channel_id) if opp.channel_id else None,
        guide=people.get(opp.guide_contact_id),
        climate=sorted(
            ((r, people.get(r.contact_id)) for r in opp.roles),
            key=lambda pair: (
                [k for k, _a, _b in funnel.CLIMATE_ROLES].index(pair[0].role)
                if pair[0].role in {k for k, _a, _b in funnel.CLIMATE_ROLES}
                else 99
            ),
        ),
        transitions=funnel.moves(wf, opp.state, role()) if can_write() else [],
        lost_reasons=options(funnel.LOST_REASON_LIST),
        move=move or {},
        history=_history(opp.id),
        calls=funnel.calls_of(opp.id),
        climate_form=forms.get("climate") or _climate_form(pairs),
        call_form=forms.get("call") or _call_form(pairs),
        message=message,
        subject_type=funnel.SUBJECT,
        subject_id=opp.id,
        **_helpers(),
    )
    return html, status


@bp.route("/opportunities/<int:opportunity_id>")
def opportunity_detail(opportunity_id: int) -> tuple[str, int]:
    return _render_detail(_get(opportunity_id))


def _stale(opportunity_id: int) -> tuple[str, int]:
    """Answer a write that lost the race: 409 with the opportunity as it is now."""
    db.session.rollback()
    return _render_detail(
        _get(opportunity_id),
        409,
        message=_("Someone else changed this opportunity meanwhile; reload it and try again."),
    )


def _refusal(exc: workflow.WorkflowError, opp: Opportunity, name: str) -> str:
    """The engine's refusal in the user's language."""
    step = workflow.workflow_for(opp).get(name)
    if isinstance(exc, workflow.NotAllowed) and step is not None:
        return _(
            "Your role (%(role)s) may not take the step “%(step)s”; it needs: %(roles)s.",
            role=role() or "-",
            step=step.text,
            roles=", ".join(step.roles) or _("any role but viewer"),
        )
    if isinstance(exc, workflow.IllegalTransition):
        if step is None:
            return _("Opportunities have no step “%(name)s”.", name=name[:60])
        return _(
            "“%(step)s” is not possible while the opportunity is at %(stage)s.",
            step=step.text,
            stage=funnel.stage_label(opp.state),
        )
    return exc.message


def _lost_reason_error(reason: str) -> str | None:
    if not reason:
        return _("Say why the opportunity was lost.")
    if reason not in {v for v, _label in options(funnel.LOST_REASON_LIST)}:
        return _("Choose a lost reason from the list.")
    return None


@bp.route("/opportunities/<int:opportunity_id>/move", methods=["POST"])
def opportunity_move(opportunity_id: int) -> Any:
    """Take a workflow step (the board's move or a button of the detail page)."""
    opp = _get(opportunity_id)
    _require_writer()
    form = MoveForm()
    name = (form.transition.data or "").strip()
    move = {
        "name": name,
        "lost_reason": (form.lost_reason.data or "").strip(),
        "comment": (form.comment.data or "").strip(),
        "errors": {},
    }
    if not form.validate():
        db.session.rollback()
        if form.version.errors:
            return _stale(opp.id)
        move["errors"] = {k: v[0] for k, v in form.errors.items()}
        return _render_detail(opp, 422, move=move)
    step = workflow.workflow_for(opp).get(name)
    if step is None:
        refused = workflow.IllegalTransition(name)
        return _render_detail(opp, refused.status, message=_refusal(refused, opp, name))
    if name == "lose" and _lost_reason_error(move["lost_reason"]):
        move["errors"] = {"lost_reason": _lost_reason_error(move["lost_reason"])}
        return _render_detail(opp, 422, move=move)
    inputs = {"comment": move["comment"]}
    if name == "lose":
        inputs["lost_reason"] = move["lost_reason"]
    try:
        workflow.transition(
            opp, name, user=current_user, inputs=inputs, expected_version=form.version.data
        )
        db.session.commit()
    except (workflow.StaleRecord, StaleDataError):
        return _stale(opportunity_id)
    except workflow.WorkflowError as exc:
        db.session.rollback()
        opp = _get(opportunity_id)
        if exc.field:
            move["errors"] = {exc.field: exc.message}
            return _render_detail(opp, exc.status, move=move)
        return _render_detail(opp, exc.status, message=_refusal(exc, opp, name))
    flash(_("%(name)s is now at %(stage)s.", name=opp.name, stage=funnel.stage_label(opp.state)))
    default = url_for(".opportunity_detail", opportunity_id=opp.id)
    return redirect(safe_next(form.next.data, default))


@bp.route("/opportunities/<int:opportunity_id>/contacts", methods=["POST"])
def opportunity_climate_add(opportunity_id: int) -> Any:
    """Give a contact of the customer a part in the buying climate."""
    opp = _get(opportunity_id)
    _require_writer()
    form = _climate_form(_contacts(opp.customer_id), formdata=request.form)
    if form.validate():
        try:
            contact_id = _picked(form, "contact_id")
            if contact_id is None:
                form.contact_id.errors = [_("Choose a contact.")]
                raise ValueError("contact_id")
            funnel.set_role(opp, contact_id, form.role.data)
            db.session.commit()
            flash(_("Buying climate saved."))
            return redirect(url_for(".opportunity_detail", opportunity_id=opp.id) + "#climate")
        except funnel.OpportunityError as exc:
            target = form._fields.get(exc.field) or form.contact_id
            target.errors = [*target.errors, exc.message]
        except ValueError:
            pass
    db.session.rollback()
    return _render_detail(_get(opportunity_id), 422, climate=form)


@bp.route("/opportunities/<int:opportunity_id>/contacts/<int:row_id>/delete", methods=["POST"])
def opportunity_climate_remove(opportunity_id: int, row_id: int) -> Any:
    opp = _get(opportunity_id)
    _require_writer()
    if row_id > MAX_ID or not funnel.remove_role(opp, row_id):
        abort(404)
    db.session.commit()
    flash(_("Contact taken out of the buying climate."))
    return redirect(url_for(".opportunity_detail", opportunity_id=opp.id) + "#climate")


def _due(form: CallForm) -> datetime | None:
    """The form's naive local due time as an aware UTC moment (a field error when absurd)."""
    value = form.next_step_due.data
    if value is None:
        return None
    if not 1900 <= value.year <= 2199:
        form.next_step_due.errors = [_("Give a date between 1900 and 2199.")]
        raise ValueError("next_step_due")
    return value.replace(tzinfo=interactions.company_zone()).astimezone(UTC)


@bp.route("/opportunities/<int:opportunity_id>/calls", methods=["POST"])
def opportunity_call(opportunity_id: int) -> Any:
    """Log a call about the opportunity with its outcome; an advance needs its next action."""
    opp = _get(opportunity_id)
    _require_writer()
    form = _call_form(_contacts(opp.customer_id), formdata=request.form)
    if form.validate():
        try:
            if form.outcome.data not in {k for k, _a, _b in funnel.CALL_OUTCOMES}:
                form.outcome.errors = [_("Choose from the list.")]
                raise ValueError("outcome")
            funnel.log_call(
                opp,
                current_user,
                form.outcome.data,
                result=form.result.data,
                next_step=form.next_step.data,
                next_step_due=_due(form),
                contact_id=_picked(form, "contact_id"),
            )
            db.session.commit()
            flash(_("Call logged."))
            return redirect(url_for(".opportunity_detail", opportunity_id=opp.id) + "#calls")
        except interactions.InteractionError as exc:
            target = form._fields.get(exc.field) or form.outcome
            target.errors = [*target.errors, exc.message]
        except ValueError:
            pass
    db.session.rollback()
    return _render_detail(_get(opportunity_id), 422, call=form)


# -- stage settings -------------------------------------------------------------------------------


class StageRowForm(Form):
    id = HiddenField()
    label = StringField(_l("Label"), validators=[InputRequired(), Length(max=80)])
    label_zh = StringField(_l("Chinese label"), validators=[Optional(), Length(max=80)])
    probability = IntegerField(_l("Probability (%)"), validators=[Optional(), NumberRange(0, 100)])
    sequence = IntegerField(_l("Order"), validators=[InputRequired(), NumberRange(0, 1_000_000)])
    active = BooleanField(_l("Active"))


class StagesForm(FlaskForm):
    rows = FieldList(FormField(StageRowForm))


class NewStageForm(FlaskForm):
    label = StringField(_l("Label"), validators=[InputRequired(), Length(max=80)])
    label_zh = StringField(_l("Chinese label"), validators=[Optional(), Length(max=80)])
    key = StringField(
        _l("Key"),
        validators=[
            Optional(),
            Regexp(KEY_RE, message=_l("Lowercase letters, digits and _, starting with a letter.")),
        ],
        description=_l("Left empty: made from the label."),
    )
    probability = IntegerField(
        _l("Probability (%)"), validators=[InputRequired(), NumberRange(0, 100)]
    )
    sequence = IntegerField(
        _l("Order"),
        validators=[Optional(), NumberRange(0, 1_000_000)],
        description=_l("Left empty: after the last open stage."),
    )


def _stage_rows() -> list[Stage]:
    rows = list(db.session.scalars(select(Stage)))
    order = funnel.OUTCOME_ORDER
    return sorted(rows, key=lambda s: (order.get(s.outcome, 3), s.sequence, s.id))


def _stages_form(rows: list[Stage], formdata: Any = None) -> StagesForm:
    data = None
    if formdata is None:
        data = {
            "rows": [
                {
                    "id": str(s.id),
                    "label": s.label,
                    "label_zh": s.label_zh,
                    "probability": s.probability,
                    "sequence": s.sequence,
                    "active": s.active,
                }
                for s in rows
            ]
        }
    return StagesForm(formdata=formdata, data=data)


def _render_stages(status: int = 200, **forms: Any) -> tuple[str, int]:
    rows = _stage_rows()
    counts = dict(
        db.session.execute(
            select(Opportunity.state, func.count()).group_by(Opportunity.state)
        ).all()
    )
    form = forms.get("stages") or _stages_form(rows)
    by_id = {str(s.id): s for s in rows}
    return render_template(
        "sales/funnel/stages.html",
        form=form,
        entries=[(entry, by_id.get(entry.form.id.data)) for entry in form.rows],
        counts=counts,
        new_form=forms.get("new") or NewStageForm(formdata=None),
    ), status


@bp.route("/stages", methods=["GET", "POST"])
def funnel_stages() -> Any:
    """The funnel's stages: labels, probability, order and whether they are offered."""
    if not is_manager():
        _require_admin()
    if request.method == "GET":
        return _render_stages()
    _require_admin()
    form = _stages_form(_stage_rows(), formdata=request.form)
    if not form.validate() or not _save_stages(form):
        db.session.rollback()
        return _render_stages(422, stages=form)
    db.session.commit()
    funnel.forget_stages()
    flash(_("Stages saved."))
    return redirect(url_for(".funnel_stages"))


def _save_stages(form: StagesForm) -> bool:
    """Apply the edited rows (``False`` with field errors when refused)."""
    stored = {str(s.id): s for s in _stage_rows()}
    entries = [(e, stored.get(e.form.id.data or "")) for e in form.rows]
    if any(s is None for _e, s in entries):
        abort(400, _("The form names a stage that does not exist; reload the page."))
    active_open = [e for e, s in entries if s.outcome == "open" and e.form.active.data]
    if not active_open and entries:
        first = next((e for e, s in entries if s.outcome == "open"), None)
        if first is not None:
            first.form.active.errors = [_("Keep at least one open stage active.")]
            return False
    for entry, stage in entries:
        row = entry.form
        if stage.outcome == "open" and row.probability.data is None:
            row.probability.errors = [_("Give a probability from 0 to 100.")]
            return False
        before = (stage.label, stage.label_zh, stage.probability, stage.sequence, stage.active)
        stage.label = row.label.data.strip()
        stage.label_zh = (row.label_zh.data or "").strip()
        stage.sequence = row.sequence.data
        if stage.outcome == "open":
            stage.probability = row.probability.data
            stage.active = bool(row.active.data)
        after = (stage.label, stage.label_zh, stage.probability, stage.sequence, stage.active)
        if before != after:
            audit.record("update", Stage.__tablename__, stage.id, {"from": before, "to": after})
    db.session.flush()
    return True


def stage_key(label: str, taken: set[str]) -> str:
    """A key for a new stage from its label (``"Site visit"`` → ``site_visit``; a label with
    no ASCII letters gives ``stage_<n>``), unique among ``taken``."""
    base = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:30]
    if not base or not base[0].isalpha():
        base = "stage"
    key, n = base, 2
    while key in taken or (base == "stage" and key == "stage"):
        key, n = f"{base}_{n}", n + 1
    return key


@bp.route("/stages/new", methods=["POST"])
def funnel_stage_add() -> Any:
    """Add an open stage; the workflow offers it at once."""
    _require_admin()
    form = NewStageForm()
    if not form.validate():
        return _render_stages(422, new=form)
    rows = _stage_rows()
    taken = {s.key for s in rows}
    key = (form.key.data or "").strip() or stage_key(form.label.data, taken)
    if key in taken:
        form.key.errors = [_("Another stage has this key.")]
        return _render_stages(422, new=form)
    sequence = form.sequence.data
    if sequence is None:
        sequence = max((s.sequence for s in rows if s.outcome == "open"), default=0) + 10
    stage = Stage(
        key=key,
        label=form.label.data.strip(),
        label_zh=(form.label_zh.data or "").strip(),
        probability=form.probability.data,
        sequence=sequence,
        outcome="open",
        active=True,
    )
    db.session.add(stage)
    db.session.flush()
    audit.record("create", Stage.__tablename__, stage.id, {"key": key})
    db.session.commit()
    funnel.forget_stages()
    flash(_("Stage “%(label)s” added.", label=stage.label))
    return redirect(url_for(".funnel_stages"))


def widget() -> str:
    """The dashboard box *销售漏斗*: open opportunities per active stage with their amount, and
    the weighted total (a sales rep: their own; others: every one they may see). One query."""
    probability = funnel.probability_expr()
    stmt = (
        funnel.stage_join(
            select(
                Opportunity.state,
                func.count(Opportunity.id),
                func.coalesce(func.sum(Opportunity.amount), 0),
                func.coalesce(func.sum(Opportunity.amount * probability / 100), 0),
            ).join(Customer, Customer.id == Opportunity.customer_id)
        )
        .where(Stage.outcome == "open")
        .group_by(Opportunity.state)
    )
    mine = role() == "sales_rep"
    if mine:
        stmt = stmt.where(Opportunity.owner_id == current_user.id)
    found = {state: (n, amount, weight) for state, n, amount, weight in db.session.execute(stmt)}
    lines = [
        (stage, *found.get(stage.key, (0, Decimal(0), Decimal(0))))
        for stage in funnel.stages()
        if stage.outcome == "open" and (stage.active or stage.key in found)
    ]
    top = max((n for _stage, n, _a, _w in lines), default=0)
    return render_template(
        "sales/funnel/_widget.html",
        lines=lines,
        top=top,
        amount=sum((a for _s, _n, a, _w in lines), Decimal(0)),
        weighted=sum((Decimal(w) for _s, _n, _a, w in lines), Decimal(0)),
        owner=current_user.id if mine else None,
    )
