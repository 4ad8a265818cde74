"""Sales part: customer value (客户价值, DOMAIN §1 and §4), computed set-based in SQL.

:func:`recompute` rewrites one row of :class:`~plugins.sales.models.CustomerValue` per customer
of the current company from its orders (``sales_order``; cancelled orders do not count, nor do
orders dated after "today") and its purchase potential and share of wallet (extension fields
``sales__purchase_potential`` and ``sales__share_of_wallet``):

* **RFM** over the window (default the 365 days up to and including today): recency (days since
  the last order), frequency (orders in the window), monetary (amount in the window), each scored
  1-5 by the company's fixed thresholds, and a **segment** by the rules of :data:`SEGMENT_RULES`;
* **historical value** (历史价值) = margin (amount - cost) of every order so far;
* **current value** (实际价值) = NPV of the margin of the last 12 months, kept for ``horizon``
  years at the company's discount rate: ``yearly_margin * (1 - (1 + r) ** -n) / r``;
* **potential value** (潜在价值) = the same NPV if our share of the customer's wallet rose to the
  target share (see :func:`potential_sql`);
* **lifetime value** (客户终生价值) = historical value + current value;
* **ABC class** by the customer's cumulative share of the company's yearly margin (or revenue);
* the **attack/defend quadrant** (攻守模型) from purchase potential × share of wallet, with its
  resource recommendation.

It also feeds the core's classification: ``customer.revenue`` becomes the amount ordered in the
last 12 months (for customers that have orders; the others keep the revenue typed or imported),
then :func:`core.classify.classify_customers` moves value tiers (with their audited history) and
loyalty. The number of statements is the same for 10 customers or 100,000 (docs/sales-value.md).

The rules are the company's setting ``sales_value`` (:class:`Rules`), edited on
``/sales/value/settings`` (:mod:`plugins.sales.web_value`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import marshmallow as ma
from sqlalchemy import (
    Date,
    Integer,
    Numeric,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from core.extend import (
    Job,
    MenuItem,
    Panel,
    Report,
    ReportColumn,
    ReportParam,
    Resource,
    Sort,
    customer_joined,
    daily,
    db,
    model_schema,
    require_company,
    utcnow,
)
from core.i18n import pick
from plugins.sales.models import CustomerValue, Order

log = logging.getLogger("guanxi.sales.value")

SETTING_KEY = "sales_value"
MAX_AMOUNT = 10**12
MAX_DAYS = 36500

# -- labels -------------------------------------------------------------------------------------

#: RFM segments ``(value, label, label_zh)`` in the order of their rules.
SEGMENTS: tuple[tuple[str, str, str], ...] = (
    ("champions", "Champions", "冠军客户"),
    ("loyal", "Loyal", "忠诚客户"),
    ("new", "New", "新客户"),
    ("potential_loyalist", "Potential loyalist", "潜力客户"),
    ("needs_attention", "Needs attention", "需要关注"),
    ("cant_lose", "Can't lose", "不能失去"),
    ("at_risk", "At risk", "流失风险"),
    ("hibernating", "Hibernating", "休眠客户"),
    ("lost", "Lost", "已流失"),
)
#: ABC classes.
ABC: tuple[tuple[str, str, str], ...] = (
    ("A", "A · top contributors", "A类 · 主要贡献"),
    ("B", "B · middle", "B类 · 中间"),
    ("C", "C · long tail", "C类 · 长尾"),
)
#: Quadrants of the attack/defend model (攻守模型) and the resource each gets.
QUADRANTS: tuple[tuple[str, str, str], ...] = (
    ("retain", "Retain", "保留"),
    ("acquire", "Acquire", "获取"),
    ("harass", "Harass", "侵扰"),
    ("maintain", "Maintain", "维持"),
    ("abandon", "Abandon", "放弃"),
)
RESOURCES: tuple[tuple[str, str, str], ...] = (
    ("defend", "Defend", "防守"),
    ("attack", "Attack", "进攻"),
    ("maintain", "Maintain", "维持"),
    ("none", "No resources", "不投入"),
)
RESOURCE_OF = {
    "retain": "defend",
    "acquire": "attack",
    "harass": "attack",
    "maintain": "maintain",
    "abandon": "none",
}
BASES: tuple[tuple[str, str, str], ...] = (
    ("margin", "Margin of the last 12 months", "近12个月毛利"),
    ("revenue", "Revenue of the last 12 months", "近12个月收入"),
)


def label(options: Sequence[tuple[str, str, str]], value: str | None) -> str:
    """The label of ``value`` among ``options`` in the user's language ("" for none)."""
    for key, text, text_zh in options:
        if key == value:
            return pick(text, text_zh)
    return "" if value is None else str(value)


# -- the company's rules ------------------------------------------------------------------------


@dataclass(frozen=True)
class Rules:
    """A company's customer-value rules (amounts in yuan, periods in days, rates in %).

    RFM scores: recency ``<= r5_days`` → 5, ``<= r4_days`` → 4, ``<= r3_days`` → 3,
    ``<= r2_days`` → 2, else 1; frequency ``>= f5_orders`` → 5 … ``>= f2_orders`` → 2, else 1;
    monetary ``>= m5_amount`` → 5 … ``>= m2_amount`` → 2, else 1.
    """

    window_days: int = 365
    r5_days: int = 30
    r4_days: int = 90
    r3_days: int = 180
    r2_days: int = 365
    f5_orders: int = 12
    f4_orders: int = 6
    f3_orders: int = 3
    f2_orders: int = 2
    m5_amount: int = 1_000_000
    m4_amount: int = 200_000
    m3_amount: int = 50_000
    m2_amount: int = 10_000
    new_days: int = 90
    discount_rate: Decimal = Decimal("10")
    horizon_years: int = 5
    target_share: int = 100
    default_margin_rate: Decimal = Decimal("20")
    abc_basis: str = "margin"
    abc_a: int = 80
    abc_b: int = 95
    potential_threshold: int = 1_000_000
    share_high: int = 60
    share_low: int = 20

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_json(self) -> dict[str, Any]:
        """The rules as JSON values (decimals as strings)."""
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in self.as_dict().items()}

    @property
    def annuity(self) -> Decimal:
        """Present value of 1 yuan a year for ``horizon_years`` at ``discount_rate``:
        ``(1 - (1 + r) ** -n) / r`` (``n`` when the rate is 0), to 10 decimal places."""
        return annuity_factor(self.discount_rate, self.horizon_years)


