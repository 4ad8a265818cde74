"""The marketing reports (each one GROUP BY, drawn by the core's report engine):

- ``marketing_campaigns`` -- per campaign: messages, delivered, opened and replied (where the
  channel tells us), and **conversion**: messages whose customer ordered (not cancelled) between
  the message's day and ``conversion_days`` after it;
- ``marketing_points`` -- per month: points issued (earned and positive adjustments), redeemed
  and expired, from the ledger;
- ``marketing_members`` -- members by level now;
- ``marketing_level_moves`` -- level moves in the period, from → to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String

from core.extend import Report, ReportColumn, date_range, db
from core.fields import side_table
from core.models import Customer
from plugins.marketing.models import Campaign, LevelMove, Message, PointsEntry

ROLES = ("admin", "manager")


class _DateMonth(FunctionElement):
    """``YYYY-MM`` of a DATE column."""

    type = String()
    inherit_cache = True
    name = "marketing_date_month"


@compiles(_DateMonth)
def _date_month_default(element: _DateMonth, compiler: Any, **kw: Any) -> str:
    return f"to_char({compiler.process(list(element.clauses)[0], **kw)}, 'YYYY-MM')"


@compiles(_DateMonth, "sqlite")
def _date_month_sqlite(element: _DateMonth, compiler: Any, **kw: Any) -> str:
    return f"strftime('%Y-%m', {compiler.process(list(element.clauses)[0], **kw)})"


def _dates(column: Any, p: Mapping[str, Any]) -> list[Any]:
    out = []
    if p.get("start"):
        out.append(column >= p["start"])
    if p.get("end"):
        out.append(column <= p["end"])
    return out


def _converted_clause() -> Any:
    from plugins.sales.models import Order

    return exists().where(
        Order.customer_id == Message.customer_id,
        Order.state != "cancelled",
        Order.ordered_on >= Message.sent_on,
        Order.ordered_on <= Message.convert_until,
    )


def converted(campaign_id: int) -> int:
    """Messages of the campaign followed by an order within its conversion window."""
    return int(
        db.session.scalar(
            select(func.count(Message.id)).where(
                Message.campaign_id == campaign_id, _converted_clause()
            )
        )
        or 0
    )


def campaigns_query(p: Mapping[str, Any]) -> Any:
    return (
        select(
            Campaign.name.label("label"),
            func.count(Message.id).label("messages"),
            func.count(Message.delivered_at).label("delivered"),
            func.count(Message.opened_at).label("opened"),
            func.count(Message.replied_at).label("replied"),
            func.sum(case((_converted_clause(), 1), else_=0)).label("converted"),
        )
        .join(Campaign, Campaign.id == Message.campaign_id)
        .where(*_dates(Message.sent_on, p))
        .group_by(Campaign.id, Campaign.name)
        .order_by(func.count(Message.id).desc())
    )


def _campaigns_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    out = []
    for r in rows:
        row = dict(r)
        row["converted"] = int(row["converted"] or 0)
        row["rate"] = row["converted"] / row["messages"] if row["messages"] else None
        out.append(row)
    return out


def points_query(p: Mapping[str, Any]) -> Any:
    month = _DateMonth(PointsEntry.booked_on)
    issued = case(
        (
            and_(PointsEntry.kind.in_(("earn", "adjust")), PointsEntry.points > 0),
            PointsEntry.points,
        ),
        else_=0,
    )
    return (
        select(
            month.label("label"),
            func.sum(issued).label("issued"),
            (-func.sum(case((PointsEntry.kind == "redeem", PointsEntry.points), else_=0))).label(
                "redeemed"
            ),
            (-func.sum(case((PointsEntry.kind == "expire", PointsEntry.points), else_=0))).label(
                "expired"
            ),
        )
        .where(*_dates(PointsEntry.booked_on, p))
        .group_by(month)
        .order_by(month)
    )


def _level_label(key: str | None) -> str:
    from core.i18n import pick
    from plugins.marketing import LEVELS

    for value, text, zh in LEVELS:
        if value == key:
            return pick(text, zh)
    return key or "–"


def members_query(p: Mapping[str, Any]) -> Any:
    ext = side_table("marketing", "customer")
    return (
        select(ext.c.member_level.label("level"), func.count(Customer.id).label("members"))
        .join(ext, ext.c.id == Customer.id)
        .where(ext.c.member_level.is_not(None))
        .group_by(ext.c.member_level)
    )


def _members_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    from plugins.marketing import LEVELS

    found = {r["level"]: int(r["members"]) for r in rows}
    return [{"label": _level_label(k), "members": found.get(k, 0)} for k, _t, _z in LEVELS]


def moves_query(p: Mapping[str, Any]) -> Any:
    return (
        select(
            LevelMove.from_level.label("from_level"),
            LevelMove.to_level.label("to_level"),
            func.count(LevelMove.id).label("moves"),
        )
        .where(LevelMove.from_level.is_not(None), *_dates(LevelMove.moved_on, p))
        .group_by(LevelMove.from_level, LevelMove.to_level)
    )


def _moves_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    from plugins.marketing import LEVELS

    rank = {k: i for i, (k, _t, _z) in enumerate(LEVELS)}
    out = []
    for r in rows:
        up = rank.get(r["to_level"], 0) > rank.get(r["from_level"], 0)
        out.append(
            {
                "label": f"{_level_label(r['from_level'])} → {_level_label(r['to_level'])}",
                "up": int(r["moves"]) if up else 0,
                "down": 0 if up else int(r["moves"]),
            }
        )
    return sorted(out, key=lambda row: -(row["up"] + row["down"]))


def reports() -> list[Report]:
    return [
        Report(
            name="marketing_campaigns",
            label="Campaign reach and conversion",
            label_zh="营销活动触达与转化",
            description="Messages per campaign, opens and replies where the channel reports "
            "them, and messages followed by an order within the campaign's conversion window.",
            description_zh="各营销活动的消息数、打开与回复（渠道可回传时）及转化窗口内下单的消息数。",
            params=date_range(180, "Message date", "消息日期"),
            query=campaigns_query,
            shape=_campaigns_shape,
            columns=(
                ReportColumn("label", "Campaign", "营销活动", "text"),
                ReportColumn("messages", "Messages", "消息数"),
                ReportColumn("delivered", "Delivered", "已送达"),
                ReportColumn("opened", "Opened", "已打开"),
                ReportColumn("replied", "Replied", "已回复"),
                ReportColumn("converted", "Converted", "已转化"),
                ReportColumn("rate", "Conversion rate", "转化率", "percent"),
            ),
            series=("messages", "converted"),
            chart="hbar",
            roles=ROLES,
            group="marketing",
            order=10,
        ),
        Report(
            name="marketing_points",
            label="Points issued vs redeemed",
            label_zh="积分发放与兑换",
            description="Per month, from the points ledger.",
            description_zh="按月统计，来自积分流水。",
            params=date_range(365, "Booked", "记账日期"),
            query=points_query,
            columns=(
                ReportColumn("label", "Month", "月份", "text"),
                ReportColumn("issued", "Issued", "发放"),
                ReportColumn("redeemed", "Redeemed", "兑换"),
                ReportColumn("expired", "Expired", "过期"),
            ),
            series=("issued", "redeemed", "expired"),
            chart="bar",
            roles=ROLES,
            group="marketing",
            order=20,
        ),
        Report(
            name="marketing_members",
            label="Members by level",
            label_zh="各等级会员数",
            query=members_query,
            shape=_members_shape,
            columns=(
                ReportColumn("label", "Level", "会员等级", "text"),
                ReportColumn("members", "Members", "会员数"),
            ),
            series=("members",),
            chart="bar",
            roles=ROLES,
            group="marketing",
            order=30,
        ),
        Report(
            name="marketing_level_moves",
            label="Member level movement",
            label_zh="会员等级变动",
            params=date_range(365, "Moved", "变动日期"),
            query=moves_query,
            shape=_moves_shape,
            columns=(
                ReportColumn("label", "Move", "变动", "text"),
                ReportColumn("up", "Up", "升级"),
                ReportColumn("down", "Down", "降级"),
            ),
            series=("up", "down"),
            chart="hstacked",
            roles=ROLES,
            group="marketing",
            order=40,
        ),
    ]
