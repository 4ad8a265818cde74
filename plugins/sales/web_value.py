"""Customer value pages (``/sales/value``): distribution, the scored list with its CSV/XLSX
export, on-demand recompute, the company's value rules, and the value box on a customer's page.

The computation lives in :mod:`plugins.sales.value`. Every member reads the pages (the record
rule narrows the list as on the customer list); admins and managers change the rules and
recompute the whole company; any member but a viewer may recompute one customer.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import DecimalField, IntegerField, SelectField
from wtforms.validators import InputRequired, NumberRange, ValidationError

from core import access, exporter, keyset
from core.db import capped_count
from core.extend import Sort, company_scope, current_company_id, db
from core.models import Customer
from plugins.sales import value
from plugins.sales.blueprint import bp, is_manager
from plugins.sales.models import CustomerValue

#: Sort orders of the list (the first is the default).
SORTS: dict[str, Sort] = {
    s.key: s
    for s in (
        Sort("ltv", CustomerValue.lifetime_value, True, False, "decimal"),
        Sort("potential", CustomerValue.potential_value, True, False, "decimal"),
        Sort("current", CustomerValue.current_value, True, False, "decimal"),
        Sort("recency", CustomerValue.recency_days, False, True, "integer"),
    )
}
SORT_LABELS = {
    "ltv": _l("Lifetime value"),
    "potential": _l("Potential value"),
    "current": _l("Current value"),
    "recency": _l("Most recent order"),
}
#: List filters: query parameter → (column, options). ``none`` filters rows without a value.
FILTERS: dict[str, tuple[Any, tuple[tuple[str, str, str], ...]]] = {
    "segment": (CustomerValue.segment, value.SEGMENTS),
    "abc": (CustomerValue.abc_class, value.ABC),
    "quadrant": (CustomerValue.quadrant, value.QUADRANTS),
}
EXPORT_COLUMNS = (
    "customer_id",
    "code",
    "name",
    "value_tier",
    "segment",
    "r_score",
    "f_score",
    "m_score",
    "recency_days",
    "frequency",
    "monetary",
    "first_order_on",
    "last_order_on",
    "orders_total",
    "historical_value",
    "yearly_revenue",
    "yearly_margin",
    "current_value",
    "potential_value",
    "lifetime_value",
    "abc_class",
    "abc_share",
    "purchase_potential",
    "share_of_wallet",
    "quadrant",
    "resource",
    "computed_at",
)


def _role() -> str | None:
    member = g.get("membership")
    return member.role if member is not None else None


# -- the list -----------------------------------------------------------------------------------


@dataclass
class Page:
    """One keyset page of the scored list."""

    rows: list[Any] = field(default_factory=list)
    count: int = 0
    capped: bool = False
    next_after: str | None = None
    sort: str = "ltv"
    errors: dict[str, str] = field(default_factory=dict)


def list_query(args: Mapping[str, str]) -> tuple[Any, Sort, dict[str, str]]:
    """The list's statement for ``args`` (filters; the record rule applies through the customer
    join), its sort and the messages of bad arguments."""
    errors: dict[str, str] = {}
    stmt = select(CustomerValue, Customer.name, Customer.code, Customer.value_tier).join(
        Customer, Customer.id == CustomerValue.customer_id
    )
    for name, (column, options) in FILTERS.items():
        raw = (args.get(name) or "").strip()
        if not raw:
            continue
        if raw == "none":
            stmt = stmt.where(column.is_(None))
        elif raw in {v for v, _t, _z in options}:
            stmt = stmt.where(column == raw)
        else:
            errors[name] = _("Unknown value.")
    sort_key = args.get("sort") or "ltv"
    if sort_key not in SORTS:
        errors["sort"] = _("Must be one of: %(names)s.", names=", ".join(SORTS))
        sort_key = "ltv"
    return stmt, SORTS[sort_key], errors


def page(args: Mapping[str, str], size: int, cap: int) -> Page:
    """A page of the list after ``args["after"]``: two queries whatever the page size."""
    stmt, sort, errors = list_query(args)
    result = Page(sort=sort.key, errors=errors)
    after = args.get("after")
    position = keyset.decode(sort, after) if after else None
    if after and position is None:
        errors["after"] = _("Must be the link of the previous page.")
    if errors:
        return result
    result.count, result.capped = capped_count(stmt, CustomerValue.customer_id, cap)
    if position is not None:
        stmt = stmt.where(keyset.after(sort, CustomerValue.customer_id, *position))
    stmt = stmt.order_by(*keyset.order(sort, CustomerValue.customer_id)).limit(size + 1)
    rows = db.session.execute(stmt).all()
    result.rows = rows[:size]
    if len(rows) > size:
        result.next_after = keyset.cursor_after(sort, rows[size - 1][0])
    return result


def distribution() -> dict[str, Any]:
    """Counts per segment, ABC class and quadrant (with margin and potential), and when the
    values were computed: four GROUP BY queries whatever the number of customers."""

    def grouped(column: Any, *sums: Any) -> dict[Any, tuple[Any, ...]]:
        stmt = (
            select(column, func.count(), *sums)
            .join(Customer, Customer.id == CustomerValue.customer_id)
            .group_by(column)
        )
        return {row[0]: tuple(row[1:]) for row in db.session.execute(stmt)}

    margin = func.coalesce(func.sum(CustomerValue.yearly_margin), 0)
    potential = func.coalesce(func.sum(CustomerValue.purchase_potential), 0)
    computed = db.session.scalar(
        select(func.max(CustomerValue.computed_at)).join(
            Customer, Customer.id == CustomerValue.customer_id
        )
    )
    return {
        "segment": grouped(CustomerValue.segment),
        "abc": grouped(CustomerValue.abc_class, margin),
        "quadrant": grouped(CustomerValue.quadrant, potential),
        "computed_at": computed,
    }


@bp.route("/value")
def value_index() -> Any:
    """Distribution of the company's customers, then the scored list."""
    args = request.args
    result = page(args, current_app.config["LIST_PAGE_SIZE"], current_app.config["COUNT_CAP"])
    html = render_template(
        "sales/value/index.html",
        page=result,
        dist=distribution(),
        rules=value.load_rules(),
        filters=FILTERS,
        sorts=[(k, str(v)) for k, v in SORT_LABELS.items()],
        segments=value.SEGMENTS,
        abc=value.ABC,
        quadrants=value.QUADRANTS,
        resources=dict((q, value.label(value.RESOURCES, r)) for q, r in value.RESOURCE_OF.items()),
        label=value.label,
        can_recompute=is_manager(),
    )
    return html, 400 if result.errors else 200


