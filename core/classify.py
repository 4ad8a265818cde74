"""Customer classification (客户分级): value tier, loyalty and lifecycle stage, computed by rules.

Three attributes of :class:`~core.models.Customer` are never typed in; they follow from the
company's rules (``CompanySetting`` key ``customer_rules``; the defaults below when unset):

``value_tier`` (客户价值分级, by profit contribution)
    ``A`` VIP, ``B`` major (主要客户), ``C`` ordinary (普通客户), ``D`` small (小客户), from
    ``revenue`` (what the customer bought in the last 12 months; none counts as 0)::

        revenue >= tier_a_min -> A;  >= tier_b_min -> B;  >= tier_c_min -> C;  else D

``loyalty`` (忠诚度)
    ``new`` (新客户), ``old`` (老客户, established) or ``loyal`` (忠诚客户); prospects (status
    ``potential``) have none::

        created less than new_days ago                                   -> new
        created loyal_days ago or more and at least loyal_interactions
            interactions in the last activity_window_days                 -> loyal
        otherwise                                                         -> old

``lifecycle_stage`` (客户关系生命周期)
    acquisition 获取 → growth 提升 → maturity 成熟 → decline 衰退 → dissolution 解除. "Last
    contact" is the later of ``last_contact_at`` and the newest interaction, else ``created_at``::

        status lost/inactive, or last contact dissolution_days ago or more -> dissolution
        last contact decline_days ago or more                             -> decline
        prospect, or created less than acquisition_days ago              -> acquisition
        created less than maturity_days ago                              -> growth
        otherwise                                                         -> maturity

:func:`classify_customers` recomputes with one set-based ``UPDATE … SET x = CASE …`` per
attribute (same on SQLite and PostgreSQL), whatever the number of customers. Each move of a
customer from one value tier to another (not a first rating) is kept as an audit row (action
``classify``, data ``{"field": "value_tier", "from": "B", "to": "A"}``) by one ``INSERT …
SELECT`` before the update: the history the report "Movement between value tiers" reads.
Call it after saving a customer (``classify_customers([customer.id])``); the nightly job
``customers.classify`` (registered in :mod:`core.defaults`) recomputes every company.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import marshmallow as ma
from sqlalchemy import JSON, and_, bindparam, case, func, insert, literal, null, or_, select, update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from core import audit
from core.db import UTCDateTime, db, utcnow
from core.models import AuditLog, Company, CompanySetting, Customer, Interaction
from core.tenancy import require_company

log = logging.getLogger("guanxi.classify")

SETTING_KEY = "customer_rules"
#: Statuses of a customer who has not bought yet (no loyalty; lifecycle "acquisition").
PROSPECT_STATUSES = ("potential",)
#: Statuses of a customer the company has lost (lifecycle "dissolution").
LOST_STATUSES = ("lost", "inactive")

#: Values and labels of the computed attributes, registered as choice lists by core.defaults
#: (so filters and pages label them like any other choice).
LABELS: dict[str, list[tuple[str, str, str]]] = {
    "value_tier": [
        ("A", "A · VIP", "A类 · VIP客户"),
        ("B", "B · Major", "B类 · 主要客户"),
        ("C", "C · Ordinary", "C类 · 普通客户"),
        ("D", "D · Small", "D类 · 小客户"),
    ],
    "loyalty": [
        ("loyal", "Loyal", "忠诚客户"),
        ("old", "Established", "老客户"),
        ("new", "New", "新客户"),
    ],
    "lifecycle_stage": [
        ("acquisition", "Acquisition", "获取期"),
        ("growth", "Growth", "提升期"),
        ("maturity", "Maturity", "成熟期"),
        ("decline", "Decline", "衰退期"),
        ("dissolution", "Dissolution", "解除期"),
    ],
}

#: Value tiers from the best to the smallest.
TIERS = tuple(value for value, _label, _zh in LABELS["value_tier"])

MAX_AMOUNT = 10**12
MAX_DAYS = 36500


@dataclass(frozen=True)
class Rules:
    """A company's classification rules (amounts in yuan, periods in days)."""

    tier_a_min: int = 1_000_000
    tier_b_min: int = 200_000
    tier_c_min: int = 20_000
    new_days: int = 180
    loyal_days: int = 730
    loyal_interactions: int = 6
    activity_window_days: int = 365
    acquisition_days: int = 90
    maturity_days: int = 730
    decline_days: int = 180
    dissolution_days: int = 365

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


