"""Channel pages (渠道): the tree and what each channel brings, forms, claims, conflicts.

The queries live in :mod:`core.channels`. Admins and managers keep channels and their claims;
every other role reads them. A refused form re-renders with the message at the field (422) and
writes nothing.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import (
    Blueprint,
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
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DecimalField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, Optional, ValidationError

from core import audit, channels
from core import fields as ext
from core.choices import options
from core.db import db
from core.models import Channel, ChannelClaim, Customer
from core.tenancy import company_scope, current_company_id
from core.web.helpers import require_member
from core.web.panels import record_panels

bp = Blueprint("channels", __name__, url_prefix="/channels")

WRITERS = ("admin", "manager")
STATUS_LABELS = {
    "active": _l("Active"),
    "suspended": _l("Suspended"),
    "terminated": _l("Terminated"),
}
#: Customers shown per page on a channel's page.
CUSTOMERS_SHOWN = 20
#: Largest credit limit a Numeric(14, 2) column holds.
MAX_CREDIT = Decimal("999999999999.99")


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def can_write() -> bool:
    """Admins and managers keep the channels and their claims; everyone else reads them."""
    member = g.get("membership")
    return member is not None and member.role in WRITERS


def _require_writer() -> None:
    if not can_write():
        abort(403, _("Only administrators and managers can change channels and their claims."))


# -- forms --------------------------------------------------------------------------------------


class Amount:
    """A finite decimal with at most ``places`` decimals between ``low`` and ``high``.

    (WTForms' ``NumberRange`` cannot compare ``NaN``; ``Decimal("NaN")`` is what a form posting
    "nan" parses to.)
    """

    def __init__(self, low: Decimal, high: Decimal, places: int = 2) -> None:
        self.low, self.high, self.places = low, high, places

    def __call__(self, form: Any, field: Any) -> None:
        value = field.data
        if value is None:
            return
        if not value.is_finite():
            raise ValidationError(_("Enter a number."))
        if value.as_tuple().exponent < -self.places:
            raise ValidationError(_("At most %(n)s decimal places.", n=self.places))
        if not self.low <= value <= self.high:
            raise ValidationError(
                _("Enter a number from %(low)s to %(high)s.", low=self.low, high=self.high)
            )


class ChannelForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    code = StringField(_l("Code"), validators=[Optional(), Length(max=40)])
    type = SelectField(_l("Type"), validators=[InputRequired()])
    parent_id = SelectField(_l("Parent channel"), validate_choice=False)
    territory = StringField(_l("Territory"), validators=[Optional(), Length(max=120)])
    commission_rate = DecimalField(
        _l("Commission rate (%)"),
        places=2,
        validators=[Optional(), Amount(Decimal(0), Decimal(100))],
    )
    credit_limit = DecimalField(
        _l("Credit limit (¥)"),
        places=2,
        validators=[Optional(), Amount(Decimal(0), MAX_CREDIT)],
    )
    status = SelectField(_l("Status"), validators=[InputRequired()])

    #: The channel being edited (``None`` for a new one); set by :func:`channel_form`.
    channel_id: int | None = None

    def validate_parent_id(self, field: Any) -> None:
        raw = (field.data or "").strip()
        if not raw:
            return
        parent_id = channels.int_id(raw)
        problem = (
            "missing" if parent_id is None else channels.parent_error(self.channel_id, parent_id)
        )
        if problem == "missing":
            raise ValidationError(_("Choose a channel of this company."))
        if problem == "cycle":
            raise ValidationError(
                _("A channel cannot sit under itself or under one of its own sub-channels.")
            )


class ClaimForm(FlaskForm):
    customer = StringField(
        _l("Customer (code or number)"), validators=[InputRequired(), Length(max=40)]
    )
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])


def channel_form(channel: Channel | None, fields: list[ext.Field], **kwargs: Any) -> ChannelForm:
    """The form with the company's channel types, its extension fields and the parents
    ``channel`` may take (itself and its sub-channels left out, in tree order)."""
    form_class = type("ChannelExtForm", (ChannelForm,), ext.form_fields(fields))
    form = form_class(obj=channel, **kwargs)
    form.channel_id = channel.id if channel else None
    types = options("channel_type")
    if channel is not None and channel.type not in {v for v, _label in types}:
        types.append((channel.type, channel.type))  # a type of a plugin disabled since
    form.type.choices = [SelectChoice(v, label) for v, label in types]
    form.parent_id.choices = [SelectChoice("", _("(none: a top-level channel)"))] + [
        SelectChoice(str(cid), "\u3000" * depth + name)
        for cid, name, depth in channels.tree_options(exclude=channel.id if channel else None)
    ]
    if request.method == "GET":
        form.parent_id.data = str(channel.parent_id or "") if channel else ""
    form.status.choices = [SelectChoice(k, str(v)) for k, v in STATUS_LABELS.items()]
    form.extension_keys = [f.key for f in fields]
    return form


def _apply(form: ChannelForm, channel: Channel, fields: list[ext.Field]) -> None:
    channel.name = form.name.data.strip()
    channel.code = (form.code.data or "").strip() or None
    channel.type = form.type.data
    channel.parent_id = channels.int_id(form.parent_id.data or "")
    channel.territory = (form.territory.data or "").strip() or None
    channel.commission_rate = form.commission_rate.data
    channel.credit_limit = form.credit_limit.data
    channel.status = form.status.data
    db.session.add(channel)
    db.session.flush()
    ext.save(fields, channel.id, ext.form_values(fields, form))


# -- pages --------------------------------------------------------------------------------------


@bp.route("/")
def index() -> Any:
    page = channels.channel_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    html = render_template(
        "channels/index.html",
        page=page,
        types=options("channel_type"),
        status_labels=STATUS_LABELS,
        can_write=can_write(),
        display=ext.display,
    )
    return html, 400 if page.errors else 200


EXPORT_COLUMNS = (
    "id",
    "code",
    "name",
    "type",
    "parent",
    "depth",
    "territory",
    "status",
    "commission_rate",
    "credit_limit",
    "customers",
    "revenue",
    "network_customers",
    "network_revenue",
    "conflicts",
)


@bp.route("/export.<any(csv, xlsx):fmt>")
def export(fmt: str) -> Any:
    """The channel tree matching the list's filters, with what each channel brings, as CSV or
    XLSX (500 channels per batch); needs the ``export`` permission and is audited."""
    from core import exporter

    page = channels.channel_page(request.args, 1, 1)
    if page.errors:
        return (
            "\n".join(f"{k}: {v}" for k, v in page.errors.items()),
            400,
            {"Content-Type": "text/plain"},
        )
    exporter.authorize("channel", request.args)
    args, fields = request.args.copy(), page.fields
    cap, company_id = current_app.config["COUNT_CAP"], current_company_id()

    def rows() -> Any:
        with company_scope(company_id):
            yield from _export_rows(args, fields, cap)

    header = [*EXPORT_COLUMNS, *[f.key for f in fields]]
    return exporter.download(fmt, "channels", header, rows, title=_("Channels"))


def _export_rows(args: Any, fields: list[ext.Field], cap: int) -> Any:
    """Rows of the channel export, 500 channels (five queries) at a time."""
    after = None
    while True:
        if after is not None:
            args["after"] = str(after)
        batch = channels.channel_page(args, 500, cap)
        for node in batch.rows:
            c, t = node.channel, node.totals
            yield [
                c.id,
                c.code,
                c.name,
                c.type,
                node.parent_name or "",
                node.depth,
                c.territory,
                c.status,
                c.commission_rate,
                c.credit_limit,
                t.customers,
                t.revenue,
                t.total_customers,
                t.total_revenue,
                node.conflicts,
                *[ext.csv_value(f, node.values.get(f.key)) for f in fields],
            ]
        if batch.next_after is None:
            return
        after = batch.next_after
        db.session.expunge_all()


@bp.route("/conflicts")
def conflicts() -> Any:
    page = channels.conflict_page(
        request.args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"]
    )
    focus = channels.int_id(request.args.get("channel"))
    channel = db.session.get(Channel, focus) if focus else None
    html = render_template(
        "channels/conflicts.html", page=page, channel=channel, status_labels=STATUS_LABELS
    )
    return html, 400 if page.errors else 200


@bp.route("/new", methods=["GET", "POST"])
def create() -> Any:
    _require_writer()
    fields = channels.extension_fields()
    form = channel_form(
        None, fields, data=ext.defaults(fields) if request.method == "GET" else None
    )
    if form.validate_on_submit():
        channel = Channel()
        _apply(form, channel, fields)
        audit.record("create", "channel", channel.id)
        db.session.commit()
        flash(_("Channel saved."))
        return redirect(url_for(".detail", channel_id=channel.id))
    return render_template("channels/form.html", form=form, channel=None), (
        422 if form.errors else 200
    )


@bp.route("/<int:channel_id>/edit", methods=["GET", "POST"])
def edit(channel_id: int) -> Any:
    _require_writer()
    channel = _get(channel_id)
    fields = channels.extension_fields()
    values = ext.load(fields, [channel.id])[channel.id]
    form = channel_form(channel, fields, data=values if request.method == "GET" else None)
    if form.validate_on_submit():
        _apply(form, channel, fields)
        audit.record("update", "channel", channel.id)
        db.session.commit()
        flash(_("Channel saved."))
        return redirect(url_for(".detail", channel_id=channel.id))
    return render_template("channels/form.html", form=form, channel=channel), (
        422 if form.errors else 200
    )


def _get(channel_id: int) -> Channel:
    channel = db.session.get(Channel, channel_id) if channel_id <= channels.MAX_ID else None
    if channel is None or channel.company_id != current_company_id():
        abort(404)
    return channel


def _render_detail(channel: Channel, claim_form: ClaimForm | None = None, status: int = 200):
    after_raw = request.args.get("after", "")
    after = channels.int_id(after_raw)
    if after_raw and after is None:
        abort(400, _("'after' must be the id of the last customer seen (a whole number)."))
    customers, next_after = channels.customer_page(channel.id, after, CUSTOMERS_SHOWN)
    claims = db.session.execute(
        select(ChannelClaim, Customer)
        .join(Customer, Customer.id == ChannelClaim.customer_id)
        .where(ChannelClaim.channel_id == channel.id)
        .order_by(ChannelClaim.claimed_at.desc(), ChannelClaim.id.desc())
    ).all()
    in_conflict = channels.conflicts_for(
        [customer.id for _claim, customer in claims] + [c.id for c in customers]
    )
    fields = channels.extension_fields()
    customer_q = (request.args.get("customer_q") or "").strip()
    return render_template(
        "channels/detail.html",
        channel=channel,
        node=channels.node(channel),
        parent=db.session.get(Channel, channel.parent_id) if channel.parent_id else None,
        customers=customers,
        next_after=next_after,
        claims=claims,
        in_conflict=in_conflict,
        claim_form=claim_form or ClaimForm(),
        customer_q=customer_q,
        found=channels.find_customers(customer_q) if customer_q and can_write() else [],
        fields=fields,
        values=ext.load(fields, [channel.id])[channel.id],
        display=ext.display,
        status_labels=STATUS_LABELS,
        can_write=can_write(),
        panels=record_panels("channel", channel),
    ), status


@bp.route("/<int:channel_id>")
def detail(channel_id: int) -> Any:
    return _render_detail(_get(channel_id))


def _find_customer(key: str) -> Customer | None:
    """The customer named by ``key``: ``#<number>`` (as the picker sends), a code, or a number."""
    customer = None
    if key.startswith("#"):
        customer_id = channels.int_id(key[1:])
        customer = db.session.get(Customer, customer_id) if customer_id else None
    else:
        customer = db.session.scalars(select(Customer).where(Customer.code == key)).first()
        if customer is None and channels.int_id(key) is not None:
            customer = db.session.get(Customer, int(key))
    # (get() may answer from the session's identity map: check the company all the same)
    return customer if customer and customer.company_id == current_company_id() else None


