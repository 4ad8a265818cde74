"""Pharma part: dynamic doctor tiering (医生等级动态评定, DOMAIN §5).

A company rates its doctors (customers of kind ``doctor``) by its own **tier schemes**
(:class:`~plugins.pharma.models.TierScheme`); exactly one is active. A scheme's rules are kept in
immutable **versions** (:class:`~plugins.pharma.models.TierSchemeVersion`): every change writes
a new version, and every tier and history row names the version that produced it.

A version (:class:`SchemeConfig`) holds:

* **criteria** (:class:`Criterion`, 1 to :data:`MAX_CRITERIA`), each with a weight:
  a numeric extension field of the doctor (``pharma__prescription_potential``,
  ``pharma__adoption``, ``pharma__academic_influence`` …; empty counts as 0), the number of
  ``visit`` interactions with the doctor in the last ``days`` days (default 90), or the amount
  of the doctor's orders (``sales_order``, cancelled ones left out) in the last ``days`` days
  (default 365, i.e. 12 months);
* a **normalisation** of each criterion to 0-100: ``scale`` -- ``min(100, raw × 100 / cap)``
  (0 below 0), so ``cap`` is the raw value that earns full marks (100 for the 0-100 fields);
  ``rank`` -- the percent rank of the raw value among the company's doctors
  (``percent_rank() × 100``: 0 for the lowest, 100 for the highest, ties share a rank);
* the **score** = Σ weight × normalised / Σ weights (0-100, two decimals); a criterion's
  *contribution* is its weight × normalised / Σ weights, so the contributions add up to the
  score;
* the **tiers** (:class:`Tier`, best first, 2 to :data:`MAX_TIERS`, any names), assigned by
  ``thresholds`` -- the first tier whose minimum score the doctor reaches (the last tier's
  minimum is 0) -- or by ``deciles`` -- the first tier whose "top %" bound is above the share of
  the company's doctors that scored strictly higher (the last bound is 100; bounds of 10, 30,
  60, 100 are "top decile, next two deciles, next three, the rest"; ties share a tier).

:func:`recompute` rewrites every doctor's :class:`~plugins.pharma.models.DoctorTier` with a
constant number of SQL statements whatever the number of doctors (one ``INSERT … SELECT …
ON CONFLICT DO UPDATE`` computes criteria, normalisation, score and tier; one ``INSERT …
SELECT`` writes the history of the tiers that changed). Doctors whose ``locked_until`` is today
or later are left untouched (still ranked among the others); an expired lock is cleared and
the doctor recomputed. It runs nightly (job ``pharma.tiering``) and on a manager's button.

**Overrides** (:class:`~plugins.pharma.models.TierOverride`, workflow ``pharma_tier_override``):
a rep proposes a tier with a reason and a lock date; a manager approves (the tier and lock are
set at once, with a history row of reason ``override``) or rejects (with a comment).

The pages are in :mod:`plugins.pharma.web_tiering`; docs/pharma-tiering.md tells the story.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import (
    Date,
    Float,
    Numeric,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from core import audit
from core.extend import (
    Job,
    MenuItem,
    Panel,
    Report,
    ReportColumn,
    Resource,
    Sort,
    State,
    TimelineEntry,
    Transition,
    Workflow,
    customer_joined,
    daily,
    db,
    model_schema,
    require_company,
    utcnow,
)
from core.i18n import pick
from plugins.pharma import models  # noqa: F401  (the tables are known before any part runs)
from plugins.pharma.models import (
    DoctorTier,
    TierHistory,
    TierOverride,
    TierScheme,
    TierSchemeVersion,
)

log = logging.getLogger("guanxi.pharma.tiering")

MAX_CRITERIA = 8
MAX_TIERS = 10
MAX_WEIGHT = 1000
MAX_CAP = 10**12
MAX_DAYS = 3650
#: Furthest a lock may reach (days from today).
MAX_LOCK_DAYS = 3 * 366

SOURCES: tuple[tuple[str, str, str], ...] = (
    ("field", "Doctor field", "医生字段"),
    ("visits", "Visits in the last days", "近期拜访次数"),
    ("orders", "Orders amount in the last days", "近期订单金额"),
)
NORMALISATIONS: tuple[tuple[str, str, str], ...] = (
    ("scale", "Scale to the cap (cap = 100 points)", "按满分值换算（满分值 = 100 分）"),
    ("rank", "Percent rank among doctors", "在医生中的百分位排名"),
)
METHODS: tuple[tuple[str, str, str], ...] = (
    ("thresholds", "Score thresholds", "按分数线"),
    ("deciles", "Deciles (top % of doctors)", "按十分位（前百分之几的医生）"),
)
REASONS: tuple[tuple[str, str, str], ...] = (
    ("recompute", "Recompute", "重新评定"),
    ("override", "Override", "人工调整"),
)
#: Default windows of the activity criteria.
DEFAULT_DAYS = {"visits": 90, "orders": 365}
#: The interaction kind that counts as a visit.
VISIT_KIND = "visit"

# -- the scheme's rules -----------------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One weighted criterion: ``source`` ``field`` (``field`` names the extension field key),
    ``visits`` or ``orders`` (over the last ``days`` days); normalised by ``scale`` (``cap`` =
    the raw value worth 100) or ``rank``."""

    source: str
    weight: float
    field: str = ""
    days: int = 0
    normalise: str = "scale"
    cap: float = 100.0

    @property
    def key(self) -> str:
        return f"field:{self.field}" if self.source == "field" else f"{self.source}:{self.days}"


@dataclass(frozen=True)
class Tier:
    """A tier: ``bound`` is the minimum score (thresholds) or the top % of doctors (deciles)."""

    name: str
    bound: float


@dataclass(frozen=True)
class SchemeConfig:
    """The rules of one scheme version (see the module documentation)."""

    criteria: tuple[Criterion, ...]
    method: str
    tiers: tuple[Tier, ...]

    @property
    def total_weight(self) -> float:
        return sum(c.weight for c in self.criteria)

    @property
    def tier_names(self) -> list[str]:
        return [t.name for t in self.tiers]

    def as_json(self) -> dict[str, Any]:
        return {
            "criteria": [
                {k: v for k, v in asdict(c).items() if v not in ("", 0) or k == "weight"}
                for c in self.criteria
            ],
            "method": self.method,
            "tiers": [asdict(t) for t in self.tiers],
        }