DEFAULTS = Rules()
RULE_NAMES = tuple(f.name for f in fields(Rules))


class RulesError(ValueError):
    """Rules refused; ``errors`` maps each offending field name to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
        )


def _amount() -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(min=0, max=MAX_AMOUNT)
    )


def _days() -> ma.fields.Integer:
    return ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(min=1, max=MAX_DAYS)
    )


class RulesSchema(ma.Schema):
    """Validation of ``customer_rules``: every field required, bounded and consistent."""

    tier_a_min = _amount()
    tier_b_min = _amount()
    tier_c_min = _amount()
    new_days = _days()
    loyal_days = _days()
    loyal_interactions = ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(min=1, max=100_000)
    )
    activity_window_days = _days()
    acquisition_days = _days()
    maturity_days = _days()
    decline_days = _days()
    dissolution_days = _days()

    @ma.validates_schema
    def _consistent(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for field, above, message in ORDER:
            if field in data and above in data and not data[field] < data[above]:
                errors.setdefault(field, []).append(message)
        if errors:
            raise ma.ValidationError(errors)


#: (field, the field it must stay below, message) -- checked by the schema and the settings form.
ORDER = (
    ("tier_b_min", "tier_a_min", "Must be below the tier A threshold."),
    ("tier_c_min", "tier_b_min", "Must be below the tier B threshold."),
    ("new_days", "loyal_days", "Must be shorter than the tenure of a loyal customer."),
    ("acquisition_days", "maturity_days", "Must be shorter than the time to maturity."),
    ("decline_days", "dissolution_days", "Must be shorter than the time to dissolution."),
)


def validate_rules(data: dict[str, Any]) -> Rules:
    """Rules from ``data`` (missing fields take the defaults); raises :class:`RulesError`
    naming each bad field (unknown fields are refused too)."""
    if not isinstance(data, dict):
        raise RulesError({"_schema": ["Rules must be an object of named values."]})
    merged = {**DEFAULTS.as_dict(), **data}
    try:
        loaded = RulesSchema().load(merged)
    except ma.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise RulesError(
            {k: [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in messages.items()}
        ) from exc
    return Rules(**loaded)


def _setting() -> CompanySetting | None:
    return db.session.scalars(
        select(CompanySetting).where(CompanySetting.key == SETTING_KEY)
    ).first()


def load_rules() -> Rules:
    """The current company's rules (defaults for what it has not set)."""
    row = _setting()
    if row is None or not row.value:
        return DEFAULTS
    try:
        return validate_rules(row.value)
    except RulesError as exc:  # stored by hand or by an older version: keep classifying
        log.warning("company setting %s is invalid (%s); using the defaults", SETTING_KEY, exc)
        return DEFAULTS


def save_rules(data: dict[str, Any], user_id: int | None = None) -> Rules:
    """Validate and store the current company's rules (audited); the caller commits.

    Only values that differ from the defaults are stored, so a later change of a default reaches
    companies that never tuned that value.
    """
    rules = validate_rules(data)
    tuned = {k: v for k, v in rules.as_dict().items() if getattr(DEFAULTS, k) != v}
    row = CompanySetting.put(SETTING_KEY, tuned)
    audit.record(
        "update", "company_setting", row.id, {"key": SETTING_KEY, "value": tuned}, user_id=user_id
    )
    return rules


def reset_rules(user_id: int | None = None) -> None:
    """Drop the current company's tuned rules (back to the defaults); the caller commits."""
    row = _setting()
    if row is not None:
        audit.record("delete", "company_setting", row.id, {"key": SETTING_KEY}, user_id=user_id)
        db.session.delete(row)
        db.session.flush()


# -- the SQL ------------------------------------------------------------------------------------


def _moment(name: str, value: datetime) -> Any:
    return bindparam(name, value, type_=UTCDateTime())


def tier_expr(rules: Rules) -> Any:
    """SQL ``CASE`` giving the value tier of a customer row."""
    revenue = func.coalesce(Customer.revenue, 0)
    return case(
        (revenue >= Decimal(rules.tier_a_min), literal("A")),
        (revenue >= Decimal(rules.tier_b_min), literal("B")),
        (revenue >= Decimal(rules.tier_c_min), literal("C")),
        else_=literal("D"),
    )


