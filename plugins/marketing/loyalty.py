"""Membership and points (会员与积分): levels, a points ledger, rewards, expiry, level moves.

- **Members** are the customers whose extension field ``marketing__member_level`` is set (the
  field this plugin declared from its first version keeps its meaning: the member's current
  level). :func:`enrol` makes a customer a member at the lowest level.
- **Levels** (:class:`~plugins.marketing.models.Level`, one row per value of that field, seeded
  when the plugin is enabled): the ``threshold`` of points earned within the program's
  ``level_window_days`` that reaches the level, a points ``multiplier`` and the ``benefits``.
- **Ledger** (:class:`~plugins.marketing.models.PointsEntry`): every change of points is a row
  -- ``earn`` (an order), ``redeem`` (a reward), ``expire``, ``adjust``; a balance is the SUM of
  a customer's rows, never a number that is edited.

Set-based work (the daily job ``marketing.loyalty`` runs the three in this order):

- :func:`award_points` -- ONE ``INSERT … SELECT``: each member's orders (not cancelled, dated
  up to today and within the expiry period) earn ``floor(amount × points_per_yuan ×
  level multiplier)`` points once (``UNIQUE (order_id, kind)``);
- :func:`expire_points` -- ONE ``INSERT … SELECT``: points earned on or before ``today −
  expiry_days`` that were not used expire. Points are used first-in, first-out: what expires
  for a customer is ``earned up to the cut-off − (redeemed + expired so far)`` when positive,
  so running it twice expires nothing more;
- :func:`move_levels` -- ONE ``INSERT … SELECT`` into the level history and ONE ``UPDATE`` of
  the members' level: the level is the highest whose threshold the points earned in the window
  reach (upwards and downwards).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Integer, and_, case, cast, exists, func, literal, select, update
from sqlalchemy import insert as sql_insert

from core import audit
from core import fields as ext_fields
from core.extend import UTCDateTime, db, require_company, utcnow
from core.fields import side_table
from core.models import Customer
from plugins.marketing.models import Level, LevelMove, PointsEntry, Program, Reward

#: The default levels (keys are the values of ``marketing__member_level``).
DEFAULT_LEVELS = (
    ("regular", 0, Decimal("1"), "基础积分"),
    ("silver", 1000, Decimal("1.2"), "积分1.2倍；生日礼"),
    ("gold", 5000, Decimal("1.5"), "积分1.5倍；生日礼；专属客服"),
    ("platinum", 20000, Decimal("2"), "积分2倍；生日礼；专属客服；免费送货上门"),
)


class PointsRefused(ValueError):
    """A redemption or adjustment refused."""


def today() -> date:
    from core.reports import today as company_today

    return company_today()


def program() -> Program:
    """The company's loyalty rules (created with the defaults on first use)."""
    row = db.session.scalar(select(Program))
    if row is None:
        row = Program(points_per_yuan=Decimal(1), expiry_days=365, level_window_days=365)
        db.session.add(row)
        db.session.flush()
    return row


def seed(company: Any = None) -> None:
    """The default program and levels, where missing (idempotent)."""
    program()
    have = set(db.session.scalars(select(Level.key)))
    for key, threshold, multiplier, benefits in DEFAULT_LEVELS:
        if key not in have:
            db.session.add(
                Level(key=key, threshold=threshold, multiplier=multiplier, benefits=benefits)
            )
    db.session.flush()


def levels() -> list[Level]:
    """The company's levels, lowest threshold first."""
    return list(db.session.scalars(select(Level).order_by(Level.threshold, Level.id)))


def _level_field() -> list[Any]:
    from core.customers import extension_fields

    return [f for f in extension_fields() if f.key == "marketing__member_level"]


def level_of(customer_id: int) -> str | None:
    """The member's level (``None``: not a member)."""
    ext = side_table("marketing", "customer")
    return db.session.scalar(select(ext.c.member_level).where(ext.c.id == customer_id))


def enrol(customer: Customer | int, at: date | None = None, user: Any = None) -> str:
    """Make the customer a member at the lowest level (no change for a member)."""
    customer_id = customer if isinstance(customer, int) else customer.id
    current = level_of(customer_id)
    if current:
        return current
    lowest = levels()
    key = lowest[0].key if lowest else "regular"
    ext_fields.save(_level_field(), customer_id, {"marketing__member_level": key})
    db.session.add(
        LevelMove(customer_id=customer_id, from_level=None, to_level=key, moved_on=at or today())
    )
    db.session.flush()
    audit.record(
        "enrol", "customer", customer_id, {"level": key}, user_id=getattr(user, "id", None)
    )
    return key


