"""Sales part: targets, attainment and the attack/defend scorecard (DOMAIN §4).

A :class:`~plugins.sales.models.Target` gives one rep or one team an amount and a number of new
customers for a month (``2026-11``) or a quarter (``2026-Q4``). What was achieved comes from the
orders (``sales_order``, cancelled ones excluded), credited to the order's owner and, for a team,
to the team of that owner's membership:

- revenue: the amount of orders dated in the period;
- new customers: customers whose first order falls in the period, credited to the owner of that
  first order.

The scorecard splits the company's KPIs the way the attack/defend model does: **attack** is sales
growth (revenue against the same period a year before) and new customers; **defend** is
retention (of the customers who bought in the previous period of equal length, the share who
bought again in this one), satisfaction (average follow-up score, 1–5), share of wallet (average
``sales__share_of_wallet`` of the customers who bought) and cost control (margin rate). Every
figure is one aggregate query whatever the number of reps or customers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from core.extend import MenuItem, Panel, db
from core.models import Interaction, Membership, Team, User
from core.tenancy import company_zone
from plugins.sales.models import Order, Target

PERIOD = re.compile(r"^(\d{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


@dataclass(frozen=True)
class Period:
    """A month or a quarter: ``key`` like ``2026-11`` or ``2026-Q4``, dates ``[start, end)``."""

    key: str
    start: date
    end: date

    @classmethod
    def parse(cls, key: str) -> Period:
        """The period named ``key``; ``ValueError`` (with a message for the user) otherwise."""
        match = PERIOD.match(key or "")
        if not match:
            raise ValueError(f"{key!r} is not a month (2026-11) or a quarter (2026-Q4)")
        year = int(match.group(1))
        if match.group(2):
            first = int(match.group(2))
            months = 1
        else:
            first = (int(match.group(3)) - 1) * 3 + 1
            months = 3
        start = date(year, first, 1)
        end_month = first + months
        end = date(year + (end_month - 1) // 12, (end_month - 1) % 12 + 1, 1)
        return cls(key, start, end)

    @classmethod
    def month_of(cls, day: date) -> Period:
        return cls.parse(f"{day.year:04d}-{day.month:02d}")

    @classmethod
    def quarter_of(cls, day: date) -> Period:
        return cls.parse(f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}")

    @property
    def is_quarter(self) -> bool:
        return "Q" in self.key

    def shifted(self, periods: int) -> Period:
        """The period ``periods`` months or quarters later (earlier when negative)."""
        step = 3 if self.is_quarter else 1
        index = self.start.year * 12 + self.start.month - 1 + periods * step
        day = date(index // 12, index % 12 + 1, 1)
        return Period.quarter_of(day) if self.is_quarter else Period.month_of(day)

    def year_before(self) -> Period:
        return self.shifted(-4 if self.is_quarter else -12)


def _zone() -> ZoneInfo:
    return company_zone()


def today() -> date:
    """Today in the current company's time zone."""
    return datetime.now(_zone()).date()


def _counted(period: Period) -> list[Any]:
    return [
        Order.state != "cancelled",
        Order.ordered_on >= period.start,
        Order.ordered_on < period.end,
    ]


def revenue_by_owner(period: Period) -> dict[int, Decimal]:
    """Order amount per owner in ``period`` (one GROUP BY)."""
    rows = db.session.execute(
        select(Order.owner_id, func.sum(Order.amount))
        .where(*_counted(period), Order.owner_id.is_not(None))
        .group_by(Order.owner_id)
    )
    return {owner: Decimal(total or 0) for owner, total in rows}


def _first_orders() -> Any:
    """Each customer's first counted order date, as a subquery."""
    return (
        select(Order.customer_id, func.min(Order.ordered_on).label("first_on"))
        .where(Order.state != "cancelled")
        .group_by(Order.customer_id)
        .subquery("first_orders")
    )


def new_customers_by_owner(period: Period) -> dict[int, int]:
    """Customers whose first order falls in ``period``, per owner of that first order."""
    first = _first_orders()
    rows = db.session.execute(
        select(Order.owner_id, func.count(func.distinct(Order.customer_id)))
        .join(
            first,
            and_(first.c.customer_id == Order.customer_id, first.c.first_on == Order.ordered_on),
        )
        .where(*_counted(period), Order.owner_id.is_not(None))
        .group_by(Order.owner_id)
    )
    return {owner: int(n) for owner, n in rows}


