"""Pages, API resources, reports and record panels of orders and receivables (``/sales/…``).

Pages (on :data:`plugins.sales.blueprint.bp`):

- ``/sales/orders`` -- the list: filters (customer, channel, owner, state, order dates, overdue,
  ageing bucket, region, number or customer name), keyset pages newest first, totals of what
  matches, CSV/XLSX export (permission ``export``, audited);
- ``/sales/orders/new`` and ``/sales/orders/<id>/edit`` -- the form with free product lines,
  the channel credit warning and its confirmation;
- ``/sales/orders/<id>`` -- lines, payments (record one; managers reverse one), cancel/reopen;
- ``/sales/receivables`` -- ageing by customer (keyset pages) and by channel with credit; the
  company's payment terms (managers).

Every query joins the order's customer, so a sales rep sees the orders of the customers their
record rule shows; channel credit (limit, used, available) counts every order of the channel.
The service code is :mod:`plugins.sales.orders`; the API and the pages both go through it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import (
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
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload
from sqlalchemy.orm.exc import StaleDataError
from wtforms import (
    BooleanField,
    DateField,
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
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from core import access, exporter, keyset, workflow
from core.api.errors import ApiError
from core.api.resources import Resource, customer_joined, user
from core.api.schemas import Int, Money, Text, model_schema, name_field
from core.choices import options
from core.db import capped_count
from core.extend import Panel, Sort, TimelineEntry, company_scope, current_company_id, db
from core.keyset import MAX_ID
from core.models import Channel, Customer, User
from core.reports import Column, Param, Report, months
from core.web.channels import Amount
from core.web.helpers import role
from plugins.sales import orders as svc
from plugins.sales.blueprint import bp, is_manager
from plugins.sales.models import Opportunity, Order, Payment

TRUE_VALUES = ("1", "true", "on", "yes")
DATE_SORT = Sort("date", Order.ordered_on, True, False, "date")
#: Blank product lines offered on a new order's form.
BLANK_LINES = 3
#: Orders shown in a customer's panel.
PANEL_ORDERS = 5
#: Timeline entries per kind (orders, payments) at most.
TIMELINE_MAX = 200
GREY, BLUE, YELLOW, ORANGE, RED, DARK, GREEN = (
    "#a0aec0",
    "#2b6cb0",
    "#d69e2e",
    "#dd6b20",
    "#c53030",
    "#742a2a",
    "#2f855a",
)
BUCKET_COLORS = dict(zip(svc.BUCKET_KEYS, (BLUE, YELLOW, ORANGE, RED, DARK), strict=True))


def can_write() -> bool:
    """Every role but ``viewer`` records orders and payments."""
    return role() not in (None, "viewer")


def _require_writer() -> None:
    if not can_write():
        abort(403, _("Your role can read orders but not change them."))


def _require_manager() -> None:
    if not is_manager():
        abort(403, _("Only administrators and managers can do this."))


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
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
    return day if date(1970, 1, 1) <= day <= date(2999, 12, 31) else False


def fmt_money(value: Any) -> str:
    """``1,234.50``: how amounts read on the pages."""
    return f"{svc.money(value):,.2f}"


@bp.app_template_global("sales_state_label")
def _state_label(state: str) -> str:
    return svc.state_label(state)


# -- the list -------------------------------------------------------------------------------------


@dataclass
class OrderRow:
    """An order of a list page, with the names shown beside it."""

    order: Order
    customer_name: str
    channel_name: str | None
    owner_name: str | None
    overdue: int = 0


@dataclass
class OrderPage:
    rows: list[OrderRow] = field(default_factory=list)
    next_after: str | None = None
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    totals: dict[str, Decimal] | None = None


def filter_conditions(args: Mapping[str, Any], errors: dict[str, str]) -> list[Any]:
    """SQL conditions of the list's filters in ``args`` (a MultiDict); messages go to
    ``errors`` by parameter."""
    conds: list[Any] = []
    q = (args.get("q") or "").strip()
    if "\x00" in q or len(q) > 200:
        errors["q"] = _("At most 200 characters of text.")
    elif q:
        conds.append(
            or_(
                Order.number.contains(q, autoescape=True),
                Customer.name.contains(q, autoescape=True),
                Customer.code == q,
            )
        )
    for name, column in (
        ("customer", Order.customer_id),
        ("owner", Order.owner_id),
        ("opportunity", Order.opportunity_id),
    ):
        raw = args.get(name)
        if raw:
            value = _int(raw)
            if value is None:
                errors[name] = _("Must be a number (an id).")
            else:
                conds.append(column == value)
    raw = args.get("channel")
    if raw == "none":
        conds.append(Order.channel_id.is_(None))
    elif raw:
        value = _int(raw)
        if value is None:
            errors["channel"] = _("Must be a channel's id or 'none'.")
        else:
            conds.append(Order.channel_id == value)
    states = [s for s in args.getlist("state") if s]
    known = {s for s, *_r in svc.STATES}
    if any(s not in known for s in states):
        errors["state"] = _("Must be one of: %(values)s.", values=", ".join(sorted(known)))
    elif states:
        conds.append(Order.state.in_(states))
    for name, op in (("from", "ge"), ("to", "le")):
        day = _date(args.get(name))
        if day is False:
            errors[name] = _("Enter a date as YYYY-MM-DD.")
        elif day is not None:
            conds.append(Order.ordered_on >= day if op == "ge" else Order.ordered_on <= day)
    region = (args.get("region") or "").strip()
    if region:
        conds.append(Customer.region == region[:80])
    today = svc.today()
    if (args.get("overdue") or "").lower() in TRUE_VALUES:
        conds += [Order.state == "open", Order.due_on < today]
    bucket = args.get("ageing")
    if bucket:
        if bucket not in svc.BUCKET_KEYS:
            errors["ageing"] = _("Must be one of: %(values)s.", values=", ".join(svc.BUCKET_KEYS))
        else:
            conds += [Order.state == "open", svc.bucket_conditions(today)[bucket]]
    return conds


def _rows_statement(conds: Sequence[Any]) -> Any:
    return (
        select(
            Order,
            Customer.name.label("customer_name"),
            Channel.name.label("channel_name"),
            User.name.label("owner_name"),
        )
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(Channel, Channel.id == Order.channel_id)
        .outerjoin(User, User.id == Order.owner_id)
        .where(*conds)
    )


def _totals(conds: Sequence[Any]) -> dict[str, Decimal]:
    owed = case((Order.state == "open", Order.amount - Order.paid), else_=0)
    valid = case((Order.state != "cancelled", Order.amount), else_=0)
    row = db.session.execute(
        select(func.sum(valid), func.sum(owed))
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .where(*conds)
    ).one()
    return {"amount": svc.money(row[0]), "outstanding": svc.money(row[1])}


FILTERS = (
    "q",
    "customer",
    "channel",
    "owner",
    "state",
    "from",
    "to",
    "overdue",
    "ageing",
    "region",
    "opportunity",
)


def order_page(args: Any, size: int, cap: int, *, lines: bool = False) -> OrderPage:
    """One keyset page (newest order date first) of the orders matching ``args``, with their
    names; the matching count (capped) and, when filtered, the totals. Three or four queries
    whatever the page size (five with ``lines``)."""
    page = OrderPage()
    conds = filter_conditions(args, page.errors)
    position = None
    after = args.get("after") or ""
    if after:
        position = keyset.decode(DATE_SORT, after)
        if position is None:
            page.errors["after"] = _("Must be the next_after of the previous page.")
    if page.errors:
        return page
    stmt = _rows_statement(conds)
    page.count, page.capped = capped_count(stmt, Order.id, cap)
    if any(args.get(k) for k in FILTERS):
        page.totals = _totals(conds)
    if position is not None:
        stmt = stmt.where(keyset.after(DATE_SORT, Order.id, *position))
    stmt = stmt.order_by(*keyset.order(DATE_SORT, Order.id)).limit(size + 1)
    if not lines:
        stmt = stmt.options(lazyload(Order.lines))
    found = db.session.execute(stmt).all()
    day = svc.today()
    page.rows = [
        OrderRow(r[0], r.customer_name, r.channel_name, r.owner_name, svc.days_overdue(r[0], day))
        for r in found[:size]
    ]
    if len(found) > size:
        last = page.rows[-1].order
        page.next_after = keyset.encode(last.ordered_on, last.id)
    return page


def _list_context() -> dict[str, Any]:
    from core.customers import channel_options, members

    chosen = _int(request.args.get("customer"))
    customer = db.session.get(Customer, chosen) if chosen else None
    return {
        "states": [(s, svc.state_label(s)) for s, *_r in svc.STATES],
        "buckets": [(k, pick_label(k)) for k in svc.BUCKET_KEYS],
        "channels": channel_options(),
        "people": members(),
        "customer": customer if customer and customer.company_id == current_company_id() else None,
        "can_write": can_write(),
        "fmt_money": fmt_money,
    }


def pick_label(bucket: str) -> str:
    from core.i18n import pick

    for key, label, zh in svc.BUCKETS:
        if key == bucket:
            return pick(label, zh)
    return bucket


@bp.route("/orders")
def orders() -> Any:
    size = current_app.config["LIST_PAGE_SIZE"]
    page = order_page(request.args, size, current_app.config["COUNT_CAP"])
    html = render_template("sales/orders/index.html", page=page, **_list_context())
    return html, 400 if page.errors else 200


EXPORT_COLUMNS = (
    "number",
    "ordered_on",
    "due_on",
    "customer_code",
    "customer",
    "channel",
    "owner",
    "state",
    "amount",
    "cost",
    "margin",
    "paid",
    "outstanding",
    "days_overdue",
    "products",
    "opportunity_id",
    "notes",
)


@bp.route("/orders/export.<any(csv, xlsx):fmt>")
def orders_export(fmt: str) -> Any:
    """The orders matching the list's filters as CSV or XLSX (500 per batch); needs the
    ``export`` permission and is audited; the record rule narrows it as on the list."""
    errors: dict[str, str] = {}
    filter_conditions(request.args, errors)
    if errors:
        return (
            "\n".join(f"{k}: {v}" for k, v in errors.items()),
            400,
            {"Content-Type": "text/plain"},
        )
    exporter.authorize(Order.__tablename__, request.args)
    args, company_id = request.args.copy(), current_company_id()
    owners = access.visible_owner_ids()

    def rows() -> Iterator[list[Any]]:
        with company_scope(company_id), access.owners_scope(owners):
            yield from _export_rows(args)

    return exporter.download(fmt, "orders", EXPORT_COLUMNS, rows, title=_("Orders"))


def _export_rows(args: Any) -> Iterator[list[Any]]:
    cap = current_app.config["COUNT_CAP"]
    codes: dict[int, str | None] = {}
    while True:
        page = order_page(args, 500, cap, lines=True)
        ids = {r.order.customer_id for r in page.rows} - set(codes)
        if ids:
            codes.update(
                db.session.execute(
                    select(Customer.id, Customer.code).where(Customer.id.in_(ids))
                ).all()
            )
        for r in page.rows:
            o = r.order
            yield [
                o.number,
                o.ordered_on,
                o.due_on,
                codes.get(o.customer_id),
                r.customer_name,
                r.channel_name,
                r.owner_name,
                o.state,
                o.amount,
                o.cost,
                o.margin,
                o.paid,
                o.outstanding if o.state == "open" else Decimal(0),
                r.overdue,
                "; ".join(f"{x.product} × {x.quantity.normalize():f}" for x in o.lines),
                o.opportunity_id,
                o.notes,
            ]
        if page.next_after is None:
            return
        args["after"] = page.next_after
        db.session.expunge_all()


# -- the form -------------------------------------------------------------------------------------


class LineForm(Form):
    """One product line; a line left entirely blank is ignored."""

    product = StringField(_l("Product"), validators=[Optional(), Length(max=200)])
    quantity = DecimalField(
        _l("Quantity"), validators=[Optional(), Amount(Decimal("0.01"), svc.MAX_QUANTITY)]
    )
    unit_price = DecimalField(
        _l("Unit price"), validators=[Optional(), Amount(Decimal(0), svc.MAX_MONEY)]
    )
    unit_cost = DecimalField(
        _l("Unit cost"), validators=[Optional(), Amount(Decimal(0), svc.MAX_MONEY)]
    )

    def is_blank(self) -> bool:
        return not any(
            (f.raw_data or [""])[0].strip() if f.raw_data else f.data not in (None, "")
            for f in (self.product, self.quantity, self.unit_price, self.unit_cost)
        )


class OrderForm(FlaskForm):
    ordered_on = DateField(_l("Order date"), validators=[InputRequired()])
    due_on = DateField(
        _l("Due date"),
        validators=[Optional()],
        description=_l("Empty: the order date plus the company's payment terms."),
    )
    channel_id = SelectField(_l("Channel"), validate_choice=False)
    owner_id = SelectField(_l("Owner"), validate_choice=False)
    opportunity_id = IntegerField(
        _l("Opportunity no."), validators=[Optional(), NumberRange(1, MAX_ID)]
    )
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=2000)])
    lines = FieldList(FormField(LineForm), min_entries=1, max_entries=svc.MAX_LINES)
    confirm_credit = BooleanField(_l("Save although the channel's credit limit is exceeded"))
    version = HiddenField()

    #: A message about the lines as a whole (none, too many, amount zero…).
    lines_error: str | None = None

    def validate_lines(self, field: Any) -> None:
        for entry in field.entries:
            sub = entry.form
            if sub.is_blank():
                continue
            if not (sub.product.data or "").strip():
                sub.product.errors = [*sub.product.errors, _("Name the product.")]
            if sub.quantity.data is None and not sub.quantity.errors:
                sub.quantity.errors = [*sub.quantity.errors, _("Enter the quantity.")]
            if sub.unit_price.data is None and not sub.unit_price.errors:
                sub.unit_price.errors = [*sub.unit_price.errors, _("Enter the unit price.")]
        if any(e.form.errors or _has_errors(e.form) for e in field.entries):
            raise ValidationError(_("Correct the marked lines."))


def _has_errors(form: Form) -> bool:
    return any(f.errors for f in form)


class NewOrderForm(OrderForm):
    customer = StringField(
        _l("Customer"),
        validators=[InputRequired(), Length(max=240)],
        description=_l("Choose from the list, or type a code or #number."),
    )


def _options(form: OrderForm, order: Order | None) -> None:
    from core.customers import channel_options, members

    form.channel_id.choices = [("", _("(the customer's channel)"))] + [
        (str(i), name) for i, name in channel_options()
    ]
    form.owner_id.choices = [("", _("(the customer's owner)"))] + [
        (str(i), name) for i, name in members()
    ]
    if request.method == "GET" and order is not None:
        form.channel_id.data = str(order.channel_id or "")
        form.owner_id.data = str(order.owner_id or "")
        form.version.data = str(order.version)


def _find_customer(text: str) -> Customer | None:
    """The customer the form names: ``#12 …`` (as the list offers), a code, or an exact name
    (when only one customer has it); only customers the reader sees."""
    from core.customers import get_visible

    text = text.strip()
    if text.startswith("#"):
        number = _int(text[1:].split()[0] if text[1:].split() else "")
        return get_visible(number) if number else None
    found = db.session.scalars(select(Customer).where(Customer.code == text).limit(2)).all()
    if len(found) != 1:
        found = db.session.scalars(select(Customer).where(Customer.name == text).limit(2)).all()
    return found[0] if len(found) == 1 else None


def _customer_choices() -> list[Customer]:
    """Customers offered by the form's list: the reader's 300 most recently changed."""
    return list(
        db.session.scalars(select(Customer).order_by(Customer.updated_at.desc()).limit(300))
    )


def _input(form: OrderForm, customer_id: int) -> svc.OrderInput:
    lines = [
        svc.LineInput(
            e.form.product.data or "",
            e.form.quantity.data,
            e.form.unit_price.data,
            e.form.unit_cost.data if e.form.unit_cost.data is not None else Decimal(0),
        )
        for e in form.lines.entries
        if not e.form.is_blank()
    ]
    return svc.OrderInput(
        customer_id=customer_id,
        ordered_on=form.ordered_on.data,
        due_on=form.due_on.data,
        channel_id=_int(form.channel_id.data),
        owner_id=_int(form.owner_id.data),
        opportunity_id=form.opportunity_id.data,
        notes=form.notes.data,
        lines=lines,
    )


FORM_FIELDS = {
    "ordered_on": "ordered_on",
    "due_on": "due_on",
    "channel_id": "channel_id",
    "owner_id": "owner_id",
    "opportunity_id": "opportunity_id",
    "customer_id": "customer",
}


def _show_problems(form: OrderForm, found: dict[str, str]) -> None:
    for key, message in found.items():
        name = FORM_FIELDS.get(key)
        if name and name in form:
            form[name].errors = [*form[name].errors, message]
        else:
            form.lines_error = message


def _render_form(
    form: OrderForm,
    order: Order | None,
    credit: svc.Credit | None = None,
    status: int = 200,
    problem: str | None = None,
) -> Any:
    customer = db.session.get(Customer, order.customer_id) if order else None
    return render_template(
        "sales/orders/form.html",
        form=form,
        order=order,
        customer=customer,
        customers=_customer_choices() if order is None else [],
        credit=credit,
        problem=problem,
        terms=svc.payment_terms(),
        fmt_money=fmt_money,
    ), status


def _save(form: OrderForm, order: Order | None) -> Any:
    """Check and save a submitted form; the page to show."""
    customer = order and db.session.get(Customer, order.customer_id)
    if order is None:
        customer = _find_customer(form.customer.data or "")
        if customer is None:
            form.customer.errors = [_("No customer with this code, number or name that you see.")]
            return _render_form(form, order, status=422)
    data = _input(form, customer.id)
    found = svc.problems(data, order)
    if found:
        _show_problems(form, found)
        return _render_form(form, order, status=422, problem=found.get("state"))
    owed = data.amount - (svc.money(order.paid) if order else Decimal(0))
    credit = svc.credit_check(svc.resolved_channel(data, customer), owed, order)
    if credit is not None and not form.confirm_credit.data:
        return _render_form(form, order, credit=credit, status=422)
    try:
        if order is None:
            order = _create(data, credit)
        else:
            svc.update_order(order, data, current_user, credit=credit)
        db.session.commit()
    except (StaleDataError, workflow.StaleRecord):
        db.session.rollback()
        flash(_("Someone else changed this order meanwhile; here it is as it is now."))
        return redirect(url_for(".order_detail", order_id=order.id)), 303
    flash(_("Order %(number)s saved.", number=order.number))
    return redirect(url_for(".order_detail", order_id=order.id))


def _create(data: svc.OrderInput, credit: svc.Credit | None) -> Order:
    """Create the order; a number taken meanwhile by another request is retried."""
    for attempt in range(3):
        try:
            with db.session.begin_nested():
                return svc.create_order(data, current_user, credit=credit)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@bp.route("/orders/new", methods=["GET", "POST"])
def order_new() -> Any:
    _require_writer()
    form = NewOrderForm()
    _options(form, None)
    if request.method == "GET":
        form.ordered_on.data = svc.today()
        _prefill(form)
        while len(form.lines.entries) < BLANK_LINES:
            form.lines.append_entry()
        return _render_form(form, None)
    if request.form.get("add_line"):
        form.lines.append_entry()
        return _render_form(form, None)
    if not form.validate_on_submit():
        return _render_form(form, None, status=422)
    return _save(form, None)


def _prefill(form: NewOrderForm) -> None:
    """``?customer_id=`` and ``?opportunity_id=`` (links from a customer or an opportunity)."""
    from core.customers import get_visible

    opportunity_id = _int(request.args.get("opportunity_id"))
    opportunity = db.session.get(Opportunity, opportunity_id) if opportunity_id else None
    if opportunity is not None and opportunity.company_id == current_company_id():
        form.opportunity_id.data = opportunity.id
    customer_id = _int(request.args.get("customer_id")) or (
        opportunity.customer_id if form.opportunity_id.data else None
    )
    customer = get_visible(customer_id) if customer_id else None
    if customer is not None:
        form.customer.data = f"#{customer.id} {customer.name}"


def _get(order_id: int) -> Order:
    """The order, 404 when it is not the company's, 403 naming the rule when it hides it."""
    order = svc.visible_order(order_id)
    if order is not None:
        return order
    if svc.hidden_order(order_id):
        abort(
            403,
            _(
                "This order's customer is hidden from you by the record rule “%(rule)s”.",
                rule=access.current_rule(),
            ),
        )
    abort(404)