#: The scheme a company starts with (seeded when the plugin is enabled).
DEFAULT_CONFIG = SchemeConfig(
    criteria=(
        Criterion("field", 35, field="pharma__prescription_potential"),
        Criterion("field", 20, field="pharma__adoption"),
        Criterion("field", 15, field="pharma__academic_influence"),
        Criterion("visits", 15, days=90, cap=6),
        Criterion("orders", 15, days=365, cap=100_000),
    ),
    method="thresholds",
    tiers=(Tier("A", 60), Tier("B", 45), Tier("C", 30), Tier("D", 0)),
)


class SchemeError(ValueError):
    """Rules refused; ``errors`` maps each offending input (``criteria-0-weight``,
    ``tiers-1-bound``, ``method``, ``criteria``, ``tiers``, ``name``) to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))


def numeric_fields() -> list[Any]:
    """Integer and decimal customer fields of the current company's plugins (criteria)."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    return [
        f
        for f in current().registry.fields_for("customer", enabled_plugins())
        if f.type in ("integer", "decimal")
    ]


def _installed_fields() -> dict[str, Any]:
    from core.plugins import current

    return {f.key: f for f in current().registry.fields if f.model == "customer"}


def _number(raw: Any) -> Decimal | None:
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        number = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def validate_config(data: Any, fields: Sequence[Any] | None = None) -> SchemeConfig:
    """A :class:`SchemeConfig` from JSON-like ``data`` (``{"criteria": [...], "method": ...,
    "tiers": [...]}``); raises :class:`SchemeError` naming every bad input. ``fields`` are the
    extension fields a criterion may name (default: :func:`numeric_fields`)."""
    errors: dict[str, list[str]] = {}

    def err(key: str, message: str) -> None:
        errors.setdefault(key, []).append(message)

    if not isinstance(data, Mapping):
        raise SchemeError({"_schema": [_("The rules must be an object.")]})
    candidates = fields if fields is not None else numeric_fields()
    allowed = {f.key for f in candidates if f.type in ("integer", "decimal")}
    raw_criteria = data.get("criteria")
    if not isinstance(raw_criteria, list) or not raw_criteria:
        err("criteria", _("Add at least one criterion."))
        raw_criteria = []
    if len(raw_criteria) > MAX_CRITERIA:
        err("criteria", _("At most %(n)s criteria.", n=MAX_CRITERIA))
    criteria: list[Criterion] = []
    seen: set[str] = set()
    for i, item in enumerate(raw_criteria[:MAX_CRITERIA]):
        at = f"criteria-{i}"
        if not isinstance(item, Mapping):
            err(at, _("A criterion must be an object."))
            continue
        source = item.get("source")
        if source not in {v for v, _l, _z in SOURCES}:
            err(f"{at}-source", _("Choose a criterion."))
            continue
        field = str(item.get("field") or "") if source == "field" else ""
        if source == "field" and field not in allowed:
            err(f"{at}-source", _("Choose a numeric doctor field."))
        days = 0
        if source != "field":
            days_raw = item.get("days", DEFAULT_DAYS[source])
            if days_raw in (None, ""):
                days_raw = DEFAULT_DAYS[source]
            number = _number(days_raw)
            if number is None or number != number.to_integral_value():
                err(f"{at}-days", _("Enter a whole number of days."))
            elif not 1 <= number <= MAX_DAYS:
                err(f"{at}-days", _("Enter %(low)s to %(high)s days.", low=1, high=MAX_DAYS))
            else:
                days = int(number)
        weight = _number(item.get("weight"))
        if weight is None:
            err(f"{at}-weight", _("Enter a weight."))
        elif not 0 < weight <= MAX_WEIGHT:
            err(f"{at}-weight", _("A weight is above 0 and at most %(n)s.", n=MAX_WEIGHT))
        elif weight.as_tuple().exponent < -2:  # type: ignore[operator]
            err(f"{at}-weight", _("At most %(n)s decimal places.", n=2))
        normalise = item.get("normalise") or "scale"
        if normalise not in {v for v, _l, _z in NORMALISATIONS}:
            err(f"{at}-normalise", _("Choose a normalisation."))
        cap = _number(item.get("cap", 100) if item.get("cap") not in (None, "") else 100)
        if normalise == "scale" and (cap is None or not 0 < cap <= MAX_CAP):
            err(f"{at}-cap", _("The value worth 100 points must be above 0."))
        criterion = Criterion(
            source=source,
            weight=float(weight) if weight is not None else 0.0,
            field=field,
            days=days,
            normalise=normalise,
            cap=float(cap) if cap is not None and cap > 0 else 100.0,
        )
        if criterion.key in seen:
            err(f"{at}-source", _("This criterion is already in the scheme."))
        seen.add(criterion.key)
        criteria.append(criterion)

    method = data.get("method")
    if method not in {v for v, _l, _z in METHODS}:
        err("method", _("Choose thresholds or deciles."))
    raw_tiers = data.get("tiers")
    if not isinstance(raw_tiers, list) or len(raw_tiers) < 2:
        err("tiers", _("Define at least two tiers."))
        raw_tiers = raw_tiers if isinstance(raw_tiers, list) else []
    if len(raw_tiers) > MAX_TIERS:
        err("tiers", _("At most %(n)s tiers.", n=MAX_TIERS))
    tiers: list[Tier] = []
    names: set[str] = set()
    for i, item in enumerate(raw_tiers[:MAX_TIERS]):
        at = f"tiers-{i}"
        if not isinstance(item, Mapping):
            err(at, _("A tier must be an object."))
            continue
        name = str(item.get("name") or "").strip()
        if not name:
            err(f"{at}-name", _("Name the tier."))
        elif len(name) > 20:
            err(f"{at}-name", _("At most %(n)s characters.", n=20))
        elif name.casefold() in names:
            err(f"{at}-name", _("Two tiers cannot have one name."))
        names.add(name.casefold())
        last = i == len(raw_tiers) - 1
        bound = _number(item.get("bound"))
        if bound is None and last:
            bound = Decimal(0 if method == "thresholds" else 100)
        if bound is None:
            err(f"{at}-bound", _("Enter a number."))
            tiers.append(Tier(name, math.nan))
            continue
        if method == "deciles":
            if not 0 < bound <= 100:
                err(f"{at}-bound", _("Enter a share from 1 to 100 (%)."))
            elif last and bound != 100:
                err(f"{at}-bound", _("The last tier takes the rest: 100%."))
            elif tiers and not math.isnan(tiers[-1].bound) and not bound > tiers[-1].bound:
                err(f"{at}-bound", _("Must be above the share of the tier before it."))
        elif method == "thresholds":
            if not 0 <= bound <= 100:
                err(f"{at}-bound", _("Enter a score from 0 to 100."))
            elif last and bound != 0:
                err(f"{at}-bound", _("The last tier takes every other doctor: minimum 0."))
            elif tiers and not math.isnan(tiers[-1].bound) and not bound < tiers[-1].bound:
                err(f"{at}-bound", _("Must be below the minimum of the tier before it."))
        tiers.append(Tier(name, float(bound)))
    if errors:
        raise SchemeError(errors)
    return SchemeConfig(criteria=tuple(criteria), method=str(method), tiers=tuple(tiers))


