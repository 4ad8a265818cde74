"""Pages, API resources, reports, the customer panel and timeline of products and policies.

Pages (on :data:`plugins.insurance.blueprint.bp`):

- ``/insurance/products`` (administrators and managers) -- the products, ``/products/new`` and
  ``/products/<id>/edit``;
- ``/insurance/policies`` -- the list: filters (state, product, agent, channel, channel type,
  customer, owner, start, end and issue dates, number or policyholder), keyset pages, the
  count and annual premium of what matches, CSV/XLSX export (permission ``export``, audited);
- ``/insurance/policies/new`` and ``/insurance/policies/<id>/edit`` -- the form (only for
  applications and policies in underwriting);
- ``/insurance/policies/<id>`` -- the policy: parties, agent and channel, amounts and dates,
  the workflow steps and history, the sales order, the renewal chain, "Prepare renewal", and
  the record panels plugins add for ``insurance_policy``.

Every query joins the policy's customer, so a sales rep sees the policies of the customers their
record rule shows. The service code is :mod:`plugins.insurance.policies`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import String, case, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased
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
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from core import access, exporter, keyset, workflow
from core.api.resources import Resource, customer_joined, user
from core.api.schemas import Day, Int, Money, Text, model_schema, name_field
from core.choices import options
from core.db import capped_count
from core.extend import Panel, Sort, TimelineEntry, company_scope, current_company_id, db
from core.i18n import pick
from core.keyset import MAX_ID
from core.models import Channel, Contact, Customer, User, WorkflowHistory
from core.reports import Column, Param, Report, months
from core.web.channels import Amount
from core.web.helpers import role
from core.web.panels import record_panels
from core.web.tickets import local_time
from plugins.insurance import policies as svc
from plugins.insurance.blueprint import MANAGERS, bp, is_manager
from plugins.insurance.models import Agent, Policy, PolicyParty, Product

DATE_SORT = Sort("date", Policy.applied_on, True, False, "date")
#: Beneficiary rows offered on the form beyond those already named.
BLANK_BENEFICIARIES = 3
#: Policies shown in a customer's panel.
PANEL_POLICIES = 8
TIMELINE_MAX = 200
TRUE_VALUES = ("1", "true", "on", "yes")
STATE_COLORS = {
    "application": "#a0aec0",
    "underwriting": "#d69e2e",
    "issued": "#2b6cb0",
    "in_force": "#2f855a",
    "renewed": "#6b46c1",
    "lapsed": "#c53030",
    "cancelled": "#4a5568",
    "declined": "#742a2a",
}
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


def can_write() -> bool:
    """Every role but ``viewer`` takes applications and prepares renewals."""
    return role() not in (None, "viewer")


def _require_writer() -> None:
    if not can_write():
        abort(403, _("Your role can read policies but not change them."))


def _require_manager() -> None:
    if not is_manager():
        abort(403, _("Only administrators and managers can do this."))


def _int(raw: Any) -> int | None:
    raw = str(raw or "").strip()
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


def _helpers() -> dict[str, Any]:
    return {
        "fmt_money": fmt_money,
        "state_label": svc.state_label,
        "frequency_label": svc.frequency_label,
        "class_label": svc.class_label,
        "channel_type_label": lambda v: _choice_label("channel_type", v),
    }


def _choice_label(list_name: str, value: str | None) -> str:
    from core.choices import label

    return label(list_name, value) if value else ""


# -- products -------------------------------------------------------------------------------------


class ProductForm(FlaskForm):
    code = StringField(_l("Code"), validators=[InputRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    product_class = SelectField(_l("Class"), validate_choice=False)
    term_months = IntegerField(
        _l("Term (months)"),
        validators=[InputRequired(), NumberRange(1, svc.MAX_TERM_MONTHS)],
        description=_l("The length of one policy term: 12 for a one-year policy."),
    )
    renewable = BooleanField(_l("Renewable"), default=True)
    active = BooleanField(_l("Sold (active)"), default=True)


def _product_form(product: Product | None, formdata: Any = None) -> ProductForm:
    form = ProductForm(formdata=formdata, obj=product if formdata is None else None)
    form.product_class.choices = [("", "—")] + options(svc.PRODUCT_CLASS_LIST)
    if formdata is None and product is None:
        form.term_months.data = 12
    return form


@bp.route("/products")
def products() -> Any:
    _require_manager()
    counts = dict(
        db.session.execute(
            select(Policy.product_id, func.count(Policy.id))
            .where(Policy.state.in_(svc.WRITTEN))
            .group_by(Policy.product_id)
        ).all()
    )
    rows = db.session.scalars(select(Product).order_by(Product.active.desc(), Product.code)).all()
    return render_template("insurance/products.html", rows=rows, counts=counts, **_helpers())


def _save_product_form(product: Product | None) -> Any:
    form = _product_form(product, request.form)
    status = 200
    if request.method == "POST":
        valid = form.validate_on_submit()
        data = svc.ProductInput(
            code=form.code.data or "",
            name=form.name.data or "",
            product_class=form.product_class.data or "",
            term_months=form.term_months.data if form.term_months.data is not None else 0,
            renewable=bool(form.renewable.data),
            active=bool(form.active.data),
        )
        found = svc.product_problems(data, product)
        if valid and not found:
            try:
                with db.session.begin_nested():
                    saved = svc.save_product(data, current_user, product)
                db.session.commit()
            except IntegrityError:
                db.session.rollback()
                found = {"code": _("Another product already has this code.")}
            else:
                flash(_("Product %(code)s saved.", code=saved.code))
                return redirect(url_for(".products"))
        for key, message in found.items():
            if not form[key].errors:
                form[key].errors = [*form[key].errors, message]
        status = 422
    else:
        form = _product_form(product)
    return render_template("insurance/product_form.html", form=form, product=product), status


@bp.route("/products/new", methods=["GET", "POST"])
def product_new() -> Any:
    _require_manager()
    return _save_product_form(None)


@bp.route("/products/<int:product_id>/edit", methods=["GET", "POST"])
def product_edit(product_id: int) -> Any:
    _require_manager()
    product = db.session.get(Product, product_id) if product_id <= MAX_ID else None
    if product is None:
        abort(404)
    return _save_product_form(product)


# -- the list -------------------------------------------------------------------------------------


@dataclass
class PolicyRow:
    """A policy of a list page with the names shown beside it."""

    policy: Policy
    customer_name: str
    product_code: str
    product_name: str
    agent_name: str | None
    channel_name: str | None
    owner_name: str | None


@dataclass
class PolicyPage:
    rows: list[PolicyRow] = field(default_factory=list)
    next_after: str | None = None
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    total: Decimal | None = None


FILTERS = (
    "q",
    "state",
    "product",
    "agent",
    "channel",
    "channel_type",
    "customer",
    "owner",
    "start_from",
    "start_to",
    "end_from",
    "end_to",
    "issued_from",
    "issued_to",
    "renewal_of",
)
DATE_FILTERS = (
    ("start_from", Policy.start_on, "ge"),
    ("start_to", Policy.start_on, "le"),
    ("end_from", Policy.end_on, "ge"),
    ("end_to", Policy.end_on, "le"),
    ("issued_from", Policy.issued_on, "ge"),
    ("issued_to", Policy.issued_on, "le"),
)


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
                Policy.number.contains(q, autoescape=True),
                Customer.name.contains(q, autoescape=True),
                Customer.code == q,
            )
        )
    for name, column in (
        ("product", Policy.product_id),
        ("agent", Policy.agent_id),
        ("customer", Policy.customer_id),
        ("owner", Policy.owner_id),
        ("renewal_of", Policy.renewal_of_id),
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
        conds.append(Policy.channel_id.is_(None))
    elif raw:
        value = _int(raw)
        if value is None:
            errors["channel"] = _("Must be a channel's id or 'none'.")
        else:
            conds.append(Policy.channel_id == value)
    kind = (args.get("channel_type") or "").strip()
    if kind:
        if len(kind) > 40:
            errors["channel_type"] = _("Must be a channel type.")
        else:
            conds.append(Policy.channel_id.in_(select(Channel.id).where(Channel.type == kind)))
    states = [s for s in args.getlist("state") if s]
    if any(s not in svc.STATE_NAMES for s in states):
        errors["state"] = _("Must be one of: %(values)s.", values=", ".join(svc.STATE_NAMES))
    elif states:
        conds.append(Policy.state.in_(states))
    for name, column, op in DATE_FILTERS:
        day = _date(args.get(name))
        if day is False:
            errors[name] = _("Enter a date as YYYY-MM-DD.")
        elif day is not None:
            conds.append(column >= day if op == "ge" else column <= day)
    return conds


def _rows_statement(conds: Sequence[Any]) -> Any:
    agent_channel = aliased(Channel)
    return (
        select(
            Policy,
            Customer.name.label("customer_name"),
            Product.code.label("product_code"),
            Product.name.label("product_name"),
            agent_channel.name.label("agent_name"),
            Channel.name.label("channel_name"),
            User.name.label("owner_name"),
        )
        .join(Customer, Customer.id == Policy.customer_id)
        .join(Product, Product.id == Policy.product_id)
        .outerjoin(Agent, Agent.id == Policy.agent_id)
        .outerjoin(agent_channel, agent_channel.id == Agent.channel_id)
        .outerjoin(Channel, Channel.id == Policy.channel_id)
        .outerjoin(User, User.id == Policy.owner_id)
        .where(*conds)
    )


def policy_page(args: Any, size: int, cap: int) -> PolicyPage:
    """One keyset page (newest application first) of the policies matching ``args`` with their
    names; the matching count (capped) and, when filtered, their annual premium. Three or four
    queries whatever the page size."""
    page = PolicyPage()
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
    page.count, page.capped = capped_count(stmt, Policy.id, cap)
    if any(args.get(k) for k in FILTERS):
        page.total = svc.money(
            db.session.scalar(
                select(func.sum(Policy.annual_premium))
                .join(Customer, Customer.id == Policy.customer_id)
                .where(*conds)
            )
        )
    if position is not None:
        stmt = stmt.where(keyset.after(DATE_SORT, Policy.id, *position))
    stmt = stmt.order_by(*keyset.order(DATE_SORT, Policy.id)).limit(size + 1)
    found = db.session.execute(stmt).all()
    page.rows = [
        PolicyRow(
            r[0],
            r.customer_name,
            r.product_code,
            r.product_name,
            r.agent_name,
            r.channel_name,
            r.owner_name,
        )
        for r in found[:size]
    ]
    if len(found) > size:
        last = page.rows[-1].policy
        page.next_after = keyset.encode(last.applied_on, last.id)
    return page


def _list_context() -> dict[str, Any]:
    from core.customers import channel_options, members

    chosen = _int(request.args.get("customer"))
    customer = db.session.get(Customer, chosen) if chosen else None
    return {
        "states": [(s, svc.state_label(s)) for s in svc.STATE_NAMES],
        "products": svc.product_options(),
        "agents": svc.agent_options(),
        "channels": channel_options(),
        "channel_types": options("channel_type"),
        "people": members(),
        "customer": customer if customer and customer.company_id == current_company_id() else None,
        "can_write": can_write(),
        "is_manager": is_manager(),
        **_helpers(),
    }


@bp.route("/policies")
def policies() -> Any:
    size = current_app.config["LIST_PAGE_SIZE"]
    page = policy_page(request.args, size, current_app.config["COUNT_CAP"])
    html = render_template("insurance/policies.html", page=page, **_list_context())
    return html, 400 if page.errors else 200


EXPORT_COLUMNS = (
    "number",
    "state",
    "product_code",
    "product",
    "customer_code",
    "customer",
    "insured",
    "beneficiaries",
    "agent",
    "channel",
    "owner",
    "premium",
    "frequency",
    "annual_premium",
    "sum_insured",
    "applied_on",
    "start_on",
    "end_on",
    "issued_on",
    "cancelled_on",
    "policy_year",
    "renewal_of_id",
    "order_id",
)


@bp.route("/policies/export.<any(csv, xlsx):fmt>")
def policies_export(fmt: str) -> Any:
    """The policies matching the list's filters as CSV or XLSX (500 per batch); needs the
    ``export`` permission and is audited; the record rule narrows it as on the list."""
    errors: dict[str, str] = {}
    filter_conditions(request.args, errors)
    if errors:
        return (
            "\n".join(f"{k}: {v}" for k, v in errors.items()),
            400,
            {"Content-Type": "text/plain"},
        )
    exporter.authorize(Policy.__tablename__, request.args)
    args, company_id = request.args.copy(), current_company_id()
    owners = access.visible_owner_ids()

    def rows() -> Iterator[list[Any]]:
        with company_scope(company_id), access.owners_scope(owners):
            yield from _export_rows(args)

    return exporter.download(fmt, "policies", EXPORT_COLUMNS, rows, title=_("Policies"))


def _party_text(parties: list[tuple[PolicyParty, str]], kind: str) -> str:
    out = []
    for party, name in parties:
        if party.role != kind:
            continue
        out.append(f"{name} {party.share.normalize():f}%" if party.share is not None else name)
    return "; ".join(out)


def _export_rows(args: Any) -> Iterator[list[Any]]:
    cap = current_app.config["COUNT_CAP"]
    codes: dict[int, str | None] = {}
    while True:
        page = policy_page(args, 500, cap)
        ids = {r.policy.customer_id for r in page.rows} - set(codes)
        if ids:
            codes.update(
                db.session.execute(
                    select(Customer.id, Customer.code).where(Customer.id.in_(ids))
                ).all()
            )
        parties = svc.parties_of([r.policy.id for r in page.rows])
        for r in page.rows:
            p = r.policy
            yield [
                p.number,
                p.state,
                r.product_code,
                r.product_name,
                codes.get(p.customer_id),
                r.customer_name,
                _party_text(parties.get(p.id, []), "insured"),
                _party_text(parties.get(p.id, []), "beneficiary"),
                r.agent_name,
                r.channel_name,
                r.owner_name,
                p.premium,
                p.frequency,
                p.annual_premium,
                p.sum_insured,
                p.applied_on,
                p.start_on,
                p.end_on,
                p.issued_on,
                p.cancelled_on,
                p.policy_year,
                p.renewal_of_id,
                p.order_id,
            ]
        if page.next_after is None:
            return
        args["after"] = page.next_after
        db.session.expunge_all()


def list_url(**query: Any) -> str:
    """The policy list filtered by ``query`` (empty values left out; lists repeat)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in query.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item not in (None, ""):
                pairs.append((key, item))
    return url_for("insurance.policies") + ("?" + urlencode(pairs) if pairs else "")