@bp.route("/orders/<int:order_id>/edit", methods=["GET", "POST"])
def order_edit(order_id: int) -> Any:
    _require_writer()
    order = _get(order_id)
    if order.state != "open":
        flash(
            _(
                "Only open orders can be changed; this one is %(state)s.",
                state=svc.state_label(order.state),
            )
        )
        return redirect(url_for(".order_detail", order_id=order.id))
    if request.method == "GET":
        form = OrderForm(obj=order)
        _options(form, order)
        form.lines.append_entry()
        return _render_form(form, order)
    form = OrderForm()
    _options(form, order)
    if request.form.get("add_line"):
        form.lines.append_entry()
        return _render_form(form, order)
    if not form.validate_on_submit():
        return _render_form(form, order, status=422)
    if (form.version.data or "") != str(order.version):
        flash(_("Someone else changed this order meanwhile; here it is as it is now."))
        return redirect(url_for(".order_detail", order_id=order.id)), 303
    return _save(form, order)


# -- the order's page -----------------------------------------------------------------------------


class PaymentForm(FlaskForm):
    amount = DecimalField(
        _l("Amount (¥)"),
        validators=[InputRequired(), Amount(-svc.MAX_MONEY, svc.MAX_MONEY)],
        description=_l("What is left on the order at most."),
    )
    paid_on = DateField(_l("Received on"), validators=[InputRequired()])
    method = SelectField(_l("Method"), validate_choice=False)
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])