def annuity_factor(rate_percent: Decimal, years: int) -> Decimal:
    """``(1 - (1 + r) ** -n) / r`` with ``r = rate_percent / 100`` (``n`` for a zero rate)."""
    r = Decimal(rate_percent) / 100
    if r == 0:
        return Decimal(years)
    return ((1 - (1 + r) ** -years) / r).quantize(Decimal("0.0000000001"))


DEFAULTS = Rules()
RULE_NAMES = tuple(f.name for f in dataclasses.fields(Rules))


class RulesError(ValueError):
    """Rules refused; ``errors`` maps each offending field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


def _int(low: int, high: int) -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(min=low, max=high)
    )


def _percent() -> ma.fields.Decimal:
    return ma.fields.Decimal(
        required=True, places=2, validate=ma.validate.Range(min=Decimal(0), max=Decimal(100))
    )


#: Bounds of every whole-number rule: (low, high).
BOUNDS: dict[str, tuple[int, int]] = {
    "window_days": (1, 3650),
    "r5_days": (0, MAX_DAYS),
    "r4_days": (0, MAX_DAYS),
    "r3_days": (0, MAX_DAYS),
    "r2_days": (0, MAX_DAYS),
    "f5_orders": (1, 1_000_000),
    "f4_orders": (1, 1_000_000),
    "f3_orders": (1, 1_000_000),
    "f2_orders": (1, 1_000_000),
    "m5_amount": (0, MAX_AMOUNT),
    "m4_amount": (0, MAX_AMOUNT),
    "m3_amount": (0, MAX_AMOUNT),
    "m2_amount": (0, MAX_AMOUNT),
    "new_days": (1, MAX_DAYS),
    "horizon_years": (1, 50),
    "target_share": (1, 100),
    "abc_a": (1, 100),
    "abc_b": (1, 100),
    "potential_threshold": (0, MAX_AMOUNT),
    "share_high": (0, 100),
    "share_low": (0, 100),
}

#: ``(field, the field it must stay below, message)``: checked by the schema and the form.
ORDER: tuple[tuple[str, str, str], ...] = (
    ("r5_days", "r4_days", "Must be fewer days than the threshold of score 4."),
    ("r4_days", "r3_days", "Must be fewer days than the threshold of score 3."),
    ("r3_days", "r2_days", "Must be fewer days than the threshold of score 2."),
    ("f2_orders", "f3_orders", "Must be fewer orders than the threshold of score 3."),
    ("f3_orders", "f4_orders", "Must be fewer orders than the threshold of score 4."),
    ("f4_orders", "f5_orders", "Must be fewer orders than the threshold of score 5."),
    ("m2_amount", "m3_amount", "Must be less than the threshold of score 3."),
    ("m3_amount", "m4_amount", "Must be less than the threshold of score 4."),
    ("m4_amount", "m5_amount", "Must be less than the threshold of score 5."),
    ("abc_a", "abc_b", "Must be below the share that ends class B."),
    ("share_low", "share_high", "Must be below the high share."),
)


class RulesSchema(
    ma.Schema.from_dict({name: _int(low, high) for name, (low, high) in BOUNDS.items()})  # type: ignore[misc]
):
    """Validation of the setting ``sales_value``: every field required, bounded, consistent."""

    class Meta:
        unknown = ma.RAISE

    discount_rate = _percent()
    default_margin_rate = _percent()
    abc_basis = ma.fields.String(
        required=True, validate=ma.validate.OneOf([v for v, _l, _z in BASES])
    )

    @ma.validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for field, above, message in ORDER:
            if field in data and above in data and not data[field] < data[above]:
                errors.setdefault(field, []).append(message)
        if errors:
            raise ma.ValidationError(errors)


def validate_rules(data: Any) -> Rules:
    """Rules from ``data`` (missing fields take the defaults); raises :class:`RulesError`
    naming each bad or unknown field."""
    if not isinstance(data, dict):
        raise RulesError({"_schema": ["Rules must be an object of named values."]})
    try:
        loaded = RulesSchema().load({**DEFAULTS.as_json(), **data})
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise RulesError(
            {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in messages.items()}
        ) from exc
    return Rules(**loaded)


def _setting() -> Any:
    from core.models import CompanySetting

    return db.session.scalars(
        select(CompanySetting).where(CompanySetting.key == SETTING_KEY)
    ).first()


def load_rules() -> Rules:
    """The current company's rules (defaults for what it has not set, or if the stored value
    no longer validates)."""
    row = _setting()
    if row is None or not row.value:
        return DEFAULTS
    try:
        return validate_rules(row.value)
    except RulesError as exc:
        log.warning("company setting %s is invalid (%s); using the defaults", SETTING_KEY, exc)
        return DEFAULTS


def save_rules(data: Mapping[str, Any], user_id: int | None = None) -> Rules:
    """Validate and store the current company's rules (only values that differ from the
    defaults; audited); the caller commits."""
    from core import audit
    from core.models import CompanySetting

    rules = validate_rules(dict(data))
    defaults = DEFAULTS.as_dict()
    tuned = {k: v for k, v in rules.as_json().items() if getattr(rules, k) != defaults[k]}
    row = CompanySetting.put(SETTING_KEY, tuned)
    audit.record(
        "update", "company_setting", row.id, {"key": SETTING_KEY, "value": tuned}, user_id=user_id
    )
    return rules


def reset_rules(user_id: int | None = None) -> None:
    """Drop the current company's tuned rules (back to the defaults); the caller commits."""
    from core import audit

    row = _setting()
    if row is not None:
        audit.record("delete", "company_setting", row.id, {"key": SETTING_KEY}, user_id=user_id)
        db.session.delete(row)
        db.session.flush()


# -- SQL helpers (the same on SQLite and PostgreSQL) --------------------------------------------


class _DaysSince(FunctionElement):
    """Whole days from a date column to a later date: ``today - day``."""

    type = Integer()
    inherit_cache = True
    name = "guanxi_days_since"


@compiles(_DaysSince)
def _days_since_default(element: _DaysSince, compiler: Any, **kw: Any) -> str:
    today, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST({today} AS DATE) - {day})"


@compiles(_DaysSince, "sqlite")
def _days_since_sqlite(element: _DaysSince, compiler: Any, **kw: Any) -> str:
    today, day = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(julianday({today}) - julianday({day}) AS INTEGER)"


class _Real(FunctionElement):
    """A number that divides without truncation: ``REAL`` on SQLite (where sums of whole
    amounts are integers), ``NUMERIC`` on PostgreSQL (exact)."""

    type = Numeric()
    inherit_cache = True
    name = "guanxi_real"