# -- the form -------------------------------------------------------------------------------------


class BeneficiaryForm(Form):
    """One beneficiary row; a row without a contact is ignored."""

    contact_id = SelectField(_l("Beneficiary"), validate_choice=False)
    share = DecimalField(
        _l("Share (%)"), validators=[Optional(), Amount(Decimal("0.01"), Decimal(100))]
    )


class PolicyForm(FlaskForm):
    product_id = SelectField(_l("Product"), validate_choice=False)
    agent_id = SelectField(_l("Agent"), validate_choice=False)
    channel_id = SelectField(
        _l("Channel"),
        validate_choice=False,
        description=_l("Empty: the agent's channel (without an agent, the customer's)."),
    )
    owner_id = SelectField(
        _l("Owner"),
        validate_choice=False,
        description=_l("Who looks after the policy and receives its renewal notices."),
    )
    premium = DecimalField(
        _l("Premium (¥)"), validators=[InputRequired(), Amount(Decimal("0.01"), svc.MAX_MONEY)]
    )
    frequency = SelectField(_l("Payment frequency"), validate_choice=False, default="annual")
    sum_insured = DecimalField(
        _l("Sum insured (¥)"), validators=[Optional(), Amount(Decimal(0), svc.MAX_SUM_INSURED)]
    )
    applied_on = DateField(_l("Application date"), validators=[InputRequired()])
    start_on = DateField(
        _l("Start date"),
        validators=[InputRequired()],
        description=_l("The end date is the start plus the product's term, less one day."),
    )
    insured = SelectMultipleField(
        _l("Insured"),
        validate_choice=False,
        description=_l("None ticked: the policyholder is the insured."),
    )
    beneficiaries = FieldList(FormField(BeneficiaryForm), min_entries=0, max_entries=20)
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=2000)])
    version = HiddenField()