class StepForm(FlaskForm):
    comment = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])
    version = HiddenField()


def _payment_form(order: Order, formdata: Any = None) -> PaymentForm:
    form = PaymentForm(formdata=formdata)
    form.method.choices = [("", "—")] + options(svc.METHOD_LIST)
    if formdata is None:
        form.amount.data = svc.money(order.amount) - svc.money(order.paid)
        form.paid_on.data = svc.today()
        form.method.data = "transfer"
    return form


def _opportunity_link(opportunity_id: int | None) -> str | None:
    """The URL of the opportunity's page, if the funnel part has one."""
    if opportunity_id is None:
        return None
    for rule in current_app.url_map.iter_rules():
        if (
            rule.endpoint.startswith("sales.")
            and rule.rule.startswith("/sales/opportunities/<")
            and len(rule.arguments) == 1
            and "GET" in (rule.methods or ())
        ):
            return url_for(rule.endpoint, **{next(iter(rule.arguments)): opportunity_id})
    return None


def _render_detail(
    order: Order,
    status: int = 200,
    payment: PaymentForm | None = None,
    step: tuple[str, StepForm] | None = None,
    message: str | None = None,
) -> Any:
    wf = svc.ORDER_WORKFLOW
    steps = [
        t
        for t in wf.transitions
        if order.state in t.sources
        and t.name in ("cancel", "reopen")
        and workflow.allowed(t, role())
    ]
    forms = {t.name: StepForm(formdata=None) for t in steps}
    for form in forms.values():
        form.version.data = str(order.version)
    if step is not None:
        forms[step[0]] = step[1]
    return render_template(
        "sales/orders/detail.html",
        order=order,
        names=svc.names(order),
        payments=svc.payments_of(order),
        payment_form=payment or _payment_form(order),
        steps=[(t, forms[t.name]) for t in steps],
        overdue=svc.days_overdue(order),
        opportunity_url=_opportunity_link(order.opportunity_id),
        can_write=can_write(),
        is_manager=is_manager(),
        message=message,
        fmt_money=fmt_money,
        method_label=lambda v: dict(options(svc.METHOD_LIST)).get(v, v or ""),
        subject_type=Order.__tablename__,
        subject_id=order.id,
    ), status