class ActionForm(FlaskForm):
    """A button that only carries the CSRF token."""


@bp.route("/value/recompute", methods=["POST"])
def value_recompute() -> Any:
    """Recompute now: the whole company (admins and managers), or one customer
    (``customer_id``; any member but a viewer who sees the customer)."""
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    raw = request.form.get("customer_id", "")
    if raw:
        if not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
            abort(400, _("customer_id: the id of a customer."))
        if _role() in (None, "viewer"):
            abort(
                403, _("Your role (%(role)s) can read values but not recompute them.", role=_role())
            )
        customer = db.session.get(Customer, int(raw))
        if customer is None or not access.can_see(customer):
            abort(404)
        value.recompute([customer.id])
        db.session.commit()
        flash(_("Value recomputed."))
        return redirect(url_for("customers.detail", customer_id=customer.id))
    if not is_manager():
        abort(403, _("Recomputing every customer needs the role admin or manager."))
    counts = value.recompute()
    db.session.commit()
    flash(_("Recomputed the value of %(count)s customers.", count=counts["customers"]))
    return redirect(url_for("sales.value_index"))


@bp.route("/value/export.<any(csv, xlsx):fmt>")
def value_export(fmt: str) -> Any:
    """The list (its filters, every page) as CSV or XLSX, 1,000 rows per query; needs the
    ``export`` permission and is audited."""
    _stmt, _sort, errors = list_query(request.args)
    if errors:
        return (
            "\n".join(f"{k}: {v}" for k, v in errors.items()),
            400,
            {"Content-Type": "text/plain"},
        )
    exporter.authorize("sales_customer_value", request.args)
    args = {k: v for k, v in request.args.items() if k != "after"}
    company_id, owners = current_company_id(), access.visible_owner_ids()

    def rows() -> Iterator[list[Any]]:
        with company_scope(company_id), access.owners_scope(owners):
            yield from _export_rows(args)

    return exporter.download(
        fmt, "customer-values", list(EXPORT_COLUMNS), rows, title=_("Customer value")
    )


