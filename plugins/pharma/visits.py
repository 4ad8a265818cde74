"""Pharma part: visit control (活动质量控制, DOMAIN §5).

**Visits** are core interactions of kind ``visit`` (duration, purpose, result, next step) with
three interaction extension fields of the plugin: the products discussed
(``pharma__products``), the samples given (``pharma__samples``, a quantity) and the visit type
(``pharma__visit_type``). A visit *counts* toward its doctor's quota when it lasted at least the
company's minimum effective duration (:attr:`Settings.min_minutes`, default 15 minutes); a
visit without a duration does not count. :func:`counts_expr` is that rule in SQL and
:func:`counting` the one GROUP BY that counts every doctor's visits of a month.

**Quotas.** The company's setting ``pharma_visits`` (:class:`Settings`, page
``/pharma/visits/settings``) gives the visits a doctor of each tier needs per month (A 4, B 2,
C 1, D 0 by default). :func:`open_month` writes one :class:`~plugins.pharma.models.VisitQuota`
row per doctor whose tier (``pharma_doctor_tier``, kept by the tiering part) has a quota above
zero -- the tier is taken when the doctor's row is first written that month, so a doctor
re-tiered mid-month keeps this month's quota and gets the new one next month; changing the
settings re-applies the numbers to the month's rows. Doctors without a tier have no quota.

**The clock.** Each quota of the current month is an obligation ``pharma.visit_quota`` on the
clock engine (subject the doctor, ``("customer", id)``; one row per doctor, counted afresh each
month): started at the first moment of the month, due at the end of its last working day on the
company's calendar, *met* once the doctor has enough counting visits. :func:`open_month` moves
every row to the new month with a constant number of statements (the set-based equivalent of
``core.clocks.restart`` for all doctors at once) and :func:`sync_met` meets or reopens rows from
the counts. Logging or changing a visit through the core's path (the forms, the API) calls
:func:`interaction_saved` through the core hook ``guanxi_interaction_saved``, which re-syncs that
one doctor; the daily job reconciles everything else (imports). The clock kind does not notify
per doctor (``notify=False``): the month-end reminder is one message per rep.

**Reminder.** From the company's reminder day (default the 25th) the daily job
(:func:`remind_behind`) notifies each rep -- the owner of the doctors -- who still has doctors
below quota, listing them with the visits each lacks; once per month per rep, and only reps
behind.

**Supervision** (内部沟通): managers comment on a visit with a category -- summary, supervision
or suggestion (总结/督导/建议) -- as a core comment on ``("interaction", id)`` whose body starts
with the category's tag (``【督导】…``, :func:`add_supervision`, :func:`split_category`); the rep
who made the visit is notified.

The pages are in :mod:`plugins.pharma.web_visits`.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import and_, case, delete, exists, func, insert, literal, or_, select, update

from core import audit, clocks, interactions
from core import fields as ext
from core.extend import (
    Field,
    Job,
    MenuItem,
    ObligationKind,
    Panel,
    Report,
    ReportColumn,
    ReportParam,
    daily,
    db,
    monthly,
    require_company,
    utcnow,
)
from core.i18n import pick
from core.models import Comment, Customer, Interaction, Membership, Notification, Obligation, User
from plugins.pharma.models import DoctorTier, VisitQuota

log = logging.getLogger("guanxi.pharma.visits")

SETTING_KEY = "pharma_visits"
#: The obligation kind of a doctor's monthly quota.
CLOCK = "pharma.visit_quota"
#: Notification kinds.
REMINDER_KIND = "pharma.visits.behind"
SUPERVISION_KIND = "pharma.visits.supervision"
#: The interaction kind that is a visit.
VISIT = "visit"
#: Doctors listed by name in one reminder.
REMINDER_NAMES = 8

#: Types of visit (``pharma__visit_type``).
VISIT_TYPES: tuple[tuple[str, str, str], ...] = (
    ("detailing", "Product detailing", "产品推广"),
    ("academic", "Academic exchange", "学术交流"),
    ("follow_up", "Follow-up", "跟进回访"),
    ("department_meeting", "Department meeting", "科室会"),
    ("co_visit", "Joint visit with a manager", "协同拜访"),
)
PRODUCTS_FIELD = "pharma__products"
SAMPLES_FIELD = "pharma__samples"
TYPE_FIELD = "pharma__visit_type"

#: Supervision categories (内部沟通): ``(key, label, label_zh)``; the body starts with 【label_zh】.
CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("summary", "Summary", "总结"),
    ("supervision", "Supervision", "督导"),
    ("suggestion", "Suggestion", "建议"),
)
_TAG = re.compile(r"^【(总结|督导|建议)】\s*")

#: Report dimensions.
DIMENSIONS: tuple[tuple[str, str, str], ...] = (
    ("rep", "By rep", "按代表"),
    ("tier", "By tier", "按医生等级"),
)

MAX_QUOTA = 60
MAX_MINUTES = 480
MAX_TIERS = 20
_TIER_NAME = re.compile(r"^[A-Za-z0-9_\-+\u4e00-\u9fff]{1,20}$")


# -- declarations ---------------------------------------------------------------------------------


def fields() -> list[Field]:
    """Products discussed, samples given and the visit type, on every interaction."""
    return [
        Field(
            "interaction", "products", "string", "Products discussed", "沟通产品", max_length=200
        ),
        Field(
            "interaction", "samples", "integer", "Samples given", "赠送样品数量", min=0, max=10000
        ),
        Field(
            "interaction",
            "visit_type",
            "choice",
            "Visit type",
            "拜访类型",
            choices=VISIT_TYPES,
            indexed=True,
        ),
    ]


def label_of(items: Sequence[tuple[str, str, str]], key: str | None) -> str:
    """The label of ``key`` among ``(key, label, label_zh)`` items, else the key itself."""
    for value, text, zh in items:
        if value == key:
            return pick(text, zh)
    return key or ""


# -- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The company's visit rules (setting ``pharma_visits``).

    ``quotas``: visits a doctor of each tier needs per month (tiers absent or 0: no quota);
    ``min_minutes``: the minimum effective duration of a counting visit (0: every visit with a
    duration counts); ``reminder_day``: from this day of the month on, reps behind are
    reminded (once a month).
    """

    quotas: dict[str, int] = field(default_factory=lambda: {"A": 4, "B": 2, "C": 1, "D": 0})
    min_minutes: int = 15
    reminder_day: int = 25

    def as_json(self) -> dict[str, Any]:
        return {
            "quotas": dict(self.quotas),
            "min_minutes": self.min_minutes,
            "reminder_day": self.reminder_day,
        }

    def quota_of(self, tier: str | None) -> int:
        return self.quotas.get(tier or "", 0)

    @property
    def positive(self) -> dict[str, int]:
        """Tiers with a quota above zero."""
        return {t: n for t, n in self.quotas.items() if n > 0}

    @property
    def top_tier(self) -> str | None:
        """The tier with the highest quota (ties: the first name) -- the "A-tier" of the KPIs."""
        ranked = sorted(self.positive.items(), key=lambda item: (-item[1], item[0]))
        return ranked[0][0] if ranked else None