@bp.route("/orders/<int:order_id>")
def order_detail(order_id: int) -> Any:
    return _render_detail(_get(order_id))


@bp.route("/orders/<int:order_id>/payments", methods=["POST"])
def order_payment(order_id: int) -> Any:
    _require_writer()
    order = _get(order_id)
    form = _payment_form(order, request.form)
    if not form.validate_on_submit():
        return _render_detail(order, 422, payment=form)
    try:
        svc.record_payment(
            order,
            form.amount.data,
            form.paid_on.data,
            current_user,
            method=form.method.data or None,
            note=form.note.data,
        )
        db.session.commit()
    except svc.PaymentRefused as exc:
        db.session.rollback()
        order = _get(order_id)
        form = _payment_form(order, request.form)
        form.validate()
        target = form._fields.get(exc.field)
        if target is not None:
            target.errors = [*target.errors, exc.message]
        return _render_detail(order, 422, payment=form, message=None if target else exc.message)
    except (StaleDataError, workflow.StaleRecord):
        db.session.rollback()
        flash(_("Someone else changed this order meanwhile; check its payments and try again."))
        return redirect(url_for(".order_detail", order_id=order_id)), 303
    flash(_("Payment recorded. Order is now: %(state)s.", state=svc.state_label(order.state)))
    return redirect(url_for(".order_detail", order_id=order.id))


@bp.route("/orders/<int:order_id>/payments/<int:payment_id>/reverse", methods=["POST"])
def payment_reverse(order_id: int, payment_id: int) -> Any:
    _require_manager()
    order = _get(order_id)
    payment = db.session.get(Payment, payment_id) if payment_id <= MAX_ID else None
    if payment is None or payment.order_id != order.id:
        abort(404)
    try:
        svc.reverse_payment(payment, current_user)
        db.session.commit()
    except svc.PaymentRefused as exc:
        db.session.rollback()
        return _render_detail(_get(order_id), 409, message=exc.message)
    flash(_("Payment reversed."))
    return redirect(url_for(".order_detail", order_id=order_id))


@bp.route("/orders/<int:order_id>/transition/<name>", methods=["POST"])
def order_transition(order_id: int, name: str) -> Any:
    _require_writer()
    order = _get(order_id)
    if name not in ("cancel", "reopen"):
        abort(404)
    form = StepForm()
    if not form.validate_on_submit():
        return _render_detail(order, 422, step=(name, form))
    if (form.version.data or "") != str(order.version):
        flash(_("Someone else changed this order meanwhile; here it is as it is now."))
        return redirect(url_for(".order_detail", order_id=order.id)), 303
    try:
        workflow.transition(
            order, name, user=current_user, inputs={"comment": (form.comment.data or "").strip()}
        )
        db.session.commit()
    except workflow.WorkflowError as exc:
        db.session.rollback()
        order = _get(order_id)
        if exc.field == "comment":
            form.comment.errors = [_("Give a reason.")]
            return _render_detail(order, exc.status, step=(name, form))
        return _render_detail(order, exc.status, message=exc.message)
    flash(_("Order is now: %(state)s.", state=svc.state_label(order.state)))
    return redirect(url_for(".order_detail", order_id=order.id))


# -- receivables ----------------------------------------------------------------------------------


class TermsForm(FlaskForm):
    days = IntegerField(
        _l("Payment terms (days)"), validators=[InputRequired(), NumberRange(0, svc.MAX_TERMS)]
    )