def _export_rows(args: dict[str, str]) -> Iterator[list[Any]]:
    while True:
        batch = page(args, 1000, 1)
        for row, name, code, tier in batch.rows:
            named = {"customer_id": row.customer_id, "code": code, "name": name, "value_tier": tier}
            yield [named[c] if c in named else getattr(row, c) for c in EXPORT_COLUMNS]
        if batch.next_after is None:
            return
        args = {**args, "after": batch.next_after}
        db.session.expunge_all()


# -- the customer's box -------------------------------------------------------------------------


def render_panel(customer: Any) -> str:
    """The value box of ``customer``'s page: each score with the inputs that produced it."""
    row = db.session.get(CustomerValue, customer.id)
    rules = value.load_rules()
    return render_template(
        "sales/value/_panel.html",
        customer=customer,
        row=row,
        why=value.explain(row, rules) if row is not None else [],
        segment=value.label(value.SEGMENTS, row.segment) if row is not None else "",
        can_recompute=_role() not in (None, "viewer"),
    )


# -- the rules ----------------------------------------------------------------------------------


class Percent:
    """A finite decimal from 0 to 100 with at most two decimal places."""

    def __call__(self, form: Any, field: Any) -> None:
        number = field.data
        if number is None:
            return
        if not number.is_finite():
            raise ValidationError(_("Enter a number."))
        if number.as_tuple().exponent < -2:
            raise ValidationError(_("At most %(n)s decimal places.", n=2))
        if not Decimal(0) <= number <= Decimal(100):
            raise ValidationError(_("Enter a number from %(low)s to %(high)s.", low=0, high=100))


#: Label and help of each rule, in the form's order, by section.
SECTIONS: tuple[tuple[Any, tuple[tuple[str, Any, Any], ...]], ...] = (
    (
        _l("Recency (R)"),
        (
            (
                "window_days",
                _l("RFM window (days)"),
                _l("Frequency and monetary count these days."),
            ),
            ("r5_days", _l("Score 5 within (days)"), _l("Days since the last order, at most.")),
            ("r4_days", _l("Score 4 within (days)"), ""),
            ("r3_days", _l("Score 3 within (days)"), ""),
            ("r2_days", _l("Score 2 within (days)"), _l("Older is score 1.")),
            (
                "new_days",
                _l("New customer for (days)"),
                _l("Days since the first order (segment New)."),
            ),
        ),
    ),
    (
        _l("Frequency (F)"),
        (
            ("f5_orders", _l("Score 5 from (orders)"), _l("Orders in the window, at least.")),
            ("f4_orders", _l("Score 4 from (orders)"), ""),
            ("f3_orders", _l("Score 3 from (orders)"), ""),
            ("f2_orders", _l("Score 2 from (orders)"), _l("Fewer is score 1.")),
        ),
    ),
    (
        _l("Monetary (M)"),
        (
            ("m5_amount", _l("Score 5 from (yuan)"), _l("Amount ordered in the window, at least.")),
            ("m4_amount", _l("Score 4 from (yuan)"), ""),
            ("m3_amount", _l("Score 3 from (yuan)"), ""),
            ("m2_amount", _l("Score 2 from (yuan)"), _l("Less is score 1.")),
        ),
    ),
    (
        _l("Lifetime value"),
        (
            ("discount_rate", _l("Discount rate (%)"), _l("Per year, for the present value.")),
            ("horizon_years", _l("Horizon (years)"), _l("Years the yearly margin is counted.")),
            ("target_share", _l("Target share of wallet (%)"), _l("For the potential value.")),
            (
                "default_margin_rate",
                _l("Default margin rate (%)"),
                _l("For a potential without a share of wallet or revenue of its own."),
            ),
        ),
    ),
    (
        _l("ABC classes"),
        (
            ("abc_basis", _l("Rank customers by"), ""),
            ("abc_a", _l("Class A up to (% of the total)"), _l("Cumulative share, at most.")),
            ("abc_b", _l("Class B up to (% of the total)"), _l("Beyond is class C.")),
        ),
    ),
    (
        _l("Attack/defend quadrant"),
        (
            (
                "potential_threshold",
                _l("High purchase potential from (yuan/year)"),
                _l("Customers below it are low-potential."),
            ),
            ("share_high", _l("High share of wallet from (%)"), _l("Retain at or above it.")),
            ("share_low", _l("Low share of wallet below (%)"), _l("Harass or abandon below it.")),
        ),
    ),
)