DEFAULTS = Settings()


class SettingsError(ValueError):
    """Refused settings; ``errors`` maps each field (``quota_A``, ``min_minutes`` …) to messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def _whole(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 10:
        value = int(value.strip())
    if isinstance(value, int) and low <= value <= high:
        return value
    return None


def validate_settings(data: Any) -> Settings:
    """Settings from ``data`` (missing keys take the defaults); raises :class:`SettingsError`
    naming each bad field: ``quota_<tier>`` for a quota, ``tier`` for a bad tier name."""
    if not isinstance(data, Mapping):
        raise SettingsError({"_schema": ["Settings must be an object of named values."]})
    errors: dict[str, list[str]] = {}
    unknown = set(data) - {"quotas", "min_minutes", "reminder_day"}
    for key in sorted(unknown):
        errors[str(key)[:40]] = ["Unknown setting."]
    raw_quotas = data.get("quotas", DEFAULTS.quotas)
    quotas: dict[str, int] = {}
    if not isinstance(raw_quotas, Mapping):
        errors["quotas"] = ["Give the quotas as tier: visits per month."]
    elif len(raw_quotas) > MAX_TIERS:
        errors["quotas"] = [f"At most {MAX_TIERS} tiers."]
    else:
        for tier, visits in raw_quotas.items():
            name = tier.strip() if isinstance(tier, str) else ""
            if not _TIER_NAME.match(name):
                errors.setdefault("tier", []).append(
                    f"{str(tier)[:20]!r} is not a tier name (1-20 letters or digits)."
                )
                continue
            number = _whole(visits, 0, MAX_QUOTA)
            if number is None:
                errors[f"quota_{name}"] = [f"A whole number of visits from 0 to {MAX_QUOTA}."]
                continue
            quotas[name] = number
    minutes = _whole(data.get("min_minutes", DEFAULTS.min_minutes), 0, MAX_MINUTES)
    if minutes is None:
        errors["min_minutes"] = [f"Whole minutes from 0 to {MAX_MINUTES}."]
    day = _whole(data.get("reminder_day", DEFAULTS.reminder_day), 1, 28)
    if day is None:
        errors["reminder_day"] = ["A day of the month from 1 to 28."]
    if errors:
        raise SettingsError(errors)
    return Settings(quotas=quotas, min_minutes=minutes or 0, reminder_day=day or 1)


def _setting_row() -> Any:
    from core.models import CompanySetting

    return db.session.scalars(
        select(CompanySetting).where(CompanySetting.key == SETTING_KEY)
    ).first()


def load_settings() -> Settings:
    """The current company's visit rules (the defaults when unset or no longer valid)."""
    row = _setting_row()
    if row is None or not row.value:
        return DEFAULTS
    try:
        return validate_settings(row.value)
    except SettingsError as exc:
        log.warning("company setting %s is invalid (%s); using the defaults", SETTING_KEY, exc)
        return DEFAULTS


def save_settings(
    data: Mapping[str, Any], user_id: int | None = None, now: datetime | None = None
) -> Settings:
    """Validate and store the rules (audited), then re-apply them to the current month's quotas
    and clocks (:func:`open_month`). Raises :class:`SettingsError`; the caller commits."""
    from core.models import CompanySetting

    settings = validate_settings(dict(data))
    row = _setting_row()
    if row is None:
        row = CompanySetting(key=SETTING_KEY, value=settings.as_json())
        db.session.add(row)
    else:
        row.value = settings.as_json()
    db.session.flush()
    audit.record(
        "update",
        "company_setting",
        row.id,
        {"key": SETTING_KEY, "value": settings.as_json()},
        user_id=user_id,
    )
    open_month(now=now, settings=settings)
    return settings


def known_tiers(settings: Settings | None = None) -> list[str]:
    """Tier names to offer on the settings page: the configured ones, those doctors have, and
    A-D (one query)."""
    settings = settings or load_settings()
    names = set(settings.quotas) | {"A", "B", "C", "D"}
    names |= {
        t for t in db.session.scalars(select(DoctorTier.tier).distinct()) if t and len(t) <= 20
    }
    return sorted(names)


# -- months ---------------------------------------------------------------------------------------


def zone() -> ZoneInfo:
    return interactions.company_zone()


def month_of(moment: datetime | None = None, tz: ZoneInfo | None = None) -> date:
    """The first day of the company-local month of ``moment`` (default now)."""
    local = (moment or utcnow()).astimezone(tz or zone())
    return local.date().replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month(month: date) -> date:
    return (month - timedelta(days=1)).replace(day=1)


def bounds(month: date, tz: ZoneInfo | None = None) -> tuple[datetime, datetime]:
    """The month's first moment and the first moment of the next month, as aware UTC."""
    tz = tz or zone()
    start = datetime.combine(month, time(), tz).astimezone(UTC)
    end = datetime.combine(next_month(month), time(), tz).astimezone(UTC)
    return start, end


def parse_month(raw: str | None) -> date | None:
    """``YYYY-MM`` as the month's first day; ``None`` when malformed or out of range."""
    if not raw or not re.fullmatch(r"\d{4}-\d{2}", raw.strip()):
        return None
    year, month = (int(x) for x in raw.strip().split("-"))
    if not (2000 <= year <= 2200 and 1 <= month <= 12):
        return None
    return date(year, month, 1)


def recent_months(count: int = 12, now: datetime | None = None) -> list[tuple[str, str]]:
    """``(YYYY-MM, YYYY-MM)`` choices of the last ``count`` months, newest first."""
    month = month_of(now)
    out = []
    for _i in range(count):
        out.append((month.strftime("%Y-%m"), month.strftime("%Y-%m")))
        month = previous_month(month)
    return out


# -- counting -------------------------------------------------------------------------------------


def counts_expr(min_minutes: int) -> Any:
    """SQL: the interaction is a visit that counts (kind ``visit``, duration ≥ the minimum)."""
    return and_(
        Interaction.kind == VISIT,
        Interaction.duration_minutes.is_not(None),
        Interaction.duration_minutes >= min_minutes,
    )