@dataclass
class AgeingRow:
    """A customer's or channel's ageing, with its credit when it is a channel."""

    id: int | None
    name: str
    ageing: svc.Ageing
    limit: Decimal | None = None
    used: Decimal = Decimal(0)

    @property
    def available(self) -> Decimal | None:
        return None if self.limit is None else self.limit - self.used

    @property
    def usage(self) -> float | None:
        return float(self.used / self.limit) if self.limit else None


def customer_ageing(after: str | None, size: int) -> tuple[list[AgeingRow], str | None, bool]:
    """One keyset page of customers by outstanding amount (largest first) with their ageing:
    one GROUP BY; returns rows, the next cursor and whether ``after`` was malformed."""
    day = svc.today()
    grouped = (
        select(Order.customer_id.label("customer_id"), *svc.ageing_columns(day))
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.state == "open")
        .group_by(Order.customer_id)
        .subquery("owed")
    )
    sort = Sort("outstanding", grouped.c.total, True, False, "decimal")
    stmt = (
        select(grouped, Customer.name)
        .join(Customer, Customer.id == grouped.c.customer_id)
        .where(grouped.c.total > 0)
    )
    if after:
        position = keyset.decode(sort, after)
        if position is None:
            return [], None, True
        stmt = stmt.where(keyset.after(sort, grouped.c.customer_id, *position))
    found = db.session.execute(
        stmt.order_by(*keyset.order(sort, grouped.c.customer_id)).limit(size + 1)
    ).all()
    rows = [AgeingRow(r.customer_id, r.name, svc.Ageing.of(r)) for r in found[:size]]
    cursor = None
    if len(found) > size:
        cursor = keyset.encode(rows[-1].ageing.total, rows[-1].id)
    return rows, cursor, False


def channel_ageing() -> list[AgeingRow]:
    """Every channel with receivables or a credit limit (and the orders without a channel):
    their ageing as the reader sees it, the credit used by all their orders. Two queries."""
    day = svc.today()
    owed = db.session.execute(
        select(Order.channel_id, *svc.ageing_columns(day))
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.state == "open")
        .group_by(Order.channel_id)
    ).all()
    by_channel = {r.channel_id: svc.Ageing.of(r) for r in owed}
    used = svc.outstanding_by_channel()
    channels = db.session.execute(
        select(Channel.id, Channel.name, Channel.credit_limit).order_by(Channel.name, Channel.id)
    ).all()
    rows = [
        AgeingRow(
            c.id,
            c.name,
            by_channel.get(c.id, svc.Ageing()),
            svc.money(c.credit_limit) if c.credit_limit is not None else None,
            used.get(c.id, Decimal(0)),
        )
        for c in channels
        if c.id in by_channel or c.credit_limit is not None
    ]
    rows.sort(key=lambda r: (-(r.usage or 0), -r.ageing.total, r.name))
    if None in by_channel:
        rows.append(AgeingRow(None, _("No channel"), by_channel[None]))
    return rows


def list_url(**query: Any) -> str:
    """The order list filtered by ``query`` (empty values left out)."""
    pairs = [(k, v) for k, v in query.items() if v not in (None, "")]
    return url_for("sales.orders") + ("?" + urlencode(pairs) if pairs else "")


@bp.route("/receivables", methods=["GET"])
def receivables() -> Any:
    by = request.args.get("by", "customer")
    if by not in ("customer", "channel"):
        by = "customer"
    after = request.args.get("after") or None
    rows, next_after, bad = (
        customer_ageing(after, current_app.config["LIST_PAGE_SIZE"])
        if by == "customer"
        else (channel_ageing(), None, False)
    )
    if bad:
        abort(400, _("'after' must be the next_after of the previous page."))
    terms = TermsForm(formdata=None)
    terms.days.data = svc.payment_terms()
    return render_template(
        "sales/orders/receivables.html",
        by=by,
        rows=rows,
        next_after=next_after,
        totals=AgeingRow(None, "", svc.ageing_of()),
        buckets=[(k, pick_label(k)) for k in svc.BUCKET_KEYS],
        terms_form=terms,
        is_manager=is_manager(),
        list_url=list_url,
        fmt_money=fmt_money,
    )


@bp.route("/receivables/terms", methods=["POST"])
def receivables_terms() -> Any:
    _require_manager()
    form = TermsForm()
    if not form.validate_on_submit():
        flash(_("Payment terms: enter a whole number of days from 0 to %(n)s.", n=svc.MAX_TERMS))
        return redirect(url_for(".receivables")), 303
    svc.set_payment_terms(form.days.data, current_user.id)
    db.session.commit()
    flash(_("New orders now fall due %(n)s days after their date.", n=form.days.data))
    return redirect(url_for(".receivables"))


# -- panels and timeline --------------------------------------------------------------------------


def _customer_panel(customer: Customer) -> str:
    ageing = svc.ageing_of(Order.customer_id == customer.id)
    recent = (
        db.session.execute(
            select(Order)
            .where(Order.customer_id == customer.id)
            .options(lazyload(Order.lines))
            .order_by(Order.ordered_on.desc(), Order.id.desc())
            .limit(PANEL_ORDERS)
        )
        .scalars()
        .all()
    )
    return render_template(
        "sales/orders/_customer_panel.html",
        customer=customer,
        ageing=ageing,
        recent=recent,
        can_write=can_write(),
        fmt_money=fmt_money,
        list_url=list_url,
    )