@compiles(_Real)
def _real_default(element: _Real, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS NUMERIC)"


@compiles(_Real, "sqlite")
def _real_sqlite(element: _Real, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS REAL)"


def _num(name: str, value: Any) -> Any:
    return bindparam(name, Decimal(value), type_=Numeric(24, 10))


def _money(expr: Any) -> Any:
    return func.round(_Real(expr), 2)


def _tables() -> tuple[Any, Any, Any, Any]:
    from core import fields as ext
    from core.models import Customer

    return (
        Order.__table__,
        Customer.__table__,
        CustomerValue.__table__,
        ext.side_table("sales", "customer"),
    )


class _Scan(FunctionElement):
    """A column compared without its index on SQLite (``+company_id``): reading every order of
    the company, SQLite otherwise walks the ``(company_id, customer_id, ordered_on)`` index and
    looks each order up in random order -- twice as slow as one pass over the table and a
    sort. Plain column elsewhere (PostgreSQL's planner chooses for itself)."""

    inherit_cache = True
    name = "guanxi_scan"

    @property
    def type(self) -> Any:  # the column's own type
        return next(iter(self.clauses)).type


@compiles(_Scan)
def _scan_default(element: _Scan, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Scan, "sqlite")
def _scan_sqlite(element: _Scan, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def _aggregates(company_id: int, today: date, rules: Rules, ids: Sequence[int] | None) -> Any:
    """One GROUP BY pass over the company's orders up to ``today`` (cancelled ones left out):
    per customer, first and last order, orders so far, frequency and amount in the window,
    revenue and margin of the last 12 months (the 365 days up to today) and margin so far.
    With the default 365-day window the amount in the window *is* the yearly revenue and is
    summed once."""
    o = Order.__table__
    window = o.c.ordered_on > bindparam("window_start", today - _days(rules.window_days), Date)
    year = o.c.ordered_on > bindparam("year_start", today - _days(365), Date)
    margin = o.c.amount - o.c.cost
    own_window = []
    if rules.window_days != 365:
        own_window.append(func.sum(case((window, o.c.amount), else_=0)).label("monetary"))
    company = o.c.company_id if ids is not None else _Scan(o.c.company_id)
    stmt = (
        select(
            o.c.customer_id,
            func.min(o.c.ordered_on).label("first_order_on"),
            func.max(o.c.ordered_on).label("last_order_on"),
            func.count().label("orders_total"),
            func.sum(case((window, 1), else_=0)).label("frequency"),
            *own_window,
            func.sum(case((year, o.c.amount), else_=0)).label("yearly_revenue"),
            func.sum(case((year, margin), else_=0)).label("yearly_margin"),
            func.sum(margin).label("historical_value"),
        )
        .where(
            company == company_id,
            o.c.state != "cancelled",
            o.c.ordered_on <= bindparam("today", today, Date),
        )
        .group_by(o.c.customer_id)
    )
    if ids is not None:
        stmt = stmt.where(o.c.customer_id.in_(ids))
    return stmt.subquery("agg")


def _days(n: int) -> timedelta:
    return timedelta(days=n)


def _score_days(last: Any, today: date, rules: Rules) -> Any:
    """Recency score: how recent the last order is against the day thresholds."""
    steps = [
        (5, rules.r5_days),
        (4, rules.r4_days),
        (3, rules.r3_days),
        (2, rules.r2_days),
    ]
    return case(
        (last.is_(None), null()),
        *[
            (last >= bindparam(f"r{score}_since", today - _days(days), Date), literal(score))
            for score, days in steps
        ],
        else_=literal(1),
    )


def _score_at_least(value: Any, last: Any, thresholds: Sequence[tuple[int, Any]]) -> Any:
    return case(
        (last.is_(None), null()),
        *[(value >= threshold, literal(score)) for score, threshold in thresholds],
        else_=literal(1),
    )


def segment_sql(r: Any, f: Any, m: Any, first: Any, today: date, rules: Rules) -> Any:
    """SQL ``CASE`` of the segment of scores ``r``, ``f``, ``m`` (first rule that matches,
    :data:`SEGMENT_RULES`); ``NULL`` for a customer without orders."""
    new_since = bindparam("new_since", today - _days(rules.new_days), Date)
    return case(
        (r.is_(None), null()),
        (and_(r >= 4, f >= 4, m >= 4), literal("champions")),
        (and_(r >= 3, f >= 4), literal("loyal")),
        (first >= new_since, literal("new")),
        (r >= 4, literal("potential_loyalist")),
        (r == 3, literal("needs_attention")),
        (and_(f >= 4, m >= 4), literal("cant_lose")),
        (f >= 3, literal("at_risk")),
        (r == 2, literal("hibernating")),
        else_=literal("lost"),
    )


#: The segment rules as the docs and the customer page state them (first match wins).
SEGMENT_RULES: tuple[tuple[str, str, str], ...] = (
    ("champions", "R ≥ 4, F ≥ 4 and M ≥ 4", "R ≥ 4、F ≥ 4 且 M ≥ 4"),
    ("loyal", "R ≥ 3 and F ≥ 4", "R ≥ 3 且 F ≥ 4"),
    ("new", "first order within the new-customer days", "首单在新客户天数内"),
    ("potential_loyalist", "R ≥ 4", "R ≥ 4"),
    ("needs_attention", "R = 3", "R = 3"),
    ("cant_lose", "R ≤ 2, F ≥ 4 and M ≥ 4", "R ≤ 2、F ≥ 4 且 M ≥ 4"),
    ("at_risk", "R ≤ 2 and F ≥ 3", "R ≤ 2 且 F ≥ 3"),
    ("hibernating", "R = 2", "R = 2"),
    ("lost", "R = 1 (none of the above)", "R = 1（以上都不是）"),
)


def potential_sql(
    yearly_margin: Any, yearly_revenue: Any, potential: Any, share: Any, rules: Rules
) -> Any:
    """SQL of the yearly margin the customer would give at the target share of wallet:

    * share known and above 0: ``yearly_margin × target / share`` (never below the yearly
      margin: a share at or above the target keeps it);
    * else, purchase potential known: ``potential × target% × margin rate``, the margin rate
      being the customer's own (yearly margin / yearly revenue) or, without revenue in the last
      12 months, the company's default margin rate;
    * else the yearly margin (nothing tells us more).
    """
    target = rules.target_share
    rate = case(
        (yearly_revenue > 0, _Real(yearly_margin) / yearly_revenue),
        else_=_num("default_margin", rules.default_margin_rate / 100),
    )
    return case(
        (and_(share.is_not(None), share >= target), yearly_margin),
        (and_(share.is_not(None), share > 0), _Real(yearly_margin) * target / share),
        (potential > 0, _Real(potential) * _num("target_fraction", Decimal(target) / 100) * rate),
        else_=yearly_margin,
    )


def quadrant_sql(potential: Any, share: Any, rules: Rules) -> Any:
    """SQL ``CASE`` of the attack/defend quadrant; ``NULL`` without potential or share."""
    high = potential >= bindparam("potential_threshold", Decimal(rules.potential_threshold))
    return case(
        (or_(potential.is_(None), share.is_(None)), null()),
        (and_(high, share >= rules.share_high), literal("retain")),
        (and_(high, share >= rules.share_low), literal("acquire")),
        (high, literal("harass")),
        (share >= rules.share_low, literal("maintain")),
        else_=literal("abandon"),
    )


def resource_sql(potential: Any, share: Any, rules: Rules) -> Any:
    """SQL ``CASE`` of the resources the quadrant gets (:data:`RESOURCE_OF`), decided from the
    same inputs rather than from the quadrant's ``CASE`` (evaluated once per row, not five
    times)."""
    high = potential >= bindparam("potential_threshold_r", Decimal(rules.potential_threshold))
    return case(
        (or_(potential.is_(None), share.is_(None)), null()),
        (and_(high, share >= rules.share_high), literal(RESOURCE_OF["retain"])),
        (high, literal(RESOURCE_OF["acquire"])),
        (share >= rules.share_low, literal(RESOURCE_OF["maintain"])),
        else_=literal(RESOURCE_OF["abandon"]),
    )


def _rows_select(company_id: int, today: date, rules: Rules, ids: Sequence[int] | None) -> Any:
    """``SELECT`` of the new value rows of the company's customers; for only ``ids`` the ABC
    class is left to :func:`_abc_update` (it ranks them among every customer)."""
    _o, c, _v, x = _tables()
    agg = _aggregates(company_id, today, rules, ids)
    last = agg.c.last_order_on
    zero = literal(0)
    in_window = agg.c.monetary if "monetary" in agg.c else agg.c.yearly_revenue
    monetary = func.coalesce(in_window, zero)
    frequency = func.coalesce(agg.c.frequency, zero)
    base = (
        select(
            c.c.id.label("customer_id"),
            c.c.company_id,
            agg.c.first_order_on,
            last.label("last_order_on"),
            func.coalesce(agg.c.orders_total, zero).label("orders_total"),
            _DaysSince(bindparam("today_r", today, Date), last).label("recency_days"),
            frequency.label("frequency"),
            monetary.label("monetary"),
            func.coalesce(agg.c.historical_value, zero).label("historical_value"),
            func.coalesce(agg.c.yearly_revenue, zero).label("yearly_revenue"),
            func.coalesce(agg.c.yearly_margin, zero).label("yearly_margin"),
            x.c.purchase_potential,
            x.c.share_of_wallet,
            _score_days(last, today, rules).label("r_score"),
            _score_at_least(
                frequency,
                last,
                [
                    (5, rules.f5_orders),
                    (4, rules.f4_orders),
                    (3, rules.f3_orders),
                    (2, rules.f2_orders),
                ],
            ).label("f_score"),
            _score_at_least(
                monetary,
                last,
                [
                    (score, bindparam(f"m{score}_amount", Decimal(amount)))
                    for score, amount in (
                        (5, rules.m5_amount),
                        (4, rules.m4_amount),
                        (3, rules.m3_amount),
                        (2, rules.m2_amount),
                    )
                ],
            ).label("m_score"),
        )
        .select_from(c.outerjoin(agg, agg.c.customer_id == c.c.id).outerjoin(x, x.c.id == c.c.id))
        .where(c.c.company_id == company_id)
    )
    if ids is not None:
        base = base.where(c.c.id.in_(ids))
    s = base.subquery("s")
    if ids is None:  # every customer is here: rank them for ABC in the same statement
        s = _ranked(select(s), s.c, rules).subquery("r")
    annuity = _num("annuity", rules.annuity)
    current = _money(s.c.yearly_margin * annuity)
    uplift = potential_sql(
        s.c.yearly_margin, s.c.yearly_revenue, s.c.purchase_potential, s.c.share_of_wallet, rules
    )
    quadrant = quadrant_sql(s.c.purchase_potential, s.c.share_of_wallet, rules)
    abc_class, abc_share = _abc_sql(s.c, rules) if ids is None else (null(), null())
    return select(
        s.c.customer_id,
        s.c.company_id,
        s.c.first_order_on,
        s.c.last_order_on,
        s.c.orders_total,
        s.c.recency_days,
        s.c.frequency,
        _money(s.c.monetary).label("monetary"),
        s.c.r_score,
        s.c.f_score,
        s.c.m_score,
        segment_sql(s.c.r_score, s.c.f_score, s.c.m_score, s.c.first_order_on, today, rules).label(
            "segment"
        ),
        _money(s.c.historical_value).label("historical_value"),
        _money(s.c.yearly_revenue).label("yearly_revenue"),
        _money(s.c.yearly_margin).label("yearly_margin"),
        current.label("current_value"),
        _money(uplift * annuity).label("potential_value"),
        _money(s.c.historical_value + s.c.yearly_margin * annuity).label("lifetime_value"),
        s.c.purchase_potential,
        s.c.share_of_wallet,
        abc_class.label("abc_class"),
        abc_share.label("abc_share"),
        quadrant.label("quadrant"),
        resource_sql(s.c.purchase_potential, s.c.share_of_wallet, rules).label("resource"),
        bindparam("computed_at", utcnow(), type_=CustomerValue.__table__.c.computed_at.type).label(
            "computed_at"
        ),
    )


def _ranked(stmt: Any, cols: Any, rules: Rules) -> Any:
    """``stmt`` with each row's ABC basis (yearly margin or revenue, 0 when not positive),
    the running total of the basis from the largest down (``cum``) and the ``total``;
    ``cols`` has ``customer_id``, ``yearly_margin`` and ``yearly_revenue``."""
    column = cols.yearly_margin if rules.abc_basis == "margin" else cols.yearly_revenue
    basis = case((column > 0, column), else_=literal(0))
    ordering = (basis.desc(), cols.customer_id)
    return stmt.add_columns(
        basis.label("basis"),
        func.sum(basis).over(order_by=ordering, rows=(None, 0)).label("cum"),
        func.sum(basis).over().label("total"),
    )


def _abc_sql(ranked: Any, rules: Rules) -> tuple[Any, Any]:
    """ABC class and cumulative share (%) of a row of :func:`_ranked` (columns ``ranked``):
    none without orders, C without a positive basis, A up to ``abc_a`` % of the total (and the
    largest customer always), B up to ``abc_b`` %, else C."""
    cum, total = _Real(ranked.cum), ranked.total
    new_class = case(
        (ranked.last_order_on.is_(None), null()),
        (ranked.basis <= 0, literal("C")),
        # the largest customer is the one with nothing before it: its running total is itself
        (or_(ranked.cum <= ranked.basis, cum * 100 <= total * rules.abc_a), literal("A")),
        (cum * 100 <= total * rules.abc_b, literal("B")),
        else_=literal("C"),
    )
    share = case(
        (and_(ranked.basis > 0, total > 0), func.round(cum * 100 / total, 2)), else_=null()
    )
    return new_class, share


def _abc_update(company_id: int, rules: Rules, ids: Sequence[int]) -> Any:
    """``UPDATE … FROM`` after a partial recompute: ABC class and cumulative share of the rows
    recomputed, ranked among all the company's rows as they stand. Each recomputed row sums
    the basis of the rows ranked at or above it (one pass over the value table per row, no
    sort), so saving an order costs milliseconds at 100,000 customers; classes of the other
    customers that the change moves follow at the nightly recompute."""
    v = CustomerValue.__table__
    mine, other = v.alias("mine"), v.alias("other")

    def basis(t: Any) -> Any:
        column = t.c.yearly_margin if rules.abc_basis == "margin" else t.c.yearly_revenue
        return case((column > 0, column), else_=literal(0))

    above = or_(
        basis(other) > basis(mine),
        and_(basis(other) == basis(mine), other.c.customer_id <= mine.c.customer_id),
    )
    # A GROUP BY, so that the database computes each sum once (a scalar subquery per column
    # would be evaluated again wherever the class expression names it).
    ranked = (
        select(
            mine.c.customer_id,
            mine.c.last_order_on,
            basis(mine).label("basis"),
            func.sum(case((above, basis(other)), else_=literal(0))).label("cum"),
            func.sum(basis(other)).label("total"),
        )
        .select_from(mine.join(other, other.c.company_id == mine.c.company_id))
        .where(mine.c.company_id == company_id, mine.c.customer_id.in_(ids))
        .group_by(mine.c.customer_id, mine.c.last_order_on, basis(mine))
        .subquery("ranked")
    )
    new_class, share = _abc_sql(ranked.c, rules)
    return (
        update(v)
        .where(v.c.customer_id == ranked.c.customer_id)
        .values(abc_class=new_class, abc_share=share)
    )


def _revenue_update(company_id: int, ids: Sequence[int] | None) -> Any:
    """``UPDATE customer … FROM sales_customer_value``: revenue = amount of the last 12 months,
    for customers that have at least one order (any state); ``updated_at`` is left alone."""
    from core.models import Customer

    o, _c, v, _x = _tables()
    ordered = exists().where(o.c.company_id == company_id, o.c.customer_id == Customer.id)
    stmt = (
        update(Customer)
        .where(
            v.c.customer_id == Customer.id,
            Customer.company_id == company_id,
            ordered,
            Customer.revenue.is_distinct_from(v.c.yearly_revenue),
        )
        .values(revenue=v.c.yearly_revenue, updated_at=Customer.updated_at)
        .execution_options(synchronize_session=False)
    )
    if ids is not None:
        stmt = stmt.where(Customer.id.in_(ids))
    return stmt


def _upsert(rows: Any) -> Any:
    """``INSERT … SELECT … ON CONFLICT (customer_id) DO UPDATE``: every row of ``rows`` written
    over the customer's previous values (SQLite and PostgreSQL spell it alike). Rewriting in
    place beat ``DELETE`` + ``INSERT`` by a third at 100,000 customers; rows of deleted
    customers go with them (foreign key ``ON DELETE CASCADE``)."""
    v = CustomerValue.__table__
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    names = [col.name for col in rows.selected_columns]
    # ``WHERE true``: SQLite would otherwise read ``ON CONFLICT`` as the ``ON`` of a join.
    stmt = dialect_insert(v).from_select(names, rows.where(true()))
    return stmt.on_conflict_do_update(
        index_elements=[v.c.customer_id],
        set_={name: stmt.excluded[name] for name in names if name != "customer_id"},
    )


def recompute(
    customer_ids: Iterable[int] | None = None,
    *,
    today: date | None = None,
    rules: Rules | None = None,
    now: datetime | None = None,
) -> dict[str, int]:
    """Recompute the value of the current company's customers (only ``customer_ids`` when
    given, e.g. after an order), then feed revenue and the core's classification.

    ``today`` (default: today in the company's time zone) is the day RFM and the 12 months
    count back from; ``now`` goes to :func:`core.classify.classify_customers`. A constant
    number of statements whatever the number of customers. Returns counts: ``customers``
    (value rows written), ``revenue`` (customers whose revenue changed) and the
    classification's changes. The caller commits.
    """
    from core import access, classify
    from core.reports import today as company_today

    chosen: list[int] | None = None if customer_ids is None else sorted(set(customer_ids))
    if chosen is not None and not chosen:
        return {"customers": 0, "revenue": 0}
    company_id = require_company()
    rules = rules or load_rules()
    today = today or company_today()
    db.session.flush()
    with access.all_customers():  # system work: a rep's record rule must not narrow it
        fill = _upsert(_rows_select(company_id, today, rules, chosen))
        written = db.session.execute(fill.execution_options(preserve_rowcount=True)).rowcount
        if chosen is not None:
            db.session.execute(_abc_update(company_id, rules, chosen))
        revenue = db.session.execute(_revenue_update(company_id, chosen)).rowcount
        changed = classify.classify_customers(chosen, now=now)
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, CustomerValue):
            db.session.expire(obj)
        elif type(obj).__name__ == "Customer":
            db.session.expire(obj, ["revenue"])
    return {"customers": written, "revenue": revenue, **changed}