def load_config(row: TierSchemeVersion) -> SchemeConfig:
    """The rules a stored version holds (validated when saved; read without checking the
    fields again, so a field of a plugin disabled since still reads)."""
    data = row.config or {}
    return SchemeConfig(
        criteria=tuple(Criterion(**c) for c in data.get("criteria", [])),
        method=data.get("method", "thresholds"),
        tiers=tuple(Tier(**t) for t in data.get("tiers", [])),
    )


# -- schemes and versions -------------------------------------------------------------------------


def schemes() -> list[TierScheme]:
    """The current company's schemes, the active one first."""
    return list(
        db.session.scalars(
            select(TierScheme).order_by(TierScheme.active.desc(), TierScheme.name, TierScheme.id)
        )
    )


def latest_version(scheme_id: int) -> TierSchemeVersion | None:
    """The current (highest) version of a scheme."""
    return db.session.scalars(
        select(TierSchemeVersion)
        .where(TierSchemeVersion.scheme_id == scheme_id)
        .order_by(TierSchemeVersion.number.desc())
        .limit(1)
    ).first()


def active_version() -> TierSchemeVersion | None:
    """The current version of the current company's active scheme (one query)."""
    return db.session.scalars(
        select(TierSchemeVersion)
        .join(TierScheme, TierScheme.id == TierSchemeVersion.scheme_id)
        .where(TierScheme.active.is_(True))
        .order_by(TierSchemeVersion.number.desc())
        .limit(1)
    ).first()


def create_scheme(
    name: str,
    config: SchemeConfig,
    *,
    user_id: int | None = None,
    activate: bool = False,
    note: str | None = None,
    at: datetime | None = None,
) -> TierScheme:
    """A new scheme with its version 1 (active when asked, or when it is the company's first);
    the caller commits."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise SchemeError({"name": [_("Name the scheme (at most 80 characters).")]})
    if db.session.scalar(select(TierScheme.id).where(TierScheme.name == name)):
        raise SchemeError({"name": [_("Another scheme has this name.")]})
    first = not db.session.scalar(select(func.count()).select_from(TierScheme))
    scheme = TierScheme(name=name, active=False, created_at=at or utcnow())
    db.session.add(scheme)
    db.session.flush()
    audit.record("create", "pharma_tier_scheme", scheme.id, {"name": name}, user_id=user_id)
    save_version(scheme, config, user_id=user_id, note=note, at=at)
    if activate or first:
        activate_scheme(scheme, user_id=user_id)
    return scheme


def save_version(
    scheme: TierScheme,
    config: SchemeConfig,
    *,
    user_id: int | None = None,
    note: str | None = None,
    at: datetime | None = None,
) -> TierSchemeVersion:
    """Write the scheme's next version (old versions stay, and so do the tiers and history
    that name them); the caller commits."""
    number = (
        db.session.scalar(
            select(func.max(TierSchemeVersion.number)).where(
                TierSchemeVersion.scheme_id == scheme.id
            )
        )
        or 0
    ) + 1
    row = TierSchemeVersion(
        scheme_id=scheme.id,
        number=number,
        config=config.as_json(),
        note=(note or "").strip()[:200] or None,
        created_by_id=user_id,
        created_at=at or utcnow(),
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        "create",
        "pharma_tier_scheme_version",
        row.id,
        {"scheme_id": scheme.id, "number": number, "config": row.config},
        user_id=user_id,
    )
    return row


def activate_scheme(scheme: TierScheme, user_id: int | None = None) -> None:
    """Make ``scheme`` the company's one active scheme (one UPDATE); the caller commits and
    usually recomputes."""
    company_id = require_company()
    db.session.execute(
        update(TierScheme)
        .where(TierScheme.company_id == company_id)
        .values(active=TierScheme.id == scheme.id)
        .execution_options(synchronize_session=False)
    )
    db.session.expire_all()
    audit.record("update", "pharma_tier_scheme", scheme.id, {"active": True}, user_id=user_id)


# -- SQL helpers (the same on SQLite and PostgreSQL) ----------------------------------------------


class _JsonArray(FunctionElement):
    """``json_array(…)`` on SQLite, ``json_build_array(…)`` on PostgreSQL."""

    inherit_cache = True
    name = "guanxi_json_array"


@compiles(_JsonArray)
def _json_array_default(element: _JsonArray, compiler: Any, **kw: Any) -> str:
    return f"json_build_array({compiler.process(element.clauses, **kw)})"


@compiles(_JsonArray, "sqlite")
def _json_array_sqlite(element: _JsonArray, compiler: Any, **kw: Any) -> str:
    return f"json_array({compiler.process(element.clauses, **kw)})"


class _Scan(FunctionElement):
    """``+column`` on SQLite: compare without the column's index (reading all of a company's
    rows, one pass over the table beats an index walk with a lookup per row)."""

    inherit_cache = True
    name = "guanxi_scan_t"

    @property
    def type(self) -> Any:
        return next(iter(self.clauses)).type


@compiles(_Scan)
def _scan_default(element: _Scan, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Scan, "sqlite")
def _scan_sqlite(element: _Scan, compiler: Any, **kw: Any) -> str:
    return f"+{compiler.process(element.clauses, **kw)}"


def _round2(expr: Any) -> Any:
    """``ROUND(CAST(x AS NUMERIC), 2)``: PostgreSQL rounds numerics only."""
    return func.round(cast(expr, Numeric), 2)


def _float(name: str, value: float) -> Any:
    return bindparam(name, float(value), type_=Float())


def _normalised(criterion: Criterion, raw: Any, i: int) -> Any:
    """SQL of a criterion's 0-100 value from its raw column (two decimals)."""
    if criterion.normalise == "rank":
        return _round2(func.percent_rank().over(order_by=raw) * literal(100.0, Float()))
    cap = _float(f"cap{i}", criterion.cap)
    return _round2(
        case(
            (raw <= 0, literal(0.0, Float())),
            (raw >= cap, literal(100.0, Float())),
            else_=raw * literal(100.0, Float()) / cap,
        )
    )


