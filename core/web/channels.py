"""Channel pages (渠道): the tree and what each channel brings, forms, claims, conflicts."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DecimalField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from core import audit, channels
from core.choices import options
from core.db import db
from core.models import Channel, ChannelClaim, Customer
from core.tenancy import current_company_id

bp = Blueprint("channels", __name__, url_prefix="/channels")

WRITERS = ("admin", "manager")
STATUS_LABELS = {
    "active": _l("Active"),
    "suspended": _l("Suspended"),
    "terminated": _l("Terminated"),
}
CUSTOMERS_SHOWN = 50


@bp.before_request
@login_required
def _guard() -> None:
    if current_company_id() is None:
        abort(403, _("Choose a company first."))


def can_write() -> bool:
    """Admins and managers keep the channel list; everyone else reads it."""
    member = g.get("membership")
    return member is not None and member.role in WRITERS


def _require_writer() -> None:
    if not can_write():
        abort(403, _("Only administrators and managers can change channels."))


class ChannelForm(FlaskForm):
    name = StringField(_l("Name"), validators=[InputRequired(), Length(max=200)])
    code = StringField(_l("Code"), validators=[Optional(), Length(max=40)])
    type = SelectField(_l("Type"), validators=[InputRequired()])
    parent_id = SelectField(_l("Parent channel"), validators=[Optional()])
    territory = StringField(_l("Territory"), validators=[Optional(), Length(max=120)])
    commission_rate = DecimalField(
        _l("Commission rate (%)"),
        places=2,
        validators=[Optional(), NumberRange(min=0, max=100)],
    )
    credit_limit = DecimalField(
        _l("Credit limit (¥)"),
        places=2,
        validators=[Optional(), NumberRange(min=0, max=Decimal("999999999999.99"))],
    )
    status = SelectField(_l("Status"), validators=[InputRequired()])


class ClaimForm(FlaskForm):
    customer = StringField(
        _l("Customer (code or number)"), validators=[InputRequired(), Length(max=40)]
    )
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])


def channel_form(channel: Channel | None, **kwargs: Any) -> ChannelForm:
    """The form with the company's channel types and the parents ``channel`` may have (itself
    and its sub-channels excluded, so the tree cannot get a cycle)."""
    form = ChannelForm(obj=channel, **kwargs)
    form.type.choices = [SelectChoice(v, label) for v, label in options("channel_type")]
    barred = {channel.id, *channels.descendants(channel.id)} if channel else set()
    parents = db.session.execute(select(Channel.id, Channel.name).order_by(Channel.name)).all()
    form.parent_id.choices = [SelectChoice("", _("(none: a top-level channel)"))] + [
        SelectChoice(str(cid), name) for cid, name in parents if cid not in barred
    ]
    if channel is not None and request.method == "GET":
        form.parent_id.data = str(channel.parent_id or "")
    form.status.choices = [SelectChoice(k, str(v)) for k, v in STATUS_LABELS.items()]
    return form


@bp.route("/")
def index() -> str:
    return render_template(
        "channels/index.html",
        nodes=channels.tree(),
        status_labels=STATUS_LABELS,
        can_write=can_write(),
    )


@bp.route("/conflicts")
def conflicts() -> str:
    return render_template("channels/conflicts.html", rows=channels.conflicted_customers())


@bp.route("/new", methods=["GET", "POST"])
def create() -> Any:
    _require_writer()
    form = channel_form(None)
    if form.validate_on_submit():
        channel = Channel()
        _apply(form, channel)
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
    channel = db.get_or_404(Channel, channel_id)
    form = channel_form(channel)
    if form.validate_on_submit():
        _apply(form, channel)
        audit.record("update", "channel", channel.id)
        db.session.commit()
        flash(_("Channel saved."))
        return redirect(url_for(".detail", channel_id=channel.id))
    return render_template("channels/form.html", form=form, channel=channel), (
        422 if form.errors else 200
    )


def _apply(form: ChannelForm, channel: Channel) -> None:
    channel.name = form.name.data.strip()
    channel.code = (form.code.data or "").strip() or None
    channel.type = form.type.data
    channel.parent_id = int(form.parent_id.data) if form.parent_id.data else None
    channel.territory = (form.territory.data or "").strip() or None
    channel.commission_rate = form.commission_rate.data
    channel.credit_limit = form.credit_limit.data
    channel.status = form.status.data
    db.session.add(channel)
    db.session.flush()


def _claims(channel: Channel) -> list[tuple[ChannelClaim, Customer, bool]]:
    rows = db.session.execute(
        select(ChannelClaim, Customer)
        .join(Customer, Customer.id == ChannelClaim.customer_id)
        .where(ChannelClaim.channel_id == channel.id)
        .order_by(ChannelClaim.claimed_at.desc())
    ).all()
    conflicted = channels.conflicts_for([customer.id for _claim, customer in rows])
    return [(claim, customer, customer.id in conflicted) for claim, customer in rows]


def _render_detail(channel: Channel, claim_form: ClaimForm | None = None, status: int = 200):
    nodes = {n.channel.id: n for n in channels.tree()}
    node = nodes.get(channel.id)
    parent = db.session.get(Channel, channel.parent_id) if channel.parent_id else None
    customers = db.session.scalars(
        select(Customer)
        .where(Customer.channel_id == channel.id)
        .order_by(Customer.id.desc())
        .limit(CUSTOMERS_SHOWN + 1)
    ).all()
    return render_template(
        "channels/detail.html",
        channel=channel,
        node=node,
        parent=parent,
        customers=customers[:CUSTOMERS_SHOWN],
        more_customers=len(customers) > CUSTOMERS_SHOWN,
        claims=_claims(channel),
        claim_form=claim_form or ClaimForm(),
        status_labels=STATUS_LABELS,
        can_write=can_write(),
    ), status


@bp.route("/<int:channel_id>")
def detail(channel_id: int) -> Any:
    return _render_detail(db.get_or_404(Channel, channel_id))


@bp.route("/<int:channel_id>/claims", methods=["POST"])
def add_claim(channel_id: int) -> Any:
    """Record that this channel claims a customer (by code or number)."""
    _require_writer()
    channel = db.get_or_404(Channel, channel_id)
    form = ClaimForm()
    if not form.validate_on_submit():
        return _render_detail(channel, form, 422)
    key = form.customer.data.strip()
    customer = db.session.scalar(select(Customer).where(Customer.code == key))
    if customer is None and key.isdigit() and int(key) < 2**31:
        customer = db.session.get(Customer, int(key))
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
    claim = db.get_or_404(ChannelClaim, claim_id)
    if claim.channel_id != channel_id:
        abort(404)
    audit.record("delete", "channel_claim", claim.id, {"customer": claim.customer_id})
    db.session.delete(claim)
    db.session.commit()
    flash(_("Claim removed."))
    return redirect(url_for(".detail", channel_id=channel_id))


@dataclass
class CustomerClaims:
    channels: list[Channel]
    conflict: bool


def channel_claims(customer_id: int) -> CustomerClaims | None:
    """The channels claiming a customer and whether that is a conflict (two queries)."""
    claimers = db.session.scalars(
        select(Channel)
        .join(ChannelClaim, ChannelClaim.channel_id == Channel.id)
        .where(ChannelClaim.customer_id == customer_id)
        .order_by(Channel.name)
    ).all()
    if not claimers:
        return None
    return CustomerClaims(list(claimers), bool(channels.conflicts_for([customer_id])))


@bp.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"channel_claims": channel_claims}