def balance(customer_id: int) -> int:
    """The customer's points: the sum of the ledger."""
    return int(
        db.session.scalar(
            select(func.coalesce(func.sum(PointsEntry.points), 0)).where(
                PointsEntry.customer_id == customer_id
            )
        )
        or 0
    )


def balances(customer_ids: list[int]) -> dict[int, int]:
    """Points of several customers (one GROUP BY)."""
    if not customer_ids:
        return {}
    rows = db.session.execute(
        select(PointsEntry.customer_id, func.sum(PointsEntry.points))
        .where(PointsEntry.customer_id.in_(customer_ids))
        .group_by(PointsEntry.customer_id)
    ).all()
    return {cid: int(total or 0) for cid, total in rows}


def _floor(expr: Any) -> Any:
    """SQL floor of a non-negative number, as an integer (SQLite's CAST truncates; PostgreSQL's
    rounds, so it gets ``floor`` first)."""
    if db.session.get_bind().dialect.name == "sqlite":
        return cast(expr, Integer)
    return cast(func.floor(expr), Integer)


def award_points(day: date | None = None, at: datetime | None = None) -> int:
    """Members' orders earn their points (once per order). Returns how many orders earned."""
    from plugins.sales.models import Order

    company_id = require_company()
    day = day or today()
    rules = program()
    ext = side_table("marketing", "customer")
    orders, ledger, level = Order.__table__, PointsEntry.__table__, Level.__table__
    earned = exists().where(ledger.c.order_id == orders.c.id, ledger.c.kind == "earn")
    points = _floor(
        orders.c.amount
        * literal(rules.points_per_yuan)
        * func.coalesce(level.c.multiplier, literal(Decimal(1)))
    )
    rows = (
        select(
            literal(company_id),
            orders.c.customer_id,
            literal("earn"),
            points,
            orders.c.ordered_on,
            orders.c.id,
            literal(at or utcnow(), UTCDateTime()),
        )
        .select_from(
            orders.join(ext, ext.c.id == orders.c.customer_id).outerjoin(
                level, and_(level.c.company_id == company_id, level.c.key == ext.c.member_level)
            )
        )
        .where(
            orders.c.company_id == company_id,
            orders.c.state != "cancelled",
            ext.c.member_level.is_not(None),
            orders.c.ordered_on <= day,
            orders.c.ordered_on > day - timedelta(days=rules.expiry_days),
            points > 0,
            ~earned,
        )
    )
    written = db.session.execute(
        sql_insert(ledger)
        .from_select(
            ["company_id", "customer_id", "kind", "points", "booked_on", "order_id", "created_at"],
            rows,
        )
        .execution_options(preserve_rowcount=True)
    ).rowcount
    return int(written or 0)


def redeem(
    customer_id: int, reward: Reward, user: Any = None, day: date | None = None
) -> PointsEntry:
    """Redeem ``reward`` for the customer's points; refused when the balance is short or the
    reward is inactive. Points due to expire are expired first. The caller commits."""
    if not reward.active:
        raise PointsRefused(_("This reward is no longer offered."))
    if not level_of(customer_id):
        raise PointsRefused(_("Only members redeem points."))
    expire_points(day)
    have = balance(customer_id)
    if have < reward.points:
        raise PointsRefused(
            _(
                "Not enough points: %(have)s, the reward needs %(need)s.",
                have=have,
                need=reward.points,
            )
        )
    entry = PointsEntry(
        customer_id=customer_id,
        kind="redeem",
        points=-reward.points,
        booked_on=day or today(),
        reward_id=reward.id,
        note=reward.name[:200],
        user_id=getattr(user, "id", None),
    )
    db.session.add(entry)
    db.session.flush()
    audit.record(
        "redeem",
        "customer",
        customer_id,
        {"reward_id": reward.id, "points": reward.points},
        user_id=getattr(user, "id", None),
    )
    return entry


def adjust(
    customer_id: int, points: int, note: str, user: Any = None, day: date | None = None
) -> PointsEntry:
    """A manual correction (a positive or negative ledger row with its reason)."""
    note = (note or "").strip()[:200]
    if not note or not points or abs(points) > 10**7:
        raise PointsRefused(_("Give the points (not zero) and the reason."))
    if points < 0 and balance(customer_id) + points < 0:
        raise PointsRefused(_("The balance cannot go below zero."))
    entry = PointsEntry(
        customer_id=customer_id,
        kind="adjust",
        points=points,
        booked_on=day or today(),
        note=note,
        user_id=getattr(user, "id", None),
    )
    db.session.add(entry)
    db.session.flush()
    audit.record(
        "adjust",
        "customer",
        customer_id,
        {"points": points, "note": note},
        user_id=getattr(user, "id", None),
    )
    return entry


