"""Consent on a customer's page: the answers per purpose and channel, and a form to record one.

The box *Consent* (授权同意) shows, for each purpose the company's enabled plugins declare
(:mod:`core.consent`), the current answer per contact channel -- granted ✓, refused ✗ or none
(source and date on hover) -- and what no answer means for that purpose; then the three latest
answers with their source and date. Members who may change
customers (every role but viewer) record an answer for one channel or for all of them at once
(``POST /customers/<id>/consent``); the customer's record rule applies; each change is audited.
A company with no plugin that contacts customers has no purposes, and the page shows no box.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from core import consent
from core.db import db
from core.models import Customer
from core.web.customers import require_writer, visible_or_refuse
from core.web.helpers import require_member, role
from core.web.panels import Panel

bp = Blueprint("consent", __name__, url_prefix="/customers")

#: The form's value for "every channel".
ALL_CHANNELS = "*"


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def panel(customer: Customer) -> Panel | None:
    """The *Consent* box of ``customer``'s page, or ``None`` when no enabled plugin declares a
    purpose."""
    purposes = consent.purposes()
    if not purposes:
        return None

    def render() -> str:
        channels = consent.channels()
        channel_names, purpose_names = dict(channels), {p.name: p.text for p in purposes}
        return render_template(
            "customers/_consent.html",
            customer=customer,
            purposes=purposes,
            channels=channels,
            answers=consent.of_customer(customer.id),
            channel_label=lambda key: channel_names.get(key, key),
            purpose_label=lambda key: purpose_names.get(key, key),
            may_record=role() not in (None, "viewer"),
        )

    return Panel("Consent", render, "授权同意", 50)


@bp.route("/<int:customer_id>/consent", methods=["POST"])
def record(customer_id: int) -> Any:
    """Record the customer's answer for a purpose on one channel or on every channel."""
    require_writer()
    customer = visible_or_refuse(customer_id)
    chosen = request.form.get("channel", "")
    channels = [c for c, _label in consent.channels()] if chosen == ALL_CHANNELS else [chosen]
    try:
        for channel in channels:
            consent.record(
                customer.id,
                channel,
                request.form.get("purpose", ""),
                request.form.get("granted") == "1",
                request.form.get("source", ""),
                user=current_user,
            )
    except consent.ConsentRefused as exc:
        db.session.rollback()
        for message in exc.errors.values():
            flash(message, "error")
    else:
        db.session.commit()
        flash(_("Consent recorded."))
    return redirect(url_for("customers.detail", customer_id=customer.id) + "#consent")