class NewPolicyForm(PolicyForm):
    customer = StringField(
        _l("Policyholder"),
        validators=[InputRequired(), Length(max=240)],
        description=_l("Choose from the list, or type a code or #number."),
    )


FORM_FIELDS = {
    "product_id": "product_id",
    "agent_id": "agent_id",
    "channel_id": "channel_id",
    "owner_id": "owner_id",
    "premium": "premium",
    "frequency": "frequency",
    "sum_insured": "sum_insured",
    "applied_on": "applied_on",
    "start_on": "start_on",
    "insured": "insured",
    "notes": "notes",
    "customer_id": "customer",
}


def _options(form: PolicyForm, policy: Policy | None, contacts: list[tuple[int, str]]) -> None:
    from core.customers import channel_options, members

    form.product_id.choices = [("", "—")] + [
        (str(i), name) for i, name in svc.product_options(policy.product_id if policy else None)
    ]
    form.agent_id.choices = [("", _("(no agent)"))] + [
        (str(i), name) for i, name in svc.agent_options()
    ]
    form.channel_id.choices = [("", _("(the agent's channel)"))] + [
        (str(i), name) for i, name in channel_options()
    ]
    form.owner_id.choices = [("", _("(the agent or the customer's owner)"))] + [
        (str(i), name) for i, name in members()
    ]
    form.frequency.choices = [(v, svc.frequency_label(v)) for v in svc.PAYMENTS]
    form.insured.choices = [(str(i), name) for i, name in contacts]
    for entry in form.beneficiaries.entries:
        entry.form.contact_id.choices = [("", "—")] + [(str(i), name) for i, name in contacts]


def _contacts(customer_id: int | None) -> list[tuple[int, str]]:
    if customer_id is None:
        return []
    return [
        (r.id, r.name)
        for r in db.session.execute(
            select(Contact.id, Contact.name)
            .where(Contact.customer_id == customer_id)
            .order_by(Contact.name, Contact.id)
        )
    ]


def _find_customer(text: str) -> Customer | None:
    """The customer the form names: ``#12 …``, a code, or an exact name (when only one
    customer has it); only customers the reader sees."""
    from core.customers import get_visible

    text = text.strip()
    if text.startswith("#"):
        words = text[1:].split()
        number = _int(words[0] if words else "")
        return get_visible(number) if number else None
    found = db.session.scalars(select(Customer).where(Customer.code == text).limit(2)).all()
    if len(found) != 1:
        found = db.session.scalars(select(Customer).where(Customer.name == text).limit(2)).all()
    return found[0] if len(found) == 1 else None


def _customer_choices() -> list[Customer]:
    return list(
        db.session.scalars(select(Customer).order_by(Customer.updated_at.desc()).limit(300))
    )


def _pad_beneficiaries(form: PolicyForm) -> None:
    named = sum(1 for e in form.beneficiaries.entries if e.form.contact_id.data)
    while len(form.beneficiaries.entries) < named + BLANK_BENEFICIARIES:
        form.beneficiaries.append_entry()


def _input(form: PolicyForm, customer_id: int) -> svc.PolicyInput:
    beneficiaries: list[tuple[int, Decimal | None]] = []
    for entry in form.beneficiaries.entries:
        contact = _int(entry.form.contact_id.data)
        if contact is not None:
            beneficiaries.append((contact, entry.form.share.data))
    insured = [c for c in (_int(v) for v in form.insured.data or []) if c is not None]
    return svc.PolicyInput(
        customer_id=customer_id,
        product_id=_int(form.product_id.data) or 0,
        premium=form.premium.data,
        start_on=form.start_on.data,
        frequency=form.frequency.data or "",
        agent_id=_int(form.agent_id.data),
        channel_id=_int(form.channel_id.data),
        owner_id=_int(form.owner_id.data),
        sum_insured=form.sum_insured.data,
        applied_on=form.applied_on.data,
        insured=insured,
        beneficiaries=beneficiaries,
        notes=form.notes.data,
    )