def loyalty_expr(rules: Rules, now: datetime) -> Any:
    """SQL ``CASE`` giving the loyalty of a customer row."""
    recent = (
        select(func.count(Interaction.id))
        .where(
            Interaction.customer_id == Customer.id,
            Interaction.occurred_at
            >= _moment("window_start", now - _d(rules.activity_window_days)),
        )
        .correlate(Customer)
        .scalar_subquery()
    )
    return case(
        (Customer.status.in_(PROSPECT_STATUSES), null()),
        (Customer.created_at > _moment("new_since", now - _d(rules.new_days)), literal("new")),
        (
            and_(
                Customer.created_at <= _moment("loyal_since", now - _d(rules.loyal_days)),
                recent >= rules.loyal_interactions,
            ),
            literal("loyal"),
        ),
        else_=literal("old"),
    )


def last_contact_expr() -> Any:
    """SQL: the later of ``last_contact_at`` and the newest interaction, else ``created_at``."""
    newest = (
        select(func.max(Interaction.occurred_at))
        .where(Interaction.customer_id == Customer.id)
        .correlate(Customer)
        .scalar_subquery()
    )
    stamped = Customer.last_contact_at
    later = case(
        (stamped.is_(None), newest),
        (newest.is_(None), stamped),
        (stamped > newest, stamped),
        else_=newest,
    )
    return func.coalesce(later, Customer.created_at, type_=UTCDateTime())


def lifecycle_expr(rules: Rules, now: datetime) -> Any:
    """SQL ``CASE`` giving the lifecycle stage of a customer row."""
    last = last_contact_expr()
    return case(
        (Customer.status.in_(LOST_STATUSES), literal("dissolution")),
        (
            last < _moment("dissolved_before", now - _d(rules.dissolution_days)),
            literal("dissolution"),
        ),
        (last < _moment("declined_before", now - _d(rules.decline_days)), literal("decline")),
        (
            or_(
                Customer.status.in_(PROSPECT_STATUSES),
                Customer.created_at > _moment("acquired_since", now - _d(rules.acquisition_days)),
            ),
            literal("acquisition"),
        ),
        (
            Customer.created_at > _moment("mature_since", now - _d(rules.maturity_days)),
            literal("growth"),
        ),
        else_=literal("maturity"),
    )


def _d(days: int) -> timedelta:
    return timedelta(days=days)


def classify_customers(
    ids: Iterable[int] | None = None, *, now: datetime | None = None, rules: Rules | None = None
) -> dict[str, int]:
    """Recompute value tier, loyalty and lifecycle stage of the current company's customers
    (only ``ids`` when given). Returns how many rows changed per attribute; the caller commits.

    One ``UPDATE`` per attribute, touching only rows whose value changes (``updated_at`` and
    ``version`` are left alone: a classification is not an edit). Flush pending customers first.
    """
    chosen: Sequence[int] | None = None if ids is None else sorted(set(ids))
    if chosen is not None and not chosen:
        return {"value_tier": 0, "loyalty": 0, "lifecycle_stage": 0}
    rules = rules or load_rules()
    now = now or utcnow()
    db.session.flush()
    changed: dict[str, int] = {}
    for column, expr in (
        ("value_tier", tier_expr(rules)),
        ("loyalty", loyalty_expr(rules, now)),
        ("lifecycle_stage", lifecycle_expr(rules, now)),
    ):
        attr = getattr(Customer, column)
        if column == "value_tier":
            record_tier_moves(expr, chosen, now)
        stmt = (
            update(Customer)
            .where(attr.is_distinct_from(expr))
            .values({column: expr, "updated_at": Customer.updated_at})
            .execution_options(synchronize_session=False)
        )
        if chosen is not None:
            stmt = stmt.where(Customer.id.in_(chosen))
        changed[column] = db.session.execute(stmt).rowcount
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, Customer):
            db.session.expire(obj, ["value_tier", "loyalty", "lifecycle_stage"])
    return changed


class _TierMove(FunctionElement):
    """JSON ``{"field": "value_tier", "from": <old>, "to": <new>}`` built in SQL."""

    type = JSON()
    inherit_cache = True
    name = "guanxi_tier_move"


@compiles(_TierMove)
def _tier_move_default(element: _TierMove, compiler: Any, **kw: Any) -> str:
    old, new = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_build_object('field', 'value_tier', 'from', {old}, 'to', {new})"