@dataclass
class Line:
    """One row of the attainment table: a rep or a team, its target and what it achieved."""

    kind: str  # "user" or "team"
    id: int
    name: str
    target_amount: Decimal | None
    target_new: int | None
    revenue: Decimal
    new_customers: int

    @property
    def attainment(self) -> float | None:
        """Revenue as a share of the target amount (``None`` when there is no target)."""
        if not self.target_amount:
            return None
        return float(self.revenue / self.target_amount)

    @property
    def new_attainment(self) -> float | None:
        if not self.target_new:
            return None
        return self.new_customers / self.target_new


def attainment(period: Period) -> tuple[list[Line], list[Line]]:
    """Reps and teams of the current company with targets and results for ``period``.

    Reps are the members with role ``sales_rep``, ``manager`` or ``admin`` who have a target or
    sold something; a team adds up its members. A constant number of queries.
    """
    targets = db.session.scalars(select(Target).where(Target.period == period.key)).all()
    by_user = {t.user_id: t for t in targets if t.user_id}
    by_team = {t.team_id: t for t in targets if t.team_id}
    revenue = revenue_by_owner(period)
    new = new_customers_by_owner(period)
    members = db.session.execute(
        select(Membership.user_id, Membership.role, Membership.team_id, User.name)
        .join(User, User.id == Membership.user_id)
        .order_by(User.name)
    ).all()
    reps: list[Line] = []
    team_revenue: dict[int, Decimal] = {}
    team_new: dict[int, int] = {}
    for user_id, role, team_id, name in members:
        if team_id is not None:
            team_revenue[team_id] = team_revenue.get(team_id, Decimal(0)) + revenue.get(
                user_id, Decimal(0)
            )
            team_new[team_id] = team_new.get(team_id, 0) + new.get(user_id, 0)
        if role not in ("sales_rep", "manager", "admin"):
            continue
        if role != "sales_rep" and user_id not in by_user and user_id not in revenue:
            continue
        target = by_user.get(user_id)
        reps.append(
            Line(
                "user",
                user_id,
                name,
                target.amount if target else None,
                target.new_customers if target else None,
                revenue.get(user_id, Decimal(0)),
                new.get(user_id, 0),
            )
        )
    teams = []
    for team in db.session.scalars(select(Team).order_by(Team.name)):
        target = by_team.get(team.id)
        if target is None and team.id not in team_revenue:
            continue
        teams.append(
            Line(
                "team",
                team.id,
                team.name,
                target.amount if target else None,
                target.new_customers if target else None,
                team_revenue.get(team.id, Decimal(0)),
                team_new.get(team.id, 0),
            )
        )
    return reps, teams


def save_targets(period: Period, values: dict[tuple[str, int], tuple[Decimal, int]]) -> int:
    """Set targets of ``period``: ``{("user"|"team", id): (amount, new_customers)}``.

    A pair of zeros removes the target. Returns the number of targets written or removed.
    """
    existing = {
        ("user", t.user_id) if t.user_id else ("team", t.team_id): t
        for t in db.session.scalars(select(Target).where(Target.period == period.key))
    }
    changed = 0
    for (kind, owner), (amount, new) in values.items():
        row = existing.get((kind, owner))
        if not amount and not new:
            if row is not None:
                db.session.delete(row)
                changed += 1
            continue
        if row is None:
            row = Target(period=period.key, **{f"{kind}_id": owner})
            db.session.add(row)
        if row.amount != amount or row.new_customers != new:
            row.amount, row.new_customers = amount, new
            changed += 1
    db.session.flush()
    return changed


# -- the scorecard --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    """One figure of the scorecard; ``value`` is ``None`` when there is nothing to measure."""

    side: str  # "attack" or "defend"
    name: str
    label: str
    label_zh: str
    value: float | None
    unit: str  # "%", "count", "score", "money"
    detail: str = ""