def counts(interaction: Interaction, settings: Settings) -> bool:
    """Whether one loaded interaction counts toward its doctor's quota."""
    return (
        interaction.kind == VISIT
        and interaction.duration_minutes is not None
        and interaction.duration_minutes >= settings.min_minutes
    )


def counting(
    month: date,
    settings: Settings,
    customer_ids: Iterable[int] | None = None,
    tz: ZoneInfo | None = None,
) -> Any:
    """Subquery ``(customer_id, visits, last_at)``: each doctor's counting visits in ``month`` --
    one GROUP BY over the interactions of the company in scope, whatever the number of doctors."""
    start, end = bounds(month, tz)
    stmt = select(
        Interaction.customer_id.label("customer_id"),
        func.count(Interaction.id).label("visits"),
        func.max(Interaction.occurred_at).label("last_at"),
    ).where(
        Interaction.company_id == require_company(),
        counts_expr(settings.min_minutes),
        Interaction.occurred_at >= start,
        Interaction.occurred_at < end,
    )
    if customer_ids is not None:
        stmt = stmt.where(Interaction.customer_id.in_(list(customer_ids)))
    return stmt.group_by(Interaction.customer_id).subquery("counted")


# -- the clock ------------------------------------------------------------------------------------


def _no_target(subject: Any) -> int | None:
    """Quota clocks are opened by :func:`open_month` for every doctor at once, never on save."""
    return None


VISIT_CLOCK = ObligationKind(
    name=CLOCK,
    model=Customer,
    target=_no_target,
    label="Monthly visit quota",
    label_zh="月度拜访定额",
    warn_fraction=0.8,
    escalate_fraction=1.2,
    assignee="owner_id",
    link="/customers/{id}",
    auto_start=False,
    notify=False,
)


def obligation_kinds() -> list[ObligationKind]:
    return [VISIT_CLOCK]


def _moments(month: date, company_id: int) -> dict[str, Any]:
    """Start, target and the moments of a quota clock of ``month`` (the same for every doctor)."""
    cal = clocks.calendar_for(company_id)
    start, end = bounds(month)
    target = int(cal.working_time_between(start, end).total_seconds() // 60)

    def at(fraction: float) -> datetime:
        return cal.add(start, timedelta(minutes=fraction * target))

    return {
        "started_at": start,
        "target_minutes": target,
        "warn_at": at(VISIT_CLOCK.warn_fraction),
        "due_at": at(1.0),
        "escalate_at": at(VISIT_CLOCK.escalate_fraction),
    }


def _quota_case(settings: Settings, tier: Any) -> Any:
    positive = settings.positive
    if not positive:
        return literal(0)
    return case(positive, value=tier, else_=0)


def open_month(
    month: date | None = None, now: datetime | None = None, settings: Settings | None = None
) -> dict[str, int]:
    """(Re)open the quotas of ``month`` (default the current one) for every doctor, set-based.

    Re-applies the settings to the month's rows (a tier now without quota loses its rows),
    adds rows for doctors with a quota-bearing tier and none yet, and -- for the current month --
    moves every doctor's clock to the month (rows of an earlier month are counted afresh, rows
    of doctors without a quota are removed, missing ones are added) and syncs which are met.
    Idempotent; a constant number of statements whatever the number of doctors. The caller
    commits."""
    company_id = require_company()
    now = now or utcnow()
    tz = zone()
    current = month_of(now, tz)
    month = month or current
    settings = settings or load_settings()
    q = VisitQuota.__table__
    dt = DoctorTier.__table__
    c = Customer.__table__
    db.session.flush()
    updated = db.session.execute(
        update(q)
        .where(q.c.company_id == company_id, q.c.month == month)
        .values(quota=_quota_case(settings, q.c.tier))
    ).rowcount
    removed = db.session.execute(
        delete(q).where(q.c.company_id == company_id, q.c.month == month, q.c.quota <= 0)
    ).rowcount
    added = 0
    if settings.positive:
        source = (
            select(
                dt.c.company_id,
                dt.c.customer_id,
                literal(month, VisitQuota.month.type),
                dt.c.tier,
                _quota_case(settings, dt.c.tier),
                literal(now, VisitQuota.opened_at.type),
            )
            .join(c, and_(c.c.id == dt.c.customer_id, c.c.company_id == company_id))
            .where(
                dt.c.company_id == company_id,
                dt.c.tier.in_(list(settings.positive)),
                ~exists().where(
                    q.c.company_id == company_id,
                    q.c.month == month,
                    q.c.customer_id == dt.c.customer_id,
                ),
            )
        )
        added = db.session.execute(
            insert(q).from_select(
                ["company_id", "customer_id", "month", "tier", "quota", "opened_at"], source
            )
        ).rowcount
    result = {"updated": updated, "removed": removed, "added": added, "clocks": 0}
    if month == current:
        result["clocks"] = _sync_clocks(month, company_id)
        sync_met(month, settings=settings, now=now)
    return result


def _sync_clocks(month: date, company_id: int) -> int:
    """Every doctor with a quota this month has a clock of this month; nobody else has one."""
    o = Obligation.__table__
    q = VisitQuota.__table__
    moments = _moments(month, company_id)
    quota_ids = select(q.c.customer_id).where(q.c.company_id == company_id, q.c.month == month)
    mine = and_(o.c.company_id == company_id, o.c.kind == CLOCK, o.c.subject_type == "customer")
    db.session.execute(delete(o).where(mine, o.c.subject_id.not_in(quota_ids)))
    restarted = db.session.execute(
        update(o)
        .where(mine, o.c.subject_id.in_(quota_ids), o.c.started_at != moments["started_at"])
        .values(
            **moments,
            met_at=None,
            paused_at=None,
            remaining_minutes=None,
            escalation_level=0,
        )
    ).rowcount
    source = select(
        literal(company_id),
        literal(CLOCK),
        literal("customer"),
        q.c.customer_id,
        *(literal(moments[k], o.c[k].type) for k in moments),
        literal(0),
    ).where(
        q.c.company_id == company_id,
        q.c.month == month,
        ~exists().where(mine, o.c.subject_id == q.c.customer_id),
    )
    added = db.session.execute(
        insert(o).from_select(
            [
                "company_id",
                "kind",
                "subject_type",
                "subject_id",
                *moments,
                "escalation_level",
            ],
            source,
        )
    ).rowcount
    return restarted + added


def sync_met(
    month: date | None = None,
    customer_ids: Iterable[int] | None = None,
    settings: Settings | None = None,
    now: datetime | None = None,
) -> int:
    """Meet the clocks of doctors with enough counting visits this month and reopen those that
    no longer have them (a visit edited shorter); all doctors or ``customer_ids``. Two UPDATEs."""
    company_id = require_company()
    now = now or utcnow()
    tz = zone()
    month = month or month_of(now, tz)
    settings = settings or load_settings()
    ids = list(customer_ids) if customer_ids is not None else None
    o = Obligation.__table__
    q = VisitQuota.__table__
    counted = counting(month, settings, ids, tz)
    met_ids = (
        select(q.c.customer_id)
        .join(counted, counted.c.customer_id == q.c.customer_id)
        .where(q.c.company_id == company_id, q.c.month == month, counted.c.visits >= q.c.quota)
    )
    start, _end = bounds(month, tz)
    mine = and_(
        o.c.company_id == company_id,
        o.c.kind == CLOCK,
        o.c.subject_type == "customer",
        o.c.started_at >= start,
    )
    if ids is not None:
        mine = and_(mine, o.c.subject_id.in_(ids))
    met = db.session.execute(
        update(o).where(mine, o.c.met_at.is_(None), o.c.subject_id.in_(met_ids)).values(met_at=now)
    ).rowcount
    reopened = db.session.execute(
        update(o)
        .where(mine, o.c.met_at.is_not(None), o.c.subject_id.not_in(met_ids))
        .values(met_at=None)
    ).rowcount
    return met + reopened


def interaction_saved(interaction: Any, created: bool) -> None:
    """Hook ``guanxi_interaction_saved``: a visit logged or changed re-syncs its doctor's quota
    clock (a changed interaction always does: it may have stopped being a visit)."""
    if interaction.kind != VISIT and created:
        return
    sync_met(customer_ids=[interaction.customer_id])


# -- reading quotas -------------------------------------------------------------------------------


@dataclass
class DoctorLine:
    """One doctor's quota of a month, as the pages show it."""

    customer_id: int
    name: str
    tier: str
    quota: int
    visits: int
    last_at: datetime | None
    owner_id: int | None = None
    owner_name: str | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.quota - self.visits)

    @property
    def met(self) -> bool:
        return self.visits >= self.quota