@compiles(_TierMove, "sqlite")
def _tier_move_sqlite(element: _TierMove, compiler: Any, **kw: Any) -> str:
    old, new = (compiler.process(c, **kw) for c in element.clauses)
    return f"json_object('field', 'value_tier', 'from', {old}, 'to', {new})"


def record_tier_moves(expr: Any, ids: Sequence[int] | None, now: datetime) -> int:
    """Audit (action ``classify``, at ``now``) each customer of the current company whose value
    tier ``expr`` is about to change from one tier to another; one ``INSERT … SELECT``."""
    moved = select(
        Customer.company_id,
        literal("classify"),
        literal("customer"),
        Customer.id,
        _TierMove(Customer.value_tier, expr),
        _moment("moved_at", now),
    ).where(
        Customer.company_id == require_company(),
        Customer.value_tier.is_not(None),
        Customer.value_tier.is_distinct_from(expr),
    )
    if ids is not None:
        moved = moved.where(Customer.id.in_(ids))
    columns = ["company_id", "action", "entity_type", "entity_id", "data", "created_at"]
    table = AuditLog.__table__
    result = db.session.execute(
        insert(table).from_select([table.c[c] for c in columns], moved),
        execution_options={"guanxi_unscoped": True},
    )
    return result.rowcount


def run_job(company: Company | None) -> str:
    """The nightly job ``customers.classify`` (runs inside the company's scope)."""
    changed = classify_customers()
    return ", ".join(f"{k} {v} changed" for k, v in changed.items())


# -- demo ---------------------------------------------------------------------------------------


def seed_demo(customers: list[Customer], rng: random.Random, fake: Any) -> None:
    """Demo data of the identify/differentiate area: revenues spread over the value tiers,
    a few duplicate customers (same phone written differently), then the classification.

    Must run after every other seed of the company's demo (it classifies what exists).
    """
    from core import dedupe

    bands = [(1_000_000, 3_000_000), (200_000, 999_999), (20_000, 199_999), (0, 19_999)]
    for i, customer in enumerate(customers):
        if customer.status in PROSPECT_STATUSES:
            continue
        low, high = bands[0] if i % 10 == 0 else bands[1 + i % 3]
        customer.revenue = Decimal(rng.randint(low, high))
        if i % 7 == 0:
            customer.last_contact_at = utcnow() - timedelta(days=rng.choice([200, 400, 30]))
        elif i % 5 == 0:  # a loyal customer: years of tenure, in touch every month or two
            customer.created_at = utcnow() - timedelta(days=rng.randint(800, 2000))
            for days in range(15, 365, 50):
                db.session.add(
                    Interaction(
                        customer_id=customer.id,
                        user_id=customer.owner_id,
                        kind=rng.choice(["call", "visit", "wechat"]),
                        occurred_at=utcnow() - timedelta(days=days),
                        purpose="例行回访",
                        result="客户满意，继续合作",
                    )
                )
    dedupe.seed_demo(customers, rng, fake)
    db.session.flush()
    _seed_tier_history(customers)
    classify_customers()


def _seed_tier_history(customers: list[Customer]) -> None:
    """A year of value-tier moves (rated a year ago, then a few customers up or down each
    month), so the tier movement report has a history; the final revenues stay as seeded.
    Uses its own generator, leaving the demo's shared one untouched."""
    rng = random.Random(f"guanxi-tiers-{require_company()}")
    now = utcnow()
    start = now - timedelta(days=365)
    rated = [c for c in customers if c.status not in PROSPECT_STATUSES and c.created_at < start]
    if not rated:
        return
    final = {c.id: c.revenue for c in rated}
    bands = [(1_000_000, 3_000_000), (200_000, 999_999), (20_000, 199_999), (0, 19_999)]
    db.session.flush()
    classify_customers([c.id for c in rated], now=start)
    for months_ago in range(11, 0, -1):
        movers = rng.sample(rated, min(len(rated), rng.randint(1, 4)))
        for customer in movers:
            band = TIERS.index(customer.value_tier) + rng.choice([-1, 1])
            low, high = bands[min(max(band, 0), len(bands) - 1)]
            customer.revenue = Decimal(rng.randint(low, high))
        db.session.flush()
        classify_customers([c.id for c in movers], now=now - timedelta(days=30 * months_ago))
    for customer in rated:
        customer.revenue = final[customer.id]
    db.session.flush()