def run_job(company: Any) -> str:
    """The nightly job ``sales.value`` (runs inside the company's scope)."""
    counts = recompute()
    return ", ".join(f"{k} {v}" for k, v in counts.items())


# -- "why": the inputs behind each score ----------------------------------------------------------


def _money_text(value: Any) -> str:
    """``120,000`` or ``120,000.50``."""
    number = Decimal(value or 0)
    return f"{number:,.0f}" if number == number.to_integral_value() else f"{number:,.2f}"


def _steps(pairs: Sequence[tuple[int, Any]], sign: str) -> str:
    """``≤30 → 5, ≤90 → 4, ≤180 → 3, ≤365 → 2, else 1``."""
    from flask_babel import gettext as _

    shown = ", ".join(f"{sign}{_money_text(t)} → {s}" for s, t in pairs)
    return _("%(steps)s, else 1", steps=shown)


def explain(row: CustomerValue, rules: Rules) -> list[dict[str, str]]:
    """The customer's scores with the inputs that produced them, one ``{"key", "title",
    "text"}`` per score, in the user's language."""
    from flask_babel import gettext as _
    from flask_babel import ngettext

    out: list[dict[str, str]] = []

    def add(key: str, title: str, text: str) -> None:
        out.append({"key": key, "title": title, "text": text})

    window = rules.window_days
    if row.last_order_on is None:
        add("rfm", _("RFM"), _("No orders yet: no RFM scores and no segment."))
    else:
        days = [(5, rules.r5_days), (4, rules.r4_days), (3, rules.r3_days), (2, rules.r2_days)]
        add(
            "r",
            f"R {row.r_score}",
            _(
                "last order %(days)s days ago, %(day)s (%(steps)s)",
                days=row.recency_days,
                day=row.last_order_on.isoformat(),
                steps=_steps(days, "≤"),
            ),
        )
        orders = [(5, rules.f5_orders), (4, rules.f4_orders), (3, rules.f3_orders)]
        orders.append((2, rules.f2_orders))
        add(
            "f",
            f"F {row.f_score}",
            ngettext(
                "%(num)s order in %(window)s days (%(steps)s)",
                "%(num)s orders in %(window)s days (%(steps)s)",
                row.frequency,
                window=window,
                steps=_steps(orders, "≥"),
            ),
        )
        amounts = [(5, rules.m5_amount), (4, rules.m4_amount), (3, rules.m3_amount)]
        amounts.append((2, rules.m2_amount))
        add(
            "m",
            f"M {row.m_score}",
            _(
                "¥%(amount)s in %(window)s days (%(steps)s)",
                amount=_money_text(row.monetary),
                window=window,
                steps=_steps(amounts, "≥"),
            ),
        )
        rule = next(pick(t, z) for key, t, z in SEGMENT_RULES if key == row.segment)
        add("segment", label(SEGMENTS, row.segment), _("rule: %(rule)s", rule=rule))
    add(
        "ltv",
        _("LTV ¥%(value)s", value=_money_text(row.lifetime_value)),
        ngettext(
            "%(historical)s historical (margin of %(num)s order so far) + %(current)s current "
            "(margin %(margin)s/yr × %(annuity)s annuity at %(rate)s%% for %(years)s years)",
            "%(historical)s historical (margin of %(num)s orders so far) + %(current)s current "
            "(margin %(margin)s/yr × %(annuity)s annuity at %(rate)s%% for %(years)s years)",
            row.orders_total,
            historical=_money_text(row.historical_value),
            current=_money_text(row.current_value),
            margin=_money_text(row.yearly_margin),
            annuity=f"{rules.annuity:.2f}",
            rate=_money_text(rules.discount_rate),
            years=rules.horizon_years,
        ),
    )
    add(
        "potential",
        _("Potential ¥%(value)s", value=_money_text(row.potential_value)),
        _potential_text(row, rules),
    )
    add("abc", _abc_title(row), _abc_text(row, rules))
    add("quadrant", _quadrant_title(row), _quadrant_text(row, rules))
    return out