@bp.route("/<int:channel_id>/claims", methods=["POST"])
def add_claim(channel_id: int) -> Any:
    """Record that this channel claims a customer (picked, or given by code or number)."""
    _require_writer()
    channel = _get(channel_id)
    form = ClaimForm()
    if not form.validate_on_submit():
        return _render_detail(channel, form, 422)
    customer = _find_customer(form.customer.data.strip())
    if customer is None:
        form.customer.errors.append(_("No customer with this code or number."))
        return _render_detail(channel, form, 422)
    exists = db.session.scalar(
        select(ChannelClaim.id).where(
            ChannelClaim.channel_id == channel.id, ChannelClaim.customer_id == customer.id
        )
    )
    if exists:
        form.customer.errors.append(_("This channel already claims that customer."))
        return _render_detail(channel, form, 422)
    claim = ChannelClaim(
        channel_id=channel.id, customer_id=customer.id, note=(form.note.data or "").strip() or None
    )
    db.session.add(claim)
    db.session.flush()
    audit.record("create", "channel_claim", claim.id, {"customer": customer.id})
    db.session.commit()
    if channels.conflicts_for([customer.id]):
        flash(_("Claim recorded. %(name)s is now in channel conflict.", name=customer.name))
    else:
        flash(_("Claim recorded."))
    return redirect(url_for(".detail", channel_id=channel.id))


@bp.route("/<int:channel_id>/claims/<int:claim_id>/delete", methods=["POST"])
def remove_claim(channel_id: int, claim_id: int) -> Any:
    _require_writer()
    if claim_id > channels.MAX_ID:
        abort(404)
    claim = db.get_or_404(ChannelClaim, claim_id)
    if claim.channel_id != channel_id or claim.company_id != current_company_id():
        abort(404)
    audit.record("delete", "channel_claim", claim.id, {"customer": claim.customer_id})
    db.session.delete(claim)
    db.session.commit()
    flash(_("Claim removed."))
    return redirect(url_for(".detail", channel_id=channel_id))


# -- on the customer's page ---------------------------------------------------------------------


def channel_claims(customer: Customer) -> dict[str, Any]:
    """For the customer's page: its assigned channel, the claims on it and, when it is in
    conflict, the channels involved (three queries)."""
    assigned = db.session.get(Channel, customer.channel_id) if customer.channel_id else None
    return {
        "assigned": assigned,
        "claims": channels.claimed_by([customer.id])[customer.id],
        "conflict": channels.conflicts_for([customer.id]).get(customer.id, []),
    }


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"channel_claims": channel_claims}