def _revenue_and_cost(period: Period) -> tuple[Decimal, Decimal]:
    total, cost = db.session.execute(
        select(
            func.coalesce(func.sum(Order.amount), 0), func.coalesce(func.sum(Order.cost), 0)
        ).where(*_counted(period))
    ).one()
    return Decimal(total), Decimal(cost)


def _buyers(period: Period) -> Any:
    return select(Order.customer_id).where(*_counted(period)).distinct()


def scorecard(period: Period) -> list[Kpi]:
    """Attack and defend KPIs of the current company for ``period`` (see the module docstring)."""
    from core import fields as ext

    revenue, cost = _revenue_and_cost(period)
    before, _ = _revenue_and_cost(period.year_before())
    growth = float((revenue - before) / before) if before else None
    first = _first_orders()
    new = db.session.scalar(
        select(func.count()).where(first.c.first_on >= period.start, first.c.first_on < period.end)
    )
    previous = period.shifted(-1)
    prev_buyers = _buyers(previous).subquery()
    this_buyers = _buyers(period).subquery()
    kept, had = db.session.execute(
        select(
            func.count(this_buyers.c.customer_id),
            func.count(prev_buyers.c.customer_id),
        ).select_from(
            prev_buyers.outerjoin(
                this_buyers, this_buyers.c.customer_id == prev_buyers.c.customer_id
            )
        )
    ).one()
    zone = _zone()
    start = datetime.combine(period.start, time(), tzinfo=zone)
    end = datetime.combine(period.end, time(), tzinfo=zone)
    satisfaction = db.session.scalar(
        select(func.avg(Interaction.customer_score)).where(
            Interaction.kind == "follow_up",
            Interaction.customer_score.is_not(None),
            Interaction.occurred_at >= start,
            Interaction.occurred_at < end,
        )
    )
    wallet = ext.side_table("sales", "customer").c
    share = db.session.scalar(
        select(func.avg(wallet.share_of_wallet)).where(wallet.id.in_(_buyers(period)))
    )
    margin_rate = float((revenue - cost) / revenue) if revenue else None
    return [
        Kpi(
            "attack",
            "growth",
            "Sales growth (vs a year before)",
            "销售增长（同比）",
            growth,
            "%",
            f"{revenue:,.0f} / {before:,.0f}",
        ),
        Kpi("attack", "new_customers", "New customers", "新客户数", float(new or 0), "count"),
        Kpi(
            "defend",
            "retention",
            "Retention (bought again)",
            "客户保留率",
            kept / had if had else None,
            "%",
            f"{kept} / {had}",
        ),
        Kpi(
            "defend",
            "satisfaction",
            "Satisfaction (follow-ups, 1–5)",
            "客户满意度（回访，1–5）",
            float(satisfaction) if satisfaction is not None else None,
            "score",
        ),
        Kpi(
            "defend",
            "share",
            "Share of wallet (buyers' average)",
            "客户份额（平均）",
            float(share) / 100 if share is not None else None,
            "%",
        ),
        Kpi(
            "defend", "margin", "Margin rate (cost control)", "毛利率（成本控制）", margin_rate, "%"
        ),
    ]


# -- what the plugin shows ------------------------------------------------------------------------


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem("sales.targets", "Targets", "销售目标", order=64, group="Sales", group_zh="销售")
    ]


def widgets(company: Any, user: Any) -> list[Panel]:
    """The dashboard box: this month's attainment (a rep sees their own line, others all)."""
    return [Panel("Sales targets this month", web_targets.widget, "本月销售目标", order=15)]


def demo(company: Any, fake: Any) -> None:
    """Targets for this month and quarter for every rep and team, near what they sell."""
    now = today()
    for period in (Period.month_of(now), Period.quarter_of(now), Period.month_of(now).shifted(-1)):
        months = 3 if period.is_quarter else 1
        last_year = period.year_before()
        reps, teams = attainment(last_year)
        values: dict[tuple[str, int], tuple[Decimal, int]] = {}
        for line in reps + teams:
            base = line.revenue or Decimal(200000 * months)
            amount = (base * Decimal("1.15")).quantize(Decimal("1000"))
            values[(line.kind, line.id)] = (max(amount, Decimal(50000)), 2 * months)
        save_targets(period, values)


from plugins.sales import web_targets  # noqa: E402,F401  (registers the routes)