def _potential_text(row: CustomerValue, rules: Rules) -> str:
    from flask_babel import gettext as _

    share, target = row.share_of_wallet, rules.target_share
    annuity = f"{rules.annuity:.2f}"
    if share is not None and share >= target:
        return _(
            "share of wallet %(share)s%% is at the target %(target)s%%: the current value",
            share=share,
            target=target,
        )
    if share:
        return _(
            "margin %(margin)s/yr × target %(target)s%% ÷ share %(share)s%% × %(annuity)s annuity",
            margin=_money_text(row.yearly_margin),
            target=target,
            share=share,
            annuity=annuity,
        )
    if row.purchase_potential and row.purchase_potential > 0:
        if row.yearly_revenue and row.yearly_revenue > 0:
            rate = Decimal(row.yearly_margin) / Decimal(row.yearly_revenue) * 100
            whose = _("its margin rate")
        else:
            rate, whose = rules.default_margin_rate, _("default margin rate")
        return _(
            "no share of wallet: potential %(potential)s/yr × target %(target)s%% × %(whose)s "
            "%(rate)s%% × %(annuity)s annuity",
            potential=_money_text(row.purchase_potential),
            target=target,
            whose=whose,
            rate=f"{rate:.1f}",
            annuity=annuity,
        )
    return _("no share of wallet or purchase potential: the current value")


