"""Customer pages: list with search, filters and sorts, create, edit, detail, CSV/XLSX export."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, InputRequired, Length, Optional, ValidationError

from core import access, audit, classify, customers, exporter, timeline
from core import fields as ext
from core.choices import options
from core.db import db
from core.models import Customer
from core.tenancy import company_scope, current_company_id
from core.web.helpers import keep_personal_data, require_member, role

bp = Blueprint("customers", __name__, url_prefix="/customers")

CORE_COLUMNS = ("id", "code", "name", "kind", "phone", "email", "region", "address", "status")
NAME_COLUMNS = ("owner", "channel", "tags")
MAX_TAG = 60


def _none_or_int(value: Any) -> int | None:
    if value in (None, "", "None"):
        return None
    return int(value)


class TextForm(FlaskForm):
    """A form whose text fields refuse the NUL character (PostgreSQL cannot store it)."""

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        for field in self:
            if isinstance(field.data, str) and "\x00" in field.data:
                field.errors = [*field.errors, _("Remove the NUL character.")]
                ok = False
        return ok


class CustomerForm(TextForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    code = StringField(_l("Code"), validators=[Optional(), Length(max=40)])
    kind = SelectField(_l("Kind"), validators=[InputRequired()])
    status = SelectField(_l("Status"), validators=[Optional()])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Email(), Length(max=254)])
    region = StringField(_l("Region"), validators=[Optional(), Length(max=80)])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=300)])
    owner_id = SelectField(_l("Owner"), coerce=_none_or_int, validate_choice=True)
    channel_id = SelectField(_l("Channel"), coerce=_none_or_int, validate_choice=True)
    tags = StringField(
        _l("Tags"),
        validators=[Optional(), Length(max=600)],
        description=_l("Separate tags with commas; new tags are created."),
    )
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=10000)])

    def validate_tags(self, field: StringField) -> None:
        for name in customers.split_tags(field.data):
            if len(name) > MAX_TAG:
                raise ValidationError(_("A tag has at most %(n)d characters.", n=MAX_TAG))


def customer_form(fields: list[ext.Field], **kwargs: object) -> CustomerForm:
    """The customer form with the company's extension fields appended."""
    form_class = type("CustomerExtForm", (CustomerForm,), ext.form_fields(fields))
    form = form_class(**kwargs)
    form.kind.choices = [SelectChoice(value, label) for value, label in options("customer_kind")]
    form.status.choices = [
        SelectChoice(value, label) for value, label in options("customer_status")
    ]
    form.owner_id.choices = [SelectChoice(None, "—")] + [
        SelectChoice(uid, name) for uid, name in customers.members()
    ]
    form.channel_id.choices = [SelectChoice(None, "—")] + [
        SelectChoice(cid, name) for cid, name in customers.channel_options()
    ]
    form.extension_keys = [f.key for f in fields]
    return form


def require_writer() -> None:
    """Refuse roles that only read (viewer)."""
    if role() in (None, "viewer"):
        abort(403, _("Your role (%(role)s) can read customers but not change them.", role=role()))


def visible_or_refuse(customer_id: int) -> Customer:
    """The customer, or 404 (no such customer) / 403 naming the record rule that hides it."""
    customer = customers.get_visible(customer_id)
    if customer is not None:
        return customer
    if customers.exists_hidden(customer_id):
        abort(
            403,
            _(
                "This customer is not assigned to you or your team "
                "(record rule “%(rule)s” of your role %(role)s).",
                rule=access.current_rule(),
                role=role(),
            ),
        )
    abort(404)


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


@bp.app_template_global("phone")
def _phone(value: str | None) -> str:
    return access.phone(value)