def _show_problems(form: PolicyForm, found: dict[str, str]) -> str | None:
    """Put each problem at its field; what belongs to none (the state, the beneficiaries as a
    whole) is returned as the form's message."""
    message = None
    for key, text in found.items():
        name = FORM_FIELDS.get(key)
        if key == "beneficiaries":
            form.beneficiaries_error = text  # type: ignore[attr-defined]
        elif name and name in form:
            form[name].errors = [*form[name].errors, text]
        else:
            message = text
    return message


def _render_form(
    form: PolicyForm,
    policy: Policy | None,
    customer: Customer | None,
    status: int = 200,
    problem: str | None = None,
) -> Any:
    return render_template(
        "insurance/policy_form.html",
        form=form,
        policy=policy,
        customer=customer,
        customers=_customer_choices() if policy is None else [],
        problem=problem,
        beneficiaries_error=getattr(form, "beneficiaries_error", None),
        **_helpers(),
    ), status


def _create(data: svc.PolicyInput) -> Policy:
    """Create the policy; a number taken meanwhile by another request is retried."""
    for attempt in range(3):
        try:
            with db.session.begin_nested():
                return svc.create_policy(data, current_user)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


@bp.route("/policies/new", methods=["GET", "POST"])
def policy_new() -> Any:
    from core.customers import get_visible

    _require_writer()
    if request.method == "GET":
        form = NewPolicyForm(formdata=None)
        customer_id = _int(request.args.get("customer_id"))
        customer = get_visible(customer_id) if customer_id else None
        if customer is not None:
            form.customer.data = f"#{customer.id} {customer.name}"
        form.applied_on.data = svc.today()
        form.start_on.data = svc.today() + timedelta(days=1)
        _pad_beneficiaries(form)
        _options(form, None, _contacts(customer.id if customer else None))
        return _render_form(form, None, customer)
    form = NewPolicyForm()
    customer = _find_customer(form.customer.data or "")
    _pad_beneficiaries(form)
    _options(form, None, _contacts(customer.id if customer else None))
    if request.form.get("load"):
        if customer is None:
            form.customer.errors = [_("No customer with this code, number or name that you see.")]
        return _render_form(form, None, customer, 200 if customer else 422)
    if not form.validate_on_submit():
        return _render_form(form, None, customer, 422)
    if customer is None:
        form.customer.errors = [_("No customer with this code, number or name that you see.")]
        return _render_form(form, None, None, 422)
    data = _input(form, customer.id)
    found = svc.problems(data)
    if found:
        problem = _show_problems(form, found)
        return _render_form(form, None, customer, 422, problem)
    policy = _create(data)
    db.session.commit()
    flash(_("Policy %(number)s saved as an application.", number=policy.number))
    return redirect(url_for(".policy_detail", policy_id=policy.id))


def _get(policy_id: int) -> Policy:
    """The policy, 404 when it is not the company's, 403 naming the rule when it hides it."""
    policy = svc.visible_policy(policy_id)
    if policy is not None:
        return policy
    if svc.hidden_policy(policy_id):
        abort(
            403,
            _(
                "This policy's customer is hidden from you by the record rule “%(rule)s”.",
                rule=access.current_rule(),
            ),
        )
    abort(404)


def _edit_form_of(policy: Policy) -> PolicyForm:
    form = PolicyForm(formdata=None, obj=policy)
    form.product_id.data = str(policy.product_id)
    form.agent_id.data = str(policy.agent_id or "")
    form.channel_id.data = str(policy.channel_id or "")
    form.owner_id.data = str(policy.owner_id or "")
    form.version.data = str(policy.version)
    form.insured.data = [str(p.contact_id) for p in policy.parties if p.role == "insured"]
    for party in policy.parties:
        if party.role == "beneficiary":
            entry = form.beneficiaries.append_entry()
            entry.form.contact_id.data = str(party.contact_id)
            entry.form.share.data = party.share
    return form


@bp.route("/policies/<int:policy_id>/edit", methods=["GET", "POST"])
def policy_edit(policy_id: int) -> Any:
    _require_writer()
    policy = _get(policy_id)
    customer = db.session.get(Customer, policy.customer_id)
    if policy.state not in svc.EDITABLE:
        flash(
            _(
                "Only applications and policies in underwriting can be changed; this one is "
                "%(state)s.",
                state=svc.state_label(policy.state),
            )
        )
        return redirect(url_for(".policy_detail", policy_id=policy.id))
    contacts = _contacts(policy.customer_id)
    if request.method == "GET":
        form = _edit_form_of(policy)
        _pad_beneficiaries(form)
        _options(form, policy, contacts)
        return _render_form(form, policy, customer)
    form = PolicyForm()
    _pad_beneficiaries(form)
    _options(form, policy, contacts)
    if not form.validate_on_submit():
        return _render_form(form, policy, customer, 422)
    if (form.version.data or "") != str(policy.version):
        flash(_("Someone else changed this policy meanwhile; here it is as it is now."))
        return redirect(url_for(".policy_detail", policy_id=policy.id)), 303
    data = _input(form, policy.customer_id)
    found = svc.problems(data, policy)
    if found:
        problem = _show_problems(form, found)
        return _render_form(form, policy, customer, 422, problem)
    try:
        svc.update_policy(policy, data, current_user)
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        flash(_("Someone else changed this policy meanwhile; here it is as it is now."))
        return redirect(url_for(".policy_detail", policy_id=policy_id)), 303
    flash(_("Policy %(number)s saved.", number=policy.number))
    return redirect(url_for(".policy_detail", policy_id=policy.id))


# -- the policy's page ----------------------------------------------------------------------------


class StepForm(FlaskForm):
    comment = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=2000)])
    version = HiddenField()


def _history(policy_id: int) -> list[Any]:
    return list(
        db.session.execute(
            select(WorkflowHistory, User.name)
            .outerjoin(User, User.id == WorkflowHistory.user_id)
            .where(
                WorkflowHistory.subject_type == svc.SUBJECT,
                WorkflowHistory.subject_id == policy_id,
            )
            .order_by(WorkflowHistory.created_at, WorkflowHistory.id)
        ).all()
    )


def _steps(policy: Policy) -> list[Any]:
    here = role()
    return [
        t
        for t in svc.POLICY_WORKFLOW.transitions
        if t.name in svc.MANUAL and policy.state in t.sources and workflow.allowed(t, here)
    ]