def _lines_stmt(month: date, settings: Settings, tz: ZoneInfo | None = None) -> Any:
    counted = counting(month, settings, tz=tz)
    visits = func.coalesce(counted.c.visits, 0)
    return (
        select(
            VisitQuota.customer_id,
            Customer.name,
            VisitQuota.tier,
            VisitQuota.quota,
            visits.label("visits"),
            counted.c.last_at,
            Customer.owner_id,
            User.name.label("owner_name"),
            (VisitQuota.quota - visits).label("lacking"),
        )
        .join(Customer, Customer.id == VisitQuota.customer_id)
        .outerjoin(counted, counted.c.customer_id == VisitQuota.customer_id)
        .outerjoin(User, User.id == Customer.owner_id)
        .where(VisitQuota.month == month)
    )


def _line(row: Any) -> DoctorLine:
    return DoctorLine(
        customer_id=row.customer_id,
        name=row.name,
        tier=row.tier,
        quota=row.quota,
        visits=row.visits,
        last_at=row.last_at,
        owner_id=row.owner_id,
        owner_name=row.owner_name,
    )


@dataclass(frozen=True)
class PlanPage:
    lines: list[DoctorLine]
    next_after: str | None
    totals: dict[str, int]


def plan(
    month: date,
    owner_id: int | None,
    *,
    behind_only: bool = False,
    tier: str | None = None,
    size: int = 50,
    after: str | None = None,
    settings: Settings | None = None,
) -> PlanPage:
    """The doctors with a quota in ``month`` (of ``owner_id``; ``None``: everyone's the user may
    see), most visits lacking first, one keyset page (cursor ``<lacking>:<customer id>``), with
    totals. Two queries whatever the page size; ``ValueError`` for a bad cursor."""
    settings = settings or load_settings()
    tz = zone()
    base = _lines_stmt(month, settings, tz).subquery("lines")
    cond = []
    if owner_id is not None:
        cond.append(base.c.owner_id == owner_id)
    if tier:
        cond.append(base.c.tier == tier)
    page_cond = list(cond)
    if behind_only:
        page_cond.append(base.c.lacking > 0)
    if after:
        lacking_raw, _sep, id_raw = after.partition(":")
        if not re.fullmatch(r"-?\d{1,3}", lacking_raw) or not re.fullmatch(r"\d{1,10}", id_raw):
            raise ValueError(after)
        lacking, last_id = int(lacking_raw), int(id_raw)
        page_cond.append(
            or_(
                base.c.lacking < lacking,
                and_(base.c.lacking == lacking, base.c.customer_id > last_id),
            )
        )
    rows = db.session.execute(
        select(base)
        .where(*page_cond)
        .order_by(base.c.lacking.desc(), base.c.customer_id)
        .limit(size + 1)
    ).all()
    cursor = None
    if len(rows) > size:
        rows = rows[:size]
        cursor = f"{rows[-1].lacking}:{rows[-1].customer_id}"
    met = case((base.c.lacking <= 0, 1), else_=0)
    total = db.session.execute(
        select(
            func.count().label("doctors"),
            func.coalesce(func.sum(met), 0).label("met"),
            func.coalesce(func.sum(base.c.quota), 0).label("due"),
            func.coalesce(
                func.sum(case((base.c.visits > base.c.quota, base.c.quota), else_=base.c.visits)),
                0,
            ).label("done"),
        ).where(*cond)
    ).one()
    totals = {k: int(getattr(total, k) or 0) for k in ("doctors", "met", "due", "done")}
    totals["behind"] = totals["doctors"] - totals["met"]
    return PlanPage([_line(r) for r in rows], cursor, totals)


@dataclass
class ComplianceLine:
    key: str
    label: str
    doctors: int = 0
    met: int = 0
    due: int = 0
    done: int = 0

    @property
    def behind(self) -> int:
        return self.doctors - self.met

    @property
    def rate(self) -> float | None:
        return self.met / self.doctors if self.doctors else None

    @property
    def visit_rate(self) -> float | None:
        return self.done / self.due if self.due else None


def _grouped(month: date, settings: Settings, tz: ZoneInfo | None = None) -> Any:
    """One GROUP BY (rep, tier): doctors with a quota, doctors met, visits due, visits done
    (counting visits, at most the quota per doctor)."""
    counted = counting(month, settings, tz=tz)
    visits = func.coalesce(counted.c.visits, 0)
    return (
        select(
            Customer.owner_id.label("owner_id"),
            func.max(User.name).label("owner_name"),
            VisitQuota.tier.label("tier"),
            func.count(VisitQuota.id).label("doctors"),
            func.sum(case((visits >= VisitQuota.quota, 1), else_=0)).label("met"),
            func.sum(VisitQuota.quota).label("due"),
            func.sum(case((visits > VisitQuota.quota, VisitQuota.quota), else_=visits)).label(
                "done"
            ),
        )
        .join(Customer, Customer.id == VisitQuota.customer_id)
        .outerjoin(counted, counted.c.customer_id == VisitQuota.customer_id)
        .outerjoin(User, User.id == Customer.owner_id)
        .where(VisitQuota.month == month)
        .group_by(Customer.owner_id, VisitQuota.tier)
    )