def _activity(
    company_id: int, config: SchemeConfig, today: date, now: datetime
) -> tuple[Any | None, Any | None]:
    """One GROUP BY over the visits and one over the orders (each only if a criterion needs
    it): per doctor, a column per window (``v<days>``, ``o<days>``)."""
    from core.models import Interaction
    from plugins.sales.models import Order

    visits = orders = None
    visit_days = sorted({c.days for c in config.criteria if c.source == "visits"})
    if visit_days:
        i = Interaction.__table__
        since = {
            d: bindparam(f"visits_since_{d}", now - timedelta(days=d), i.c.occurred_at.type)
            for d in visit_days
        }
        visits = (
            select(
                i.c.customer_id,
                *[
                    func.sum(case((i.c.occurred_at >= since[d], 1), else_=0)).label(f"v{d}")
                    for d in visit_days
                ],
            )
            .where(
                _Scan(i.c.company_id) == company_id,
                i.c.kind == VISIT_KIND,
                i.c.occurred_at >= since[visit_days[-1]],
                i.c.occurred_at <= bindparam("visits_until", now, i.c.occurred_at.type),
            )
            .group_by(i.c.customer_id)
            .subquery("visits")
        )
    order_days = sorted({c.days for c in config.criteria if c.source == "orders"})
    if order_days:
        o = Order.__table__
        after = {
            d: bindparam(f"orders_after_{d}", today - timedelta(days=d), Date) for d in order_days
        }
        orders = (
            select(
                o.c.customer_id,
                *[
                    func.sum(case((o.c.ordered_on > after[d], o.c.amount), else_=0)).label(f"o{d}")
                    for d in order_days
                ],
            )
            .where(
                _Scan(o.c.company_id) == company_id,
                o.c.state != "cancelled",
                o.c.ordered_on > after[order_days[-1]],
                o.c.ordered_on <= bindparam("orders_until", today, Date),
            )
            .group_by(o.c.customer_id)
            .subquery("orders")
        )
    return visits, orders


def scored_select(
    company_id: int, version: TierSchemeVersion, config: SchemeConfig, today: date, now: datetime
) -> Any:
    """``SELECT`` of every doctor's new tier row: ``customer_id, company_id, tier, score,
    inputs, percentile, scheme_version_id, computed_at`` (one statement: criteria, their
    normalisation, the score and the tier, window functions for ranks and deciles)."""
    from core import fields as ext
    from core.models import Customer

    c = Customer.__table__
    joined = c
    installed = _installed_fields()
    sides: dict[str, Any] = {}
    visits, orders = _activity(company_id, config, today, now)
    raws = []
    for crit in config.criteria:
        if crit.source == "field":
            field = installed.get(crit.field)
            if field is None:  # the plugin is gone: the criterion counts 0
                raws.append(literal(0))
                continue
            table = sides.get(field.table_name)
            if table is None:
                table = sides[field.table_name] = ext.side_table(field.plugin, "customer")
                joined = joined.outerjoin(table, table.c.id == c.c.id)
            raws.append(table.c[field.name])
        elif crit.source == "visits":
            raws.append(visits.c[f"v{crit.days}"])  # type: ignore[union-attr]
        else:
            raws.append(orders.c[f"o{crit.days}"])  # type: ignore[union-attr]
    if visits is not None:
        joined = joined.outerjoin(visits, visits.c.customer_id == c.c.id)
    if orders is not None:
        joined = joined.outerjoin(orders, orders.c.customer_id == c.c.id)
    raw = (
        select(
            c.c.id.label("customer_id"),
            *[func.coalesce(r, 0).label(f"r{i}") for i, r in enumerate(raws)],
        )
        .select_from(joined)
        .where(c.c.company_id == company_id, c.c.kind == "doctor")
        .subquery("raw")
    )
    n = len(config.criteria)
    norm = select(
        raw.c.customer_id,
        *[raw.c[f"r{i}"] for i in range(n)],
        *[_normalised(c, raw.c[f"r{i}"], i).label(f"n{i}") for i, c in enumerate(config.criteria)],
    ).subquery("norm")
    total = sum(crit.weight for crit in config.criteria)
    weighted = sum(
        (_float(f"w{i}", crit.weight) * norm.c[f"n{i}"] for i, crit in enumerate(config.criteria)),
        start=literal(0.0, Float()),
    )
    score = _round2(weighted / _float("total_weight", total))
    scored = select(norm, score.label("score"))
    if config.method == "deciles":
        above = (func.rank().over(order_by=score.desc()) - 1) * literal(100.0, Float())
        scored = scored.add_columns((above / func.count().over()).label("pct"))
    s = scored.subquery("scored")
    upper = list(enumerate(config.tiers[:-1]))
    if config.method == "deciles":
        tier = case(
            *[(s.c.pct < _float(f"top{k}", t.bound), literal(t.name)) for k, t in upper],
            else_=literal(config.tiers[-1].name),
        )
        percentile = _round2(s.c.pct)
    else:
        tier = case(
            *[(s.c.score >= _float(f"min{k}", t.bound), literal(t.name)) for k, t in upper],
            else_=literal(config.tiers[-1].name),
        )
        percentile = literal(None, Float())
    inputs = _JsonArray(*[col for i in range(n) for col in (s.c[f"r{i}"], s.c[f"n{i}"])])
    t = DoctorTier.__table__
    return select(
        s.c.customer_id,
        literal(company_id).label("company_id"),
        tier.label("tier"),
        s.c.score,
        inputs.label("inputs"),
        percentile.label("percentile"),
        literal(version.id).label("scheme_version_id"),
        bindparam("computed_at", now, type_=t.c.computed_at.type).label("computed_at"),
    )