def _render_detail(
    policy: Policy,
    status: int = 200,
    step: tuple[str, StepForm] | None = None,
    message: str | None = None,
) -> Any:
    steps = _steps(policy)
    forms = {t.name: StepForm(formdata=None) for t in steps}
    for form in forms.values():
        form.version.data = str(policy.version)
    if step is not None and step[0] in forms:
        forms[step[0]] = step[1]
    found = svc.names(policy)
    renewal = None
    if policy.state == "in_force" and can_write():
        renewal = svc.renewal_problem(policy)
    return render_template(
        "insurance/policy.html",
        policy=policy,
        names=found,
        parties=svc.parties_of([policy.id]).get(policy.id, []),
        steps=[(t, forms[t.name]) for t in steps],
        history=_history(policy.id),
        chain=svc.renewal_chain(policy),
        renewal_problem=renewal,
        can_renew=policy.state == "in_force" and can_write() and renewal is None,
        can_edit=can_write() and policy.state in svc.EDITABLE,
        can_write=can_write(),
        message=message,
        renewal_start=policy.end_on + timedelta(days=1),
        local_time=local_time,
        panels=record_panels(svc.SUBJECT, policy),
        subject_type=svc.SUBJECT,
        subject_id=policy.id,
        **_helpers(),
    ), status


@bp.route("/policies/<int:policy_id>")
def policy_detail(policy_id: int) -> Any:
    return _render_detail(_get(policy_id))


def _refusal(exc: workflow.WorkflowError, policy: Policy, name: str) -> str:
    """The engine's refusal in the user's language."""
    step = svc.POLICY_WORKFLOW.get(name)
    if isinstance(exc, workflow.NotAllowed) and step is not None:
        return _(
            "Your role (%(role)s) may not take the step “%(step)s”; it needs: %(roles)s.",
            role=role() or "-",
            step=step.text,
            roles=", ".join(step.roles) or _("any role but viewer"),
        )
    if isinstance(exc, workflow.IllegalTransition) and step is not None:
        return _(
            "“%(step)s” is not possible while the policy is %(state)s.",
            step=step.text,
            state=svc.state_label(policy.state),
        )
    return exc.message


@bp.route("/policies/<int:policy_id>/transition/<name>", methods=["POST"])
def policy_transition(policy_id: int, name: str) -> Any:
    _require_writer()
    policy = _get(policy_id)
    if name not in svc.MANUAL:
        abort(404)
    form = StepForm()
    if not form.validate_on_submit():
        return _render_detail(policy, 422, step=(name, form))
    if (form.version.data or "") != str(policy.version):
        flash(_("Someone else changed this policy meanwhile; here it is as it is now."))
        return redirect(url_for(".policy_detail", policy_id=policy.id)), 303
    try:
        workflow.transition(
            policy,
            name,
            user=current_user,
            inputs={"comment": (form.comment.data or "").strip()},
        )
        db.session.commit()
    except (workflow.StaleRecord, StaleDataError):
        db.session.rollback()
        flash(_("Someone else changed this policy meanwhile; here it is as it is now."))
        return redirect(url_for(".policy_detail", policy_id=policy_id)), 303
    except workflow.WorkflowError as exc:
        db.session.rollback()
        policy = _get(policy_id)
        if exc.field == "comment":
            form.comment.errors = [_("Give a reason.")]
            return _render_detail(policy, exc.status, step=(name, form))
        text = _refusal(exc, policy, name)
        if exc.field:
            flash(text)
            return _render_detail(policy, exc.status)
        return _render_detail(policy, exc.status, message=text)
    flash(
        _(
            "Policy %(number)s is now %(state)s.",
            number=policy.number,
            state=svc.state_label(policy.state),
        )
    )
    return redirect(url_for(".policy_detail", policy_id=policy.id))


@bp.route("/policies/<int:policy_id>/renewal", methods=["POST"])
def policy_renewal(policy_id: int) -> Any:
    """Prepare the next term of an in-force policy of a renewable product."""
    _require_writer()
    policy = _get(policy_id)
    form = StepForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        renewal = svc.prepare_renewal(policy, current_user)
        db.session.commit()
    except svc.RenewalRefused as exc:
        db.session.rollback()
        return _render_detail(_get(policy_id), 409, message=str(exc))
    flash(
        _(
            "Renewal %(number)s prepared as an application for policy year %(year)s.",
            number=renewal.number,
            year=renewal.policy_year,
        )
    )
    return redirect(url_for(".policy_detail", policy_id=renewal.id))


# -- panels and timeline --------------------------------------------------------------------------


def _customer_panel(customer: Customer) -> str:
    rows = db.session.execute(
        select(Policy, Product.code, Product.name)
        .join(Product, Product.id == Policy.product_id)
        .where(Policy.customer_id == customer.id)
        .order_by(Policy.applied_on.desc(), Policy.id.desc())
        .limit(PANEL_POLICIES)
    ).all()
    summary = db.session.execute(
        select(
            func.count(Policy.id),
            func.coalesce(
                func.sum(case((Policy.state.in_(("issued", "in_force")), 1), else_=0)), 0
            ),
            func.coalesce(
                func.sum(
                    case(
                        (Policy.state.in_(("issued", "in_force")), Policy.annual_premium),
                        else_=0,
                    )
                ),
                0,
            ),
        ).where(Policy.customer_id == customer.id)
    ).one()
    return render_template(
        "insurance/policies_panel.html",
        customer=customer,
        rows=rows,
        count=summary[0],
        standing=summary[1],
        premium=svc.money(summary[2]),
        can_write=can_write(),
        list_url=list_url,
        **_helpers(),
    )


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The customer's policies."""
    if subject_type == "customer":
        return [Panel("Policies", lambda: _customer_panel(subject), "保单", 28)]
    return []


def timeline(customer: Any) -> list[TimelineEntry]:
    """A policy issued and a policy cancelled, for the customer's timeline (one query)."""
    rows = db.session.execute(
        select(WorkflowHistory.created_at, WorkflowHistory.to_state, Policy, Product.name)
        .join(
            Policy,
            (Policy.id == WorkflowHistory.subject_id)
            & (WorkflowHistory.subject_type == svc.SUBJECT),
        )
        .join(Product, Product.id == Policy.product_id)
        .where(
            Policy.customer_id == customer.id,
            WorkflowHistory.to_state.in_(("issued", "cancelled")),
        )
        .order_by(WorkflowHistory.created_at.desc())
        .limit(TIMELINE_MAX)
    ).all()
    out = []
    for at, to_state, policy, product in rows:
        link = url_for("insurance.policy_detail", policy_id=policy.id)
        if to_state == "issued":
            title = _(
                "Policy %(number)s issued: %(product)s", number=policy.number, product=product
            )
            detail = _("¥%(amount)s a year", amount=fmt_money(policy.annual_premium))
            out.append(TimelineEntry(at, "policy", title, detail, link))
        else:
            title = _("Policy %(number)s cancelled", number=policy.number)
            out.append(TimelineEntry(at, "policy", title, product, link))
    return out


# -- API ------------------------------------------------------------------------------------------