@dataclass(frozen=True)
class Compliance:
    by_rep: list[ComplianceLine]
    by_tier: list[ComplianceLine]
    total: ComplianceLine


def compliance(month: date, settings: Settings | None = None) -> Compliance:
    """Visit compliance of ``month`` by rep (doctors' owner) and by tier: doctors with a quota,
    doctors whose quota is met, the share met, visits due and done. One query."""
    settings = settings or load_settings()
    reps: dict[str, ComplianceLine] = {}
    tiers: dict[str, ComplianceLine] = {}
    total = ComplianceLine("all", _("All"))
    for row in db.session.execute(_grouped(month, settings)):
        rep_key = str(row.owner_id or "")
        rep = reps.setdefault(rep_key, ComplianceLine(rep_key, row.owner_name or _("No owner")))
        tier = tiers.setdefault(row.tier, ComplianceLine(row.tier, row.tier))
        for line in (rep, tier, total):
            line.doctors += int(row.doctors or 0)
            line.met += int(row.met or 0)
            line.due += int(row.due or 0)
            line.done += int(row.done or 0)
    by_rep = sorted(reps.values(), key=lambda line: (line.rate or 0, line.label))
    by_tier = sorted(tiers.values(), key=lambda line: line.key)
    return Compliance(by_rep, by_tier, total)


def doctor_status(customer: Customer, now: datetime | None = None) -> dict[str, Any]:
    """A doctor's quota this month for the customer panel: tier, quota, counting visits, the
    clock, and this month's visits each marked counting or not (four queries)."""
    now = now or utcnow()
    settings = load_settings()
    tz = zone()
    month = month_of(now, tz)
    start, end = bounds(month, tz)
    tier = db.session.scalar(select(DoctorTier.tier).where(DoctorTier.customer_id == customer.id))
    quota = db.session.scalars(
        select(VisitQuota).where(VisitQuota.customer_id == customer.id, VisitQuota.month == month)
    ).first()
    visits = list(
        db.session.scalars(
            select(Interaction)
            .where(
                Interaction.customer_id == customer.id,
                Interaction.kind == VISIT,
                Interaction.occurred_at >= start,
                Interaction.occurred_at < end,
            )
            .order_by(Interaction.occurred_at.desc())
            .limit(50)
        )
    )
    clock = db.session.scalars(
        select(Obligation)
        .where(
            Obligation.kind == CLOCK,
            Obligation.subject_type == "customer",
            Obligation.subject_id == customer.id,
        )
        .execution_options(populate_existing=True)  # (set-based updates bypass loaded rows)
    ).first()
    counted = sum(1 for v in visits if counts(v, settings))
    return {
        "month": month,
        "tier": tier,
        "quota": quota.quota if quota else 0,
        "quota_tier": quota.tier if quota else None,
        "counted": counted,
        "remaining": max(0, (quota.quota if quota else 0) - counted),
        "visits": [(v, counts(v, settings)) for v in visits],
        "clock": clock,
        "clock_status": clock.status(now) if clock else None,
        "settings": settings,
    }


# -- the month-end reminder -----------------------------------------------------------------------


def remind_behind(now: datetime | None = None, settings: Settings | None = None) -> str:
    """From the reminder day on, notify each rep who still has doctors below quota this month,
    naming the doctors (most lacking first) and the visits each lacks. Reps already reminded
    this month are left out by the same query, so the job notifies each rep once a month.
    One query for all reps, then one notification per rep behind."""
    from core.notify import notify_users

    now = now or utcnow()
    settings = settings or load_settings()
    tz = zone()
    local = now.astimezone(tz)
    if local.day < settings.reminder_day:
        return f"reminders start on day {settings.reminder_day}"
    month = month_of(now, tz)
    start, _end = bounds(month, tz)
    reminded = select(Notification.user_id).where(
        Notification.company_id == require_company(),
        Notification.kind == REMINDER_KIND,
        Notification.created_at >= start,
    )
    lines = _lines_stmt(month, settings, tz).subquery("lines")
    ranked = (
        select(
            lines.c.owner_id,
            lines.c.name,
            lines.c.lacking,
            func.row_number()
            .over(partition_by=lines.c.owner_id, order_by=(lines.c.lacking.desc(), lines.c.name))
            .label("rank"),
            func.count().over(partition_by=lines.c.owner_id).label("doctors"),
            func.sum(lines.c.lacking).over(partition_by=lines.c.owner_id).label("visits"),
        )
        .join(Membership, Membership.user_id == lines.c.owner_id)
        .where(lines.c.lacking > 0, lines.c.owner_id.not_in(reminded))
        .subquery("ranked")
    )
    rows = db.session.execute(
        select(ranked)
        .where(ranked.c.rank <= REMINDER_NAMES)
        .order_by(ranked.c.owner_id, ranked.c.rank)
    ).all()
    by_rep: dict[int, list[Any]] = {}
    for row in rows:
        by_rep.setdefault(row.owner_id, []).append(row)
    for owner_id, items in by_rep.items():
        doctors, visits = int(items[0].doctors), int(items[0].visits)

        def message(items: list[Any] = items, doctors: int = doctors, visits: int = visits) -> str:
            names = pick("; ", "、").join(
                _("%(name)s (%(n)s more)", name=r.name, n=int(r.lacking)) for r in items
            )
            more = doctors - len(items)
            text = _(
                "Visit quotas: %(doctors)s of your doctors still need %(visits)s visits this "
                "month: %(names)s",
                doctors=doctors,
                visits=visits,
                names=names,
            )
            if more > 0:
                text += _(" and %(n)s more.", n=more)
            return text

        notify_users([owner_id], REMINDER_KIND, "/pharma/visits/plan", message)
    return f"{len(by_rep)} reps reminded"


# -- jobs -----------------------------------------------------------------------------------------


def run_open_month(company: Any) -> str:
    """Job ``pharma.visits.open_month`` (the 1st): open the month's quotas and clocks."""
    result = open_month()
    db.session.commit()
    return f"{result['added']} quotas added, {result['clocks']} clocks moved to the month"


def run_daily(company: Any) -> str:
    """Job ``pharma.visits.daily``: reconcile the month (new doctors, bulk-logged visits) and,
    from the reminder day on, remind the reps behind."""
    settings = load_settings()
    open_month(settings=settings)
    message = remind_behind(settings=settings)
    db.session.commit()
    return message