ORDER_MESSAGES = {
    "r5_days": _l("Must be fewer days than the threshold of score 4."),
    "r4_days": _l("Must be fewer days than the threshold of score 3."),
    "r3_days": _l("Must be fewer days than the threshold of score 2."),
    "f2_orders": _l("Must be fewer orders than the threshold of score 3."),
    "f3_orders": _l("Must be fewer orders than the threshold of score 4."),
    "f4_orders": _l("Must be fewer orders than the threshold of score 5."),
    "m2_amount": _l("Must be less than the threshold of score 3."),
    "m3_amount": _l("Must be less than the threshold of score 4."),
    "m4_amount": _l("Must be less than the threshold of score 5."),
    "abc_a": _l("Must be below the share that ends class B."),
    "share_low": _l("Must be below the high share."),
}


def _rule_field(name: str, text: Any, help_text: Any) -> Any:
    if name in value.BOUNDS:
        low, high = value.BOUNDS[name]
        return IntegerField(
            text, description=help_text, validators=[InputRequired(), NumberRange(low, high)]
        )
    if name == "abc_basis":
        return SelectField(text, description=help_text, validators=[InputRequired()])
    return DecimalField(
        text, places=2, description=help_text, validators=[InputRequired(), Percent()]
    )


class _RulesFormBase(FlaskForm):
    """Checks across fields and the rules out of the form."""

    def validate(self, extra_validators: Any = None) -> bool:
        ok = super().validate(extra_validators)
        for name, above, _message in value.ORDER:
            low, high = self[name], self[above]
            if low.errors or high.errors or low.data is None or high.data is None:
                continue
            if not low.data < high.data:
                low.errors = [*low.errors, ORDER_MESSAGES[name]]
                ok = False
        return ok

    def rules(self) -> dict[str, Any]:
        return {name: self[name].data for name in value.RULE_NAMES}


#: One field per :class:`plugins.sales.value.Rules` value (same bounds and order).
RulesForm = type(
    "RulesForm",
    (_RulesFormBase,),
    {name: _rule_field(name, text, h) for _s, items in SECTIONS for name, text, h in items},
)


def _settings_guard() -> None:
    if not is_manager():
        abort(
            403,
            _("The value rules need the role admin or manager; you are %(role)s.", role=_role()),
        )


def _render_settings(form: Any, status: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "sales/value/settings.html",
            form=form,
            sections=SECTIONS,
            defaults=value.DEFAULTS.as_json(),
            segment_rules=value.SEGMENT_RULES,
            segments=value.SEGMENTS,
            label=value.label,
        ),
        status,
    )


@bp.route("/value/settings", methods=["GET", "POST"])
def value_settings() -> Any:
    """The company's value rules; saving validates them, stores them and recomputes."""
    _settings_guard()
    current = value.load_rules().as_dict() if request.method == "GET" else None
    form = RulesForm(data=current)
    form.abc_basis.choices = [(v, value.label(value.BASES, v)) for v, _t, _z in value.BASES]
    if form.validate_on_submit():
        try:
            value.save_rules(form.rules(), user_id=current_user.id)
        except value.RulesError as exc:  # the form checks the same; kept as a safety net
            db.session.rollback()
            for name, messages in exc.errors.items():
                if name in form:
                    form[name].errors = [*form[name].errors, *messages]
            return _render_settings(form, 422)
        counts = value.recompute()
        db.session.commit()
        flash(
            _(
                "Rules saved; the value of %(count)s customers recomputed.",
                count=counts["customers"],
            )
        )
        return redirect(url_for("sales.value_settings"))
    return _render_settings(form, 422 if form.errors else 200)


@bp.route("/value/settings/reset", methods=["POST"])
def value_settings_reset() -> Any:
    """Back to the default rules, and recompute."""
    _settings_guard()
    if not ActionForm().validate_on_submit():
        abort(400, _("The form expired; reload the page and try again."))
    value.reset_rules(user_id=current_user.id)
    value.recompute()
    db.session.commit()
    flash(_("Default rules restored and values recomputed."))
    return redirect(url_for("sales.value_settings"))
