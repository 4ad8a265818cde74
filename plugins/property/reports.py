"""Property reports (group ``property``) and dashboard widgets.

Every report is one GROUP BY over the complaints (core tickets joined to their property half,
:class:`~plugins.property.models.Complaint`) or over their clocks (core ``Obligation`` rows of
``property.response`` / ``property.resolution`` / ``property.followup``), the same SQL on SQLite
and PostgreSQL. Each joins :class:`~core.models.Customer` so the member's record rule applies.

* ``property_complaints`` -- complaints by category, estate, building or month, split open,
  resolved or closed, cancelled (drill: the complaints behind a bar);
* ``property_sla`` -- on-site/first-response and resolution clocks met on time, late, breached,
  by category or month; compliance = met on time ÷ decided;
* ``property_times`` -- response and resolution time buckets;
* ``property_reopen`` -- reopen rate (``reopen_count > 0`` among the complaints resolved at
  least once) by category;
* ``property_repeats`` -- repeat complaints (``repeat_of_id`` set) by estate or category, and the
  units with the most repeats;
* ``property_root_causes`` -- root-cause Pareto: count per cause, descending, cumulative share;
* ``property_satisfaction`` -- the residents' satisfaction questionnaire by dimension, or its
  trend by month or quarter (read through the surveys plugin's
  :func:`plugins.surveys.results.dimension_statement`).

Widgets (admins, managers, service agents): open complaints by state, SLA breaches today,
follow-ups (回访) due. See docs/property.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from flask import g, render_template
from flask_babel import gettext as _
from sqlalchemy import and_, case, func, literal, select, union_all

from core import choices
from core.extend import Panel, Report, ReportColumn, ReportParam, date_range, db, utcnow
from core.i18n import pick
from core.models import Customer, Obligation, ServiceTicket
from core.reports import minutes_between, month, months, today, within, zone
from plugins.property.complaints import WORKFLOW
from plugins.property.models import Building, Complaint, ComplaintClass, Estate, Unit

GREEN, ORANGE, RED, GREY, BLUE, PURPLE = (
    "#2f855a",
    "#dd6b20",
    "#c53030",
    "#a0aec0",
    "#2b6cb0",
    "#6b46c1",
)
TICKET = "service_ticket"
RESPONSE, RESOLUTION, FOLLOWUP = "property.response", "property.resolution", "property.followup"
SLA_KINDS = (RESPONSE, RESOLUTION)
#: Where a drill-down goes: the property complaints list (plugins.property.web_complaints).
LIST_URL = "/property/complaints"
#: Workflow state categories of the complaint workflow (see complaints.workflows()).
OPEN_STATES = ("new", "assigned", "in_progress")
DONE_STATES = ("resolved", "closed")
CANCELLED_STATES = ("cancelled",)
#: Dimensions of the residents' satisfaction questionnaire (the demo's, and the default the
#: report looks for): ``(code, label, label_zh)``.
SATISFACTION_DIMENSIONS = (
    ("front_desk", "Front desk", "前台服务"),
    ("cleaning", "Cleaning", "保洁"),
    ("greening", "Greening", "绿化"),
    ("safety", "Safety", "安全"),
    ("facilities", "Facilities", "设施"),
    ("repairs", "Repairs", "维修"),
    ("overall", "Overall", "总体"),
)


# -- helpers --------------------------------------------------------------------------------------


def _url(path: str, **query: Any) -> str:
    """``path`` with the non-empty ``query`` values (lists: repeated keys, dates ISO)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in query.items():
        if value is None or value == "":
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, item.isoformat() if hasattr(item, "isoformat") else item))
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _list_url(p: Mapping[str, Any], **query: Any) -> str:
    """The complaints list (it has no date filter) with the report's estate, plus ``query``."""
    return _url(
        LIST_URL,
        estate=p.get("estate"),
        **query,
    )


def _int(raw: Any) -> int | None:
    text = str(raw or "")
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 2**31 else None


def estate_choices() -> list[tuple[str, str]]:
    """The company's estates as ``(id, name)`` for a report parameter."""
    rows = db.session.execute(select(Estate.id, Estate.name).order_by(Estate.name, Estate.id))
    return [(str(i), name) for i, name in rows]


def category_choices() -> list[tuple[str, str]]:
    """The company's complaint categories as ``(id, name)``."""
    rows = db.session.execute(
        select(ComplaintClass.id, ComplaintClass.name, ComplaintClass.name_en)
        .where(ComplaintClass.level == "category")
        .order_by(ComplaintClass.position, ComplaintClass.id)
    )
    return [(str(i), pick(en or name, name)) for i, name, en in rows]


def _class_label(name: str | None, name_en: str | None) -> str:
    if name is None:
        return _("Not classified")
    return pick(name_en or name, name)


def _complaints() -> Any:
    """``select`` base: complaint tickets with their property half and customer."""
    return (
        select()
        .select_from(ServiceTicket)
        .join(Complaint, Complaint.ticket_id == ServiceTicket.id)
        .join(Customer, Customer.id == ServiceTicket.customer_id)
    )