def _upsert(rows: Any, today: date) -> Any:
    """``INSERT … SELECT … ON CONFLICT (company_id, customer_id) DO UPDATE … WHERE not
    locked``: the old tier moves to ``previous_tier`` (for the history), an expired lock is
    cleared, a locked row is left as it is."""
    t = DoctorTier.__table__
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    names = [col.name for col in rows.selected_columns]
    stmt = dialect_insert(t).from_select(names, rows.where(true()))
    return stmt.on_conflict_do_update(
        index_elements=[t.c.company_id, t.c.customer_id],
        set_={
            **{n: stmt.excluded[n] for n in names if n not in ("customer_id", "company_id")},
            "previous_tier": t.c.tier,
            "locked_until": None,
        },
        where=or_(t.c.locked_until.is_(None), t.c.locked_until < bindparam("lock_day", today)),
    )


def _history_insert(company_id: int, now: datetime) -> Any:
    """``INSERT INTO pharma_tier_history SELECT …``: one row per doctor whose tier this run
    changed (the rows it wrote carry its ``computed_at``)."""
    t, h = DoctorTier.__table__, TierHistory.__table__
    rows = select(
        t.c.company_id,
        t.c.customer_id,
        t.c.previous_tier,
        t.c.tier,
        t.c.scheme_version_id,
        t.c.score,
        t.c.inputs,
        t.c.percentile,
        literal("recompute"),
        t.c.computed_at,
    ).where(
        t.c.company_id == company_id,
        t.c.computed_at == bindparam("run_at", now, type_=t.c.computed_at.type),
        t.c.previous_tier.is_distinct_from(t.c.tier),
    )
    return insert(h).from_select(
        [
            "company_id",
            "customer_id",
            "old_tier",
            "new_tier",
            "scheme_version_id",
            "score",
            "inputs",
            "percentile",
            "reason",
            "changed_at",
        ],
        rows,
    )


def recompute(
    *,
    today: date | None = None,
    now: datetime | None = None,
    version: TierSchemeVersion | None = None,
) -> dict[str, int]:
    """Recompute the tier of every doctor of the current company by the active scheme's
    current version (or ``version``).

    Statements, whatever the number of doctors: the version (unless given), one ``DELETE`` of
    tier rows of customers that are no longer doctors, one count of locked doctors, the
    upsert and the history insert. ``today`` (default: the company's today) decides locks and
    the order window; ``now`` (default: now) the visit window and the time written. Returns
    ``doctors`` (scored), ``written`` (rows recomputed), ``locked`` (left alone) and
    ``changed`` (tiers that moved: history rows). The caller commits.
    """
    from core import access
    from core.models import Customer
    from core.reports import today as company_today

    company_id = require_company()
    version = version or active_version()
    if version is None:
        return {"doctors": 0, "written": 0, "locked": 0, "changed": 0}
    config = load_config(version)
    today = today or company_today()
    now = now or utcnow()
    db.session.flush()
    t = DoctorTier.__table__
    c = Customer.__table__
    with access.all_customers():  # system work: a rep's record rule must not narrow it
        db.session.execute(
            delete(t).where(
                t.c.company_id == company_id,
                ~t.c.customer_id.in_(
                    select(c.c.id).where(c.c.company_id == company_id, c.c.kind == "doctor")
                ),
            )
        )
        locked = (
            db.session.scalar(
                select(func.count())
                .select_from(t)
                .where(
                    t.c.company_id == company_id,
                    t.c.locked_until >= bindparam("locked_day", today, Date),
                )
            )
            or 0
        )
        fill = _upsert(scored_select(company_id, version, config, today, now), today)
        written = db.session.execute(fill.execution_options(preserve_rowcount=True)).rowcount
        changed = db.session.execute(
            _history_insert(company_id, now).execution_options(preserve_rowcount=True)
        ).rowcount
    for obj in list(db.session.identity_map.values()):
        if isinstance(obj, DoctorTier | TierHistory):
            db.session.expire(obj)
    return {"doctors": written + locked, "written": written, "locked": locked, "changed": changed}


def run_job(company: Any) -> str:
    """The nightly job ``pharma.tiering`` (inside the company's scope)."""
    counts = recompute()
    return ", ".join(f"{k} {v}" for k, v in counts.items())


# -- "why this tier" ------------------------------------------------------------------------


def criterion_label(criterion: Criterion) -> str:
    """``Prescription potential (0–100)``, ``Visits in the last 90 days``…"""
    if criterion.source == "field":
        field = _installed_fields().get(criterion.field)
        return field.text if field is not None else criterion.field
    if criterion.source == "visits":
        return _("Visits in the last %(days)s days", days=criterion.days)
    return _("Orders amount in the last %(days)s days", days=criterion.days)


def normalise_text(criterion: Criterion) -> str:
    if criterion.normalise == "rank":
        return _("percent rank among the doctors")
    return _("%(cap)s or more = 100", cap=_num(criterion.cap))


def _num(value: Any) -> str:
    """``12``, ``12.5`` or ``120,000``."""
    if value is None:
        return "–"
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return f"{number:,.0f}"
    return f"{number.normalize():,f}"


def tier_rule_text(config: SchemeConfig) -> list[tuple[str, str]]:
    """Each tier with its rule: ``("A", "score ≥ 70")`` or ``("A", "top 10% of doctors")``."""
    out = []
    last = len(config.tiers) - 1
    for k, t in enumerate(config.tiers):
        if config.method == "deciles":
            out.append(
                (t.name, _("the rest") if k == last else _("top %(pct)s%%", pct=_num(t.bound)))
            )
        else:
            out.append(
                (
                    t.name,
                    _("score below %(min)s", min=_num(config.tiers[k - 1].bound))
                    if k == last
                    else _("score ≥ %(min)s", min=_num(t.bound)),
                )
            )
    return out