@bp.route("/")
def index() -> tuple[str, int]:
    size = current_app.config["LIST_PAGE_SIZE"]
    result = customers.page(request.args, size, current_app.config["COUNT_CAP"])
    html = render_template(
        "customers/index.html",
        page=result,
        sorts=[
            ("newest", _("Newest")),
            ("name", _("Name")),
            ("last_contact", _("Last contact")),
            ("revenue", _("Revenue")),
        ],
        filters=[
            ("kind", _("Kind"), options("customer_kind")),
            ("status", _("Status"), options("customer_status")),
            ("value_tier", _("Value tier"), options("value_tier")),
            ("loyalty", _("Loyalty"), options("loyalty")),
            ("lifecycle_stage", _("Lifecycle stage"), options("lifecycle_stage")),
            ("owner_id", _("Owner"), _visible_owners()),
            ("channel_id", _("Channel"), customers.channel_options()),
            ("tag", _("Tag"), customers.tag_options()),
        ],
        display=ext.display,
        can_write=role() not in (None, "viewer"),
    )
    return html, 400 if result.errors else 200


def _visible_owners() -> list[tuple[int, str]]:
    """Members whose customers the request may see (the owner filter's choices)."""
    owners = access.visible_owner_ids()
    return [m for m in customers.members() if owners is None or m[0] in owners]


@bp.route("/new", methods=["GET", "POST"])
def create() -> object:
    require_writer()
    fields = customer_fields()
    form = customer_form(
        fields, data={**ext.defaults(fields), "owner_id": current_user.id, "status": "potential"}
    )
    if form.validate_on_submit():
        customer = Customer()
        _apply(form, customer, fields)
        audit.record("create", "customer", customer.id)
        db.session.commit()
        flash(_("Customer saved."))
        return _after_save(customer)
    return render_template("customers/form.html", form=form, customer=None), (
        422 if form.errors else 200
    )


def customer_fields() -> list[ext.Field]:
    return customers.extension_fields()


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
def edit(customer_id: int) -> object:
    require_writer()
    customer = visible_or_refuse(customer_id)
    fields = customer_fields()
    values = ext.load(fields, [customer.id])[customer.id]
    tags = ", ".join(customers.tags_of([customer.id]).get(customer.id, []))
    form = customer_form(
        fields,
        obj=customer,
        data={**values, "tags": tags} if request.method == "GET" else None,
    )
    kept = _keep_personal_data(form, customer, fields, values)
    if form.validate_on_submit():
        _apply(form, customer, fields)
        audit.record("update", "customer", customer.id)
        db.session.commit()
        flash(_("Customer saved."))
        return _after_save(customer)
    for name in kept:
        form[name].data = None  # the form shown again must not reveal what it kept
    return render_template("customers/form.html", form=form, customer=customer), (
        422 if form.errors else 200
    )


def _keep_personal_data(
    form: CustomerForm, customer: Customer, fields: list[ext.Field], values: dict[str, Any]
) -> list[str]:
    """:func:`~core.web.helpers.keep_personal_data` for the phone, the address and the
    ``pii`` plugin fields of ``customer``."""
    if access.has_permission("pii"):
        return []
    stored = {
        "phone": (customer.phone, access.mask_phone(customer.phone)),
        "address": (customer.address, access.mask_address(customer.address)),
    }
    for f in fields:
        if f.pii:
            value = values.get(f.key)
            stored[f.key] = (value, "" if value is None else str(ext.masked(f, value)))
    return keep_personal_data(form, stored)


def _after_save(customer: Customer) -> Any:
    """To the customer's page; to the list when the owner chosen takes it out of sight."""
    if not access.can_see(customer):
        flash(_("The customer is now assigned outside your team; you no longer see it."))
        return redirect(url_for(".index"))
    return redirect(url_for(".detail", customer_id=customer.id))


def _apply(form: CustomerForm, customer: Customer, fields: list[ext.Field]) -> None:
    for name in ("name", "code", "kind", "status", "phone", "email", "region", "address", "notes"):
        value = getattr(form, name).data
        setattr(customer, name, value or None if name not in ("name", "kind", "status") else value)
    customer.owner_id = form.owner_id.data
    customer.channel_id = form.channel_id.data
    db.session.add(customer)
    db.session.flush()
    ext.save(fields, customer.id, ext.form_values(fields, form))
    customers.set_tags(customer, customers.split_tags(form.tags.data))
    # Value tier, loyalty and lifecycle stage follow the company's rules (core/classify.py).
    with access.all_customers():  # system work: the rule must not hide the row just saved
        classify.classify_customers([customer.id])