def _filters(p: Mapping[str, Any], created: Any = ServiceTicket.created_at) -> list[Any]:
    """Conditions of the common parameters: dates (on ``created``), estate, category."""
    out = list(within(created, p))
    estate = _int(p.get("estate"))
    if p.get("estate"):
        out.append(
            Complaint.building_id.in_(
                select(Building.id).where(Building.estate_id == (estate or 0))
            )
        )
    if p.get("category"):
        out.append(Complaint.category_id == (_int(p.get("category")) or 0))
    return out


def _state_bucket() -> Any:
    return case(
        (ServiceTicket.state.in_(DONE_STATES), literal("done")),
        (ServiceTicket.state.in_(CANCELLED_STATES), literal("cancelled")),
        else_=literal("open"),
    )


def _share(rows: list[dict[str, Any]], key: str, into: str) -> None:
    total = sum(r.get(key) or 0 for r in rows)
    for r in rows:
        r[into] = (r.get(key) or 0) / total if total else None


ESTATE = ReportParam("estate", "Estate", "小区", choices=estate_choices)
CATEGORY = ReportParam("category", "Category", "类别", choices=category_choices)


def _created(days: int = 90) -> tuple[ReportParam, ReportParam]:
    return date_range(days, "Received", "受理日期")


# -- complaints by category, estate, building, month -----------------------------------------------

COMPLAINT_DIMENSIONS = (
    ("category", "Category", "类别"),
    ("estate", "Estate", "小区"),
    ("building", "Building", "楼栋"),
    ("month", "Month", "月份"),
)


def _dimension(p: Mapping[str, Any]) -> str:
    return p.get("by") or "category"


def _grouping(dim: str) -> tuple[list[Any], list[Any], list[tuple[Any, Any]]]:
    """Columns, GROUP BY terms and outer joins for one complaint dimension."""
    if dim == "month":
        value = month(ServiceTicket.created_at)
        return [value.label("value")], [value], []
    if dim == "category":
        return (
            [
                Complaint.category_id.label("value"),
                ComplaintClass.name.label("name"),
                ComplaintClass.name_en.label("name_en"),
                ComplaintClass.position.label("position"),
            ],
            [
                Complaint.category_id,
                ComplaintClass.name,
                ComplaintClass.name_en,
                ComplaintClass.position,
            ],
            [(ComplaintClass, ComplaintClass.id == Complaint.category_id)],
        )
    if dim == "building":
        return (
            [
                Complaint.building_id.label("value"),
                Building.name.label("name"),
                Estate.name.label("estate_name"),
            ],
            [Complaint.building_id, Building.name, Estate.name],
            [
                (Building, Building.id == Complaint.building_id),
                (Estate, Estate.id == Building.estate_id),
            ],
        )
    return (
        [Estate.id.label("value"), Estate.name.label("name")],
        [Estate.id, Estate.name],
        [
            (Building, Building.id == Complaint.building_id),
            (Estate, Estate.id == Building.estate_id),
        ],
    )


def _complaints_query(p: Mapping[str, Any]) -> Any:
    columns, group, joins = _grouping(_dimension(p))
    bucket = _state_bucket()
    stmt = _complaints().add_columns(
        *columns, bucket.label("bucket"), func.count(ServiceTicket.id).label("n")
    )
    for target, on in joins:
        stmt = stmt.outerjoin(target, on)
    return stmt.where(*_filters(p)).group_by(*group, bucket)


def _labelled(rows: list[Mapping[str, Any]], dim: str) -> dict[Any, dict[str, Any]]:
    """Rows pivoted by value with their label (one row per category, estate, building, month)."""
    pivot: dict[Any, dict[str, Any]] = {}
    for r in rows:
        if r["value"] not in pivot:
            if dim == "month":
                label = r["value"]
            elif dim == "building":
                label = f"{r['estate_name']} {r['name']}" if r.get("name") else _("No building")
            elif dim == "estate":
                label = r.get("name") or _("No estate")
            else:
                label = _class_label(r.get("name"), r.get("name_en"))
            pivot[r["value"]] = {
                "value": r["value"],
                "label": label,
                "position": r.get("position"),
            }
    return pivot


def _order(rows: list[dict[str, Any]], dim: str) -> list[dict[str, Any]]:
    if dim == "category":
        return sorted(rows, key=lambda r: (r["value"] is None, r.get("position") or 0, r["label"]))
    return sorted(rows, key=lambda r: (r["value"] is None, str(r["label"])))


def _complaints_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = _dimension(p)
    pivot = _labelled(rows, dim)
    for r in rows:
        row = pivot[r["value"]]
        row[r["bucket"]] = row.get(r["bucket"], 0) + int(r["n"])
    if dim == "month":
        for key in months(p):
            pivot.setdefault(key, {"value": key, "label": key})
    out = _order(list(pivot.values()), dim)
    for r in out:
        for key in ("open", "done", "cancelled"):
            r.setdefault(key, 0)
        r["total"] = r["open"] + r["done"] + r["cancelled"]
    _share(out, "total", "share")
    return out