def explain(config: SchemeConfig, inputs: Sequence[Any] | None) -> list[dict[str, Any]]:
    """Per criterion: ``label``, ``raw``, ``normalised``, ``weight``, ``share`` (% of the total
    weight), ``contribution`` (points of the score) and ``rule`` (the normalisation)."""
    values = list(inputs or [])
    total = config.total_weight or 1
    out = []
    for i, crit in enumerate(config.criteria):
        raw = values[2 * i] if len(values) > 2 * i else None
        normalised = values[2 * i + 1] if len(values) > 2 * i + 1 else None
        out.append(
            {
                "label": criterion_label(crit),
                "raw": raw,
                "normalised": normalised,
                "weight": crit.weight,
                "share": round(100 * crit.weight / total, 1),
                "contribution": round(crit.weight * (normalised or 0) / total, 2),
                "rule": normalise_text(crit),
            }
        )
    return out


# -- overrides ----------------------------------------------------------------------------------

WORKFLOW = "pharma_tier_override"


def _approve_guard(subject: Any, inputs: Mapping[str, Any]) -> tuple[str, str] | str | None:
    from core.reports import today as company_today

    if subject.locked_until < company_today():
        return "locked_until", _("The lock date has passed; ask for a new request.")
    version = active_version()
    if version is not None and subject.tier not in load_config(version).tier_names:
        return _("Tier %(tier)s is not a tier of the active scheme.", tier=subject.tier)
    return None


def workflows() -> list[Workflow]:
    """Override requests: pending → approved (sets the tier and the lock) or rejected (needs
    a comment), both decided by admins and managers."""
    return [
        Workflow(
            name=WORKFLOW,
            model=TierOverride,
            states=(
                State("pending", "Pending", "待审批", "open"),
                State("approved", "Approved", "已批准", "done"),
                State("rejected", "Rejected", "已驳回", "cancelled"),
            ),
            transitions=(
                Transition(
                    "approve",
                    ("pending",),
                    "approved",
                    "Approve",
                    "批准",
                    roles=("admin", "manager"),
                    guard=_approve_guard,
                ),
                Transition(
                    "reject",
                    ("pending",),
                    "rejected",
                    "Reject",
                    "驳回",
                    roles=("admin", "manager"),
                    inputs=("comment",),
                ),
            ),
            initial="pending",
            label="Tier override",
            label_zh="等级调整申请",
        )
    ]


class OverrideError(ValueError):
    """A refused override request; ``errors`` maps inputs to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def request_override(
    user: Any,
    customer: Any,
    *,
    tier: str,
    reason: str,
    locked_until: date | None,
    at: datetime | None = None,
    today: date | None = None,
) -> TierOverride:
    """A rep's request to set ``customer``'s tier to ``tier`` until ``locked_until`` (pending
    a manager's decision). Refused (:class:`OverrideError`) for a non-doctor, a tier not in the
    active scheme, an empty reason, a lock date not after today or more than three years
    ahead, or while another request for the doctor is pending. The caller commits."""
    from core.reports import today as company_today

    today = today or company_today()
    errors: dict[str, str] = {}
    if customer.kind != "doctor":
        errors["customer_id"] = _("Only doctors have tiers.")
    version = active_version()
    names = load_config(version).tier_names if version is not None else []
    tier = (tier or "").strip()
    if not names:
        errors["tier"] = _("The company has no active tier scheme.")
    elif tier not in names:
        errors["tier"] = _("Choose one of the tiers: %(names)s.", names=", ".join(names))
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = _("Say why the doctor should have this tier.")
    elif len(reason) > 2000:
        errors["reason"] = _("At most %(n)s characters.", n=2000)
    if locked_until is None:
        errors["locked_until"] = _("Enter the date the tier is kept until.")
    elif locked_until <= today:
        errors["locked_until"] = _("The lock must end after today.")
    elif locked_until > today + timedelta(days=MAX_LOCK_DAYS):
        errors["locked_until"] = _("At most three years ahead.")
    pending = db.session.scalar(
        select(TierOverride.id).where(
            TierOverride.customer_id == customer.id, TierOverride.state == "pending"
        )
    )
    if pending:
        errors["tier"] = _("A request for this doctor is already waiting for a decision.")
    if errors:
        raise OverrideError(errors)
    current = db.session.scalar(
        select(DoctorTier.tier).where(DoctorTier.customer_id == customer.id)
    )
    row = TierOverride(
        customer_id=customer.id,
        tier=tier,
        from_tier=current,
        reason=reason,
        locked_until=locked_until,
        state="pending",
        requested_by_id=user.id,
        requested_at=at or utcnow(),
    )
    db.session.add(row)
    db.session.flush()
    audit.record(
        "create",
        "pharma_tier_override",
        row.id,
        {"customer_id": customer.id, "tier": tier, "locked_until": locked_until.isoformat()},  # type: ignore[union-attr]
        user_id=user.id,
    )
    _notify_managers(row, customer)
    return row


def _notify_managers(row: TierOverride, customer: Any) -> None:
    from core.models import Membership
    from core.notify import notify

    managers = db.session.scalars(
        select(Membership.user_id).where(Membership.role.in_(("admin", "manager")))
    ).all()
    for user_id in managers:
        if user_id != row.requested_by_id:
            notify(
                user_id,
                "pharma.tier_override",
                _("Tier override for %(name)s: %(tier)s", name=customer.name, tier=row.tier),
                f"/pharma/doctors/{customer.id}",
            )


def after_transition(
    subject: Any, from_state: str, to_state: str, at: datetime, inputs: Mapping[str, Any]
) -> None:
    """An approved request sets the doctor's tier and lock and writes a history row (reason
    ``override``); a decision is stamped with its time and comment."""
    if not isinstance(subject, TierOverride):
        return
    subject.decided_at = at
    subject.decision_note = (str(inputs.get("comment") or "").strip() or None) if inputs else None
    if to_state != "approved":
        return
    from flask_login import current_user

    user_id = getattr(current_user, "id", None) if current_user else None
    subject.decided_by_id = subject.decided_by_id or user_id
    apply_override(subject, at)


def apply_override(subject: TierOverride, at: datetime) -> None:
    """Set the doctor's tier and lock from an approved request, with its history row."""
    row = db.session.scalar(select(DoctorTier).where(DoctorTier.customer_id == subject.customer_id))
    if row is None:
        row = DoctorTier(customer_id=subject.customer_id, computed_at=at)
        db.session.add(row)
    old = row.tier
    row.tier = subject.tier
    row.locked_until = subject.locked_until
    db.session.add(
        TierHistory(
            customer_id=subject.customer_id,
            old_tier=old,
            new_tier=subject.tier,
            scheme_version_id=row.scheme_version_id,
            score=row.score,
            inputs=row.inputs,
            percentile=row.percentile,
            reason="override",
            override_id=subject.id,
            user_id=subject.decided_by_id,
            changed_at=at,
        )
    )
    db.session.flush()