def _abc_title(row: CustomerValue) -> str:
    from flask_babel import gettext as _

    return _("ABC %(cls)s", cls=row.abc_class) if row.abc_class else _("ABC —")


def _abc_text(row: CustomerValue, rules: Rules) -> str:
    from flask_babel import gettext as _

    basis = _("yearly margin") if rules.abc_basis == "margin" else _("yearly revenue")
    if row.abc_class is None:
        return _("no orders: no class")
    if row.abc_share is None:
        return _("no %(basis)s to rank by: class C", basis=basis)
    return _(
        "%(share)s%% of the company's %(basis)s with the customers ranked above it "
        "(A ≤ %(a)s%%, B ≤ %(b)s%%, else C; the largest customer is A)",
        share=f"{row.abc_share:.1f}",
        basis=basis,
        a=rules.abc_a,
        b=rules.abc_b,
    )


def _quadrant_title(row: CustomerValue) -> str:
    from flask_babel import gettext as _

    if row.quadrant is None:
        return _("Quadrant —")
    return f"{label(QUADRANTS, row.quadrant)} · {label(RESOURCES, row.resource)}"


def _quadrant_text(row: CustomerValue, rules: Rules) -> str:
    from flask_babel import gettext as _

    if row.quadrant is None:
        missing = [
            name
            for name, known in (
                (_("purchase potential"), row.purchase_potential is not None),
                (_("share of wallet"), row.share_of_wallet is not None),
            )
            if not known
        ]
        return _("not placed: %(missing)s missing", missing=", ".join(missing))
    high = row.purchase_potential >= rules.potential_threshold
    share = row.share_of_wallet
    if high and share >= rules.share_high:
        band = f"≥ {rules.share_high}%"
    elif share >= rules.share_low:
        band = f"≥ {rules.share_low}%" + (f", < {rules.share_high}%" if high else "")
    else:
        band = f"< {rules.share_low}%"
    return _(
        "potential %(potential)s/yr %(cmp)s %(threshold)s, share of wallet %(share)s%% (%(band)s)",
        potential=_money_text(row.purchase_potential),
        cmp="≥" if high else "<",
        threshold=_money_text(rules.potential_threshold),
        share=share,
        band=band,
    )


