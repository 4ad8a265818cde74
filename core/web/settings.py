"""Company settings: the customer classification rules (value tier, loyalty, lifecycle stage).

Admins and managers tune the thresholds of :mod:`core.classify`; saving recomputes every
customer of the company at once, and "Recompute now" does so without changing the rules.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from core import audit, classify
from core.db import db
from core.models import Customer
from core.web.helpers import require_member

bp = Blueprint("settings", __name__, url_prefix="/settings")

#: Roles that may see and change company settings.
SETTINGS_ROLES = ("admin", "manager")


def _amount(label: Any, help_text: Any) -> IntegerField:
    return IntegerField(
        label,
        description=help_text,
        validators=[InputRequired(), NumberRange(min=0, max=classify.MAX_AMOUNT)],
    )


def _days(label: Any, help_text: Any) -> IntegerField:
    return IntegerField(
        label,
        description=help_text,
        validators=[InputRequired(), NumberRange(min=1, max=classify.MAX_DAYS)],
    )


class RulesForm(FlaskForm):
    """One field per rule of :class:`core.classify.Rules`, with the same bounds and order."""

    tier_a_min = _amount(
        _l("Tier A (VIP) from revenue"), _l("Yuan bought in the last 12 months, at least.")
    )
    tier_b_min = _amount(_l("Tier B (major) from revenue"), _l("Below tier A."))
    tier_c_min = _amount(
        _l("Tier C (ordinary) from revenue"), _l("Below tier B; less revenue is tier D (small).")
    )
    new_days = _days(_l("New customer for (days)"), _l("Customers younger than this are new."))
    loyal_days = _days(
        _l("Loyal after (days)"),
        _l("Tenure a loyal customer has at least; they also need the interactions below."),
    )
    loyal_interactions = IntegerField(
        _l("Loyal: interactions in the activity window"),
        validators=[InputRequired(), NumberRange(min=1, max=100_000)],
    )
    activity_window_days = _days(
        _l("Activity window (days)"), _l("Interactions counted for loyalty are this recent.")
    )
    acquisition_days = _days(
        _l("Acquisition stage for (days)"), _l("New customers are in acquisition, then growth.")
    )
    maturity_days = _days(_l("Mature after (days)"), _l("Tenure at which growth becomes maturity."))
    decline_days = _days(
        _l("Decline after no contact for (days)"), _l("Days since the last contact.")
    )
    dissolution_days = _days(
        _l("Dissolution after no contact for (days)"),
        _l("Days since the last contact; longer than the decline period."),
    )

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        messages = {
            "tier_b_min": _l("Must be below the tier A threshold."),
            "tier_c_min": _l("Must be below the tier B threshold."),
            "new_days": _l("Must be shorter than the tenure of a loyal customer."),
            "acquisition_days": _l("Must be shorter than the time to maturity."),
            "decline_days": _l("Must be shorter than the time to dissolution."),
        }
        for name, above, _message in classify.ORDER:
            low, high = self[name], self[above]
            if low.errors or high.errors or low.data is None or high.data is None:
                continue
            if not low.data < high.data:
                low.errors = [*low.errors, messages[name]]
                ok = False
        return ok

    def rules(self) -> dict[str, int]:
        return {name: self[name].data for name in classify.RULE_NAMES}


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    member = g.get("membership")
    role = member.role if member is not None else None
    if role not in SETTINGS_ROLES:
        abort(
            403,
            _("Company settings need the role admin or manager; you are %(role)s.", role=role),
        )


def distribution() -> dict[str, dict[str | None, int]]:
    """How many customers have each value of the three computed attributes (three queries)."""
    out: dict[str, dict[str | None, int]] = {}
    for name in ("value_tier", "loyalty", "lifecycle_stage"):
        column = getattr(Customer, name)
        out[name] = dict(db.session.execute(select(column, func.count()).group_by(column)).all())
    return out


def _render(form: RulesForm, status: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "settings/index.html",
            form=form,
            groups=(
                (
                    _("Value tier (by revenue of the last 12 months)"),
                    ("tier_a_min", "tier_b_min", "tier_c_min"),
                ),
                (
                    _("Loyalty"),
                    ("new_days", "loyal_days", "loyal_interactions", "activity_window_days"),
                ),
                (
                    _("Lifecycle stage"),
                    ("acquisition_days", "maturity_days", "decline_days", "dissolution_days"),
                ),
            ),
            defaults=classify.DEFAULTS.as_dict(),
            labels=classify.LABELS,
            counts=distribution(),
        ),
        status,
    )


@bp.route("/", methods=["GET", "POST"])
def index() -> Any:
    form = RulesForm(data=classify.load_rules().as_dict() if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            classify.save_rules(form.rules(), user_id=current_user.id)
        except classify.RulesError as exc:  # the form checks the same; kept as a safety net
            db.session.rollback()
            for name, messages in exc.errors.items():
                if name in form:
                    form[name].errors = [*form[name].errors, *messages]
            return _render(form, 422)
        changed = classify.classify_customers()
        db.session.commit()
        flash(
            _(
                "Rules saved; %(count)s customer classifications changed.",
                count=sum(changed.values()),
            )
        )
        return redirect(url_for(".index"))
    return _render(form, 422 if form.errors else 200)


class ActionForm(FlaskForm):
    """A button that only carries the CSRF token."""


@bp.route("/recompute", methods=["POST"])
def recompute() -> Any:
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    changed = classify.classify_customers()
    audit.record("recompute", "customer", None, {"changed": changed})
    db.session.commit()
    flash(_("Recomputed; %(count)s customer classifications changed.", count=sum(changed.values())))
    return redirect(url_for(".index"))


@bp.route("/reset", methods=["POST"])
def reset() -> Any:
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    classify.reset_rules(user_id=current_user.id)
    changed = classify.classify_customers()
    db.session.commit()
    flash(
        _(
            "Default rules restored; %(count)s customer classifications changed.",
            count=sum(changed.values()),
        )
    )
    return redirect(url_for(".index"))
