"""Campaign pages (on :data:`plugins.marketing.blueprint.bp`).

- ``/marketing/campaigns`` -- every campaign with its trigger, state and message counts (two
  queries whatever the number of campaigns);
- ``/marketing/campaigns/new`` -- name, segment, channel, purpose, trigger (manual, scheduled,
  birthday, anniversary, N days after a purchase, decline), message; *Save as draft* or *Launch*;
- ``/marketing/campaigns/<id>`` -- whom it reaches now (segment, with consent and an address),
  messages written, delivered, opened, replied, orders within the conversion window; launch or
  stop; its latest messages;
- ``/marketing/outbox`` -- the outbox: every message, newest first (keyset pages by id), by
  campaign and state, with the text the customer gets and its unsubscribe link.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core import access, audit
from core.extend import db
from core.i18n import pick
from core.models import Customer
from plugins.marketing import campaigns as svc
from plugins.marketing import reports
from plugins.marketing.blueprint import bp, is_manager, require_manager
from plugins.marketing.models import CHANNELS, PURPOSES, TRIGGERS, Campaign, Message, Segment

PAGE = 50


def _get(campaign_id: int) -> Campaign:
    found = db.session.get(Campaign, campaign_id) if 0 < campaign_id <= svc.MAX_ID else None
    if found is None:
        abort(404)
    return found


def _labels() -> dict[str, Any]:
    return {
        "state_label": svc.state_label,
        "trigger_label": svc.trigger_label,
        "channel_label": svc.channel_label,
        "purpose_label": svc.purpose_label,
        "message_state_label": svc.message_state_label,
    }


@bp.route("/campaigns")
def campaigns() -> Any:
    rows = db.session.execute(
        select(Campaign, Segment.name)
        .outerjoin(Segment, Segment.id == Campaign.segment_id)
        .order_by(Campaign.id.desc())
        .limit(500)
    ).all()
    return render_template(
        "marketing/campaigns.html",
        rows=rows,
        counts=svc.campaign_counts([c.id for c, _n in rows]),
        manager=is_manager(),
        **_labels(),
    )


def _form_context(values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "values": values,
        "errors": errors,
        "segments": db.session.execute(
            select(Segment.id, Segment.name).order_by(Segment.id.desc())
        ).all(),
        "channels": [(k, pick(t, z)) for k, t, z in CHANNELS],
        "purposes": [(k, pick(t, z)) for k, t, z in PURPOSES],
        "triggers": [(k, pick(t, z)) for k, t, z in TRIGGERS],
    }


def _int(raw: str | None) -> int | None:
    raw = (raw or "").strip()
    return int(raw) if raw.isascii() and raw.isdigit() and int(raw) <= svc.MAX_ID else None


def _moment(raw: str | None) -> datetime | None:
    """A ``datetime-local`` value in the company's time zone, as UTC."""
    from datetime import UTC

    from core.reports import zone

    try:
        local = datetime.fromisoformat((raw or "").strip())
    except ValueError:
        return None
    return local.replace(tzinfo=zone()).astimezone(UTC)


@bp.route("/campaigns/new", methods=["GET", "POST"])
def campaign_new() -> Any:
    require_manager()
    if request.method == "GET":
        values = {
            "segment_id": request.args.get("segment_id", ""),
            "channel": "sms",
            "purpose": "marketing",
            "trigger": "manual",
            "conversion_days": "30",
        }
        return render_template("marketing/campaign_form.html", **_form_context(values, {}))
    form = request.form
    values = form.to_dict()
    errors: dict[str, str] = {}
    days = _int(form.get("days")) if form.get("days") else None
    conversion = _int(form.get("conversion_days")) or 0
    scheduled = _moment(form.get("scheduled_at")) if form.get("scheduled_at") else None
    try:
        campaign = svc.create_campaign(
            form.get("name", ""),
            body=form.get("body", ""),
            subject=form.get("subject") or None,
            segment=_int(form.get("segment_id")),
            channel=form.get("channel", ""),
            purpose=form.get("purpose", ""),
            trigger=form.get("trigger", ""),
            days=days,
            scheduled_at=scheduled,
            conversion_days=conversion,
            user=current_user,
        )
        written = svc.launch(campaign, current_user) if form.get("launch") else None
    except svc.CampaignRefused as exc:
        db.session.rollback()
        errors = exc.errors
        return (
            render_template("marketing/campaign_form.html", **_form_context(values, errors)),
            422,
        )
    db.session.commit()
    if written is not None:
        flash(_("Campaign launched: %(n)s messages in the outbox.", n=written))
    else:
        flash(_("Campaign saved as a draft."))
    return redirect(url_for("marketing.campaign", campaign_id=campaign.id))