def expire_points(day: date | None = None, at: datetime | None = None) -> int:
    """Expire the points earned on or before ``day − expiry_days`` that were not used
    (first-in, first-out). Returns how many customers lost points."""
    company_id = require_company()
    day = day or today()
    cutoff = day - timedelta(days=program().expiry_days)
    ledger = PointsEntry.__table__
    earned_due = func.sum(
        case(
            (and_(ledger.c.kind == "earn", ledger.c.booked_on <= cutoff), ledger.c.points), else_=0
        )
    )
    used = -func.sum(case((ledger.c.kind.in_(("redeem", "expire")), ledger.c.points), else_=0))
    due = earned_due - used
    rows = (
        select(
            literal(company_id),
            ledger.c.customer_id,
            literal("expire"),
            -due,
            literal(day),
            literal("points earned up to " + cutoff.isoformat()),
            literal(at or utcnow(), UTCDateTime()),
        )
        .where(ledger.c.company_id == company_id)
        .group_by(ledger.c.customer_id)
        .having(due > 0)
    )
    written = db.session.execute(
        sql_insert(ledger)
        .from_select(
            ["company_id", "customer_id", "kind", "points", "booked_on", "note", "created_at"],
            rows,
        )
        .execution_options(preserve_rowcount=True)
    ).rowcount
    return int(written or 0)


def move_levels(day: date | None = None) -> int:
    """Move every member to the level the points earned in the window reach (one INSERT of
    the moves, one UPDATE). Returns how many members moved."""
    company_id = require_company()
    day = day or today()
    rules = program()
    start = day - timedelta(days=rules.level_window_days)
    ext = side_table("marketing", "customer")
    ledger, level, moves = PointsEntry.__table__, Level.__table__, LevelMove.__table__
    cust = Customer.__table__
    qualifying = (
        select(func.coalesce(func.sum(ledger.c.points), 0))
        .where(
            ledger.c.company_id == company_id,
            ledger.c.customer_id == ext.c.id,
            ledger.c.kind == "earn",
            ledger.c.booked_on > start,
            ledger.c.booked_on <= day,
        )
        .correlate(ext)  # also inside ``target``, a subquery of a subquery
        .scalar_subquery()
    )
    target = (
        select(level.c.key)
        .where(level.c.company_id == company_id, level.c.threshold <= qualifying)
        .order_by(level.c.threshold.desc())
        .limit(1)
        .scalar_subquery()
    )
    members = select(cust.c.id).where(cust.c.company_id == company_id)
    changed = and_(
        ext.c.id.in_(members),
        ext.c.member_level.is_not(None),
        target.is_not(None),
        ext.c.member_level != target,
    )
    moved = db.session.execute(
        sql_insert(moves)
        .from_select(
            ["company_id", "customer_id", "from_level", "to_level", "points", "moved_on"],
            select(
                literal(company_id), ext.c.id, ext.c.member_level, target, qualifying, literal(day)
            ).where(changed),
        )
        .execution_options(preserve_rowcount=True)
    ).rowcount
    if moved:
        db.session.execute(
            update(ext).where(changed).values(member_level=target),
            execution_options={"synchronize_session": False},
        )
        audit.record(
            "levels", LevelMove.__tablename__, None, {"moved": moved, "on": day.isoformat()}
        )
    return int(moved or 0)


def run_daily(company: Any = None, day: date | None = None) -> dict[str, int]:
    """The job ``marketing.loyalty``: award, expire, move levels."""
    return {
        "awarded": award_points(day),
        "expired": expire_points(day),
        "moved": move_levels(day),
    }


@dataclass
class Statement:
    """A member's points statement: the ledger rows and the totals by kind."""

    rows: list[PointsEntry]
    totals: dict[str, int]
    balance: int


def statement(customer_id: int, limit: int = 100) -> Statement:
    """The customer's latest ledger rows and totals by kind (two queries)."""
    rows = list(
        db.session.scalars(
            select(PointsEntry)
            .where(PointsEntry.customer_id == customer_id)
            .order_by(PointsEntry.booked_on.desc(), PointsEntry.id.desc())
            .limit(limit)
        )
    )
    totals = dict(
        db.session.execute(
            select(PointsEntry.kind, func.sum(PointsEntry.points))
            .where(PointsEntry.customer_id == customer_id)
            .group_by(PointsEntry.kind)
        ).all()
    )
    totals = {k: int(v or 0) for k, v in totals.items()}
    return Statement(rows, totals, sum(totals.values()))