# -- hooks gathered by plugins.sales ----------------------------------------------------------


def jobs() -> list[Job]:
    """Nightly recompute of every company that enabled sales (before the core's 03:00
    classification, which then finds the revenue already fed)."""
    return [
        Job(
            "sales.value",
            run_job,
            daily("02:30"),
            label="Sales: recompute customer value (RFM, LTV, ABC, attack/defend)",
            label_zh="销售：重算客户价值（RFM、终生价值、ABC、攻守象限）",
        )
    ]


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "sales.value_index",
            "Customer value",
            "客户价值",
            order=27,
            group="Sales",
            group_zh="销售",
        )
    ]


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The value box of a customer's page: scores with their inputs."""
    if subject_type != "customer":
        return []
    return [Panel("Customer value", lambda: web_value.render_panel(subject), "客户价值", order=30)]


def demo(company: Any, fake: Any) -> None:
    """Compute the demo company's values (after the orders part has seeded its orders)."""
    recompute()


class CustomerValues(Resource):
    """``/api/v1/sales_customer_values``: the computed values, read-only; ``id`` is the
    customer's id, and a customer the record rule hides hides its value too."""

    name = "sales_customer_values"
    model = CustomerValue
    label, label_zh = "Customer values", "客户价值"
    schema = model_schema(CustomerValue, fields={"id": ma.fields.Integer(dump_only=True)})
    filters = ("segment", "abc_class", "quadrant", "resource", "lifetime_value", "r_score")
    sorts = (
        Sort("ltv", CustomerValue.lifetime_value, True, False, "decimal"),
        Sort("customer", CustomerValue.customer_id, False, False, "integer"),
    )
    read_only = True
    rule_hides = True

    def query(self) -> Any:
        return customer_joined(CustomerValue)


def resources() -> list[Resource]:
    return [CustomerValues()]


# -- reports ------------------------------------------------------------------------------------


def _joined(*columns: Any) -> Any:
    from core.models import Customer

    return select(*columns).join(Customer, Customer.id == CustomerValue.customer_id)


def _zero_fill(
    rows: Sequence[Mapping[str, Any]], options: Sequence[tuple[str, str, str]], empty: str
) -> list[dict[str, Any]]:
    """One row per option (zeros where none), then the rows without a value, labelled."""
    found = {r["value"]: dict(r) for r in rows}
    out = []
    for value, text, text_zh in options:
        row = found.pop(value, None) or {"value": value}
        out.append({**row, "label": pick(text, text_zh)})
    for value, row in found.items():
        out.append({**row, "label": empty if value is None else str(value)})
    for row in out:
        for key in ("customers", "potential", "margin", "monetary", "ltv", "current", "avg_ltv"):
            row.setdefault(key, 0)
    return out


def _drill(name: str) -> Any:
    def drill(row: Mapping[str, Any], params: Mapping[str, Any], series: str | None) -> Any:
        value = row.get("value")
        return f"/sales/value/?{name}={value}" if value else None

    return drill


def _quadrant_query(p: Mapping[str, Any]) -> Any:
    return _joined(
        CustomerValue.quadrant.label("value"),
        func.count().label("customers"),
        func.coalesce(func.sum(CustomerValue.purchase_potential), 0).label("potential"),
        func.coalesce(func.sum(CustomerValue.yearly_margin), 0).label("margin"),
    ).group_by(CustomerValue.quadrant)


def _quadrant_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from flask_babel import gettext as _

    out = _zero_fill(rows, QUADRANTS, _("Not placed (potential or share missing)"))
    for row in out:
        row["resource"] = label(RESOURCES, RESOURCE_OF.get(row["value"]))
    return out


MEASURES = (
    ("customers", "Customers", "客户数"),
    ("potential", "Purchase potential", "采购潜力"),
)


def _segment_query(p: Mapping[str, Any]) -> Any:
    return _joined(
        CustomerValue.segment.label("value"),
        func.count().label("customers"),
        func.coalesce(func.sum(CustomerValue.monetary), 0).label("monetary"),
        func.coalesce(func.sum(CustomerValue.lifetime_value), 0).label("ltv"),
    ).group_by(CustomerValue.segment)


def _segment_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from flask_babel import gettext as _

    return _zero_fill(rows, SEGMENTS, _("No orders"))


ABC_VIEWS = (
    ("class", "By class", "按类别"),
    ("pareto", "Pareto curve (deciles)", "帕累托曲线（十分位）"),
)


def _basis() -> Any:
    return case((CustomerValue.yearly_margin > 0, CustomerValue.yearly_margin), else_=literal(0))


def _abc_query(p: Mapping[str, Any]) -> Any:
    if p.get("view") == "pareto":
        basis = _basis()
        inner = (
            _joined(
                func.ntile(10)
                .over(order_by=(basis.desc(), CustomerValue.customer_id))
                .label("decile"),
                basis.label("basis"),
            )
            .where(CustomerValue.last_order_on.is_not(None))
            .subquery()
        )
        return select(
            inner.c.decile.label("value"),
            func.count().label("customers"),
            func.sum(inner.c.basis).label("margin"),
        ).group_by(inner.c.decile)
    return (
        _joined(
            CustomerValue.abc_class.label("value"),
            func.count().label("customers"),
            func.coalesce(func.sum(_basis()), 0).label("margin"),
        )
        .where(CustomerValue.abc_class.is_not(None))
        .group_by(CustomerValue.abc_class)
    )