class ProductsResource(Resource):
    """Insurance products (险种). ``product_class`` is a value of the list
    ``insurance_product_class`` (the classes agents' licences cover); ``code`` is unique in the
    company. Administrators and managers change them."""

    name = "insurance_products"
    model = Product
    label, label_zh = "Insurance products", "险种"
    schema = model_schema(
        Product,
        fields={
            "code": name_field(40),
            "name": name_field(200),
            "term_months": Int(
                load_default=12, validate=ma.validate.Range(min=1, max=svc.MAX_TERM_MONTHS)
            ),
        },
    )
    choice_fields = {"product_class": svc.PRODUCT_CLASS_LIST}
    filters = ("code", "product_class", "renewable", "active", "term_months")
    sorts = (
        Sort("code", Product.code, False, False, "text"),
        Sort("newest", Product.id, True, False, "integer"),
    )
    searchable = True
    write_roles = MANAGERS

    def search(self, q: str) -> Any:
        return or_(
            Product.code.contains(q, autoescape=True), Product.name.contains(q, autoescape=True)
        )

    def _data(self, values: dict[str, Any], record: Product | None) -> svc.ProductInput:
        def value(key: str, default: Any = None) -> Any:
            if key in values:
                return values[key]
            return getattr(record, key) if record is not None else default

        return svc.ProductInput(
            code=value("code", ""),
            name=value("name", ""),
            product_class=value("product_class", ""),
            term_months=value("term_months", 12),
            renewable=value("renewable", True),
            active=value("active", True),
        )

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        found = svc.product_problems(self._data(values, record), record)
        return {k: [v] for k, v in found.items()}

    def create(self, values: dict[str, Any]) -> Any:
        return svc.save_product(self._data(values, None), user(), via="api")

    def update(self, record: Any, values: dict[str, Any]) -> None:
        svc.save_product(self._data(values, record), user(), record, via="api")


class PartySchema(ma.Schema):
    """An insured person or a beneficiary of a policy: a contact of the policyholder."""

    contact_id = Int(required=True, validate=ma.validate.Range(min=1, max=MAX_ID))
    role = Text(required=True, validate=ma.validate.OneOf(("insured", "beneficiary")))
    share = Money(
        places=2,
        allow_none=True,
        load_default=None,
        validate=ma.validate.Range(min=0, max=100, min_inclusive=False),
        metadata={
            "description": "A beneficiary's share in per cent (all or none, summing to 100)."
        },
    )


class PoliciesResource(Resource):
    """Insurance policies (保单). Created as applications; changed (``PATCH``) only while an
    application or in underwriting. ``state`` moves by workflow transitions
    (``POST /insurance_policies/{id}/transitions/{name}``): ``submit``, ``issue`` (refused with
    422 ``guard_refused`` at ``agent_id`` when the agent's licence does not allow the sale),
    ``decline`` and ``cancel`` (with a ``comment``), ``activate``, ``lapse``. ``annual_premium``
    and ``end_on`` are computed; ``parties`` lists the insured and the beneficiaries (sending it
    replaces them). Issuing creates the premium's sales order (``order_id``)."""

    name = "insurance_policies"
    model = Policy
    label, label_zh = "Insurance policies", "保单"
    schema = model_schema(
        Policy,
        dump_only=(
            "number",
            "state",
            "annual_premium",
            "end_on",
            "issued_on",
            "cancelled_on",
            "policy_year",
            "renewal_of_id",
            "order_id",
        ),
        fields={
            "applied_on": Day(allow_none=True, load_default=None),
            "notes": Text(allow_none=True, validate=ma.validate.Length(max=2000)),
            "parties": ma.fields.List(
                ma.fields.Nested(PartySchema),
                validate=ma.validate.Length(max=svc.MAX_PARTIES),
                metadata={"description": "The insured and the beneficiaries."},
            ),
        },
    )
    choice_fields = {"frequency": svc.FREQUENCY_LIST}
    filters = (
        "customer_id",
        "product_id",
        "agent_id",
        "channel_id",
        "owner_id",
        "state",
        "frequency",
        "applied_on",
        "start_on",
        "end_on",
        "issued_on",
        "policy_year",
        "renewal_of_id",
    )
    sorts = (
        Sort("newest", Policy.id, True, False, "integer"),
        Sort("end", Policy.end_on, False, False, "date"),
    )
    searchable = True
    rule_hides = True
    create_only = ("customer_id",)

    def query(self) -> Any:
        return customer_joined(Policy)

    def search(self, q: str) -> Any:
        return or_(
            Policy.number.contains(q, autoescape=True),
            Customer.name.contains(q, autoescape=True),
        )

    def _data(self, values: dict[str, Any], record: Policy | None) -> svc.PolicyInput:
        base = svc.input_of(record) if record is not None else None

        def value(key: str) -> Any:
            if key in values:
                return values[key]
            return getattr(base, key) if base is not None else None

        data = svc.PolicyInput(
            customer_id=value("customer_id"),
            product_id=value("product_id"),
            premium=value("premium"),
            start_on=value("start_on"),
            frequency=value("frequency") or "annual",
            agent_id=value("agent_id"),
            channel_id=value("channel_id"),
            owner_id=value("owner_id"),
            sum_insured=value("sum_insured"),
            applied_on=value("applied_on"),
            notes=value("notes"),
            insured=list(base.insured) if base else [],
            beneficiaries=list(base.beneficiaries) if base else [],
        )
        if "parties" in values:
            parties = values["parties"] or []
            data.insured = [p["contact_id"] for p in parties if p["role"] == "insured"]
            data.beneficiaries = [
                (p["contact_id"], p.get("share")) for p in parties if p["role"] == "beneficiary"
            ]
        return data

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        if record is None:
            from core.customers import get_visible

            if get_visible(values["customer_id"]) is None:
                return {"customer_id": ["This customer is hidden from you by the record rule."]}
        found = svc.problems(self._data(values, record), record)
        if "beneficiaries" in found or "insured" in found:
            found["parties"] = found.pop("beneficiaries", None) or found.pop("insured")
            found.pop("insured", None)
        return {k: [v] for k, v in found.items()}

    def create(self, values: dict[str, Any]) -> Any:
        return svc.create_policy(self._data(values, None), user(), via="api")

    def update(self, record: Any, values: dict[str, Any]) -> None:
        svc.update_policy(record, self._data(values, record), user(), via="api")

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        out = super().dump_many(records, ext_values)
        parties = svc.parties_of([r.id for r in records])
        for data, record in zip(out, records, strict=True):
            data["parties"] = [
                {
                    "contact_id": p.contact_id,
                    "role": p.role,
                    "share": str(p.share) if p.share is not None else None,
                }
                for p, _name in parties.get(record.id, [])
            ]
        return out


def resources() -> list[Resource]:
    return [ProductsResource(), PoliciesResource()]


# -- reports --------------------------------------------------------------------------------------


def _month_of(column: Any) -> Any:
    """SQL: ``YYYY-MM`` of a date column (a date, so no time zone is involved)."""
    return func.substr(cast(column, String), 1, 7)