def jobs() -> list[Job]:
    return [
        Job(
            "pharma.visits.open_month",
            run_open_month,
            monthly(day=1, at="00:10"),
            "Open the month's visit quotas",
            "开启本月拜访定额",
        ),
        Job(
            "pharma.visits.daily",
            run_daily,
            daily(at="09:00"),
            "Visit quotas: reconcile and month-end reminders",
            "拜访定额：核对与月底提醒",
        ),
    ]


def enabled(company: Any) -> None:
    """On enabling: open the current month (idempotent)."""
    open_month()


# -- supervision ----------------------------------------------------------------------------------


def split_category(body: str) -> tuple[str | None, str]:
    """``(category key, text)`` of a comment body tagged ``【督导】…`` (``None``: untagged)."""
    match = _TAG.match(body or "")
    if not match:
        return None, body
    key = next(k for k, _l, zh in CATEGORIES if zh == match.group(1))
    return key, body[match.end() :]


def add_supervision(
    interaction: Interaction, category: str | None, body: str, user: Any
) -> Comment:
    """Comment on a visit, tagged with a supervision category (``summary``, ``supervision``,
    ``suggestion``; ``None`` for a plain reply), and notify the rep who made the visit (unless
    they wrote it or are @mentioned, which notifies them already). Raises
    :class:`core.comments.CommentError` (a bad category is one, on the field ``category``);
    the caller commits."""
    from core.comments import CommentError, add_comment, mentioned
    from core.notify import notify_users

    text = (body or "").strip()
    if category:
        zh = next((z for k, _l, z in CATEGORIES if k == category), None)
        if zh is None:
            raise CommentError(_("Choose a category from the list."), "category")
        if text:
            text = f"【{zh}】{text}"
    link = f"/pharma/visits/{interaction.id}"
    comment = add_comment("interaction", interaction.id, text, user, link=link)
    rep = interaction.user_id
    if rep and rep != user.id and rep not in mentioned(text):
        excerpt = split_category(text)[1]
        excerpt = excerpt if len(excerpt) <= 80 else excerpt[:79] + "…"

        def message() -> str:
            what = label_of(CATEGORIES, category) if category else _("Comment")
            return _(
                "%(name)s on your visit (%(what)s): “%(text)s”",
                name=user.name,
                what=what,
                text=excerpt,
            )

        notify_users([rep], SUPERVISION_KIND, f"{link}#comment-{comment.id}", message)
    return comment


def supervision_counts(interaction_ids: Sequence[int]) -> dict[int, int]:
    """Comments per visit (one GROUP BY)."""
    if not interaction_ids:
        return {}
    return dict(
        db.session.execute(
            select(Comment.subject_id, func.count(Comment.id))
            .where(Comment.subject_type == "interaction", Comment.subject_id.in_(interaction_ids))
            .group_by(Comment.subject_id)
        ).all()
    )


# -- logging a visit ------------------------------------------------------------------------------


def visit_fields() -> list[ext.Field]:
    """The plugin's interaction fields as declared (empty when the plugin is off)."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    keys = {PRODUCTS_FIELD, SAMPLES_FIELD, TYPE_FIELD}
    return [
        f for f in current().registry.fields_for("interaction", enabled_plugins()) if f.key in keys
    ]


def log_visit(
    doctor: Customer,
    user: Any,
    *,
    occurred_at: datetime,
    duration_minutes: int,
    purpose: str | None = None,
    result: str | None = None,
    next_step: str | None = None,
    next_step_due: datetime | None = None,
    products: str | None = None,
    samples: int | None = None,
    visit_type: str | None = None,
) -> Interaction:
    """Log a visit to ``doctor`` (a core interaction of kind ``visit``) with the plugin's fields;
    the quota clock follows through the core hook. Raises
    :class:`core.interactions.InteractionError`; the caller commits."""
    if visit_type and visit_type not in {k for k, _l, _z in VISIT_TYPES}:
        raise interactions.InteractionError(_("Choose a visit type from the list."), "visit_type")
    if samples is not None and not 0 <= samples <= 10000:
        raise interactions.InteractionError(_("From 0 to 10000."), "samples")
    found = visit_fields()
    row = interactions.log(
        doctor,
        user,
        kind=VISIT,
        occurred_at=occurred_at,
        duration_minutes=duration_minutes,
        purpose=purpose,
        result=result,
        next_step=next_step,
        next_step_due=next_step_due,
    )
    values = {
        PRODUCTS_FIELD: (products or "").strip()[:200] or None,
        SAMPLES_FIELD: samples,
        TYPE_FIELD: visit_type or None,
    }
    if found:
        ext.save(found, row.id, values)
    return row


def visit_extras(interaction_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The plugin's field values of these interactions (one query)."""
    found = visit_fields()
    if not found or not interaction_ids:
        return {}
    return ext.load(found, list(interaction_ids))


# -- menu, widget, panel --------------------------------------------------------------------------


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "pharma.visits_plan",
            "Visit plan",
            "拜访计划",
            order=34,
            group="Pharma",
            group_zh="医药",
        ),
        MenuItem(
            "pharma.visits_compliance",
            "Visit compliance",
            "拜访达标",
            order=35,
            roles=("admin", "manager"),
            group="Pharma",
            group_zh="医药",
        ),
    ]


def widgets(company: Any, user: Any) -> list[Panel]:
    """The box *visits due this month* for the people who visit doctors (reps, managers,
    admins); service agents and viewers do not get it."""
    from core.web.helpers import role

    if role() not in ("sales_rep", "manager", "admin"):
        return []
    return [
        Panel(
            "Visits due this month",
            lambda: web_visits.render_widget(user),
            "本月待拜访",
            order=24,
        )
    ]


def panels(subject_type: str, subject: Any) -> list[Panel]:
    if subject_type != "customer" or getattr(subject, "kind", None) != "doctor":
        return []
    return [
        Panel(
            "Visit quota this month",
            lambda: web_visits.render_panel(subject),
            "本月拜访定额",
            order=32,
        )
    ]


# -- reports --------------------------------------------------------------------------------------


def _month_param() -> ReportParam:
    return ReportParam(
        "month",
        "Month",
        "月份",
        choices=lambda: recent_months(24),
        default=lambda: month_of().strftime("%Y-%m"),
        required=True,
    )


def _report_month(p: Mapping[str, Any]) -> date:
    return parse_month(p.get("month")) or month_of()


