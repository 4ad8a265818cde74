"""Customer pages: list with search and filters, create, edit, detail, CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Email, InputRequired, Length, Optional

from core import audit, customers
from core import fields as ext
from core.choices import options
from core.db import db
from core.models import Customer
from core.tenancy import company_scope, current_company_id

bp = Blueprint("customers", __name__, url_prefix="/customers")

CORE_COLUMNS = ("id", "code", "name", "kind", "phone", "email", "region", "address", "status")


class CustomerForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    code = StringField(_l("Code"), validators=[Optional(), Length(max=40)])
    kind = SelectField(_l("Kind"), validators=[InputRequired()])
    phone = StringField(_l("Phone"), validators=[Optional(), Length(max=40)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Email(), Length(max=254)])
    region = StringField(_l("Region"), validators=[Optional(), Length(max=80)])
    address = StringField(_l("Address"), validators=[Optional(), Length(max=300)])
    notes = TextAreaField(_l("Notes"), validators=[Optional()])


def customer_form(fields: list[ext.Field], **kwargs: object) -> CustomerForm:
    """The customer form with the company's extension fields appended."""
    form_class = type("CustomerExtForm", (CustomerForm,), ext.form_fields(fields))
    form = form_class(**kwargs)
    form.kind.choices = [SelectChoice(value, label) for value, label in options("customer_kind")]
    form.extension_keys = [f.key for f in fields]
    return form


def require_company() -> None:
    from core.tenancy import current_company_id

    if current_company_id() is None:
        abort(403, _("Choose a company first."))


@bp.before_request
@login_required
def _guard() -> None:
    require_company()


@bp.route("/")
def index() -> tuple[str, int]:
    size = current_app.config["LIST_PAGE_SIZE"]
    result = customers.page(request.args, size, current_app.config["COUNT_CAP"])
    html = render_template(
        "customers/index.html", page=result, kinds=options("customer_kind"), display=ext.display
    )
    return html, 400 if result.errors else 200


@bp.route("/new", methods=["GET", "POST"])
def create() -> object:
    fields = customers.extension_fields()
    form = customer_form(fields, data=ext.defaults(fields))
    if form.validate_on_submit():
        customer = Customer()
        _apply(form, customer, fields)
        audit.record("create", "customer", customer.id)
        db.session.commit()
        flash(_("Customer saved."))
        return redirect(url_for(".detail", customer_id=customer.id))
    return render_template("customers/form.html", form=form, customer=None), (
        422 if form.errors else 200
    )


@bp.route("/<int:customer_id>/edit", methods=["GET", "POST"])
def edit(customer_id: int) -> object:
    customer = db.get_or_404(Customer, customer_id)
    fields = customers.extension_fields()
    values = ext.load(fields, [customer.id])[customer.id]
    form = customer_form(fields, obj=customer, data=values if request.method == "GET" else None)
    if form.validate_on_submit():
        _apply(form, customer, fields)
        audit.record("update", "customer", customer.id)
        db.session.commit()
        flash(_("Customer saved."))
        return redirect(url_for(".detail", customer_id=customer.id))
    return render_template("customers/form.html", form=form, customer=customer), (
        422 if form.errors else 200
    )


def _apply(form: CustomerForm, customer: Customer, fields: list[ext.Field]) -> None:
    for name in ("name", "code", "kind", "phone", "email", "region", "address", "notes"):
        value = getattr(form, name).data
        setattr(customer, name, value or None if name != "name" else value)
    customer.kind = form.kind.data
    db.session.add(customer)
    db.session.flush()
    values = {}
    for f in fields:
        value = form[f.key].data
        values[f.key] = None if value == "" else value
    ext.save(fields, customer.id, values)


@bp.route("/<int:customer_id>")
def detail(customer_id: int) -> str:
    customer = db.get_or_404(Customer, customer_id)
    fields = customers.extension_fields()
    values = ext.load(fields, [customer.id])[customer.id]
    return render_template(
        "customers/detail.html",
        customer=customer,
        fields=fields,
        values=values,
        display=ext.display,
    )


@bp.route("/export.csv")
def export_csv() -> Response:
    """All customers matching the list's filters, as UTF-8 CSV (with BOM, for Excel)."""
    _stmt, errors, fields = customers.query(request.args)
    if errors:
        return Response(
            "\n".join(f"{k}: {v}" for k, v in errors.items()), status=400, mimetype="text/plain"
        )

    company_id = current_company_id()
    args = request.args.copy()

    def rows() -> Iterator[str]:
        with company_scope(company_id):
            yield from _csv_lines(fields, args)

    audit.record("export", "customer", None, {"filters": args.to_dict(flat=False)})
    db.session.commit()
    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=customers.csv"},
    )


def _csv_lines(fields: list[ext.Field], args: MultiDict) -> Iterator[str]:
    """CSV lines of the customers matching ``args`` (a streaming response's body)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*CORE_COLUMNS, *[f.key for f in fields]])
    yield "\ufeff" + buffer.getvalue()
    for customer, values in customers.iterate(args):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(
            [getattr(customer, c) if getattr(customer, c) is not None else "" for c in CORE_COLUMNS]
            + [ext.csv_value(f, values.get(f.key)) for f in fields]
        )
        yield buffer.getvalue()