def _abc_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    customers = sum(r["customers"] for r in rows) or 0
    margin = sum(Decimal(str(r["margin"] or 0)) for r in rows)
    if p.get("view") == "pareto":
        from flask_babel import gettext as _

        out, seen, earned = [], 0, Decimal(0)
        for r in sorted(rows, key=lambda r: r["value"]):
            seen += r["customers"]
            earned += Decimal(str(r["margin"] or 0))
            top = round(100 * seen / customers, 1) if customers else 0
            out.append(
                {
                    "value": None,
                    "label": _("Top %(share)s%%", share=f"{top:g}"),
                    "customers": r["customers"],
                    "margin": r["margin"],
                    "customers_pct": top,
                    "margin_pct": float(round(100 * earned / margin, 1)) if margin else 0,
                }
            )
        return out
    out = _zero_fill(rows, ABC, "")
    for row in out:
        row["customers_pct"] = round(100 * row["customers"] / customers, 1) if customers else 0
        share = Decimal(str(row["margin"] or 0))
        row["margin_pct"] = float(round(100 * share / margin, 1)) if margin else 0
    return out


def _abc_columns(p: Mapping[str, Any]) -> tuple[ReportColumn, ...]:
    if p.get("view") == "pareto":
        return (
            ReportColumn("label", "Top customers", "头部客户", "text"),
            ReportColumn("customers", "Customers", "客户数"),
            ReportColumn("margin", "Margin (12 months)", "近12个月毛利", "money"),
            ReportColumn(
                "customers_pct", "Cumulative customers (%)", "累计客户占比（%）", "number"
            ),
            ReportColumn("margin_pct", "Cumulative margin (%)", "累计毛利占比（%）", "number"),
        )
    return (
        ReportColumn("label", "ABC class", "ABC类", "text"),
        ReportColumn("customers", "Customers", "客户数"),
        ReportColumn("customers_pct", "Share of customers (%)", "客户占比（%）", "number"),
        ReportColumn("margin", "Margin (12 months)", "近12个月毛利", "money"),
        ReportColumn("margin_pct", "Share of margin (%)", "毛利占比（%）", "number"),
    )


def _tier_query(p: Mapping[str, Any]) -> Any:
    from core.models import Customer

    return _joined(
        Customer.value_tier.label("value"),
        func.count().label("customers"),
        func.coalesce(func.sum(CustomerValue.lifetime_value), 0).label("ltv"),
        func.coalesce(func.avg(CustomerValue.lifetime_value), 0).label("avg_ltv"),
        func.coalesce(func.sum(CustomerValue.current_value), 0).label("current"),
        func.coalesce(func.sum(CustomerValue.potential_value), 0).label("potential"),
    ).group_by(Customer.value_tier)


def _tier_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from flask_babel import gettext as _

    from core.classify import LABELS

    return _zero_fill(rows, LABELS["value_tier"], _("Not rated yet"))


def _tier_drill(row: Mapping[str, Any], params: Mapping[str, Any], series: str | None) -> Any:
    value = row.get("value")
    return f"/customers/?value_tier={value}" if value else None


def reports() -> list[Report]:
    """Quadrant chart, RFM segments, ABC (with its Pareto curve) and LTV by value tier."""
    customers = ReportColumn("customers", "Customers", "客户数")
    return [
        Report(
            name="sales_value_quadrant",
            label="Attack/defend quadrant",
            label_zh="攻守象限",
            description="Customers placed by purchase potential and our share of wallet: "
            "acquire, retain, harass, maintain, abandon; with their potential and margin.",
            description_zh="按采购潜力与客户份额划分：获取、保留、侵扰、维持、放弃，及各象限的采购潜力与毛利。",
            params=(
                ReportParam("measure", "Chart", "图表", choices=MEASURES, default="customers"),
            ),
            query=_quadrant_query,
            shape=_quadrant_shape,
            columns=(
                ReportColumn("label", "Quadrant", "象限", "text"),
                ReportColumn("resource", "Resources", "资源投入", "text"),
                customers,
                ReportColumn("potential", "Purchase potential", "采购潜力", "money"),
                ReportColumn("margin", "Margin (12 months)", "近12个月毛利", "money"),
            ),
            series=lambda p: (p.get("measure") or "customers",),
            chart="bar",
            drill=_drill("quadrant"),
            group="sales",
            order=140,
        ),
        Report(
            name="sales_value_segments",
            label="RFM segments",
            label_zh="RFM客户分群",
            description="Customers per RFM segment (champions, loyal, at risk, lost…), with what "
            "they ordered in the RFM window and their lifetime value.",
            description_zh="各RFM分群（冠军、忠诚、流失风险、已流失…）的客户数、窗口期购买金额与终生价值。",
            query=_segment_query,
            shape=_segment_shape,
            columns=(
                ReportColumn("label", "Segment", "分群", "text"),
                customers,
                ReportColumn("monetary", "Ordered in the window", "窗口期金额", "money"),
                ReportColumn("ltv", "Lifetime value", "终生价值", "money"),
            ),
            series=("customers",),
            chart="hbar",
            drill=_drill("segment"),
            group="sales",
            order=141,
        ),
        Report(
            name="sales_value_abc",
            label="ABC classes (Pareto)",
            label_zh="ABC分类（帕累托）",
            description="How much of the yearly margin the A, B and C customers bring, or the "
            "Pareto curve: cumulative share of margin by top deciles of customers.",
            description_zh="A、B、C类客户贡献的年度毛利占比，或帕累托曲线：头部客户十分位的累计毛利占比。",
            params=(ReportParam("view", "View", "视图", choices=ABC_VIEWS, default="class"),),
            query=_abc_query,
            shape=_abc_shape,
            columns=_abc_columns,
            series=lambda p: (
                ("margin_pct",) if p.get("view") == "pareto" else ("customers_pct", "margin_pct")
            ),
            chart=lambda p: "line" if p.get("view") == "pareto" else "bar",
            drill=_drill("abc"),
            group="sales",
            order=142,
        ),
        Report(
            name="sales_value_tiers",
            label="Lifetime value by value tier",
            label_zh="各价值等级的终生价值",
            description="Customers, lifetime, current and potential value per value tier "
            "(VIP, major, ordinary, small).",
            description_zh="各价值等级（VIP、主要、普通、小客户）的客户数、终生价值、实际价值与潜在价值。",
            query=_tier_query,
            shape=_tier_shape,
            columns=(
                ReportColumn("label", "Value tier", "价值等级", "text"),
                customers,
                ReportColumn("ltv", "Lifetime value", "终生价值", "money"),
                ReportColumn("avg_ltv", "Average LTV", "平均终生价值", "money"),
                ReportColumn("current", "Current value", "实际价值", "money"),
                ReportColumn("potential", "Potential value", "潜在价值", "money"),
            ),
            series=("ltv",),
            chart="bar",
            drill=_tier_drill,
            group="sales",
            order=143,
        ),
    ]


from plugins.sales import web_value  # noqa: E402,F401  (registers the routes on the blueprint)