def _month_range(month: str) -> tuple[str, str]:
    year, number = (int(x) for x in month.split("-"))
    first = date(year, number, 1)
    after = date(year + number // 12, number % 12 + 1, 1)
    return first.isoformat(), (after - timedelta(days=1)).isoformat()


def _this_month() -> date:
    return svc.today().replace(day=1)


def _six_months_ahead() -> date:
    return svc.add_months(_this_month(), 6) - timedelta(days=1)


def _twelve_months_ago() -> date:
    return svc.add_months(_this_month(), -11)


def _product_choices() -> list[tuple[Any, str]]:
    return [(str(i), name) for i, name in svc.product_options_all()]


def _dim_text(choices: Sequence[tuple[str, str, str]], value: str) -> tuple[str, str]:
    for key, label, zh in choices:
        if key == value:
            return label, zh
    return value, value


def _common_filters(stmt: Any, p: Mapping[str, Any], column: Any) -> Any:
    if p.get("start"):
        stmt = stmt.where(column >= p["start"])
    if p.get("end"):
        stmt = stmt.where(column <= p["end"])
    if p.get("product"):
        stmt = stmt.where(Policy.product_id == int(p["product"]))
    if p.get("channel"):
        stmt = stmt.where(Policy.channel_id == p["channel"])
    return stmt


#: States of the renewals-due report, in stack order.
DUE_STATES = ("issued", "in_force", "renewed", "lapsed")


def _due_query(p: Mapping[str, Any]) -> Any:
    month = _month_of(Policy.end_on).label("value")
    stmt = (
        select(
            month,
            Policy.state,
            func.count(Policy.id).label("policies"),
            func.coalesce(func.sum(Policy.annual_premium), 0).label("premium"),
        )
        .join(Customer, Customer.id == Policy.customer_id)
        .where(Policy.state.in_(DUE_STATES))
        .group_by(month, Policy.state)
    )
    return _common_filters(stmt, p, Policy.end_on)


def _due_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = found.setdefault(r["value"], {"value": r["value"], "label": r["value"]})
        row[r["state"]] = row.get(r["state"], 0) + int(r["policies"])
        row["premium"] = svc.money(row.get("premium")) + svc.money(r["premium"])
    out = []
    for m in months(p) or sorted(found):
        row = found.get(m, {"value": m, "label": m})
        for state in DUE_STATES:
            row.setdefault(state, 0)
        row["total"] = sum(row[s] for s in DUE_STATES)
        row.setdefault("premium", Decimal(0))
        out.append(row)
    return out


def _due_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    start, end = _month_range(row["value"])
    states = [series] if series in DUE_STATES else list(DUE_STATES)
    return list_url(
        end_from=start, end_to=end, state=states, product=p.get("product"), channel=p.get("channel")
    )


RENEWALS_DUE = Report(
    name="insurance_renewals_due",
    label="Renewals due",
    label_zh="续保到期",
    description="Issued policies by the month their term ends, stacked by where they stand: "
    "issued, in force (renewal still open), renewed, lapsed; with their annual premium. Default: "
    "this month and the five after it.",
    description_zh="已承保保单按保险期间届满月份统计，按状态堆叠：已承保、有效（待续保）、已续保、"
    "已失效，并列出年缴保费。默认本月及其后五个月。",
    params=(
        Param("start", "Ends from", "届满日期起", "date", default=_this_month),
        Param("end", "Ends to", "届满日期止", "date", default=_six_months_ahead),
        Param("product", "Product", "险种", choices=_product_choices),
        Param("channel", "Channel", "渠道", "channel"),
    ),
    query=_due_query,
    shape=_due_shape,
    columns=(
        Column("label", "Month", "月份", "text"),
        *(
            Column(
                s,
                svc.POLICY_WORKFLOW.state(s).label,
                svc.POLICY_WORKFLOW.state(s).label_zh,
                color=STATE_COLORS[s],
            )
            for s in DUE_STATES
        ),
        Column("total", "Policies", "保单数"),
        Column("premium", "Annual premium", "年缴保费", "money"),
    ),
    series=DUE_STATES,
    chart="stacked",
    drill=_due_drill,
    group="insurance",
    order=210,
)


RATE_DIMENSIONS = (("product", "Product", "险种"), ("channel", "Channel", "渠道"))


def _rate_group(dim: str) -> tuple[Any, Any, list[tuple[Any, Any]]]:
    if dim == "channel":
        return Policy.channel_id, Channel.name, [(Channel, Channel.id == Policy.channel_id)]
    label = Product.code + " " + Product.name
    return Policy.product_id, label, [(Product, Product.id == Policy.product_id)]


def _rate_query(p: Mapping[str, Any]) -> Any:
    value, name, joins = _rate_group(p.get("dimension") or "product")
    stmt = (
        select(
            value.label("value"),
            name.label("name"),
            func.count(Policy.id).label("ended"),
            func.coalesce(func.sum(case((Policy.state == "renewed", 1), else_=0)), 0).label(
                "renewed"
            ),
            func.coalesce(func.sum(case((Policy.state == "lapsed", 1), else_=0)), 0).label(
                "lapsed"
            ),
        )
        .select_from(Policy)
        .join(Customer, Customer.id == Policy.customer_id)
        .where(Policy.state.in_(DUE_STATES))
    )
    for target, on in joins:
        stmt = stmt.outerjoin(target, on)
    stmt = stmt.group_by(value, name)
    return _common_filters(stmt, p, Policy.end_on)


def _rate_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    none = pick("No channel", "无渠道")
    out = []
    for r in rows:
        ended, renewed, lapsed = int(r["ended"]), int(r["renewed"]), int(r["lapsed"])
        out.append(
            {
                "value": r["value"],
                "label": r["name"] or none,
                "ended": ended,
                "renewed": renewed,
                "lapsed": lapsed,
                "pending": ended - renewed - lapsed,
                "rate": renewed / ended if ended else None,
            }
        )
    return sorted(out, key=lambda r: (-r["ended"], str(r["label"])))


def _rate_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    dim = p.get("dimension") or "product"
    states = {"renewed": ["renewed"], "lapsed": ["lapsed"], "pending": ["issued", "in_force"]}
    query: dict[str, Any] = {
        "end_from": p["start"].isoformat() if p.get("start") else None,
        "end_to": p["end"].isoformat() if p.get("end") else None,
        "state": states.get(series or "", list(DUE_STATES)),
        "product": p.get("product"),
        "channel": p.get("channel"),
    }
    if dim == "channel":
        query["channel"] = row.get("value") if row.get("value") is not None else "none"
    else:
        query["product"] = row.get("value")
    return list_url(**query)


def _yesterday() -> date:
    return svc.today() - timedelta(days=1)


RENEWAL_RATE = Report(
    name="insurance_renewal_rate",
    label="Renewal rate",
    label_zh="续保率",
    description="Of the issued policies whose term ended in the chosen dates (cancelled ones left "
    "out): how many were renewed, lapsed or are still pending (in force, within the 30 days of "
    "grace), and the renewal rate (renewed ÷ ended), by product or by channel.",
    description_zh="在所选日期内保险期间届满的已承保保单（不含已退保）：已续保、已失效、待续保"
    "（仍有效，处于30天宽限期内）各多少，续保率（已续保 ÷ 届满），按险种或渠道统计。",
    params=(
        Param("dimension", "By", "维度", choices=RATE_DIMENSIONS, default="product"),
        Param("start", "Ended from", "届满日期起", "date", default=_twelve_months_ago),
        Param("end", "Ended to", "届满日期止", "date", default=_yesterday),
        Param("product", "Product", "险种", choices=_product_choices),
        Param("channel", "Channel", "渠道", "channel"),
    ),
    query=_rate_query,
    shape=_rate_shape,
    columns=lambda p: (
        Column("label", *_dim_text(RATE_DIMENSIONS, p.get("dimension") or "product"), "text"),
        Column("ended", "Ended", "届满"),
        Column("renewed", "Renewed", "已续保", color=STATE_COLORS["renewed"]),
        Column("pending", "Pending", "待续保", color=STATE_COLORS["in_force"]),
        Column("lapsed", "Lapsed", "已失效", color=STATE_COLORS["lapsed"]),
        Column("rate", "Renewal rate", "续保率", "percent"),
    ),
    series=("renewed", "pending", "lapsed"),
    chart="hstacked",
    drill=_rate_drill,
    group="insurance",
    order=220,
)


MIX_DIMENSIONS = (("channel_type", "Channel type", "渠道类型"), ("channel", "Channel", "渠道"))
MIX_MEASURES = (("premium", "Annual premium", "年缴保费"), ("policies", "Policies", "保单数"))


def _mix_keys(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(series key, label)`` of the report's columns: the channel types of the company's
    channels, or the channels that wrote policies (read once per request)."""
    dim = p.get("dimension") or "channel_type"
    cache = g.setdefault("_insurance_mix_keys", {})
    key = (current_company_id(), dim)
    if key not in cache:
        if dim == "channel":
            rows = db.session.execute(
                select(Channel.id, Channel.name)
                .where(
                    Channel.id.in_(select(Policy.channel_id).where(Policy.issued_on.is_not(None)))
                )
                .order_by(Channel.name, Channel.id)
            ).all()
            none = ("c0", pick("No channel", "无渠道"))
            cache[key] = [(f"c{r.id}", r.name) for r in rows] + [none]
        else:
            kinds = db.session.scalars(select(Channel.type).distinct().order_by(Channel.type)).all()
            cache[key] = [(f"t_{k}", _choice_label("channel_type", k)) for k in kinds] + [
                ("t_", pick("No channel", "无渠道"))
            ]
    return cache[key]


def _mix_query(p: Mapping[str, Any]) -> Any:
    dim = p.get("dimension") or "channel_type"
    month = _month_of(Policy.issued_on).label("value")
    group = Channel.type if dim == "channel_type" else Policy.channel_id
    stmt = (
        select(
            month,
            group.label("key"),
            func.count(Policy.id).label("policies"),
            func.coalesce(func.sum(Policy.annual_premium), 0).label("premium"),
        )
        .select_from(Policy)
        .join(Customer, Customer.id == Policy.customer_id)
        .outerjoin(Channel, Channel.id == Policy.channel_id)
        .where(Policy.issued_on.is_not(None), Policy.state != "cancelled")
        .group_by(month, group)
    )
    return _common_filters(stmt, p, Policy.issued_on)


def _mix_series_key(dim: str, raw: Any) -> str:
    if dim == "channel":
        return f"c{raw or 0}"
    return f"t_{raw or ''}"


def _mix_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = p.get("dimension") or "channel_type"
    measure = p.get("measure") or "premium"
    keys = [k for k, _n in _mix_keys(p)]
    zero: Any = Decimal(0) if measure == "premium" else 0
    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = found.setdefault(r["value"], {"value": r["value"], "label": r["value"]})
        key = _mix_series_key(dim, r["key"])
        amount = svc.money(r["premium"]) if measure == "premium" else int(r["policies"])
        row[key] = row.get(key, zero) + amount
    out = []
    for m in months(p) or sorted(found):
        row = found.get(m, {"value": m, "label": m})
        for key in keys:
            row.setdefault(key, zero)
        row["total"] = sum((row[k] for k in keys), zero)
        out.append(row)
    return out


def _mix_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    fmt = "money" if (p.get("measure") or "premium") == "premium" else "int"
    return (
        Column("label", "Month", "月份", "text"),
        *(
            Column(key, name, name, fmt, color=PALETTE[n % len(PALETTE)])
            for n, (key, name) in enumerate(_mix_keys(p))
        ),
        Column("total", "Total", "合计", fmt),
    )


def _mix_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    start, end = _month_range(row["value"])
    query: dict[str, Any] = {
        "issued_from": start,
        "issued_to": end,
        "state": [s for s in svc.WRITTEN],
        "product": p.get("product"),
        "channel": p.get("channel"),
    }
    if series and series.startswith("c") and series[1:].isdigit():
        query["channel"] = series[1:] if series != "c0" else "none"
    elif series and series.startswith("t_"):
        if series == "t_":
            query["channel"] = "none"
        else:
            query["channel_type"] = series[2:]
    return list_url(**query)


CHANNEL_MIX = Report(
    name="insurance_channel_mix",
    label="Channel mix",
    label_zh="渠道结构",
    description="Policies issued per month (cancelled ones left out), stacked by the type of "
    "channel that sold them -- direct staff, agents, brokers, bancassurance, internet, mobile -- "
    "or by channel: their annual premium, or how many.",
    description_zh="每月承保的保单（不含已退保），按销售渠道类型（直销人员、代理人、经纪人、银行"
    "保险、互联网、移动）或按渠道堆叠：年缴保费或保单数。",
    params=(
        Param("dimension", "By", "维度", choices=MIX_DIMENSIONS, default="channel_type"),
        Param("measure", "Measure", "指标", choices=MIX_MEASURES, default="premium"),
        Param("start", "Issued from", "承保日期起", "date", default=_twelve_months_ago),
        Param("end", "Issued to", "承保日期止", "date", default=svc.today),
        Param("product", "Product", "险种", choices=_product_choices),
    ),
    query=_mix_query,
    shape=_mix_shape,
    columns=_mix_columns,
    series=lambda p: [k for k, _n in _mix_keys(p)],
    chart="stacked",
    drill=_mix_drill,
    group="insurance",
    order=230,
)


def reports() -> list[Report]:
    return [RENEWALS_DUE, RENEWAL_RATE, CHANNEL_MIX]


__all__ = ["PoliciesResource", "ProductsResource", "panels", "policy_page", "reports", "timeline"]