def _complaints_columns(p: Mapping[str, Any]) -> tuple[ReportColumn, ...]:
    label = next(d for d in COMPLAINT_DIMENSIONS if d[0] == _dimension(p))
    return (
        ReportColumn("label", label[1], label[2], "text"),
        ReportColumn("open", "Open", "处理中", color=ORANGE),
        ReportColumn("done", "Resolved or closed", "已解决/关闭", color=GREEN),
        ReportColumn("cancelled", "Cancelled", "已取消", color=GREY),
        ReportColumn("total", "Total", "合计"),
        ReportColumn("share", "Share", "占比", "percent"),
    )


def _month_days(key: str, p: Mapping[str, Any]) -> tuple[Any, Any]:
    from datetime import date

    first = date(int(key[:4]), int(key[5:7]), 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if p.get("start") and p["start"] > first:
        first = p["start"]
    if p.get("end") and p["end"] < last:
        last = p["end"]
    return first, last


def _states_of(series: str | None) -> str | None:
    return {
        "open": "open",
        "cancelled": "cancelled",
    }.get(series or "")


def _complaints_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    dim, value = _dimension(p), row.get("value")
    query: dict[str, Any] = {"state": _states_of(series), "category": p.get("category")}
    if dim == "month":
        first, last = _month_days(str(value), p)
        return _url(
            LIST_URL,
            estate=p.get("estate"),
            **query,
        )
    if value is None:
        return None
    if dim == "category":
        query["category"] = value
    elif dim == "building":
        query["building"] = value
    else:
        return _url(LIST_URL, estate=value, **query)
    return _list_url(p, **query)


COMPLAINTS = Report(
    name="property_complaints",
    label="Complaints by category, estate, month",
    label_zh="投诉报修统计（类别、小区、楼栋、月份）",
    description="Complaints and repair requests received in the period by category, estate, "
    "building or month, split into open, resolved or closed, and cancelled. Click a bar for "
    "the complaints behind it.",
    description_zh="按类别、小区、楼栋或月份统计期间受理的投诉与报修，分为处理中、已解决/关闭与"
    "已取消；点击柱形查看对应投诉。",
    params=(
        ReportParam("by", "By", "维度", choices=COMPLAINT_DIMENSIONS, default="category"),
        *_created(90),
        ESTATE,
        CATEGORY,
    ),
    query=_complaints_query,
    shape=_complaints_shape,
    columns=_complaints_columns,
    series=("open", "done", "cancelled"),
    chart=lambda p: "stacked" if _dimension(p) == "month" else "hstacked",
    drill=_complaints_drill,
    group="property",
    order=300,
)


# -- SLA compliance --------------------------------------------------------------------------------

SLA_DIMENSIONS = (("category", "Category", "类别"), ("month", "Month", "月份"))


def _sla_query(p: Mapping[str, Any]) -> Any:
    dim = p.get("by") or "category"
    status = Obligation.status_expr(utcnow())
    if dim == "month":
        value = month(Obligation.started_at)
        columns: list[Any] = [value.label("value")]
        group: list[Any] = [value]
    else:
        columns = [
            Complaint.category_id.label("value"),
            ComplaintClass.name.label("name"),
            ComplaintClass.name_en.label("name_en"),
            ComplaintClass.position.label("position"),
        ]
        group = [
            Complaint.category_id,
            ComplaintClass.name,
            ComplaintClass.name_en,
            ComplaintClass.position,
        ]
    stmt = (
        select(*columns, Obligation.kind.label("kind"), status.label("status"))
        .add_columns(func.count(Obligation.id).label("n"))
        .select_from(Obligation)
        .join(
            ServiceTicket,
            and_(Obligation.subject_type == TICKET, Obligation.subject_id == ServiceTicket.id),
        )
        .join(Complaint, Complaint.ticket_id == ServiceTicket.id)
        .join(Customer, Customer.id == ServiceTicket.customer_id)
    )
    if dim != "month":
        stmt = stmt.outerjoin(ComplaintClass, ComplaintClass.id == Complaint.category_id)
    kinds = [RESPONSE] if p.get("kind") == "response" else list(SLA_KINDS)
    if p.get("kind") == "resolution":
        kinds = [RESOLUTION]
    return stmt.where(Obligation.kind.in_(kinds), *_filters(p, Obligation.started_at)).group_by(
        *group, Obligation.kind, status
    )


def _rate(met: int, decided: int) -> float | None:
    return met / decided if decided else None


def _sla_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = p.get("by") or "category"
    pivot = _labelled(rows, dim)
    for r in rows:
        row = pivot[r["value"]]
        status = r["status"] if r["status"] in ("met", "met_late", "breached") else "open"
        row[status] = row.get(status, 0) + int(r["n"])
        kind = "response" if r["kind"] == RESPONSE else "resolution"
        row[f"{kind}_{status}"] = row.get(f"{kind}_{status}", 0) + int(r["n"])
    if dim == "month":
        for key in months(p):
            pivot.setdefault(key, {"value": key, "label": key})
    out = _order(list(pivot.values()), dim)
    for r in out:
        for key in ("met", "met_late", "breached", "open"):
            r.setdefault(key, 0)
        r["compliance"] = _rate(r["met"], r["met"] + r["met_late"] + r["breached"])
        for kind in ("response", "resolution"):
            met = r.get(f"{kind}_met", 0)
            decided = met + r.get(f"{kind}_met_late", 0) + r.get(f"{kind}_breached", 0)
            r[f"{kind}_compliance"] = _rate(met, decided)
    return out


def _sla_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    if series != "breached":
        return None
    if (p.get("by") or "category") == "month":
        first, last = _month_days(str(row.get("value")), p)
        return _url(
            LIST_URL,
            estate=p.get("estate"),
            category=p.get("category"),
            overdue=1,
        )
    if row.get("value") is None:
        return None
    return _list_url(p, category=row["value"], overdue=1)


SLA = Report(
    name="property_sla",
    label="Complaint SLA compliance",
    label_zh="投诉时限达标率",
    description="The on-site / first-response and resolution clocks of complaints started in "
    "the period, by category or month: met on time, met late, breached and still open, "
    "running. Compliance is the share met on time of those decided.",
    description_zh="期间开始计时的投诉到场响应与办结时限，按类别或月份统计：按时完成、超时完成、"
    "已超时未完成与进行中；达标率为已有结果者中按时完成的比例。",
    params=(
        ReportParam("by", "By", "维度", choices=SLA_DIMENSIONS, default="category"),
        ReportParam(
            "kind",
            "Promise",
            "时限类型",
            choices=(
                ("response", "On site / first response", "到场响应"),
                ("resolution", "Resolution", "办结时限"),
            ),
        ),
        *_created(90),
        ESTATE,
        CATEGORY,
    ),
    query=_sla_query,
    shape=_sla_shape,
    columns=lambda p: (
        ReportColumn(
            "label",
            *next(d[1:] for d in SLA_DIMENSIONS if d[0] == (p.get("by") or "category")),
            "text",
        ),
        ReportColumn("met", "Met on time", "按时完成", color=GREEN),
        ReportColumn("met_late", "Met late", "超时完成", color=ORANGE),
        ReportColumn("breached", "Breached, still open", "已超时未完成", color=RED),
        ReportColumn("open", "Running", "进行中未到期", color=GREY),
        ReportColumn("response_compliance", "Response compliance", "响应达标率", "percent"),
        ReportColumn("resolution_compliance", "Resolution compliance", "办结达标率", "percent"),
        ReportColumn("compliance", "Compliance", "综合达标率", "percent"),
    ),
    series=("met", "met_late", "breached", "open"),
    chart=lambda p: "stacked" if p.get("by") == "month" else "hstacked",
    drill=_sla_drill,
    group="property",
    order=310,
)


# -- response and resolution times -----------------------------------------------------------------

BUCKETS = (
    (30, "≤ 30 min", "30分钟内"),
    (120, "30 min – 2 h", "30分钟-2小时"),
    (240, "2 – 4 h", "2-4小时"),
    (1440, "4 – 24 h", "4-24小时"),
    (4320, "1 – 3 days", "1-3天"),
    (10080, "3 – 7 days", "3-7天"),
    (None, "> 7 days", "7天以上"),
)


def _bucket(minutes: Any) -> Any:
    whens = [(minutes <= limit, literal(i)) for i, (limit, *_rest) in enumerate(BUCKETS) if limit]
    return case(*whens, else_=literal(len(BUCKETS) - 1))


def _times_query(p: Mapping[str, Any]) -> Any:
    parts = []
    for kind, measure in ((RESPONSE, "response"), (RESOLUTION, "resolution")):
        parts.append(
            select(
                _bucket(minutes_between(Obligation.met_at, Obligation.started_at)).label("bucket"),
                literal(measure).label("measure"),
            )
            .select_from(Obligation)
            .join(
                ServiceTicket,
                and_(Obligation.subject_type == TICKET, Obligation.subject_id == ServiceTicket.id),
            )
            .join(Complaint, Complaint.ticket_id == ServiceTicket.id)
            .join(Customer, Customer.id == ServiceTicket.customer_id)
            .where(
                Obligation.kind == kind,
                Obligation.met_at.is_not(None),
                ServiceTicket.state != "cancelled",
                *_filters(p),
            )
        )
    both = union_all(*parts).subquery("times")
    return select(both.c.bucket, both.c.measure, func.count().label("n")).group_by(
        both.c.bucket, both.c.measure
    )


def _times_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = [
        {"value": i, "label": pick(label, label_zh), "response": 0, "resolution": 0}
        for i, (_limit, label, label_zh) in enumerate(BUCKETS)
    ]
    for r in rows:
        out[int(r["bucket"])][r["measure"]] += int(r["n"])
    _share(out, "response", "response_share")
    _share(out, "resolution", "resolution_share")
    return out


TIMES = Report(
    name="property_times",
    label="Complaint response and resolution times",
    label_zh="投诉响应与办结用时分布",
    description="How long complaints waited for someone on site (the response clock's start "
    "to work starting) and for their first resolution, in buckets of elapsed time.",
    description_zh="投诉从受理到到场处理、到首次办结所用时间的分布（自然时间）。",
    params=(*_created(90), ESTATE, CATEGORY),
    query=_times_query,
    shape=_times_shape,
    columns=(
        ReportColumn("label", "Time taken", "用时", "text"),
        ReportColumn("response", "On site / first response", "到场响应", color=BLUE),
        ReportColumn("response_share", "Share of responses", "响应占比", "percent"),
        ReportColumn("resolution", "Resolutions", "办结", color=GREEN),
        ReportColumn("resolution_share", "Share of resolutions", "办结占比", "percent"),
    ),
    series=("response", "resolution"),
    chart="bar",
    group="property",
    order=320,
)


# -- reopen rate -----------------------------------------------------------------------------------


def _by_category(p: Mapping[str, Any], *measures: Any) -> Any:
    return (
        _complaints()
        .add_columns(
            Complaint.category_id.label("value"),
            ComplaintClass.name.label("name"),
            ComplaintClass.name_en.label("name_en"),
            ComplaintClass.position.label("position"),
            *measures,
        )
        .outerjoin(ComplaintClass, ComplaintClass.id == Complaint.category_id)
        .where(*_filters(p))
        .group_by(
            Complaint.category_id,
            ComplaintClass.name,
            ComplaintClass.name_en,
            ComplaintClass.position,
        )
    )


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _reopen_query(p: Mapping[str, Any]) -> Any:
    return _by_category(
        p,
        func.count(ServiceTicket.id).label("complaints"),
        _count_if(Complaint.root_cause.is_not(None)).label("resolved"),
        _count_if(Complaint.reopen_count > 0).label("reopened"),
        func.coalesce(func.sum(Complaint.reopen_count), 0).label("reopenings"),
    )


def _with_total(out: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    if out:
        total: dict[str, Any] = {"value": None, "label": _("All categories"), "total": True}
        for key in keys:
            total[key] = sum(r.get(key) or 0 for r in out)
        out.append(total)
    return out


def _reopen_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    keys = ("complaints", "resolved", "reopened", "reopenings")
    out = _order(
        [
            {
                **_labelled([r], "category")[r["value"]],
                **{k: int(r[k] or 0) for k in keys},
            }
            for r in rows
        ],
        "category",
    )
    for r in _with_total(out, keys):
        r["rate"] = _rate(r["reopened"], r["resolved"])
    return out


def _reopen_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    category = row.get("value") or p.get("category")
    if row.get("value") is None and not row.get("total"):
        return None
    return _list_url(p, category=category)


REOPEN = Report(
    name="property_reopen",
    label="Reopen rate",
    label_zh="投诉重开率",
    description="Per category, the complaints received in the period that were resolved at "
    "least once (they carry a root cause) and how many of them were reopened, by a bad "
    "follow-up or by staff. Reopen rate = reopened ÷ resolved.",
    description_zh="按类别统计期间受理并至少办结过一次（已填写根本原因）的投诉中，因回访不满意或"
    "人工重新打开的数量；重开率 = 重开数 ÷ 办结数。",
    params=(*_created(90), ESTATE),
    query=_reopen_query,
    shape=_reopen_shape,
    columns=(
        ReportColumn("label", "Category", "类别", "text"),
        ReportColumn("complaints", "Complaints", "投诉数"),
        ReportColumn("resolved", "Resolved at least once", "已办结", color=GREEN),
        ReportColumn("reopened", "Reopened", "被重开", color=RED),
        ReportColumn("reopenings", "Reopenings", "重开次数"),
        ReportColumn("rate", "Reopen rate", "重开率", "percent", color=RED),
    ),
    series=("rate",),
    chart="hbar",
    drill=_reopen_drill,
    group="property",
    order=330,
)


# -- repeat complaints -----------------------------------------------------------------------------

REPEAT_VIEWS = (
    ("estate", "By estate", "按小区"),
    ("category", "By category", "按类别"),
    ("unit", "Units with most repeats", "重复投诉最多的房屋"),
)
TOP_UNITS = 15


def _repeat_view(p: Mapping[str, Any]) -> str:
    return p.get("view") or "estate"


def _repeats_query(p: Mapping[str, Any]) -> Any:
    view = _repeat_view(p)
    repeats = _count_if(Complaint.repeat_of_id.is_not(None))
    if view == "category":
        return _by_category(
            p, func.count(ServiceTicket.id).label("complaints"), repeats.label("repeats")
        )
    if view == "estate":
        return (
            _complaints()
            .add_columns(
                Estate.id.label("value"),
                Estate.name.label("name"),
                func.count(ServiceTicket.id).label("complaints"),
                repeats.label("repeats"),
            )
            .outerjoin(Building, Building.id == Complaint.building_id)
            .outerjoin(Estate, Estate.id == Building.estate_id)
            .where(*_filters(p))
            .group_by(Estate.id, Estate.name)
        )
    n = func.count(ServiceTicket.id)
    return (
        _complaints()
        .add_columns(
            Unit.id.label("value"),
            Unit.label.label("unit"),
            Building.name.label("building"),
            Estate.name.label("estate"),
            n.label("complaints"),
            repeats.label("repeats"),
        )
        .join(Unit, Unit.id == Complaint.unit_id)
        .join(Building, Building.id == Unit.building_id)
        .join(Estate, Estate.id == Building.estate_id)
        .where(*_filters(p))
        .group_by(Unit.id, Unit.label, Building.name, Estate.name)
        .having(repeats > 0)
        .order_by(repeats.desc(), n.desc(), Unit.id)
        .limit(TOP_UNITS)
    )


def _repeats_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    view = _repeat_view(p)
    keys = ("complaints", "repeats")
    if view == "unit":
        out = [
            {
                "value": r["value"],
                "label": f"{r['estate']} {r['building']} {r['unit']}",
                **{k: int(r[k] or 0) for k in keys},
            }
            for r in rows
        ]
    else:
        out = _order(
            [
                {**_labelled([r], view)[r["value"]], **{k: int(r[k] or 0) for k in keys}}
                for r in rows
            ],
            view,
        )
        if view == "category":
            _with_total(out, keys)
    for r in out:
        r["share"] = _rate(r["repeats"], r["complaints"])
    return out


def _repeats_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    view, value = _repeat_view(p), row.get("value")
    if value is None:
        return None
    repeat = 1 if series in ("repeats", "share") else None
    if view == "unit":
        return f"/property/units/{value}"
    if view == "category":
        return _list_url(p, category=value, repeat=repeat)
    return _url(LIST_URL, estate=value, repeat=repeat)


REPEATS = Report(
    name="property_repeats",
    label="Repeat complaints",
    label_zh="重复投诉",
    description="Complaints about the same unit and category as an earlier one within the "
    "repeat window (30 days by default), by estate or category, or the units with the most "
    "repeats.",
    description_zh="同一房屋、同一类别在重复投诉期限（默认30天）内再次投诉的数量：按小区、按类别，"
    "或重复投诉最多的房屋。",
    params=(
        ReportParam("view", "View", "视图", choices=REPEAT_VIEWS, default="estate"),
        *_created(90),
        ESTATE,
    ),
    query=_repeats_query,
    shape=_repeats_shape,
    columns=lambda p: (
        ReportColumn(
            "label", *next(v[1:] for v in REPEAT_VIEWS if v[0] == _repeat_view(p)), "text"
        ),
        ReportColumn("complaints", "Complaints", "投诉数", color=GREY),
        ReportColumn("repeats", "Repeat complaints", "重复投诉", color=RED),
        ReportColumn("share", "Repeat share", "重复占比", "percent"),
    ),
    series=("repeats",),
    chart="hbar",
    drill=_repeats_drill,
    group="property",
    order=340,
)


# -- root-cause Pareto -----------------------------------------------------------------------------


def _causes_query(p: Mapping[str, Any]) -> Any:
    return (
        _complaints()
        .add_columns(Complaint.root_cause.label("value"), func.count(ServiceTicket.id).label("n"))
        .where(Complaint.root_cause.is_not(None), *_filters(p))
        .group_by(Complaint.root_cause)
    )


def _causes_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = [
        {
            "value": r["value"],
            "label": choices.label("property_root_cause", r["value"]),
            "n": int(r["n"]),
        }
        for r in rows
    ]
    out.sort(key=lambda r: (-r["n"], r["value"]))
    total = sum(r["n"] for r in out)
    running = 0
    for r in out:
        running += r["n"]
        r["share"] = r["n"] / total if total else None
        r["cumulative"] = running / total if total else None
    return out


ROOT_CAUSES = Report(
    name="property_root_causes",
    label="Root causes (Pareto)",
    label_zh="投诉根本原因（帕累托）",
    description="The root causes recorded when complaints received in the period were "
    "resolved, most frequent first, with the cumulative share: the few causes behind most "
    "complaints are where improvement pays.",
    description_zh="期间受理的投诉办结时记录的根本原因，按次数从多到少排列并给出累计占比：少数原因"
    "造成大部分投诉，改进应从这里入手。",
    params=(*_created(90), ESTATE, CATEGORY),
    query=_causes_query,
    shape=_causes_shape,
    columns=(
        ReportColumn("label", "Root cause", "根本原因", "text"),
        ReportColumn("n", "Complaints", "投诉数", color=PURPLE),
        ReportColumn("share", "Share", "占比", "percent"),
        ReportColumn("cumulative", "Cumulative share", "累计占比", "percent"),
    ),
    series=("n",),
    chart="bar",
    group="property",
    order=350,
)


# -- satisfaction by dimension and trend -----------------------------------------------------------

SATISFACTION_VIEWS = (
    ("dimension", "By dimension", "按维度"),
    ("quarter", "Trend by quarter", "按季度趋势"),
    ("month", "Trend by month", "按月趋势"),
)


def questionnaire_choices() -> list[tuple[str, str]]:
    from plugins.surveys.models import Questionnaire

    rows = db.session.execute(
        select(Questionnaire.id, Questionnaire.name).order_by(Questionnaire.id.desc())
    )
    return [(str(i), name) for i, name in rows]


def satisfaction_questionnaire() -> str | None:
    """The newest questionnaire with the property dimensions (front desk, cleaning…), else the
    newest questionnaire; ``None`` without any."""
    from plugins.surveys.models import Dimension, Questionnaire

    codes = [d[0] for d in SATISFACTION_DIMENSIONS]
    found = db.session.scalar(
        select(Dimension.questionnaire_id)
        .where(Dimension.code.in_(codes))
        .order_by(Dimension.questionnaire_id.desc())
        .limit(1)
    ) or db.session.scalar(select(func.max(Questionnaire.id)))
    return str(found) if found else None


def _satisfaction_view(p: Mapping[str, Any]) -> str:
    return p.get("view") or "dimension"


def _satisfaction_query(p: Mapping[str, Any]) -> Any:
    from plugins.surveys.models import Response
    from plugins.surveys.results import dimension_statement

    view = _satisfaction_view(p)
    conditions = [
        Response.questionnaire_id == (_int(p.get("questionnaire")) or 0),
        *within(Response.answered_at, p),
    ]
    return dimension_statement(conditions, None if view == "dimension" else view)


def _satisfaction_dimensions(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(code, label)`` of the chosen questionnaire's dimensions, in order."""
    from plugins.surveys.models import Dimension

    rows = db.session.execute(
        select(Dimension.code, Dimension.label, Dimension.label_zh)
        .where(Dimension.questionnaire_id == (_int(p.get("questionnaire")) or 0))
        .order_by(Dimension.position, Dimension.id)
    )
    return [(code, pick(label, label_zh or label)) for code, label, label_zh in rows]


def _periods(p: Mapping[str, Any], view: str) -> list[str]:
    keys = months(p)
    if view == "month":
        return keys
    out: list[str] = []
    for key in keys:
        quarter = f"{key[:4]}-Q{(int(key[5:7]) + 2) // 3}"
        if quarter not in out:
            out.append(quarter)
    return out


def _satisfaction_shape(
    rows: list[Mapping[str, Any]], p: Mapping[str, Any]
) -> list[dict[str, Any]]:
    view = _satisfaction_view(p)
    if view == "dimension":
        ordered = sorted(rows, key=lambda r: (r["position"], r["code"]))
        return [
            {
                "value": r["code"],
                "label": pick(r["label"], r["label_zh"] or r["label"]),
                "answers": int(r["answers"]),
                "average": round(float(r["average"]), 2) if r["average"] is not None else None,
                "csat": float(r["csat"]) / 100 if r["csat"] is not None else None,
            }
            for r in ordered
        ]
    pivot: dict[str, dict[str, Any]] = {}
    for r in rows:
        row = pivot.setdefault(r["period"], {"value": r["period"], "label": r["period"]})
        if r["average"] is not None:
            row[r["code"]] = round(float(r["average"]), 2)
    periods = [k for k in _periods(p, view) if k in pivot] or sorted(pivot)
    return [pivot[k] for k in periods]


def _satisfaction_columns(p: Mapping[str, Any]) -> list[ReportColumn]:
    view = _satisfaction_view(p)
    if view == "dimension":
        return [
            ReportColumn("label", "Dimension", "维度", "text"),
            ReportColumn("answers", "Answers", "答题数"),
            ReportColumn("average", "Average (1-5)", "平均分（1-5）", "number", color=BLUE),
            ReportColumn("csat", "Satisfied (4-5)", "满意率（4-5分）", "percent", color=GREEN),
        ]
    label = ("Month", "月份") if view == "month" else ("Quarter", "季度")
    return [
        ReportColumn("label", *label, "text"),
        *(ReportColumn(code, name, name, "number") for code, name in _satisfaction_dimensions(p)),
    ]


SATISFACTION = Report(
    name="property_satisfaction",
    label="Residents' satisfaction by dimension",
    label_zh="业主满意度（分维度）",
    description="The residents' satisfaction survey (surveys plugin): the average rating (1-5) "
    "and the share of satisfied answers (4-5) per dimension -- front desk, cleaning, "
    "greening, safety, facilities, repairs, overall -- or each dimension's average by quarter "
    "or month.",
    description_zh="业主满意度调查（问卷调查插件）：各维度（前台服务、保洁、绿化、安全、设施、"
    "维修、总体）的平均分（1-5分）与满意率（4-5分），或各维度按季度、按月的平均分趋势。",
    params=(
        ReportParam(
            "questionnaire",
            "Questionnaire",
            "问卷",
            choices=questionnaire_choices,
            default=satisfaction_questionnaire,
        ),
        ReportParam("view", "View", "视图", choices=SATISFACTION_VIEWS, default="dimension"),
        *date_range(365, "Answered", "答卷日期"),
    ),
    query=_satisfaction_query,
    shape=_satisfaction_shape,
    columns=_satisfaction_columns,
    series=lambda p: (
        ("average",)
        if _satisfaction_view(p) == "dimension"
        else tuple(code for code, _label in _satisfaction_dimensions(p))
    ),
    chart=lambda p: "bar" if _satisfaction_view(p) == "dimension" else "line",
    group="property",
    order=360,
)


def reports() -> list[Report]:
    return [COMPLAINTS, SLA, TIMES, REOPEN, REPEATS, ROOT_CAUSES, SATISFACTION]


# -- dashboard widgets -----------------------------------------------------------------------------

WIDGET_ROLES = ("admin", "manager", "service_agent")


def _bars(pairs: list[tuple[str, int, str | None]]) -> list[Any]:
    from core.web.dashboard import _bars as bars

    return bars(pairs)


def _today_start() -> datetime:
    return datetime.combine(today(), time(), zone()).astimezone(UTC)


def _clock_base(*kinds: str) -> Any:
    return (
        select()
        .select_from(Obligation)
        .join(
            ServiceTicket,
            and_(Obligation.subject_type == TICKET, Obligation.subject_id == ServiceTicket.id),
        )
        .join(Customer, Customer.id == ServiceTicket.customer_id)
        .where(Obligation.kind.in_(kinds), ServiceTicket.workflow == WORKFLOW)
    )


def open_by_state() -> dict[str, int]:
    """Open complaints per state (one GROUP BY)."""
    rows = db.session.execute(
        _complaints()
        .add_columns(ServiceTicket.state, func.count(ServiceTicket.id))
        .where(ServiceTicket.state.in_(OPEN_STATES))
        .group_by(ServiceTicket.state)
    ).all()
    return {state: int(n) for state, n in rows}


def breaches_today(now: datetime | None = None) -> dict[str, int]:
    """Per SLA kind, the clocks whose deadline passed today without being met in time (one
    GROUP BY)."""
    now = now or utcnow()
    late = (Obligation.met_at.is_(None) & Obligation.paused_at.is_(None)) | (
        Obligation.met_at > Obligation.due_at
    )
    rows = db.session.execute(
        _clock_base(*SLA_KINDS)
        .add_columns(Obligation.kind, func.count(Obligation.id))
        .where(Obligation.due_at >= _today_start(), Obligation.due_at <= now, late)
        .group_by(Obligation.kind)
    ).all()
    return {kind: int(n) for kind, n in rows}


def followups_due(now: datetime | None = None) -> dict[str, int]:
    """Follow-up clocks still open: ``overdue``, ``today`` (due before tomorrow) and
    ``later`` (one GROUP BY)."""
    now = now or utcnow()
    tomorrow = _today_start() + timedelta(days=1)
    when = case(
        (Obligation.due_at <= now, literal("overdue")),
        (Obligation.due_at < tomorrow, literal("today")),
        else_=literal("later"),
    )
    rows = db.session.execute(
        _clock_base(FOLLOWUP)
        .add_columns(when, func.count(Obligation.id))
        .where(
            Obligation.met_at.is_(None),
            Obligation.paused_at.is_(None),
            ServiceTicket.state == "resolved",
        )
        .group_by(when)
    ).all()
    return {key: int(n) for key, n in rows}


def _state_labels() -> dict[str, str]:
    from core.workflow import workflow_for

    wf = workflow_for(ServiceTicket(workflow=WORKFLOW, type="property_complaint"))
    return {s.name: s.text for s in wf.states}


def _open_widget() -> str:
    counts = open_by_state()
    labels = _state_labels()
    pairs = [(labels.get(s, s), counts.get(s, 0), _url(LIST_URL, state=s)) for s in OPEN_STATES]
    return render_template(
        "dashboard/_bars.html",
        bars=_bars(pairs),
        total=sum(counts.values()),
        empty=_("No open complaints."),
        more=(_url(LIST_URL, state="open"), _("All open complaints")),
    )


def _breaches_widget() -> str:
    counts = breaches_today()
    pairs = [
        (_("On site / first response"), counts.get(RESPONSE, 0), _url(LIST_URL, overdue=1)),
        (_("Resolution"), counts.get(RESOLUTION, 0), _url(LIST_URL, overdue=1)),
    ]
    return render_template(
        "dashboard/_bars.html",
        bars=_bars(pairs),
        total=sum(counts.values()),
        empty=_("No complaint deadline was missed today."),
        more=("/reports/property_sla", _("Complaint SLA compliance")),
    )


def _followups_widget() -> str:
    counts = followups_due()
    listed = _url(LIST_URL, state="resolved")
    pairs = [
        (_("Overdue"), counts.get("overdue", 0), listed),
        (_("Due today"), counts.get("today", 0), listed),
        (_("Later"), counts.get("later", 0), listed),
    ]
    return render_template(
        "dashboard/_bars.html",
        bars=_bars(pairs),
        total=sum(counts.values()),
        empty=_("No follow-ups waiting."),
        more=(listed, _("Resolved complaints awaiting follow-up")),
    )


def widgets(company: Any, user: Any) -> list[Panel]:
    """Open complaints by state, SLA breaches today and follow-ups due, for admins, managers
    and service agents."""
    member = g.get("membership")
    if member is None or member.role not in WIDGET_ROLES:
        return []
    return [
        Panel("Open complaints", _open_widget, "待处理投诉", order=22),
        Panel("Complaint deadlines missed today", _breaches_widget, "今日超时投诉", order=24),
        Panel("Follow-ups due", _followups_widget, "待回访", order=26),
    ]