def _compliance_query(p: Mapping[str, Any]) -> Any:
    settings = load_settings()
    month = _report_month(p)
    counted = counting(month, settings)
    visits = func.coalesce(counted.c.visits, 0)
    if p.get("dimension") == "tier":
        key, label = VisitQuota.tier, func.max(VisitQuota.tier)
    else:
        key, label = Customer.owner_id, func.coalesce(func.max(User.name), "—")
    return (
        select(
            key.label("value"),
            label.label("label"),
            func.count(VisitQuota.id).label("doctors"),
            func.sum(case((visits >= VisitQuota.quota, 1), else_=0)).label("met"),
            func.sum(VisitQuota.quota).label("due"),
            func.sum(case((visits > VisitQuota.quota, VisitQuota.quota), else_=visits)).label(
                "done"
            ),
        )
        .join(Customer, Customer.id == VisitQuota.customer_id)
        .outerjoin(counted, counted.c.customer_id == VisitQuota.customer_id)
        .outerjoin(User, User.id == Customer.owner_id)
        .where(VisitQuota.month == month)
        .group_by(key)
        .order_by(key)
    )


def _rate(part: Any, whole: Any) -> float | None:
    return (float(part or 0) / float(whole)) if whole else None


def _compliance_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        doctors, met = int(r["doctors"] or 0), int(r["met"] or 0)
        out.append(
            {
                "value": r["value"],
                "label": str(r["label"] if r["label"] is not None else "—"),
                "doctors": doctors,
                "met": met,
                "behind": doctors - met,
                "rate": _rate(met, doctors),
                "due": int(r["due"] or 0),
                "done": int(r["done"] or 0),
                "visit_rate": _rate(r["done"], r["due"]),
            }
        )
    return out


def _compliance_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    from urllib.parse import urlencode

    key = "tier" if p.get("dimension") == "tier" else "rep"
    if row.get("value") is None:
        return None
    query = {"month": _report_month(p).strftime("%Y-%m"), key: row["value"]}
    return "/pharma/visits/compliance/doctors?" + urlencode(query)


COMPLIANCE_REPORT = Report(
    name="pharma_visit_compliance",
    label="Visit compliance",
    label_zh="拜访达标率",
    description="Doctors with a visit quota in the month, by rep (the doctors' owner) or by tier: "
    "how many met their quota, the share met, and the counting visits done against those due "
    "(at most the quota per doctor).",
    description_zh="当月有拜访定额的医生，按代表（医生负责人）或医生等级统计：达标医生数、达标率，"
    "以及有效拜访完成数与应拜访数（每位医生最多计到定额）。",
    params=(_month_param(), ReportParam("dimension", "By", "维度", choices=DIMENSIONS)),
    query=_compliance_query,
    shape=_compliance_shape,
    columns=(
        ReportColumn("label", "Rep or tier", "代表或等级", "text"),
        ReportColumn("doctors", "Doctors due", "应拜访医生"),
        ReportColumn("met", "Doctors met", "达标医生"),
        ReportColumn("behind", "Doctors behind", "未达标医生"),
        ReportColumn("rate", "Compliance", "达标率", "percent"),
        ReportColumn("due", "Visits due", "应拜访次数"),
        ReportColumn("done", "Visits done", "有效拜访次数"),
        ReportColumn("visit_rate", "Visits done / due", "拜访完成率", "percent"),
    ),
    series=("met", "behind"),
    chart="hstacked",
    drill=_compliance_drill,
    roles=("admin", "manager"),
    group="pharma",
    order=20,
)


def working_days(month: date, now: datetime | None = None) -> int:
    """Working days of ``month`` on the company's calendar, up to today for the current month."""
    cal = clocks.calendar_for(require_company())
    today = (now or utcnow()).astimezone(ZoneInfo(cal.timezone)).date()
    last = min(next_month(month) - timedelta(days=1), today)
    days, day = 0, month
    while day <= last:
        if cal.working_intervals(day):
            days += 1
        day += timedelta(days=1)
    return days


def _kpi_query(p: Mapping[str, Any]) -> Any:
    settings = load_settings()
    month = _report_month(p)
    tz = zone()
    start, end = bounds(month, tz)
    counted = counting(month, settings, tz=tz)
    visits = func.coalesce(counted.c.visits, 0)
    top = settings.top_tier or ""
    quotas = (
        select(
            Customer.owner_id.label("rep_id"),
            func.sum(VisitQuota.quota).label("due"),
            func.sum(case((visits > VisitQuota.quota, VisitQuota.quota), else_=visits)).label(
                "done"
            ),
            func.sum(case((VisitQuota.tier == top, 1), else_=0)).label("top"),
            func.sum(case((and_(VisitQuota.tier == top, visits > 0), 1), else_=0)).label(
                "top_visited"
            ),
        )
        .join(Customer, Customer.id == VisitQuota.customer_id)
        .outerjoin(counted, counted.c.customer_id == VisitQuota.customer_id)
        .where(VisitQuota.month == month, Customer.owner_id.is_not(None))
        .group_by(Customer.owner_id)
        .subquery("quotas")
    )
    made = (
        select(
            Interaction.user_id.label("rep_id"),
            func.count(Interaction.id).label("visits"),
        )
        .where(
            counts_expr(settings.min_minutes),
            Interaction.occurred_at >= start,
            Interaction.occurred_at < end,
            Interaction.user_id.is_not(None),
        )
        .group_by(Interaction.user_id)
        .subquery("made")
    )
    return (
        select(
            User.id.label("value"),
            User.name.label("label"),
            func.coalesce(quotas.c.due, 0).label("due"),
            func.coalesce(quotas.c.done, 0).label("done"),
            func.coalesce(quotas.c.top, 0).label("top"),
            func.coalesce(quotas.c.top_visited, 0).label("top_visited"),
            func.coalesce(made.c.visits, 0).label("visits"),
        )
        .select_from(Membership)
        .join(User, User.id == Membership.user_id)
        .outerjoin(quotas, quotas.c.rep_id == User.id)
        .outerjoin(made, made.c.rep_id == User.id)
        .where(or_(quotas.c.rep_id.is_not(None), made.c.rep_id.is_not(None)))
        .order_by(User.name)
    )


def _kpi_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    days = working_days(_report_month(p))
    out = []
    for r in rows:
        due, done = int(r["due"] or 0), int(r["done"] or 0)
        top, top_visited, visits = (int(r[k] or 0) for k in ("top", "top_visited", "visits"))
        out.append(
            {
                "value": r["value"],
                "label": r["label"],
                "done": done,
                "due": due,
                "done_rate": _rate(done, due),
                "top": top,
                "top_visited": top_visited,
                "coverage": _rate(top_visited, top),
                "visits": visits,
                "per_day": (visits / days) if days else None,
            }
        )
    return out