@bp.route("/campaigns/<int:campaign_id>")
def campaign(campaign_id: int) -> Any:
    c = _get(campaign_id)
    counts = svc.campaign_counts([c.id]).get(c.id, {})
    with access.all_customers():
        messages = db.session.execute(
            select(Message, Customer.name)
            .join(Customer, Customer.id == Message.customer_id)
            .where(Message.campaign_id == c.id)
            .order_by(Message.id.desc())
            .limit(PAGE)
        ).all()
    return render_template(
        "marketing/campaign.html",
        campaign=c,
        segment=db.session.get(Segment, c.segment_id) if c.segment_id else None,
        reach=svc.reach(c),
        counts=counts,
        converted=reports.converted(c.id),
        messages=messages,
        manager=is_manager(),
        **_labels(),
    )


@bp.route("/campaigns/<int:campaign_id>/launch", methods=["POST"])
def campaign_launch(campaign_id: int) -> Any:
    require_manager()
    c = _get(campaign_id)
    try:
        n = svc.launch(c, current_user)
    except svc.CampaignRefused as exc:
        db.session.rollback()
        flash("; ".join(exc.errors.values()), "error")
        return redirect(url_for("marketing.campaign", campaign_id=c.id))
    db.session.commit()
    if c.trigger == "manual":
        flash(_("Campaign launched: %(n)s messages in the outbox.", n=n))
    else:
        flash(_("Campaign launched: it sends at its moments."))
    return redirect(url_for("marketing.campaign", campaign_id=c.id))


@bp.route("/campaigns/<int:campaign_id>/stop", methods=["POST"])
def campaign_stop(campaign_id: int) -> Any:
    require_manager()
    c = _get(campaign_id)
    try:
        svc.stop(c, current_user)
    except svc.CampaignRefused as exc:
        db.session.rollback()
        flash("; ".join(exc.errors.values()), "error")
    else:
        db.session.commit()
    return redirect(url_for("marketing.campaign", campaign_id=c.id))


@bp.route("/messages/<int:message_id>/replied", methods=["POST"])
def message_replied(message_id: int) -> Any:
    """Staff record that the customer replied (a call back, an SMS answer)."""
    require_manager()
    message = db.session.get(Message, message_id) if 0 < message_id <= svc.MAX_ID else None
    if message is None:
        abort(404)
    svc.mark(message, "replied")
    audit.record("update", Message.__tablename__, message.id, {"state": "replied"})
    db.session.commit()
    return redirect(request.referrer or url_for("marketing.outbox"))


@bp.route("/outbox")
def outbox() -> Any:
    """The outbox, newest first; ``?campaign_id=``, ``?state=``, ``?before=<id>`` pages."""
    stmt = (
        select(Message, Customer.name, Campaign.name)
        .join(Customer, Customer.id == Message.customer_id)
        .join(Campaign, Campaign.id == Message.campaign_id)
        .order_by(Message.id.desc())
    )
    campaign_id = _int(request.args.get("campaign_id"))
    if campaign_id:
        stmt = stmt.where(Message.campaign_id == campaign_id)
    state = request.args.get("state", "")
    if state:
        stmt = stmt.where(Message.state == state)
    before = _int(request.args.get("before"))
    if before:
        stmt = stmt.where(Message.id < before)
    with access.all_customers():
        rows = db.session.execute(stmt.limit(PAGE + 1)).all()
    more = rows[PAGE - 1][0].id if len(rows) > PAGE else None
    rows = rows[:PAGE]
    from core.web.public import company_code

    code = company_code()
    texts = {m.id: svc.full_text(m, code) for m, _c, _n in rows}
    return render_template(
        "marketing/outbox.html",
        rows=rows,
        texts=texts,
        more=more,
        campaign_id=campaign_id,
        state=state,
        gateways=current_app.config.get("MARKETING_GATEWAYS") or {},
        manager=is_manager(),
        **_labels(),
    )