def _channel_panel(channel: Channel) -> str:
    used = svc.outstanding_by_channel([channel.id]).get(channel.id, Decimal(0))
    stmt = select(*svc.ageing_columns(svc.today())).where(
        Order.state == "open", Order.channel_id == channel.id
    )
    ageing = svc.Ageing.of(db.session.execute(stmt).one())
    limit = svc.money(channel.credit_limit) if channel.credit_limit is not None else None
    return render_template(
        "sales/orders/_channel_panel.html",
        channel=channel,
        row=AgeingRow(channel.id, channel.name, ageing, limit, used),
        buckets=[(k, pick_label(k)) for k in svc.BUCKET_KEYS],
        fmt_money=fmt_money,
        list_url=list_url,
    )


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The customer's orders and receivables; a channel's credit and ageing."""
    if subject_type == "customer":
        return [Panel("Orders", lambda: _customer_panel(subject), "订单与应收", 30)]
    if subject_type == "channel":
        return [Panel("Credit and receivables", lambda: _channel_panel(subject), "信用与应收", 30)]
    return []


def widget() -> str:
    """The dashboard box *应收账款*: what is outstanding by ageing bucket and the five most
    overdue orders (a sales rep: their own orders; others: every one they may see). Two
    queries whatever the number of orders."""
    mine = role() == "sales_rep"
    conds = [Order.owner_id == current_user.id] if mine else []
    ageing = svc.ageing_of(*conds)
    day = svc.today()
    worst = db.session.execute(
        select(Order.id, Order.number, Order.due_on, Customer.name, Order.amount - Order.paid)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.state == "open", Order.due_on < day, *conds)
        .order_by(Order.due_on, Order.id)
        .limit(5)
    ).all()
    owner = current_user.id if mine else None
    buckets = [
        (key, pick_label(key), ageing.get(key), list_url(ageing=key, owner=owner))
        for key in svc.BUCKET_KEYS
    ]
    return render_template(
        "sales/orders/_widget.html",
        ageing=ageing,
        buckets=buckets,
        top=max((amount for _k, _l, amount, _u in buckets), default=Decimal(0)),
        worst=[(row, (day - row.due_on).days) for row in worst],
        overdue_url=list_url(overdue=1, owner=owner),
    )


def timeline(customer: Any) -> list[TimelineEntry]:
    """The customer's orders and payments, newest first (one query each, bounded)."""
    entries: list[TimelineEntry] = []
    for o in db.session.scalars(
        select(Order)
        .where(Order.customer_id == customer.id)
        .options(lazyload(Order.lines))
        .order_by(Order.created_at.desc())
        .limit(TIMELINE_MAX)
    ):
        entries.append(
            TimelineEntry(
                at=min(svc.local_noon(o.ordered_on), o.created_at),
                kind="order",
                title=_(
                    "Order %(number)s: ¥%(amount)s", number=o.number, amount=fmt_money(o.amount)
                ),
                detail=svc.state_label(o.state),
                link=url_for("sales.order_detail", order_id=o.id),
            )
        )
    for p, number in db.session.execute(
        select(Payment, Order.number)
        .join(Order, Order.id == Payment.order_id)
        .where(Order.customer_id == customer.id)
        .order_by(Payment.created_at.desc())
        .limit(TIMELINE_MAX)
    ):
        entries.append(
            TimelineEntry(
                at=min(svc.local_noon(p.paid_on), p.created_at),
                kind="payment",
                title=_(
                    "Payment of ¥%(amount)s on %(number)s",
                    amount=fmt_money(p.amount),
                    number=number,
                ),
                detail=p.paid_on.isoformat(),
                link=url_for("sales.order_detail", order_id=p.order_id),
            )
        )
    return entries


# -- API ------------------------------------------------------------------------------------------


#: Upper bounds (exclusive) of API amounts: Numeric(14, 2) and quantities: Numeric(12, 2).
API_MONEY, API_QUANTITY = Decimal(10) ** 12, Decimal(10) ** 10


def _api_amount(*, positive: bool, bound: Decimal = API_MONEY, **kwargs: Any) -> Money:
    """A decimal of at most 2 places (more are rounded, as the core's amounts are), at least
    0 (above 0 when ``positive``), below ``bound``."""
    return Money(
        places=2,
        validate=ma.validate.Range(
            min=0, min_inclusive=not positive, max=bound, max_inclusive=False
        ),
        **kwargs,
    )


class LineSchema(ma.Schema):
    """A product line of an order in the API."""

    id = Int(dump_only=True)
    product = name_field(200)
    quantity = _api_amount(positive=True, bound=API_QUANTITY, required=True)
    unit_price = _api_amount(positive=False, required=True)
    unit_cost = _api_amount(positive=False, load_default=Decimal(0))


class OrdersResource(Resource):
    """Sales orders (销售订单) with their product lines. ``amount`` and ``cost`` are the lines'
    sums; ``paid`` follows the payments (``sales_payments``); ``state`` moves by workflow
    transitions (``settle`` when fully paid, ``cancel``/``reopen`` for managers). Sending
    ``lines`` on an update replaces them all. Orders beyond a channel's credit limit are
    accepted and the excess is written to the audit log."""

    name = "sales_orders"
    model = Order
    label, label_zh = "Sales orders", "销售订单"
    schema = model_schema(
        Order,
        dump_only=("number", "amount", "cost", "paid", "state"),
        fields={
            "lines": ma.fields.List(
                ma.fields.Nested(LineSchema),
                required=True,
                validate=ma.validate.Length(min=1, max=svc.MAX_LINES),
            ),
            "margin": Money(dump_only=True),
            "outstanding": Money(dump_only=True),
            "notes": Text(allow_none=True, validate=ma.validate.Length(max=2000)),
        },
    )
    filters = (
        "customer_id",
        "channel_id",
        "owner_id",
        "opportunity_id",
        "state",
        "ordered_on",
        "due_on",
    )
    sorts = (DATE_SORT, Sort("newest", Order.id, True, False, "integer"))
    searchable = True
    rule_hides = True
    create_only = ("customer_id",)

    def query(self) -> Any:
        return customer_joined(Order)

    def search(self, q: str) -> Any:
        return Order.number.contains(q, autoescape=True)

    def _data(self, values: dict[str, Any], record: Order | None) -> svc.OrderInput:
        def value(key: str) -> Any:
            return values[key] if key in values else getattr(record, key, None)

        lines = values.get("lines")
        if lines is None and record is not None:
            lines = [
                {
                    "product": x.product,
                    "quantity": x.quantity,
                    "unit_price": x.unit_price,
                    "unit_cost": x.unit_cost,
                }
                for x in record.lines
            ]
        return svc.OrderInput(
            customer_id=value("customer_id"),
            ordered_on=value("ordered_on"),
            due_on=values.get("due_on") if record is None or "due_on" in values else record.due_on,
            channel_id=value("channel_id"),
            owner_id=value("owner_id"),
            opportunity_id=value("opportunity_id"),
            notes=value("notes"),
            lines=[
                svc.LineInput(
                    x["product"], x["quantity"], x["unit_price"], x.get("unit_cost") or Decimal(0)
                )
                for x in lines or []
            ],
        )

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        if record is None:
            from core.customers import get_visible

            if get_visible(values["customer_id"]) is None:
                return {"customer_id": ["This customer is hidden from you by the record rule."]}
        return {k: [v] for k, v in svc.problems(self._data(values, record), record).items()}

    def _credit(self, data: svc.OrderInput, record: Order | None) -> svc.Credit | None:
        customer = db.session.get(Customer, data.customer_id)
        owed = data.amount - (svc.money(record.paid) if record else Decimal(0))
        return svc.credit_check(svc.resolved_channel(data, customer), owed, record)

    def create(self, values: dict[str, Any]) -> Any:
        data = self._data(values, None)
        return svc.create_order(data, user(), credit=self._credit(data, None), via="api")

    def update(self, record: Any, values: dict[str, Any]) -> None:
        data = self._data(values, record)
        svc.update_order(record, data, user(), credit=self._credit(data, record), via="api")


