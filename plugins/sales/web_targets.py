"""Target pages: attainment per rep and team (``/sales/targets``), editable by managers, and the
attack/defend scorecard (``/sales/scorecard``). See :mod:`plugins.sales.targets`."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from core import audit
from core.extend import db
from plugins.sales import targets
from plugins.sales.blueprint import bp, is_manager

#: Largest target amount a Numeric(14, 2) column holds.
MAX_AMOUNT = Decimal("999999999999.99")
MAX_NEW = 1_000_000


def _period() -> targets.Period:
    """The period named by ``?period=`` (this month when absent); 400 with a message if bad."""
    key = request.args.get("period", "")
    if not key:
        return targets.Period.month_of(targets.today())
    try:
        return targets.Period.parse(key)
    except ValueError:
        abort(400, _("Period must be a month like 2026-11 or a quarter like 2026-Q4."))


def _nav(period: targets.Period) -> dict[str, Any]:
    today = targets.today()
    return {
        "period": period,
        "previous": period.shifted(-1),
        "next": period.shifted(1),
        "this_month": targets.Period.month_of(today),
        "this_quarter": targets.Period.quarter_of(today),
    }


def _parse(form: Any, reps: list[targets.Line], teams: list[targets.Line]) -> tuple[dict, dict]:
    """Targets from the posted form, and messages keyed by input name for bad values."""
    values: dict[tuple[str, int], tuple[Decimal, int]] = {}
    errors: dict[str, str] = {}
    for line in reps + teams:
        amount_key, new_key = f"{line.kind}-{line.id}-amount", f"{line.kind}-{line.id}-new"
        raw_amount = (form.get(amount_key) or "").strip().replace(",", "")
        raw_new = (form.get(new_key) or "").strip()
        try:
            amount = Decimal(raw_amount or "0")
            if not amount.is_finite() or amount < 0 or amount > MAX_AMOUNT:
                raise InvalidOperation
            amount = amount.quantize(Decimal("0.01"))
        except InvalidOperation:
            errors[amount_key] = _("Enter an amount between 0 and 999,999,999,999.99.")
            amount = Decimal(0)
        try:
            new = int(raw_new or "0")
            if not 0 <= new <= MAX_NEW:
                raise ValueError
        except ValueError:
            errors[new_key] = _("Enter a whole number of customers between 0 and 1,000,000.")
            new = 0
        values[(line.kind, line.id)] = (amount, new)
    return values, errors


@bp.route("/targets", methods=["GET", "POST"], endpoint="targets")
def targets_page() -> Any:
    """Targets and attainment of the period; managers set the targets on the same page."""
    period = _period()
    reps, teams = targets.attainment(period)
    errors: dict[str, str] = {}
    if g.membership.role == "sales_rep":
        reps = [line for line in reps if line.id == g.membership.user_id]
    if request.method == "POST":
        if not is_manager():
            abort(403, _("Only administrators and managers can set targets."))
        values, errors = _parse(request.form, reps, teams)
        if not errors:
            changed = targets.save_targets(period, values)
            audit.record("set_targets", "sales_target", None, {"period": period.key})
            db.session.commit()
            flash(_("Targets of %(period)s saved (%(n)s changed).", period=period.key, n=changed))
            return redirect(url_for("sales.targets", period=period.key))
    return render_template(
        "sales/targets/index.html",
        reps=reps,
        teams=teams,
        errors=errors,
        form=request.form if errors else None,
        can_edit=is_manager(),
        **_nav(period),
    ), (422 if errors else 200)


@bp.route("/scorecard")
def scorecard() -> Any:
    """The attack/defend scorecard of the period (balanced-scorecard style KPIs)."""
    period = _period()
    kpis = targets.scorecard(period)
    return render_template(
        "sales/targets/scorecard.html",
        attack=[k for k in kpis if k.side == "attack"],
        defend=[k for k in kpis if k.side == "defend"],
        **_nav(period),
    )


def widget() -> str:
    """The dashboard box: this month's attainment (a rep: their own line; others: everyone)."""
    period = targets.Period.month_of(targets.today())
    reps, teams = targets.attainment(period)
    if g.membership.role == "sales_rep":
        reps, teams = [line for line in reps if line.id == g.membership.user_id], []
    return render_template("sales/targets/_widget.html", period=period, lines=[*teams, *reps][:8])
