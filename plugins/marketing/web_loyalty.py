"""Membership pages (on :data:`plugins.marketing.blueprint.bp`) and the customer panel.

- ``/marketing/loyalty`` -- the program (points per yuan, expiry, level window), the levels
  (threshold, multiplier, benefits), the rewards, members by level; managers edit;
- the panel *Membership* on a customer's page: level, points balance and the latest ledger
  rows, *Enrol*, *Redeem* a reward, *Adjust* (managers). Consent is the core's
  (:mod:`core.consent`), on the same page.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select

from core.extend import db
from core.fields import side_table
from core.i18n import pick
from core.models import Customer
from plugins.marketing import loyalty
from plugins.marketing.blueprint import bp, is_manager, require_manager
from plugins.marketing.models import LEDGER_KINDS, Level, Reward

MAX_ID = 2**31 - 1


def level_label(key: str | None) -> str:
    from plugins.marketing import LEVELS

    for value, text, zh in LEVELS:
        if value == key:
            return pick(text, zh)
    return key or ""


def kind_label(key: str) -> str:
    for value, text, zh in LEDGER_KINDS:
        if value == key:
            return pick(text, zh)
    return key


def customer_panel(customer: Customer) -> str:
    """The *Membership* box of a customer's page."""
    statement = loyalty.statement(customer.id, limit=10)
    return render_template(
        "marketing/_customer_panel.html",
        customer=customer,
        level=loyalty.level_of(customer.id),
        statement=statement,
        rewards=list(
            db.session.scalars(select(Reward).where(Reward.active).order_by(Reward.points))
        ),
        level_label=level_label,
        kind_label=kind_label,
        manager=is_manager(),
    )


def _customer(customer_id: int) -> Customer:
    """The customer, if the member's record rule shows it (else 404)."""
    from core.customers import get_visible

    found = get_visible(customer_id)
    if found is None:
        abort(404)
    return found


def _back(customer: Customer) -> Any:
    return redirect(url_for("customers.detail", customer_id=customer.id))


@bp.route("/customers/<int:customer_id>/enrol", methods=["POST"])
def enrol(customer_id: int) -> Any:
    require_manager()
    customer = _customer(customer_id)
    loyalty.enrol(customer, user=current_user)
    db.session.commit()
    flash(_("The customer is now a member."))
    return _back(customer)


@bp.route("/customers/<int:customer_id>/redeem", methods=["POST"])
def redeem(customer_id: int) -> Any:
    require_manager()
    customer = _customer(customer_id)
    raw = request.form.get("reward_id", "")
    reward = db.session.get(Reward, int(raw)) if raw.isdigit() and int(raw) <= MAX_ID else None
    if reward is None:
        flash(_("Choose a reward."), "error")
        return _back(customer)
    try:
        loyalty.redeem(customer.id, reward, user=current_user)
    except loyalty.PointsRefused as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return _back(customer)
    db.session.commit()
    flash(_("Redeemed: %(reward)s.", reward=reward.name))
    return _back(customer)


@bp.route("/customers/<int:customer_id>/adjust", methods=["POST"])
def adjust(customer_id: int) -> Any:
    require_manager()
    customer = _customer(customer_id)
    raw = request.form.get("points", "").strip()
    try:
        points = int(raw)
        loyalty.adjust(customer.id, points, request.form.get("note", ""), user=current_user)
    except (ValueError, loyalty.PointsRefused) as exc:
        db.session.rollback()
        message = str(exc) if isinstance(exc, loyalty.PointsRefused) else _("Enter a whole number.")
        flash(message, "error")
        return _back(customer)
    db.session.commit()
    flash(_("Points adjusted."))
    return _back(customer)


# -- the program page -----------------------------------------------------------------------------