def _before_arg() -> datetime | None:
    raw = request.args.get("before", "")
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        abort(400, _("before: must be a moment like 2026-11-25T08:00:00+00:00"))
    if moment.tzinfo is None:
        abort(400, _("before: must be a moment like 2026-11-25T08:00:00+00:00"))
    return moment


@bp.route("/<int:customer_id>")
def detail(customer_id: int) -> str:
    customer = visible_or_refuse(customer_id)
    fields = customer_fields()
    values = ext.load(fields, [customer.id])[customer.id]
    owners, channels, tags = customers.related_names([customer])
    history = timeline.customer_timeline(customer, before=_before_arg())
    contacted = [customer.last_contact_at, *timeline.latest_interaction([customer.id]).values()]
    return render_template(
        "customers/detail.html",
        customer=customer,
        fields=fields,
        values=values,
        display=ext.display,
        owner=owners.get(customer.owner_id),
        channel=channels.get(customer.channel_id),
        tags=tags.get(customer.id, []),
        timeline=history,
        last_contact=max((m for m in contacted if m is not None), default=None),
        panels=record_panels(customer),
        can_write=role() not in (None, "viewer"),
        is_admin=role() == "admin",
        subject_type="customer",
        subject_id=customer.id,
    )


def record_panels(customer: Customer) -> list[Any]:
    """The enabled plugins' panels for ``customer``, by order then title."""
    from core.web.panels import record_panels as panels_of

    return panels_of("customer", customer)


@bp.route("/export.<any(csv, xlsx):fmt>", endpoint="export")
def export(fmt: str) -> Response:
    """All customers matching the list's filters, as CSV (UTF-8 with BOM) or XLSX, streamed.

    Needs the ``export`` permission; audited with its filters; phones stay masked without
    ``pii``; the record rule narrows the rows as on the list."""
    _stmt, errors, fields = customers.query(request.args)
    if errors:
        return Response(
            "\n".join(f"{k}: {v}" for k, v in errors.items()), status=400, mimetype="text/plain"
        )
    exporter.authorize("customer", request.args)
    company_id = current_company_id()
    args = request.args.copy()
    owners = access.visible_owner_ids()
    pii = access.has_permission("pii")

    def rows() -> Iterator[list[Any]]:
        with company_scope(company_id), access.owners_scope(owners):
            yield from _export_rows(fields, args, pii)

    header = [*CORE_COLUMNS, *NAME_COLUMNS, *[f.key for f in fields]]
    return exporter.download(fmt, "customers", header, rows, title=_("Customers"))


def _export_rows(fields: list[ext.Field], args: MultiDict, pii: bool) -> Iterator[list[Any]]:
    """Rows of the customers matching ``args``, 500 at a time (names looked up per batch)."""
    batch: list[tuple[Customer, dict[str, Any]]] = []
    for item in customers.iterate(args):
        batch.append(item)
        if len(batch) >= 500:
            yield from _export_batch(batch, fields, pii)
            batch = []
    yield from _export_batch(batch, fields, pii)


def _export_batch(
    batch: list[tuple[Customer, dict[str, Any]]], fields: list[ext.Field], pii: bool
) -> Iterator[list[Any]]:
    if not batch:
        return
    owners, channels, tags = customers.related_names([c for c, _v in batch])
    for customer, values in batch:
        core = [getattr(customer, c) for c in CORE_COLUMNS]
        if not pii:
            core[CORE_COLUMNS.index("phone")] = access.mask_phone(customer.phone)
            core[CORE_COLUMNS.index("address")] = access.mask(customer.address, "address")
        names = [
            owners.get(customer.owner_id, ""),
            channels.get(customer.channel_id, ""),
            "; ".join(tags.get(customer.id, [])),
        ]
        yield core + names + [ext.csv_value(f, values.get(f.key), pii=pii) for f in fields]