class PaymentsResource(Resource):
    """Payments received (回款) on orders. Creating one updates the order's ``paid`` and, when
    nothing is left, settles it; an amount above what is outstanding, zero or less, or dated
    in the future is refused (422). Payments are not changed afterwards (a manager reverses one
    in the web UI)."""

    name = "sales_payments"
    model = Payment
    label, label_zh = "Payments", "回款"
    schema = model_schema(
        Payment,
        dump_only=("user_id",),
        fields={
            "amount": _api_amount(positive=True, required=True),
            "note": Text(allow_none=True, validate=ma.validate.Length(max=200)),
        },
    )
    choice_fields = {"method": svc.METHOD_LIST}
    filters = ("order_id", "paid_on", "method")
    sorts = (
        Sort("newest", Payment.paid_on, True, False, "date"),
        Sort("id", Payment.id, True, False, "integer"),
    )
    rule_hides = True
    create_only = ("order_id",)

    def query(self) -> Any:
        return (
            select(Payment)
            .join(Order, Order.id == Payment.order_id)
            .join(Customer, Customer.id == Order.customer_id)
        )

    def may_write(self, record: Any | None) -> str | None:
        if record is not None:
            return "payments are not changed once recorded; a manager reverses a wrong one"
        return None

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        order = svc.visible_order(values["order_id"])
        if order is None:
            return {"order_id": [f"No order {values['order_id']} that you see here."]}
        problem = svc.payment_problem(order, values["amount"], values["paid_on"])
        return {problem[0]: [problem[1]]} if problem else {}

    def create(self, values: dict[str, Any]) -> Any:
        order = svc.visible_order(values["order_id"])
        try:
            return svc.record_payment(
                order,
                values["amount"],
                values["paid_on"],
                user(),
                method=values.get("method"),
                note=values.get("note"),
                via="api",
            )
        except svc.PaymentRefused as exc:
            raise ApiError(422, "invalid", exc.message, {exc.field: [exc.message]}) from exc


def resources() -> list[Resource]:
    return [OrdersResource(), PaymentsResource()]


# -- reports --------------------------------------------------------------------------------------

AGEING_DIMENSIONS = (
    ("channel", "Channel", "渠道"),
    ("owner", "Owner", "负责人"),
    ("region", "Region", "地区"),
)
REVENUE_DIMENSIONS = (
    ("month", "Month", "月份"),
    ("channel", "Channel", "渠道"),
    ("owner", "Sales rep", "销售代表"),
    ("region", "Region", "地区"),
)
NONE_LABELS = {"channel": "No channel", "owner": "No owner", "region": "No region"}


def _group(dim: str) -> tuple[Any, Any, list[Any]]:
    """``(value column, name column, outer joins)`` of a report dimension."""
    if dim == "channel":
        return Order.channel_id, Channel.name, [(Channel, Channel.id == Order.channel_id)]
    if dim == "owner":
        return Order.owner_id, User.name, [(User, User.id == Order.owner_id)]
    return Customer.region, Customer.region, []


def _grouped(dim: str, *columns: Any) -> Any:
    value, name, joins = _group(dim)
    stmt = (
        select(value.label("value"), name.label("name"), *columns)
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
    )
    for target, on in joins:
        stmt = stmt.outerjoin(target, on)
    return stmt.group_by(value, name) if name is not value else stmt.group_by(value)


def _ageing_query(p: Mapping[str, Any]) -> Any:
    stmt = _grouped(p.get("dimension") or "channel", *svc.ageing_columns(svc.today()))
    return stmt.where(Order.state == "open")


def _labelled(rows: Sequence[Mapping[str, Any]], dim: str, key: str) -> list[dict[str, Any]]:
    from core.i18n import pick

    none = pick(
        NONE_LABELS.get(dim, ""),
        {"channel": "无渠道", "owner": "无负责人", "region": "无地区"}.get(dim, ""),
    )
    out = [{**r, "label": r.get("name") or none} for r in rows]
    return sorted(out, key=lambda r: (-float(r.get(key) or 0), str(r["label"])))


def _ageing_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = _labelled(rows, p.get("dimension") or "channel", "total")
    return [r for r in out if r["total"]]


def _dimension_query(dim: str, value: Any) -> dict[str, Any]:
    key = {"channel": "channel", "owner": "owner", "region": "region"}[dim]
    if value is None:
        return {"channel": "none"} if dim == "channel" else {}
    return {key: value}


def _ageing_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    dim = p.get("dimension") or "channel"
    if row.get("value") is None and dim != "channel":
        return None
    query = {"state": "open", **_dimension_query(dim, row.get("value"))}
    if series in svc.BUCKET_KEYS:
        query["ageing"] = series
    return list_url(**query)


def _bucket_columns() -> tuple[Column, ...]:
    return tuple(
        Column(key, label, zh, "money", color=BUCKET_COLORS[key]) for key, label, zh in svc.BUCKETS
    )


RECEIVABLES_AGEING = Report(
    name="sales_receivables_ageing",
    label="Receivables ageing",
    label_zh="应收账款账龄",
    description="What the open orders still owe, per channel (or owner, or region), split by how "
    "long it is past its due date: not yet due, 0–30, 31–60, 61–90 and over 90 days.",
    description_zh="未结清订单的欠款，按渠道（或负责人、地区）分组，并按逾期天数分段：未到期、"
    "0–30天、31–60天、61–90天、90天以上。",
    params=(Param("dimension", "By", "维度", choices=AGEING_DIMENSIONS, default="channel"),),
    query=_ageing_query,
    shape=_ageing_shape,
    columns=lambda p: (
        Column("label", *_dim_text(AGEING_DIMENSIONS, p.get("dimension") or "channel"), "text"),
        *_bucket_columns(),
        Column("total", "Total outstanding", "应收合计", "money"),
    ),
    series=svc.BUCKET_KEYS,
    chart="hstacked",
    drill=_ageing_drill,
    group="sales",
    order=120,
)


def _dim_text(options_: Sequence[tuple[str, str, str]], value: str) -> tuple[str, str]:
    for key, label, zh in options_:
        if key == value:
            return label, zh
    return value, value


def _month_of() -> Any:
    """SQL: ``YYYY-MM`` of the order date (a date, so no time zone is involved)."""
    return func.substr(cast(Order.ordered_on, String), 1, 7)