@bp.route("/loyalty")
def loyalty_page() -> Any:
    ext = side_table("marketing", "customer")
    members = dict(
        db.session.execute(
            select(ext.c.member_level, func.count(Customer.id))
            .join(ext, ext.c.id == Customer.id)
            .where(ext.c.member_level.is_not(None))
            .group_by(ext.c.member_level)
        ).all()
    )
    return render_template(
        "marketing/loyalty.html",
        program=loyalty.program(),
        levels=loyalty.levels(),
        rewards=list(db.session.scalars(select(Reward).order_by(Reward.points, Reward.id))),
        members=members,
        level_label=level_label,
        manager=is_manager(),
    )


def _decimal(raw: str | None, low: Decimal, high: Decimal) -> Decimal | None:
    try:
        value = Decimal((raw or "").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() and low <= value <= high else None


def _whole(raw: str | None, low: int, high: int) -> int | None:
    raw = (raw or "").strip()
    if not (raw.isascii() and raw.isdigit()):
        return None
    value = int(raw)
    return value if low <= value <= high else None


@bp.route("/loyalty/program", methods=["POST"])
def loyalty_program() -> Any:
    require_manager()
    rules = loyalty.program()
    rate = _decimal(request.form.get("points_per_yuan"), Decimal(0), Decimal(1000))
    expiry = _whole(request.form.get("expiry_days"), 1, 3650)
    window = _whole(request.form.get("level_window_days"), 1, 3650)
    if rate is None or expiry is None or window is None:
        flash(_("Points per yuan 0–1000; expiry and window 1–3650 days."), "error")
        return redirect(url_for("marketing.loyalty_page"))
    rules.points_per_yuan, rules.expiry_days, rules.level_window_days = rate, expiry, window
    from core import audit

    audit.record(
        "update",
        "marketing_program",
        rules.id,
        {"points_per_yuan": str(rate), "expiry_days": expiry, "level_window_days": window},
    )
    db.session.commit()
    flash(_("Program saved."))
    return redirect(url_for("marketing.loyalty_page"))


@bp.route("/loyalty/levels", methods=["POST"])
def loyalty_levels() -> Any:
    require_manager()
    for level in db.session.scalars(select(Level)):
        threshold = _whole(request.form.get(f"threshold_{level.key}"), 0, 10**9)
        multiplier = _decimal(request.form.get(f"multiplier_{level.key}"), Decimal(0), Decimal(100))
        if threshold is None or multiplier is None:
            db.session.rollback()
            flash(_("Thresholds are whole points; multipliers 0–100."), "error")
            return redirect(url_for("marketing.loyalty_page"))
        level.threshold, level.multiplier = threshold, multiplier
        level.benefits = (request.form.get(f"benefits_{level.key}") or "").strip()[:2000] or None
    from core import audit

    audit.record("update", "marketing_level", None, {"levels": "edited"})
    db.session.commit()
    flash(_("Levels saved. The levels job moves members by the new thresholds."))
    return redirect(url_for("marketing.loyalty_page"))


@bp.route("/loyalty/rewards", methods=["POST"])
def loyalty_reward() -> Any:
    require_manager()
    name = (request.form.get("name") or "").strip()
    points = _whole(request.form.get("points"), 1, 10**7)
    if not name or len(name) > 200 or points is None:
        flash(_("Name the reward and give its points (1 or more)."), "error")
        return redirect(url_for("marketing.loyalty_page"))
    reward = Reward(name=name, points=points, active=True)
    db.session.add(reward)
    db.session.flush()
    from core import audit

    audit.record("create", Reward.__tablename__, reward.id, {"name": name, "points": points})
    db.session.commit()
    flash(_("Reward added."))
    return redirect(url_for("marketing.loyalty_page"))


@bp.route("/loyalty/rewards/<int:reward_id>/toggle", methods=["POST"])
def loyalty_reward_toggle(reward_id: int) -> Any:
    require_manager()
    reward = db.session.get(Reward, reward_id) if 0 < reward_id <= MAX_ID else None
    if reward is None:
        abort(404)
    from core import audit

    reward.active = not reward.active
    audit.record("update", Reward.__tablename__, reward.id, {"active": reward.active})
    db.session.commit()
    return redirect(url_for("marketing.loyalty_page"))