def _kpi_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    from urllib.parse import urlencode

    query = {"month": _report_month(p).strftime("%Y-%m"), "rep": row["value"]}
    return "/pharma/visits/compliance/doctors?" + urlencode(query)


KPI_REPORT = Report(
    name="pharma_visit_kpis",
    label="Rep visit KPIs",
    label_zh="代表拜访绩效",
    description="Per rep for the month: counting visits done against those due on their "
    "doctors' quotas, the coverage of top-tier doctors (the tier with the highest quota; share "
    "visited at least once with a counting visit) and the counting visits they made per working "
    "day (working days of the company calendar so far).",
    description_zh="按代表统计当月：所负责医生的有效拜访完成数与应拜访数、最高等级医生（定额最高的等级）"
    "覆盖率（本月至少有一次有效拜访的比例），以及每个工作日的有效拜访次数（按公司日历截至今日的工作日）。",
    params=(_month_param(),),
    query=_kpi_query,
    shape=_kpi_shape,
    columns=(
        ReportColumn("label", "Rep", "代表", "text"),
        ReportColumn("done", "Visits done", "有效拜访完成"),
        ReportColumn("due", "Visits due", "应拜访次数"),
        ReportColumn("done_rate", "Done / due", "完成率", "percent"),
        ReportColumn("top", "Top-tier doctors", "最高等级医生数"),
        ReportColumn("top_visited", "Top-tier visited", "已拜访最高等级医生"),
        ReportColumn("coverage", "Top-tier coverage", "最高等级覆盖率", "percent"),
        ReportColumn("visits", "Counting visits made", "本人有效拜访次数"),
        ReportColumn("per_day", "Visits per working day", "日均拜访次数", "number"),
    ),
    series=("done", "due"),
    chart="hbar",
    drill=_kpi_drill,
    roles=("admin", "manager"),
    group="pharma",
    order=21,
)


def reports() -> list[Report]:
    return [COMPLIANCE_REPORT, KPI_REPORT]


# -- demo -----------------------------------------------------------------------------------------


def demo(company: Any, fake: Any) -> None:
    """Visits to the demo doctors this month and last month (some too short to count), the
    default quotas saved, reps behind, supervision comments. Doctors without a tier (the tiering
    part found none) have no quota and get a few visits only."""
    rng = random.Random(f"pharma-visits-{company.code}")
    now = utcnow()
    tz = zone()
    settings = save_settings(DEFAULTS.as_json())
    month = month_of(now, tz)
    last = previous_month(month)
    doctors = db.session.execute(
        select(Customer.id, Customer.owner_id, DoctorTier.tier)
        .outerjoin(DoctorTier, DoctorTier.customer_id == Customer.id)
        .where(Customer.kind == "doctor")
        .order_by(Customer.id)
    ).all()
    if not doctors:
        return
    owners = sorted({o for _i, o, _t in doctors if o})
    behind_owner = owners[-1] if len(owners) > 1 else None
    purposes = ["新品介绍", "学术推广", "处方跟进", "科室会邀请", "不良反应回访"]
    products = ["阿托伐他汀", "氨氯地平", "二甲双胍", "吉非替尼", "布地奈德"]
    results = ["医生认可疗效，愿意试用", "需要更多临床数据", "已加入科室用药目录", "约定下月再访"]
    rows: list[Interaction] = []
    extras: list[tuple[Interaction, dict[str, Any]]] = []
    last_start, last_end = bounds(last, tz)
    this_start, _this_end = bounds(month, tz)
    for n, (customer_id, owner_id, tier) in enumerate(doctors):
        quota = settings.quota_of(tier) or rng.choice([0, 1])
        plans = [(last_start, last_end, quota + rng.choice([-1, 0, 0, 1]))]
        # this month so far: most doctors of the reps on track are done, few of the one behind
        on_track = rng.random() < (0.2 if owner_id == behind_owner else 0.7)
        so_far = quota if on_track or quota == 0 else rng.randint(0, quota - 1)
        plans.append(
            (this_start, max(this_start + timedelta(hours=1), now - timedelta(hours=1)), so_far)
        )
        for start, end, count in plans:
            span = max(60.0, (end - start).total_seconds())
            for k in range(max(0, count) + (1 if n % 4 == 0 else 0)):
                short = n % 4 == 0 and k == 0  # one visit too short to count
                at = start + timedelta(seconds=rng.uniform(0, span))
                row = Interaction(
                    customer_id=customer_id,
                    user_id=owner_id,
                    kind=VISIT,
                    occurred_at=at,
                    duration_minutes=rng.choice([5, 8, 10]) if short else rng.choice([15, 20, 30]),
                    purpose=rng.choice(purposes),
                    result=rng.choice(results),
                )
                rows.append(row)
                extras.append(
                    (
                        row,
                        {
                            PRODUCTS_FIELD: rng.choice(products),
                            SAMPLES_FIELD: rng.choice([0, 0, 2, 5]),
                            TYPE_FIELD: rng.choice([k for k, _l, _z in VISIT_TYPES]),
                        },
                    )
                )
    db.session.add_all(rows)
    db.session.flush()
    found = visit_fields()
    if found:
        ext.save_many(found, [(row.id, values) for row, values in extras])
    latest: dict[int, datetime] = {}
    for row in rows:
        if row.occurred_at > latest.get(row.customer_id, row.occurred_at - timedelta(seconds=1)):
            latest[row.customer_id] = row.occurred_at
    for customer in db.session.scalars(select(Customer).where(Customer.id.in_(list(latest)))):
        if customer.last_contact_at is None or customer.last_contact_at < latest[customer.id]:
            customer.last_contact_at = latest[customer.id]
    open_month(last, now=now, settings=settings)
    open_month(month, now=now, settings=settings)
    manager = db.session.scalar(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role == "manager")
    )
    if manager is not None:
        texts = [
            ("summary", "本次拜访目标明确，医生对新品反馈积极，请整理成功话术分享给团队。"),
            ("supervision", "拜访时长偏短，下次请提前准备临床数据，确保有效沟通不少于15分钟。"),
            ("suggestion", "建议邀请该医生参加下月的科室会，并带上最新的指南解读资料。"),
        ]
        picked = [r for r in rows if r.user_id and r.user_id != manager.id][
            :: max(1, len(rows) // 6)
        ]
        for row, (category, text) in zip(picked[:6], texts * 2, strict=False):
            comment = add_supervision(row, category, text, manager)
            comment.created_at = min(now, row.occurred_at + timedelta(hours=rng.randint(2, 30)))
    db.session.flush()


from plugins.pharma import web_visits  # noqa: E402,F401  (registers the routes on the blueprint)