# -- hooks gathered by plugins.pharma -----------------------------------------------------------


def jobs() -> list[Job]:
    return [
        Job(
            "pharma.tiering",
            run_job,
            daily("02:15"),
            label="Pharma: recompute doctor tiers",
            label_zh="医药：重新评定医生等级",
        )
    ]


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "pharma.doctors", "Doctor tiers", "医生分级", order=24, group="Pharma", group_zh="医药"
        )
    ]


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """The tier box on a doctor's customer page."""
    if subject_type != "customer" or getattr(subject, "kind", None) != "doctor":
        return []
    return [Panel("Doctor tier", lambda: web_tiering.render_panel(subject), "医生等级", order=25)]


def timeline(customer: Any) -> list[TimelineEntry]:
    """A doctor's tier changes (newest 100, one query) for the customer's timeline."""
    if getattr(customer, "kind", None) != "doctor":
        return []
    rows = db.session.scalars(
        select(TierHistory)
        .where(TierHistory.customer_id == customer.id)
        .order_by(TierHistory.changed_at.desc(), TierHistory.id.desc())
        .limit(100)
    ).all()
    return [
        TimelineEntry(
            at=h.changed_at,
            kind="tier",
            title=_("Tier %(old)s → %(new)s", old=h.old_tier or "—", new=h.new_tier or "—"),
            detail=label(REASONS, h.reason)
            + (_(", score %(score)s", score=f"{h.score:.2f}") if h.score is not None else ""),
            link=f"/pharma/doctors/{customer.id}",
        )
        for h in rows
    ]


def enabled(company: Any) -> None:
    """Seed the default scheme (active) for a company that has none (idempotent)."""
    from core.tenancy import company_scope

    with company_scope(company.id):
        if db.session.scalar(select(func.count()).select_from(TierScheme)):
            return
        create_scheme("默认分级方案", DEFAULT_CONFIG, activate=True)
        db.session.flush()


def demo(company: Any, fake: Any) -> None:
    """The default scheme's version 1 computed a month ago, then version 2 (visits weigh more)
    now, so that every demo doctor has a tier and a history before the visits part opens its
    quotas; the doctors' hospital grades (the archive leaves them to hospitals)."""
    from core import fields as ext
    from core.models import Customer
    from core.plugins import current
    from core.reports import today as company_today

    enabled(company)
    scheme = db.session.scalars(select(TierScheme).where(TierScheme.active.is_(True))).first()
    if scheme is None:
        return
    rng = random.Random(f"tiering-{company.code}")
    declared = current().registry.fields_for("customer", ["pharma"])
    doctors = db.session.scalars(select(Customer.id).where(Customer.kind == "doctor")).all()
    ext.save_many(
        declared,
        [
            (i, {"pharma__hospital_grade": rng.choice(["3a", "3a", "3b", "2a", "2b"])})
            for i in doctors
        ],
    )
    now = utcnow()
    month_ago = now - timedelta(days=30)
    first = latest_version(scheme.id)
    assert first is not None
    first.created_at = month_ago - timedelta(days=1)
    recompute(now=month_ago, today=company_today() - timedelta(days=30), version=first)
    current_version = save_version(
        scheme,
        SchemeConfig(
            criteria=(
                Criterion("field", 25, field="pharma__prescription_potential"),
                Criterion("field", 20, field="pharma__adoption"),
                Criterion("field", 15, field="pharma__academic_influence"),
                Criterion("visits", 25, days=90, cap=4),
                Criterion("orders", 15, days=365, cap=100_000),
            ),
            method="thresholds",
            tiers=DEFAULT_CONFIG.tiers,
        ),
        note="拜访权重提高",
        at=now - timedelta(days=1),
    )
    recompute(version=current_version, now=now - timedelta(days=1))


def demo_finish(company: Any, fake: Any) -> None:
    """After the visits part seeded its visits: tonight's recompute as it will find them, one
    override request approved and one waiting for the manager."""
    from core import workflow
    from core.models import Customer, Membership, User
    from core.reports import today as company_today

    version = active_version()
    if version is None:
        return
    recompute()
    people = {
        role: uid
        for role, uid in db.session.execute(
            select(Membership.role, Membership.user_id)
            .join(User, User.id == Membership.user_id)
            .where(User.email.like("%.demo"), Membership.role.in_(("sales_rep", "manager")))
        )
    }
    rep = db.session.get(User, people["sales_rep"]) if "sales_rep" in people else None
    manager = db.session.get(User, people["manager"]) if "manager" in people else None
    names = load_config(version).tier_names
    doctors = db.session.scalars(
        select(Customer)
        .join(DoctorTier, DoctorTier.customer_id == Customer.id)
        .where(Customer.kind == "doctor", DoctorTier.tier != names[0])
        .order_by(Customer.id)
        .limit(2)
    ).all()
    if rep is None or manager is None or len(doctors) < 2:
        return
    rng = random.Random(f"tiering-{company.code}")
    now = utcnow()
    for n, doctor in enumerate(doctors):
        tier_now = db.session.scalar(
            select(DoctorTier.tier).where(DoctorTier.customer_id == doctor.id)
        )
        at = names.index(tier_now) if tier_now in names else len(names) - 1
        better = names[at - 1] if at > 0 else names[1]
        request = request_override(
            rep,
            doctor,
            tier=better,
            reason=rng.choice(
                ["科室主任新任，处方量即将上升", "牵头省级学术会议，影响力提升", "新进药事委员会"]
            ),
            locked_until=company_today() + timedelta(days=90),
            at=now - timedelta(days=3 - n),
        )
        if n == 0:
            workflow.transition(
                request,
                "approve",
                user=manager,
                inputs={"comment": "同意，季度末复核"},
                at=now - timedelta(days=2),
            )
            request.decided_by_id = manager.id
    db.session.flush()