def _twelve_months_ago() -> date:
    """The first day of the month eleven months before this one: twelve whole months."""
    today = svc.today()
    months_back = today.year * 12 + today.month - 1 - 11
    return date(months_back // 12, months_back % 12 + 1, 1)


def twelve_months(label: str = "Order date", label_zh: str = "订单日期") -> tuple[Param, Param]:
    """``start``/``end`` parameters defaulting to this month and the eleven before it."""
    return (
        Param("start", f"{label} from", f"{label_zh}起", "date", default=_twelve_months_ago),
        Param("end", f"{label} to", f"{label_zh}止", "date", default=svc.today),
    )


def _revenue_columns() -> list[Any]:
    return [
        func.count(Order.id).label("orders"),
        func.coalesce(func.sum(Order.amount), 0).label("revenue"),
        func.coalesce(func.sum(Order.cost), 0).label("cost"),
    ]


def _revenue_filters(stmt: Any, p: Mapping[str, Any]) -> Any:
    stmt = stmt.where(Order.state != "cancelled")
    if p.get("start"):
        stmt = stmt.where(Order.ordered_on >= p["start"])
    if p.get("end"):
        stmt = stmt.where(Order.ordered_on <= p["end"])
    if p.get("channel"):
        stmt = stmt.where(Order.channel_id == p["channel"])
    if p.get("owner"):
        stmt = stmt.where(Order.owner_id == p["owner"])
    return stmt


def _revenue_query(p: Mapping[str, Any]) -> Any:
    dim = p.get("dimension") or "month"
    if dim == "month":
        month = _month_of().label("value")
        stmt = (
            select(month, *_revenue_columns())
            .select_from(Order)
            .join(Customer, Customer.id == Order.customer_id)
            .group_by(month)
        )
    else:
        stmt = _grouped(dim, *_revenue_columns())
    return _revenue_filters(stmt, p)


def _margins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for r in rows:
        revenue, cost = svc.money(r.get("revenue")), svc.money(r.get("cost"))
        r["revenue"], r["margin"] = revenue, revenue - cost
        r["margin_rate"] = float(r["margin"] / revenue) if revenue else None
        r.setdefault("orders", 0)
    return rows


def _revenue_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = p.get("dimension") or "month"
    if dim != "month":
        return _margins(_labelled(rows, dim, "revenue"))
    found = {r["value"]: dict(r) for r in rows}
    filled = months(p) or sorted(found)
    return _margins([{**found.get(m, {"value": m}), "label": m} for m in filled])


def _month_range(month: str) -> tuple[str, str]:
    year, number = (int(x) for x in month.split("-"))
    first = date(year, number, 1)
    after = date(year + number // 12, number % 12 + 1, 1)
    return first.isoformat(), (after - timedelta(days=1)).isoformat()


def _period(p: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "from": p["start"].isoformat() if p.get("start") else None,
        "to": p["end"].isoformat() if p.get("end") else None,
    }


def _revenue_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    dim = p.get("dimension") or "month"
    query: dict[str, Any] = {"channel": p.get("channel"), "owner": p.get("owner")}
    if dim == "month":
        start, end = _month_range(row["value"])
        query.update({"from": start, "to": end})
    else:
        if row.get("value") is None and dim != "channel":
            return None
        query.update(_period(p))
        query.update(_dimension_query(dim, row.get("value")))
    return list_url(**query) + "&state=open&state=paid"


REVENUE = Report(
    name="sales_revenue",
    label="Revenue and margin",
    label_zh="销售收入与毛利",
    description="Orders (cancelled ones left out) by month of their date, or by channel, sales "
    "rep or the customer's region: how many, their amount, margin (amount less cost) and "
    "margin rate.",
    description_zh="按订单月份，或按渠道、销售代表、客户地区统计订单（不含已取消）：订单数、金额、"
    "毛利（金额减成本）与毛利率。",
    params=(
        Param("dimension", "By", "维度", choices=REVENUE_DIMENSIONS, default="month"),
        *twelve_months(),
        Param("channel", "Channel", "渠道", "channel"),
        Param("owner", "Sales rep", "销售代表", "member"),
    ),
    query=_revenue_query,
    shape=_revenue_shape,
    columns=lambda p: (
        Column("label", *_dim_text(REVENUE_DIMENSIONS, p.get("dimension") or "month"), "text"),
        Column("orders", "Orders", "订单数"),
        Column("revenue", "Revenue", "收入", "money", color=BLUE),
        Column("margin", "Margin", "毛利", "money", color=GREEN),
        Column("margin_rate", "Margin rate", "毛利率", "percent"),
    ),
    series=("revenue", "margin"),
    chart=lambda p: "bar" if (p.get("dimension") or "month") == "month" else "hbar",
    drill=_revenue_drill,
    group="sales",
    order=110,
)


PALETTE = (
    "#2b6cb0",
    "#2f855a",
    "#dd6b20",
    "#6b46c1",
    "#c53030",
    "#2c7a7b",
    "#b7791f",
    "#97266d",
    "#4a5568",
    "#38a169",
)


def _channel_list() -> list[tuple[int, str]]:
    """The company's channels (cached for the request: the columns are asked for twice)."""
    from core.customers import channel_options

    cache = g.setdefault("_sales_report_channels", {})
    company_id = current_company_id()
    if company_id not in cache:
        cache[company_id] = channel_options()
    return cache[company_id]


def _by_channel_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    channels = [(f"c{cid}", name) for cid, name in _channel_list()] + [("c0", None)]
    return (
        Column("label", "Month", "月份", "text"),
        *(
            Column(
                key,
                name or "No channel",
                name or "无渠道",
                "money",
                color=PALETTE[n % len(PALETTE)],
            )
            for n, (key, name) in enumerate(channels)
        ),
        Column("total", "Total", "合计", "money"),
    )


def _by_channel_query(p: Mapping[str, Any]) -> Any:
    month = _month_of().label("value")
    stmt = (
        select(month, Order.channel_id, func.coalesce(func.sum(Order.amount), 0).label("revenue"))
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .group_by(month, Order.channel_id)
    )
    return _revenue_filters(stmt, p)


def _by_channel_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    keys = [f"c{cid}" for cid, _n in _channel_list()] + ["c0"]
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = found.setdefault(r["value"], {"value": r["value"], "label": r["value"]})
        key = f"c{r['channel_id'] or 0}"
        row[key] = svc.money(row.get(key)) + svc.money(r["revenue"])
    out = []
    for m in months(p) or sorted(found):
        row = found.get(m, {"value": m, "label": m})
        for key in keys:
            row.setdefault(key, Decimal(0))
        row["total"] = sum((row[k] for k in keys), Decimal(0))
        out.append(row)
    return out


def _by_channel_series(p: Mapping[str, Any]) -> list[str]:
    return [f"c{cid}" for cid, _n in _channel_list()] + ["c0"]


def _by_channel_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    start, end = _month_range(row["value"])
    query: dict[str, Any] = {"from": start, "to": end}
    if series and series.startswith("c"):
        query["channel"] = series[1:] if series != "c0" else "none"
    return list_url(**query) + "&state=open&state=paid"


REVENUE_BY_CHANNEL = Report(
    name="sales_revenue_by_channel",
    label="Revenue by channel per month",
    label_zh="各渠道月度销售收入",
    description="The amount of orders (cancelled ones left out) per month, stacked by the "
    "channel the order went through.",
    description_zh="每月订单金额（不含已取消），按订单所属渠道堆叠。",
    params=twelve_months(),
    query=_by_channel_query,
    shape=_by_channel_shape,
    columns=_by_channel_columns,
    series=_by_channel_series,
    chart="stacked",
    drill=_by_channel_drill,
    group="sales",
    order=115,
)


def reports() -> list[Report]:
    return [REVENUE, REVENUE_BY_CHANNEL, RECEIVABLES_AGEING]


__all__ = ["OrdersResource", "PaymentsResource", "order_page", "panels", "reports", "timeline"]
