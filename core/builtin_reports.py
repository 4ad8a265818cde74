"""The core's own reports, declared through ``guanxi_reports`` in :mod:`core.defaults` exactly as
a plugin declares its reports (docs/reports.md tells users what each one means).

Each is one GROUP BY through the ORM (company scope and record rules apply), shaped in Python:
labels from the choice lists, zero-filled months and choice values, shares and pivots.

* ``customers``        customers by kind, value tier, lifecycle stage, loyalty, status, channel,
                       owner or region, with their revenue;
* ``tier_movement``    moves between value tiers per month (upgrades and downgrades), from the
                       classification history kept in the audit log (:mod:`core.classify`);
* ``new_lost``         new and lost customers per month;
* ``interactions``     interactions per user and kind;
* ``tickets``          tickets by type, intake channel, priority, state, assignee or team, split
                       into open, done and cancelled;
* ``sla``              SLA compliance: ticket clocks met on time, met late, breached, running;
* ``service_times``    distributions of first-response and resolution times;
* ``satisfaction``     customer scores of follow-ups (回访): distribution, trend, per agent;
* ``service_funnel``   tickets opened → responded → resolved → followed up → satisfied;
* ``channels``         channel performance: customers, revenue, tickets, conflicts (managers).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from flask_babel import gettext as _
from sqlalchemy import and_, case, exists, func, literal, select, union_all
from sqlalchemy.orm import aliased

from core import choices
from core.classify import LOST_STATUSES, last_contact_expr
from core.models import (
    AuditLog,
    Channel,
    Customer,
    Interaction,
    Obligation,
    ServiceTicket,
    Team,
    User,
    WorkflowHistory,
)
from core.reports import (
    Column,
    Param,
    Report,
    date_range,
    minutes_between,
    month,
    months,
    narrows,
    period,
    through_customers,
    within,
)

GREEN, ORANGE, RED, GREY, BLUE = "#2f855a", "#dd6b20", "#c53030", "#a0aec0", "#2b6cb0"
TICKET = "service_ticket"


def _url(path: str, **query: Any) -> str:
    """``path`` with the non-empty ``query`` values (lists: repeated keys)."""
    pairs: list[tuple[str, Any]] = []
    for key, value in query.items():
        if value is None or value == "":
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            pairs.append((key, item))
    return f"{path}?{urlencode(pairs)}" if pairs else path


def _choice_rows(
    rows: list[Mapping[str, Any]], list_name: str, count_key: str, empty_label: str
) -> list[dict[str, Any]]:
    """Rows for every value of choice list ``list_name`` (zero where no row), then any other
    values found (a disabled plugin's, or none: ``empty_label``), each labelled."""
    found = {r["value"]: dict(r) for r in rows}
    out = []
    for value, text in choices.options(list_name):
        row = found.pop(value, None) or {"value": value, count_key: 0}
        out.append({**row, "label": text})
    for value, row in found.items():
        label = choices.label(list_name, value) if value is not None else empty_label
        out.append({**row, "label": label})
    return out


def _share(rows: list[dict[str, Any]], key: str, into: str = "share") -> list[dict[str, Any]]:
    total = sum(r.get(key) or 0 for r in rows)
    for r in rows:
        r[into] = (r.get(key) or 0) / total if total else None
    return rows


# -- customers ------------------------------------------------------------------------------------

CUSTOMER_DIMENSIONS = (
    ("kind", "Kind", "客户类型"),
    ("value_tier", "Value tier", "价值等级"),
    ("lifecycle_stage", "Lifecycle stage", "生命周期"),
    ("loyalty", "Loyalty", "忠诚度"),
    ("status", "Status", "客户状态"),
    ("channel", "Channel", "渠道"),
    ("owner", "Owner", "负责人"),
    ("region", "Region", "地区"),
)
_CUSTOMER_LISTS = {
    "kind": "customer_kind",
    "value_tier": "value_tier",
    "lifecycle_stage": "lifecycle_stage",
    "loyalty": "loyalty",
    "status": "customer_status",
}


def _dimension_text(options: tuple[tuple[str, str, str], ...], value: str) -> tuple[str, str]:
    for key, label, label_zh in options:
        if key == value:
            return label, label_zh
    return value, value


def _customers_query(p: Mapping[str, Any]) -> Any:
    dim = p["dimension"] or "kind"
    revenue = func.coalesce(func.sum(Customer.revenue), 0).label("revenue")
    count = func.count(Customer.id).label("customers")
    if dim == "channel":
        stmt = (
            select(Customer.channel_id.label("value"), Channel.name.label("name"), count, revenue)
            .outerjoin(Channel, Channel.id == Customer.channel_id)
            .group_by(Customer.channel_id, Channel.name)
        )
    elif dim == "owner":
        stmt = (
            select(Customer.owner_id.label("value"), User.name.label("name"), count, revenue)
            .outerjoin(User, User.id == Customer.owner_id)
            .group_by(Customer.owner_id, User.name)
        )
    else:
        column = getattr(Customer, dim)
        stmt = select(column.label("value"), count, revenue).group_by(column)
    if p.get("channel"):
        stmt = stmt.where(Customer.channel_id == p["channel"])
    if p.get("owner"):
        stmt = stmt.where(Customer.owner_id == p["owner"])
    return stmt


def _customers_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = p["dimension"] or "kind"
    if dim in _CUSTOMER_LISTS:
        out = _choice_rows(rows, _CUSTOMER_LISTS[dim], "customers", _("Not rated yet"))
        for r in out:
            r.setdefault("revenue", 0)
        if dim == "kind":  # an open list (plugins add kinds): only the kinds in use
            out = [r for r in out if r["customers"]]
    else:
        none = {"channel": _("No channel"), "owner": _("No owner"), "region": _("No region")}
        out = [
            {**r, "label": r.get("name") or r["value"] or none[dim]}
            for r in sorted(rows, key=lambda r: (-r["customers"], str(r.get("name") or r["value"])))
        ]
    return _share(out, "customers")


def _customers_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    label, label_zh = _dimension_text(CUSTOMER_DIMENSIONS, p["dimension"] or "kind")
    return (
        Column("label", label, label_zh, "text"),
        Column("customers", "Customers", "客户数"),
        Column("share", "Share", "占比", "percent"),
        Column("revenue", "Revenue (12 months)", "近12个月收入", "money"),
    )


def _customers_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    dim = p["dimension"] or "kind"
    value = row.get("value")
    if value is None or dim == "region":
        return None
    key = {"channel": "channel_id", "owner": "owner_id"}.get(dim, dim)
    query = {"channel_id": p.get("channel"), "owner_id": p.get("owner"), key: value}
    return _url("/customers/", **query)


CUSTOMERS = Report(
    name="customers",
    label="Customers by kind, tier, lifecycle…",
    label_zh="客户构成（类型、等级、生命周期…）",
    description="How many customers there are of each kind, value tier, lifecycle stage, "
    "loyalty, status, channel, owner or region, with their revenue of the last 12 months.",
    description_zh="按客户类型、价值等级、生命周期、忠诚度、状态、渠道、负责人或地区统计客户数及近12"
    "个月收入。",
    params=(
        Param("dimension", "By", "维度", choices=CUSTOMER_DIMENSIONS, default="kind"),
        Param("channel", "Channel", "渠道", "channel"),
        Param("owner", "Owner", "负责人", "member"),
    ),
    query=_customers_query,
    shape=_customers_shape,
    columns=_customers_columns,
    series=("customers",),
    chart=lambda p: "hbar" if p["dimension"] in ("channel", "owner", "region") else "bar",
    drill=_customers_drill,
    group="customers",
    order=10,
)


# -- value tier movement --------------------------------------------------------------------------

TIER_ORDER = ("A", "B", "C", "D")
MOVEMENT_VIEWS = (("month", "Per month", "按月"), ("path", "From → to", "迁移路径"))


def _movement_query(p: Mapping[str, Any]) -> Any:
    moved_from = AuditLog.data["from"].as_string()
    moved_to = AuditLog.data["to"].as_string()
    when = month(AuditLog.created_at)
    return (
        select(
            when.label("month"),
            moved_from.label("from_tier"),
            moved_to.label("to_tier"),
            func.count().label("moves"),
        )
        .join(Customer, Customer.id == AuditLog.entity_id)
        .where(
            AuditLog.action == "classify",
            AuditLog.entity_type == "customer",
            *within(AuditLog.created_at, p),
        )
        .group_by(when, moved_from, moved_to)
    )


def _rank(tier: Any) -> int:
    return TIER_ORDER.index(tier) if tier in TIER_ORDER else len(TIER_ORDER)


def _movement_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    if p.get("view") == "path":
        paths: dict[tuple[str, str], int] = {}
        for r in rows:
            key = (r["from_tier"], r["to_tier"])
            paths[key] = paths.get(key, 0) + r["moves"]
        ordered = sorted(paths.items(), key=lambda kv: (-kv[1], _rank(kv[0][0]), _rank(kv[0][1])))
        return [
            {
                "label": f"{choices.label('value_tier', a)} → {choices.label('value_tier', b)}",
                "from_tier": a,
                "to_tier": b,
                "direction": _("Up") if _rank(b) < _rank(a) else _("Down"),
                "moves": n,
            }
            for (a, b), n in ordered
        ]
    per_month: dict[str, dict[str, Any]] = {m: {"label": m, "up": 0, "down": 0} for m in months(p)}
    for r in rows:
        row = per_month.setdefault(r["month"], {"label": r["month"], "up": 0, "down": 0})
        if _rank(r["to_tier"]) < _rank(r["from_tier"]):
            row["up"] += r["moves"]
        else:
            row["down"] += r["moves"]
    out = [per_month[k] for k in sorted(per_month)]
    for row in out:
        row["net"] = row["up"] - row["down"]
        row["down_bar"] = -row["down"]
    return out


def _movement_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    if p.get("view") == "path":
        return (
            Column("label", "From → to", "迁移路径", "text"),
            Column("direction", "Direction", "方向", "text"),
            Column("moves", "Customers moved", "迁移客户数", color=BLUE),
        )
    return (
        Column("label", "Month", "月份", "text"),
        Column("up", "Moved up", "升级", color=GREEN),
        Column("down", "Moved down", "降级", color=RED),
        Column("net", "Net", "净变化"),
        Column("down_bar", "Moved down", "降级", color=RED, table=False),
    )


def _movement_series(p: Mapping[str, Any]) -> tuple[str, ...]:
    return ("moves",) if p.get("view") == "path" else ("up", "down_bar")


TIER_MOVEMENT = Report(
    name="tier_movement",
    label="Movement between value tiers",
    label_zh="客户价值等级迁移",
    description="Customers whose value tier went up or down, per month or by path (B → A), "
    "as recorded each time the classification changed a tier.",
    description_zh="价值等级升级或降级的客户数，按月或按迁移路径（如 B → A）统计，"
    "数据来自每次分级变更的记录。",
    params=(
        *date_range(365),
        Param("view", "View", "视图", choices=MOVEMENT_VIEWS, default="month"),
    ),
    query=_movement_query,
    shape=_movement_shape,
    columns=_movement_columns,
    series=_movement_series,
    chart=lambda p: "hbar" if p.get("view") == "path" else "stacked",
    group="customers",
    order=20,
)


# -- new and lost customers -----------------------------------------------------------------------


def _new_lost_query(p: Mapping[str, Any]) -> Any:
    from core.classify import load_rules

    filters = []
    if p.get("channel"):
        filters.append(Customer.channel_id == p["channel"])
    if p.get("owner"):
        filters.append(Customer.owner_id == p["owner"])
    # Lost by hand (status lost or inactive): when the record last changed. Lost by the rule
    # (lifecycle dissolution): when the silence since the last contact reached the rule's days.
    silence = timedelta(days=load_rules().dissolution_days)
    last = last_contact_expr()
    low, high = period(p)
    new_rows = select(
        month(Customer.created_at).label("month"), literal(1).label("new"), literal(0).label("lost")
    ).where(*within(Customer.created_at, p), *filters)
    by_hand = select(
        month(Customer.updated_at).label("month"), literal(0).label("new"), literal(1).label("lost")
    ).where(Customer.status.in_(LOST_STATUSES), *within(Customer.updated_at, p), *filters)
    by_rule = select(
        month(last, silence).label("month"), literal(0).label("new"), literal(1).label("lost")
    ).where(
        Customer.lifecycle_stage == "dissolution",
        Customer.status.not_in(LOST_STATUSES),
        *([last >= low - silence] if low else []),
        *([last < high - silence] if high else []),
        *filters,
    )
    both = union_all(new_rows, by_hand, by_rule).subquery("moves")
    return (
        select(both.c.month, func.sum(both.c.new).label("new"), func.sum(both.c.lost).label("lost"))
        .group_by(both.c.month)
        .order_by(both.c.month)
    )


def _new_lost_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = {r["month"]: r for r in rows}
    keys = months(p) or sorted(found)
    out = []
    for key in keys:
        r = found.get(key) or {}
        new, lost = int(r.get("new") or 0), int(r.get("lost") or 0)
        out.append({"label": key, "new": new, "lost": lost, "net": new - lost})
    return out


NEW_LOST = Report(
    name="new_lost",
    label="New and lost customers",
    label_zh="新增与流失客户",
    description="Customers created per month, and customers lost per month: set to lost or "
    "inactive (counted when the record last changed), or gone silent into the lifecycle stage "
    "dissolution (counted when the silence since their last contact reached the rule's days).",
    description_zh="每月新建的客户数与流失客户数：被设为流失或休眠的客户按记录最后修改的月份统计；"
    "因长期未联系进入解除期的客户，按距最后联系达到规则天数的月份统计。",
    params=(
        *date_range(365),
        Param("channel", "Channel", "渠道", "channel"),
        Param("owner", "Owner", "负责人", "member"),
    ),
    query=_new_lost_query,
    shape=_new_lost_shape,
    columns=(
        Column("label", "Month", "月份", "text"),
        Column("new", "New", "新增", color=GREEN),
        Column("lost", "Lost", "流失", color=RED),
        Column("net", "Net", "净增"),
    ),
    series=("new", "lost"),
    chart="line",
    group="customers",
    order=30,
)


# -- interactions per user ------------------------------------------------------------------------


def _interactions_query(p: Mapping[str, Any]) -> Any:
    stmt = (
        through_customers(
            select(
                Interaction.user_id.label("value"),
                User.name.label("name"),
                Interaction.kind.label("kind"),
                func.count(Interaction.id).label("n"),
            ),
            Customer.id == Interaction.customer_id,
        )
        .outerjoin(User, User.id == Interaction.user_id)
        .where(*within(Interaction.occurred_at, p))
        .group_by(Interaction.user_id, User.name, Interaction.kind)
    )
    if p.get("kind"):
        stmt = stmt.where(Interaction.kind == p["kind"])
    return stmt


def _interactions_shape(
    rows: list[Mapping[str, Any]], p: Mapping[str, Any]
) -> list[dict[str, Any]]:
    users: dict[Any, dict[str, Any]] = {}
    for r in rows:
        row = users.setdefault(
            r["value"], {"value": r["value"], "label": r["name"] or _("Nobody"), "total": 0}
        )
        key = f"kind_{r['kind']}"
        row[key] = row.get(key, 0) + r["n"]
        row["total"] += r["n"]
    for row in users.values():
        for value, _text in _interaction_kinds(p):
            row.setdefault(f"kind_{value}", 0)
    return sorted(users.values(), key=lambda r: (-r["total"], r["label"]))


def _interaction_kinds(p: Mapping[str, Any]) -> list[tuple[str, str]]:
    kinds = choices.options("interaction_kind")
    return [k for k in kinds if k[0] == p["kind"]] if p.get("kind") else kinds


def _interactions_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    return (
        Column("label", "User", "人员", "text"),
        *(Column(f"kind_{value}", text, text) for value, text in _interaction_kinds(p)),
        Column("total", "Total", "合计"),
    )


INTERACTIONS = Report(
    name="interactions",
    label="Interactions per user",
    label_zh="人员互动统计",
    description="Calls, visits, messages, meetings and follow-ups logged by each user, "
    "on the customers you see.",
    description_zh="每位人员记录的电话、拜访、消息、会议与回访次数（仅统计您可见的客户）。",
    params=(
        *date_range(90),
        Param("kind", "Kind", "类型", choices=lambda: choices.options("interaction_kind")),
    ),
    query=_interactions_query,
    shape=_interactions_shape,
    columns=_interactions_columns,
    series=lambda p: [f"kind_{value}" for value, _text in _interaction_kinds(p)],
    chart="hstacked",
    group="activity",
    order=40,
)


# -- tickets --------------------------------------------------------------------------------------

TICKET_DIMENSIONS = (
    ("type", "Type", "工单类型"),
    ("intake", "Intake channel", "受理渠道"),
    ("priority", "Priority", "优先级"),
    ("state", "State", "状态"),
    ("assignee", "Assignee", "处理人"),
    ("team", "Team", "团队"),
)
_TICKET_LISTS = {"type": "ticket_type", "intake": "intake_channel", "priority": "ticket_priority"}
_TICKET_COLUMNS = {
    "type": ServiceTicket.type,
    "intake": ServiceTicket.intake_channel,
    "priority": ServiceTicket.priority,
    "state": ServiceTicket.state,
}


def _ticket_workflow() -> Any:
    from core.workflow import workflow_for

    return workflow_for(ServiceTicket(workflow="ticket"))


def _states(category: str) -> list[str]:
    return [s.name for s in _ticket_workflow().states if s.category == category]


def _category_expr() -> Any:
    wf = _ticket_workflow()
    return case(
        *[(ServiceTicket.state == s.name, literal(s.category)) for s in wf.states],
        else_=literal("open"),
    )


def _ticket_filters(p: Mapping[str, Any]) -> list[Any]:
    out = within(ServiceTicket.created_at, p)
    if p.get("assignee"):
        out.append(ServiceTicket.assignee_id == p["assignee"])
    return out


def _tickets_query(p: Mapping[str, Any]) -> Any:
    dim = p["dimension"] or "type"
    category = _category_expr().label("category")
    count = func.count(ServiceTicket.id).label("n")
    if dim == "assignee":
        stmt = (
            select(ServiceTicket.assignee_id.label("value"), User.name.label("name"), category)
            .select_from(ServiceTicket)
            .outerjoin(User, User.id == ServiceTicket.assignee_id)
            .group_by(ServiceTicket.assignee_id, User.name, category)
        )
    elif dim == "team":
        stmt = (
            select(ServiceTicket.team_id.label("value"), Team.name.label("name"), category)
            .select_from(ServiceTicket)
            .outerjoin(Team, Team.id == ServiceTicket.team_id)
            .group_by(ServiceTicket.team_id, Team.name, category)
        )
    else:
        column = _TICKET_COLUMNS[dim]
        stmt = (
            select(column.label("value"), category)
            .select_from(ServiceTicket)
            .group_by(column, category)
        )
    return through_customers(
        stmt.add_columns(count), Customer.id == ServiceTicket.customer_id
    ).where(*_ticket_filters(p))


def _tickets_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    dim = p["dimension"] or "type"
    pivot: dict[Any, dict[str, Any]] = {}
    for r in rows:
        row = pivot.setdefault(
            r["value"],
            {"value": r["value"], "name": r.get("name"), "open": 0, "done": 0, "cancelled": 0},
        )
        row[r["category"]] = row.get(r["category"], 0) + r["n"]
    if dim in _TICKET_LISTS:
        out = _choice_rows(list(pivot.values()), _TICKET_LISTS[dim], "open", "–")
    elif dim == "state":
        out = []
        for state in _ticket_workflow().states:
            row = pivot.pop(state.name, None) or {"value": state.name, "open": 0}
            out.append({**row, "label": state.text})
        out += [{**r, "label": r["value"]} for r in pivot.values()]
    else:
        nobody = _("Unassigned") if dim == "assignee" else _("No team")
        out = sorted(
            ({**r, "label": r["name"] or nobody} for r in pivot.values()),
            key=lambda r: str(r["label"]),
        )
    for r in out:
        for key in ("open", "done", "cancelled"):
            r.setdefault(key, 0)
        r["total"] = r["open"] + r["done"] + r["cancelled"]
    return out


def _tickets_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    label, label_zh = _dimension_text(TICKET_DIMENSIONS, p["dimension"] or "type")
    return (
        Column("label", label, label_zh, "text"),
        Column("open", "Open", "处理中", color=ORANGE),
        Column("done", "Resolved or closed", "已解决/关闭", color=GREEN),
        Column("cancelled", "Cancelled", "已取消", color=GREY),
        Column("total", "Total", "合计"),
    )


def _ticket_query_args(dim: str, value: Any, p: Mapping[str, Any]) -> dict[str, Any] | None:
    """Ticket list parameters for one value of dimension ``dim`` (``None``: no list for it)."""
    query: dict[str, Any] = {}
    if p.get("assignee"):
        query["assignee"] = p["assignee"]
    if p.get("start"):
        query["created_from"] = p["start"]
    if p.get("end"):
        query["created_to"] = p["end"]
    if dim in ("assignee", "team"):
        query[dim] = "none" if value is None else value
    elif value is None:
        return None
    else:
        query[dim] = value
    return query


def _tickets_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    dim = p["dimension"] or "type"
    query = _ticket_query_args(dim, row.get("value"), p)
    if query is None:
        return None
    if series in ("open", "done", "cancelled") and dim != "state":
        query["state"] = _states(series)
    return _url("/tickets/", **query)


TICKETS = Report(
    name="tickets",
    label="Tickets by type, channel, priority…",
    label_zh="工单统计（类型、渠道、优先级…）",
    description="Service tickets by type, intake channel, priority, state, assignee or team, "
    "split into open, resolved or closed, and cancelled. Click a bar for the tickets behind it.",
    description_zh="按工单类型、受理渠道、优先级、状态、处理人或团队统计服务工单，分为处理中、已解决"
    "/关闭与已取消；点击柱形查看对应工单。",
    params=(
        Param("dimension", "By", "维度", choices=TICKET_DIMENSIONS, default="type"),
        *date_range(None, "Created", "创建日期"),
        Param("assignee", "Assignee", "处理人", "member"),
    ),
    query=_tickets_query,
    shape=_tickets_shape,
    columns=_tickets_columns,
    series=("open", "done", "cancelled"),
    chart=lambda p: "hstacked" if p["dimension"] in ("assignee", "team") else "stacked",
    drill=_tickets_drill,
    group="service",
    order=50,
)


# -- SLA compliance -------------------------------------------------------------------------------

SLA_DIMENSIONS = (
    ("kind", "Promise", "时限类型"),
    ("priority", "Priority", "优先级"),
    ("type", "Type", "工单类型"),
    ("assignee", "Assignee", "处理人"),
)
SLA_KINDS = ("ticket.first_response", "ticket.resolution")


def _sla_query(p: Mapping[str, Any]) -> Any:
    from core.db import utcnow

    dim = p["dimension"] or "kind"
    status = Obligation.status_expr(utcnow()).label("status")
    count = func.count(Obligation.id).label("n")
    if dim == "assignee":
        columns: tuple[Any, ...] = (
            ServiceTicket.assignee_id.label("value"),
            User.name.label("name"),
        )
        group: tuple[Any, ...] = (ServiceTicket.assignee_id, User.name, status)
    else:
        value = {
            "kind": Obligation.kind,
            "priority": ServiceTicket.priority,
            "type": ServiceTicket.type,
        }[dim]
        columns, group = (value.label("value"),), (value, status)
    stmt = select(*columns, status, count).select_from(Obligation)
    if dim == "kind" and not narrows():
        # Nothing of the ticket is shown or filtered on: a lookup per obligation saved.
        stmt = stmt.where(Obligation.subject_type == TICKET)
    else:
        stmt = through_customers(
            stmt.join(
                ServiceTicket,
                and_(Obligation.subject_type == TICKET, Obligation.subject_id == ServiceTicket.id),
            ),
            Customer.id == ServiceTicket.customer_id,
        )
    if dim == "assignee":
        stmt = stmt.outerjoin(User, User.id == ServiceTicket.assignee_id)
    return stmt.where(Obligation.kind.in_(SLA_KINDS), *within(Obligation.started_at, p)).group_by(
        *group
    )


def _sla_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from core.plugins import current

    dim = p["dimension"] or "kind"
    pivot: dict[Any, dict[str, Any]] = {}
    for r in rows:
        row = pivot.setdefault(
            r["value"],
            {"value": r["value"], "name": r.get("name"), "met": 0, "met_late": 0, "breached": 0},
        )
        key = r["status"] if r["status"] in ("met", "met_late", "breached") else "open"
        row[key] = row.get(key, 0) + r["n"]
    if dim == "kind":
        kinds = current().registry.obligation_kinds
        out = []
        for name in SLA_KINDS:
            row = pivot.pop(name, None) or {"value": name}
            out.append({**row, "label": kinds[name].text if name in kinds else name})
    elif dim in ("priority", "type"):
        list_name = "ticket_priority" if dim == "priority" else "ticket_type"
        out = [r for r in _choice_rows(list(pivot.values()), list_name, "met", "–")]
    else:
        out = sorted(
            ({**r, "label": r["name"] or _("Unassigned")} for r in pivot.values()),
            key=lambda r: str(r["label"]),
        )
    for r in out:
        for key in ("met", "met_late", "breached", "open"):
            r.setdefault(key, 0)
        decided = r["met"] + r["met_late"] + r["breached"]
        r["compliance"] = r["met"] / decided if decided else None
    return out


def _sla_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    label, label_zh = _dimension_text(SLA_DIMENSIONS, p["dimension"] or "kind")
    return (
        Column("label", label, label_zh, "text"),
        Column("met", "Met on time", "按时完成", color=GREEN),
        Column("met_late", "Met late", "超时完成", color=ORANGE),
        Column("breached", "Breached, still open", "已超时未完成", color=RED),
        Column("open", "Open, not yet due", "进行中未到期", color=GREY),
        Column("compliance", "Compliance", "达标率", "percent"),
    )


def _sla_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    dim = p["dimension"] or "kind"
    if dim == "kind":
        query: dict[str, Any] | None = {}
    else:
        query = _ticket_query_args(dim, row.get("value"), p)
    if query is None:
        return None
    if series == "breached":
        query["sla"] = "breached"
    elif dim == "kind":
        return None
    return _url("/tickets/", **query)


SLA = Report(
    name="sla",
    label="SLA compliance",
    label_zh="服务时限达标率",
    description="Ticket deadlines (first response and resolution) met on time, met late, "
    "breached and still open, or running; compliance is the share met on time of those "
    "decided. Counted by the day each clock started.",
    description_zh="工单首次响应与解决时限：按时完成、超时完成、已超时未完成与进行中的数量；达标率为"
    "已有结果者中按时完成的比例。按计时开始日期统计。",
    params=(
        Param("dimension", "By", "维度", choices=SLA_DIMENSIONS, default="kind"),
        *date_range(90),
    ),
    query=_sla_query,
    shape=_sla_shape,
    columns=_sla_columns,
    series=("met", "met_late", "breached", "open"),
    chart="stacked",
    drill=_sla_drill,
    group="service",
    order=60,
)


# -- response and resolution times ----------------------------------------------------------------

BUCKETS = (
    (30, "≤ 30 min", "30分钟内"),
    (60, "30 min – 1 h", "30分钟-1小时"),
    (240, "1 – 4 h", "1-4小时"),
    (480, "4 – 8 h", "4-8小时"),
    (1440, "8 – 24 h", "8-24小时"),
    (4320, "1 – 3 days", "1-3天"),
    (10080, "3 – 7 days", "3-7天"),
    (None, "> 7 days", "7天以上"),
)


def _bucket(minutes: Any) -> Any:
    whens = [(minutes <= limit, literal(i)) for i, (limit, *_l) in enumerate(BUCKETS) if limit]
    return case(*whens, else_=literal(len(BUCKETS) - 1))


def _times_query(p: Mapping[str, Any]) -> Any:
    extra = [ServiceTicket.priority == p["priority"]] if p.get("priority") else []
    response = (
        select(
            _bucket(minutes_between(Obligation.met_at, Obligation.started_at)).label("bucket"),
            literal("response").label("measure"),
        )
        .select_from(Obligation)
        .join(
            ServiceTicket,
            and_(Obligation.subject_type == TICKET, Obligation.subject_id == ServiceTicket.id),
        )
    )
    response = through_customers(response, Customer.id == ServiceTicket.customer_id).where(
        Obligation.kind == "ticket.first_response",
        Obligation.met_at.is_not(None),
        *within(ServiceTicket.created_at, p),
        *extra,
    )
    resolution = through_customers(
        select(
            _bucket(minutes_between(ServiceTicket.resolved_at, ServiceTicket.created_at)).label(
                "bucket"
            ),
            literal("resolution").label("measure"),
        ).select_from(ServiceTicket),
        Customer.id == ServiceTicket.customer_id,
    ).where(ServiceTicket.resolved_at.is_not(None), *within(ServiceTicket.created_at, p), *extra)
    both = union_all(response, resolution).subquery("times")
    return select(both.c.bucket, both.c.measure, func.count().label("n")).group_by(
        both.c.bucket, both.c.measure
    )


def _times_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from core.i18n import pick

    out = [
        {"value": i, "label": pick(label, label_zh), "response": 0, "resolution": 0}
        for i, (_limit, label, label_zh) in enumerate(BUCKETS)
    ]
    for r in rows:
        out[int(r["bucket"])][r["measure"]] += r["n"]
    _share(out, "response", "response_share")
    return _share(out, "resolution", "resolution_share")


SERVICE_TIMES = Report(
    name="service_times",
    label="Response and resolution times",
    label_zh="响应与解决用时分布",
    description="How long tickets waited for their first response and for their resolution "
    "(elapsed time, not working time), in buckets from half an hour to over a week.",
    description_zh="工单从创建到首次响应、到解决所用的时间分布（自然时间，不扣除非工作时间）。",
    params=(
        *date_range(90, "Created", "创建日期"),
        Param("priority", "Priority", "优先级", choices=lambda: choices.options("ticket_priority")),
    ),
    query=_times_query,
    shape=_times_shape,
    columns=(
        Column("label", "Time taken", "用时", "text"),
        Column("response", "First responses", "首次响应", color=BLUE),
        Column("response_share", "Share of responses", "响应占比", "percent"),
        Column("resolution", "Resolutions", "解决", color=GREEN),
        Column("resolution_share", "Share of resolutions", "解决占比", "percent"),
    ),
    series=("response", "resolution"),
    chart="bar",
    group="service",
    order=70,
)


# -- satisfaction ---------------------------------------------------------------------------------

SATISFACTION_VIEWS = (
    ("score", "Score distribution", "评分分布"),
    ("month", "Per month", "按月趋势"),
    ("agent", "Per assignee", "按处理人"),
)
SATISFIED = 4


def _satisfaction_query(p: Mapping[str, Any]) -> Any:
    view = p.get("view") or "score"
    score = Interaction.customer_score
    base = [
        Interaction.kind == "follow_up",
        score.is_not(None),
        *within(Interaction.occurred_at, p),
    ]
    measures = (
        func.count(Interaction.id).label("followups"),
        func.avg(score).label("average"),
        func.sum(case((score >= SATISFIED, 1), else_=0)).label("satisfied"),
    )
    if view == "month":
        key = month(Interaction.occurred_at)
        stmt = select(key.label("value"), *measures).group_by(key)
    elif view == "agent":
        assignee = aliased(User, name="assignee")
        stmt = (
            select(ServiceTicket.assignee_id.label("value"), assignee.name.label("name"), *measures)
            .select_from(Interaction)
            .outerjoin(ServiceTicket, ServiceTicket.id == Interaction.ticket_id)
            .outerjoin(assignee, assignee.id == ServiceTicket.assignee_id)
            .group_by(ServiceTicket.assignee_id, assignee.name)
        )
    else:
        stmt = select(score.label("value"), *measures).group_by(score)
    return through_customers(stmt, Customer.id == Interaction.customer_id).where(*base)


def _satisfaction_shape(
    rows: list[Mapping[str, Any]], p: Mapping[str, Any]
) -> list[dict[str, Any]]:
    view = p.get("view") or "score"
    found = {r["value"]: dict(r) for r in rows}
    if view == "score":
        out = [
            {**(found.get(s) or {"followups": 0}), "value": s, "label": f"{s} ★"}
            for s in range(5, 0, -1)
        ]
        _share(out, "followups")
    elif view == "month":
        keys = months(p) or sorted(found)
        out = [{**(found.get(k) or {"followups": 0}), "value": k, "label": k} for k in keys]
    else:
        out = sorted(
            ({**r, "label": r["name"] or _("Unassigned")} for r in found.values()),
            key=lambda r: -(r["average"] or 0),
        )
    for r in out:
        n = r.get("followups") or 0
        r["satisfied_share"] = (r.get("satisfied") or 0) / n if n else None
        r.setdefault("average", None)
    return out


def _satisfaction_columns(p: Mapping[str, Any]) -> tuple[Column, ...]:
    view = p.get("view") or "score"
    first = {
        "score": Column("label", "Customer score", "客户评分", "text"),
        "month": Column("label", "Month", "月份", "text"),
        "agent": Column("label", "Assignee", "处理人", "text"),
    }[view]
    if view == "score":
        return (
            first,
            Column("followups", "Follow-ups", "回访数", color=BLUE),
            Column("share", "Share", "占比", "percent"),
        )
    return (
        first,
        Column("followups", "Follow-ups", "回访数"),
        Column("average", "Average score (1-5)", "平均评分（1-5）", "number", color=BLUE),
        Column("satisfied_share", "Satisfied (4-5)", "满意率（4-5分）", "percent"),
    )


SATISFACTION = Report(
    name="satisfaction",
    label="Satisfaction from follow-ups",
    label_zh="回访满意度",
    description="The customers' own scores (1-5) given in follow-ups (回访): their distribution, "
    "the monthly average and the average per ticket assignee.",
    description_zh="回访中客户本人给出的满意度评分（1-5分）：分布、月度平均分及按工单处理人的平均分"
    "。",
    params=(
        *date_range(365),
        Param("view", "View", "视图", choices=SATISFACTION_VIEWS, default="score"),
    ),
    query=_satisfaction_query,
    shape=_satisfaction_shape,
    columns=_satisfaction_columns,
    series=lambda p: ("followups",) if (p.get("view") or "score") == "score" else ("average",),
    chart=lambda p: {"month": "line", "agent": "hbar"}.get(p.get("view") or "", "bar"),
    group="service",
    order=80,
)


# -- service funnel -------------------------------------------------------------------------------


def _funnel_query(p: Mapping[str, Any]) -> Any:
    def history(*conditions: Any) -> Any:
        return exists().where(
            WorkflowHistory.subject_type == TICKET,
            WorkflowHistory.subject_id == ServiceTicket.id,
            *conditions,
        )

    def follow_up(*conditions: Any) -> Any:
        return exists().where(
            Interaction.ticket_id == ServiceTicket.id, Interaction.kind == "follow_up", *conditions
        )

    resolved = history(WorkflowHistory.to_state.in_(_states("done")))
    followed = and_(resolved, follow_up())
    satisfied = and_(resolved, follow_up(Interaction.customer_score >= SATISFIED))
    return through_customers(
        select(
            func.count(ServiceTicket.id).label("opened"),
            func.sum(case((history(), 1), else_=0)).label("responded"),
            func.sum(case((resolved, 1), else_=0)).label("resolved"),
            func.sum(case((followed, 1), else_=0)).label("followed"),
            func.sum(case((satisfied, 1), else_=0)).label("satisfied"),
        ).select_from(ServiceTicket),
        Customer.id == ServiceTicket.customer_id,
    ).where(*within(ServiceTicket.created_at, p))


FUNNEL_STEPS = (
    ("opened", "Opened", "已受理"),
    ("responded", "Responded", "已响应"),
    ("resolved", "Resolved or closed", "已解决/关闭"),
    ("followed", "Followed up", "已回访"),
    ("satisfied", "Satisfied (4-5)", "客户满意（4-5分）"),
)


def _funnel_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    from core.i18n import pick

    totals = rows[0] if rows else {}
    first = int(totals.get("opened") or 0)
    out = []
    for key, label, label_zh in FUNNEL_STEPS:
        n = int(totals.get(key) or 0)
        out.append(
            {"value": key, "label": pick(label, label_zh), "tickets": n, "rate": n / first}
            if first
            else {"value": key, "label": pick(label, label_zh), "tickets": n, "rate": None}
        )
    return out if first else []


def _funnel_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    step = row.get("value")
    if step == "opened":
        return "/tickets/"
    if step == "responded":
        states = [s.name for s in _ticket_workflow().states if s.name != "new"]
        return _url("/tickets/", state=states)
    if step == "resolved":
        return _url("/tickets/", state=_states("done"))
    return None


SERVICE_FUNNEL = Report(
    name="service_funnel",
    label="Service funnel",
    label_zh="服务漏斗",
    description="Of the tickets opened in the period: how many were responded to (left the "
    "state new), were resolved at least once, were then followed up, and left the customer "
    "satisfied (a follow-up scored 4 or 5).",
    description_zh="期间受理的工单中：已响应（离开新建状态）、曾经解决、解决后已回访，"
    "以及客户满意（回访评分4或5分）的数量与比例。",
    params=date_range(90, "Created", "创建日期"),
    query=_funnel_query,
    shape=_funnel_shape,
    columns=(
        Column("label", "Step", "环节", "text"),
        Column("tickets", "Tickets", "工单数"),
        Column("rate", "Of opened", "占受理比例", "percent"),
    ),
    series=("tickets",),
    chart="funnel",
    drill=_funnel_drill,
    group="service",
    order=90,
)


# -- channel performance --------------------------------------------------------------------------

CHANNEL_MEASURES = (
    ("customers", "Customers", "客户数"),
    ("revenue", "Revenue", "收入"),
    ("tickets", "Tickets", "工单数"),
    ("conflicts", "Conflicts", "冲突客户数"),
)


def _channels_query(p: Mapping[str, Any]) -> Any:
    from core.channels import claimants, conflicted
    from core.tenancy import require_company

    company_id = require_company()
    own = (
        select(
            Customer.channel_id.label("channel_id"),
            func.count(Customer.id).label("customers"),
            func.coalesce(func.sum(Customer.revenue), 0).label("revenue"),
        )
        .group_by(Customer.channel_id)
        .subquery("own")
    )
    tickets = (
        select(Customer.channel_id.label("channel_id"), func.count(ServiceTicket.id).label("n"))
        .join(Customer, Customer.id == ServiceTicket.customer_id)
        .where(*within(ServiceTicket.created_at, p))
        .group_by(Customer.channel_id)
        .subquery("tickets")
    )
    who, bad = claimants(company_id), conflicted(company_id)
    conflicts = (
        select(who.c.channel_id.label("channel_id"), func.count(Customer.id).label("n"))
        .join(bad, bad.c.customer_id == who.c.customer_id)
        .join(Customer, Customer.id == who.c.customer_id)
        .group_by(who.c.channel_id)
        .subquery("conflicts")
    )
    stmt = (
        select(
            Channel.id.label("value"),
            Channel.name.label("label"),
            func.coalesce(own.c.customers, 0).label("customers"),
            func.coalesce(own.c.revenue, 0).label("revenue"),
            func.coalesce(tickets.c.n, 0).label("tickets"),
            func.coalesce(conflicts.c.n, 0).label("conflicts"),
        )
        .outerjoin(own, own.c.channel_id == Channel.id)
        .outerjoin(tickets, tickets.c.channel_id == Channel.id)
        .outerjoin(conflicts, conflicts.c.channel_id == Channel.id)
        .order_by(Channel.name, Channel.id)
    )
    if p.get("type"):
        stmt = stmt.where(Channel.type == p["type"])
    return stmt


def _channels_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = [dict(r) for r in rows]
    for r in out:
        r["revenue_per_customer"] = r["revenue"] / r["customers"] if r["customers"] else None
    key = p.get("measure") or "customers"
    return sorted(out, key=lambda r: -float(r[key] or 0))


def _channels_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    if series == "conflicts":
        return _url("/channels/conflicts", channel=row["value"])
    if series == "tickets":
        return None  # the ticket list has no channel filter
    return _url("/customers/", channel_id=row["value"])


CHANNELS = Report(
    name="channels",
    label="Channel performance",
    label_zh="渠道绩效",
    description="Per channel: its own customers and their revenue of the last 12 months, the "
    "tickets of those customers (opened in the period) and the customers in conflict it "
    "claims.",
    description_zh="各渠道：自有客户数及其近12个月收入、这些客户在期间内的工单数，以及该渠道涉及冲突"
    "的客户数。",
    params=(
        Param("measure", "Chart", "图表指标", choices=CHANNEL_MEASURES, default="customers"),
        Param("type", "Channel type", "渠道类型", choices=lambda: choices.options("channel_type")),
        *date_range(None, "Tickets created", "工单创建日期"),
    ),
    query=_channels_query,
    shape=_channels_shape,
    columns=(
        Column("label", "Channel", "渠道", "text"),
        Column("customers", "Customers", "客户数", color=BLUE),
        Column("revenue", "Revenue (12 months)", "近12个月收入", "money", color=GREEN),
        Column("revenue_per_customer", "Revenue per customer", "客均收入", "money"),
        Column("tickets", "Tickets", "工单数", color=ORANGE),
        Column("conflicts", "Customers in conflict", "冲突客户数", color=RED),
    ),
    series=lambda p: (p.get("measure") or "customers",),
    chart="hbar",
    drill=_channels_drill,
    roles=("admin", "manager"),
    group="channels",
    order=100,
)


REPORTS = (
    CUSTOMERS,
    TIER_MOVEMENT,
    NEW_LOST,
    INTERACTIONS,
    TICKETS,
    SLA,
    SERVICE_TIMES,
    SATISFACTION,
    SERVICE_FUNNEL,
    CHANNELS,
)