class DoctorTiers(Resource):
    """``/api/v1/pharma_doctor_tiers``: each doctor's current tier, read-only."""

    name = "pharma_doctor_tiers"
    model = DoctorTier
    label, label_zh = "Doctor tiers", "医生等级"
    filters = ("tier", "customer_id", "score", "locked_until")
    sorts = (
        Sort("score", DoctorTier.score, True, True, "decimal"),
        Sort("customer", DoctorTier.customer_id, False, False, "integer"),
    )
    read_only = True
    rule_hides = True

    def query(self) -> Any:
        return customer_joined(DoctorTier)


class TierOverrides(Resource):
    """``/api/v1/pharma_tier_overrides``: override requests (approve/reject as transitions)."""

    name = "pharma_tier_overrides"
    model = TierOverride
    label, label_zh = "Tier override requests", "等级调整申请"
    schema = model_schema(TierOverride, dump_only=("state",))
    filters = ("state", "customer_id", "tier")
    read_only = True
    rule_hides = True

    def query(self) -> Any:
        return customer_joined(TierOverride)


def resources() -> list[Resource]:
    return [DoctorTiers(), TierOverrides()]


# -- reports ------------------------------------------------------------------------------------


def _active_names() -> list[str]:
    version = active_version()
    return load_config(version).tier_names if version is not None else []


def _by_tier_query(p: Mapping[str, Any]) -> Any:
    from core.models import Customer

    return (
        select(
            DoctorTier.tier.label("value"),
            func.count().label("doctors"),
            func.avg(DoctorTier.score).label("avg_score"),
            func.sum(case((DoctorTier.locked_until.is_not(None), 1), else_=0)).label("locked"),
        )
        .join(Customer, Customer.id == DoctorTier.customer_id)
        .where(Customer.kind == "doctor")
        .group_by(DoctorTier.tier)
    )


def _by_tier_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = {r["value"]: dict(r) for r in rows}
    out = []
    for name in _active_names():
        row = found.pop(name, None) or {"value": name, "doctors": 0, "avg_score": None, "locked": 0}
        out.append({**row, "label": name})
    for value, row in found.items():
        out.append({**row, "label": value or _("No tier")})
    return out


def _by_tier_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> str:
    value = row.get("value")
    from urllib.parse import quote

    return f"/pharma/doctors?tier={quote(value)}" if value else "/pharma/doctors?tier=none"


MOVES: tuple[tuple[str, str, str], ...] = (
    ("up", "Moved up", "升级"),
    ("down", "Moved down", "降级"),
    ("new", "First tier", "首次评级"),
    ("override", "Override", "人工调整"),
)


def _movement_query(p: Mapping[str, Any]) -> Any:
    from core.models import Customer
    from core.reports import month, within

    names = _active_names()
    rank = {name: k for k, name in enumerate(names)}

    def rank_of(column: Any) -> Any:
        if not rank:
            return literal(0)
        return case(*[(column == n, literal(k)) for n, k in rank.items()], else_=literal(len(rank)))

    movement = case(
        (TierHistory.reason == "override", literal("override")),
        (TierHistory.old_tier.is_(None), literal("new")),
        (rank_of(TierHistory.new_tier) < rank_of(TierHistory.old_tier), literal("up")),
        else_=literal("down"),
    )
    month_col = month(TierHistory.changed_at)
    return (
        select(month_col.label("month"), movement.label("move"), func.count().label("n"))
        .join(Customer, Customer.id == TierHistory.customer_id)
        .where(*within(TierHistory.changed_at, p))
        .group_by(month_col, movement)
    )


def _movement_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from core.reports import months

    found: dict[str, dict[str, Any]] = {}
    for r in rows:
        found.setdefault(r["month"], {})[r["move"]] = r["n"]
    keys = months(p) if p.get("start") and p.get("end") else sorted(found)
    out = []
    for m in keys:
        values = found.get(m, {})
        out.append({"label": m, "month": m, **{k: values.get(k, 0) for k, _l, _z in MOVES}})
    return out


def reports() -> list[Report]:
    """Doctors by tier (drilling into the doctor list) and tier movements by month."""
    from core.extend import date_range

    return [
        Report(
            name="pharma_doctors_by_tier",
            label="Doctors by tier",
            label_zh="各等级医生分布",
            description="Doctors per tier of the active scheme, their average score and how "
            "many are locked by an override.",
            description_zh="当前方案各等级的医生数、平均得分及人工锁定的人数。",
            query=_by_tier_query,
            shape=_by_tier_shape,
            columns=(
                ReportColumn("label", "Tier", "等级", "text"),
                ReportColumn("doctors", "Doctors", "医生数"),
                ReportColumn("avg_score", "Average score", "平均得分", "number"),
                ReportColumn("locked", "Locked", "已锁定"),
            ),
            series=("doctors",),
            chart="bar",
            drill=_by_tier_drill,
            group="pharma",
            order=150,
        ),
        Report(
            name="pharma_tier_movements",
            label="Tier movements",
            label_zh="医生等级变动",
            description="Doctors moved up or down a tier, rated for the first time or "
            "overridden, per month.",
            description_zh="每月升级、降级、首次评级与人工调整的医生人次。",
            params=(*date_range(365),),
            query=_movement_query,
            shape=_movement_shape,
            columns=(
                ReportColumn("label", "Month", "月份", "text"),
                *[ReportColumn(k, label, zh) for k, label, zh in MOVES],
            ),
            series=tuple(k for k, _l, _z in MOVES),
            chart="stacked",
            drill=lambda row, p, series: "/pharma/tiering",
            group="pharma",
            order=151,
        ),
    ]


def label(options: Sequence[tuple[str, str, str]], value: str | None) -> str:
    """The label of ``value`` among ``options`` in the user's language."""
    for key, text, text_zh in options:
        if key == value:
            return pick(text, text_zh)
    return "" if value is None else str(value)


from plugins.pharma import web_tiering  # noqa: E402,F401  (registers the routes on the blueprint)
