"""Pharma rep KPIs and the hospital sales early warning (销售预警, DOMAIN §5).

Four reports on the core report engine (:mod:`core.reports`), each ONE set-based statement
whatever the number of hospitals, reps or orders (the company scope and the record rules apply
as to every report), each with a chart and a drill-down into the order or customer list:

``pharma_hospital_orders`` -- orders by hospital
    Orders (cancelled ones left out) of customers of kind ``hospital`` per month or quarter of
    their date, by hospital or by the hospital grade (``pharma__hospital_grade``); one column
    per period, the total amount and the number of orders.
``pharma_sales_warning`` -- sales early warning
    Hospitals whose orders in the chosen dates fell by more than the chosen threshold (default
    20 %) against the period of equal length just before: both amounts, the fall and the change.
    A hospital with orders before and none now is at -100 %; one without orders before is not
    listed (nothing fell).
``pharma_rep_activity`` -- activity per rep
    Orders amount and count per sales rep (the order's owner) and month.
``pharma_hospital_doctors`` -- doctors per hospital
    How many doctors are linked to each hospital through the doctor field ``pharma__hospital``
    (a ``customer`` extension field), with the hospital's grade and rep.

The dashboard box "Sales early warning" (managers and admins) lists the five hospitals whose
orders fell most in the last 90 days against the 90 before. The demo makes sure some hospitals
of demo-pharma fell (:func:`demo`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from flask import render_template, url_for
from sqlalchemy import String, and_, case, cast, func, select
from sqlalchemy.orm import aliased

from core import fields as ext
from core.extend import Panel, Report, ReportColumn, ReportParam, db
from core.models import Customer, User
from core.reports import months as report_months
from core.reports import today
from plugins.pharma import models  # noqa: F401  (the tables are known before any part runs)
from plugins.pharma.blueprint import is_manager
from plugins.sales.models import Order
from plugins.sales.web_orders import list_url, twelve_months

#: Customer kind of hospitals.
HOSPITAL = "hospital"
#: Thresholds (per cent of fall) the early warning offers; the default is 20.
THRESHOLDS = tuple((str(n), f"{n} %", f"{n}%") for n in (10, 20, 30, 40, 50, 75, 90))
DEFAULT_THRESHOLD = 20
#: Days of the early warning's default period (and of the dashboard box).
WARNING_DAYS = 90
PERIODS = (("month", "Month", "月"), ("quarter", "Quarter", "季度"))
DIMENSIONS = (("hospital", "Hospital", "医院"), ("grade", "Hospital grade", "医院等级"))
COLORS = ("#2b6cb0", "#2f855a", "#dd6b20", "#6b46c1", "#c53030", "#2c7a7b", "#b7791f")
BLUE, ORANGE, RED = "#2b6cb0", "#dd6b20", "#c53030"
ZERO = Decimal(0)


def _ext() -> Any:
    """The pharma side table of customers (grade, beds, hospital of a doctor …)."""
    return ext.side_table("pharma", "customer")


def _grade_label(value: str | None) -> str:
    from core.i18n import pick
    from plugins.pharma import GRADES

    for key, label, label_zh in GRADES:
        if key == value:
            return pick(label, label_zh)
    return pick("No grade", "未填等级")


def _money(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else ZERO


def _month_of() -> Any:
    """SQL: ``YYYY-MM`` of the order date (a date: no time zone involved)."""
    return func.substr(cast(Order.ordered_on, String), 1, 7)


def _orders(stmt: Any) -> Any:
    """Orders that count: not cancelled, of customers of kind hospital."""
    return stmt.where(Order.state != "cancelled", Customer.kind == HOSPITAL)


def _in(p: Mapping[str, Any], stmt: Any) -> Any:
    if p.get("start"):
        stmt = stmt.where(Order.ordered_on >= p["start"])
    if p.get("end"):
        stmt = stmt.where(Order.ordered_on <= p["end"])
    return stmt


def _month_range(key: str) -> tuple[date, date]:
    """First and last day of a period key: ``2026-11`` (a month) or ``2026-Q4`` (a quarter)."""
    year = int(key[:4])
    if "Q" in key:
        first_month = (int(key[-1]) - 1) * 3 + 1
        months = 3
    else:
        first_month, months = int(key[5:7]), 1
    first = date(year, first_month, 1)
    after_month = first_month + months
    after = date(year + (after_month - 1) // 12, (after_month - 1) % 12 + 1, 1)
    return first, after - timedelta(days=1)


def _period_key(month: str, period: str) -> str:
    if period != "quarter":
        return month
    return f"{month[:4]}-Q{(int(month[5:7]) + 2) // 3}"


def _periods(p: Mapping[str, Any], found: Sequence[str]) -> list[str]:
    """The period keys of the chosen dates (all months, folded into quarters), else found."""
    period = p.get("period") or "month"
    keys: list[str] = []
    for month in report_months(p) or sorted(found):
        key = _period_key(month, period)
        if key not in keys:
            keys.append(key)
    return keys


def _col(key: str) -> str:
    return "p" + key.replace("-", "_")


def _clip(p: Mapping[str, Any], key: str) -> dict[str, str]:
    """``from``/``to`` of a period key, within the chosen dates."""
    first, last = _month_range(key)
    if p.get("start") and p["start"] > first:
        first = p["start"]
    if p.get("end") and p["end"] < last:
        last = p["end"]
    return {"from": first.isoformat(), "to": last.isoformat()}


# -- orders by hospital -----------------------------------------------------------------------


def _hospital_orders_query(p: Mapping[str, Any]) -> Any:
    grade = _ext().c.hospital_grade
    month = _month_of().label("month")
    if (p.get("dimension") or "hospital") == "grade":
        keys = [grade.label("value")]
        group = [grade]
    else:
        keys = [Customer.id.label("value"), Customer.name.label("name"), grade.label("grade")]
        group = [Customer.id, Customer.name, grade]
    stmt = (
        select(
            *keys,
            month,
            func.count(Order.id).label("orders"),
            func.coalesce(func.sum(Order.amount), 0).label("amount"),
        )
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(_ext(), _ext().c.id == Customer.id)
        .group_by(*group, month)
    )
    return _in(p, _orders(stmt))


def _hospital_orders_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    by_grade = (p.get("dimension") or "hospital") == "grade"
    period = p.get("period") or "month"
    keys = _periods(p, [r["month"] for r in rows])
    out: dict[Any, dict[str, Any]] = {}
    for r in rows:
        row = out.setdefault(
            r["value"],
            {
                "value": r["value"],
                "label": _grade_label(r["value"]) if by_grade else r["name"],
                "grade": None if by_grade else _grade_label(r["grade"]),
                "orders": 0,
                "amount": ZERO,
                **{_col(k): ZERO for k in keys},
            },
        )
        col = _col(_period_key(r["month"], period))
        if col in row:
            row[col] += _money(r["amount"])
        row["orders"] += int(r["orders"])
        row["amount"] += _money(r["amount"])
    return sorted(out.values(), key=lambda r: (-r["amount"], str(r["label"])))


def _hospital_orders_columns(p: Mapping[str, Any]) -> list[ReportColumn]:
    by_grade = (p.get("dimension") or "hospital") == "grade"
    keys = _periods(p, [])
    columns = [
        ReportColumn("label", *(("Grade", "等级") if by_grade else ("Hospital", "医院")), "text")
    ]
    if not by_grade:
        columns.append(ReportColumn("grade", "Grade", "等级", "text"))
    columns += [
        ReportColumn(_col(k), k, k, "money", color=COLORS[n % len(COLORS)])
        for n, k in enumerate(keys)
    ]
    columns += [
        ReportColumn("orders", "Orders", "订单数"),
        ReportColumn("amount", "Amount", "金额", "money"),
    ]
    return columns


def _hospital_orders_series(p: Mapping[str, Any]) -> list[str]:
    return [_col(k) for k in _periods(p, [])]


def _hospital_orders_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    if (p.get("dimension") or "hospital") == "grade":
        query = f"?kind={HOSPITAL}"
        if row.get("value"):
            query += f"&pharma__hospital_grade={row['value']}"
        return url_for("customers.index") + query
    dates = {
        "from": p["start"].isoformat() if p.get("start") else None,
        "to": p["end"].isoformat() if p.get("end") else None,
    }
    for key in _periods(p, []):
        if series == _col(key):
            dates = _clip(p, key)
    return list_url(customer=row["value"], **dates) + "&state=open&state=paid"


HOSPITAL_ORDERS = Report(
    name="pharma_hospital_orders",
    label="Orders by hospital",
    label_zh="医院订单统计",
    description="Orders of hospitals (cancelled ones left out) per month or quarter, by hospital "
    "or by hospital grade: the amount per period, the total and the number of orders.",
    description_zh="各医院的订单（不含已取消），按月或按季度，按医院或医院等级统计：各期金额、合计与订单数。",
    params=(
        ReportParam("dimension", "By", "维度", choices=DIMENSIONS, default="hospital"),
        ReportParam("period", "Per", "周期", choices=PERIODS, default="month"),
        *twelve_months(),
    ),
    query=_hospital_orders_query,
    shape=_hospital_orders_shape,
    columns=_hospital_orders_columns,
    series=_hospital_orders_series,
    chart="hstacked",
    drill=_hospital_orders_drill,
    group="pharma",
    order=300,
)


# -- sales early warning ----------------------------------------------------------------------


def warning_periods(p: Mapping[str, Any]) -> tuple[date, date, date, date]:
    """``(previous start, previous end, start, end)``: the chosen dates (default: the last
    :data:`WARNING_DAYS` days) and the period of equal length just before them."""
    end = p.get("end") or today()
    start = p.get("start") or end - timedelta(days=WARNING_DAYS - 1)
    if start > end:
        start, end = end, start
    length = (end - start).days + 1
    previous_end = start - timedelta(days=1)
    return previous_end - timedelta(days=length - 1), previous_end, start, end


def _threshold(p: Mapping[str, Any]) -> int:
    try:
        return int(p.get("threshold") or DEFAULT_THRESHOLD)
    except (TypeError, ValueError):
        return DEFAULT_THRESHOLD


def _warning_query(p: Mapping[str, Any]) -> Any:
    previous_start, _previous_end, start, end = warning_periods(p)
    fall = _threshold(p)
    current = func.coalesce(
        func.sum(case((Order.ordered_on >= start, Order.amount), else_=0)), 0
    ).label("current")
    previous = func.coalesce(
        func.sum(case((Order.ordered_on < start, Order.amount), else_=0)), 0
    ).label("previous")
    owner = aliased(User)
    grade = _ext().c.hospital_grade
    stmt = (
        select(
            Customer.id.label("value"),
            Customer.name.label("name"),
            grade.label("grade"),
            Customer.owner_id.label("owner_id"),
            owner.name.label("owner"),
            previous,
            current,
        )
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(_ext(), _ext().c.id == Customer.id)
        .outerjoin(owner, owner.id == Customer.owner_id)
        .where(Order.ordered_on >= previous_start, Order.ordered_on <= end)
        .group_by(Customer.id, Customer.name, grade, Customer.owner_id, owner.name)
        .having(
            and_(
                previous > 0,
                # current < previous × (1 − fall/100), in whole numbers
                current * 100 < previous * (100 - fall),
            )
        )
    )
    return _orders(stmt)


def _warning_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    out = []
    for r in rows:
        previous, current = _money(r["previous"]), _money(r["current"])
        out.append(
            {
                "value": r["value"],
                "label": r["name"],
                "grade": _grade_label(r["grade"]),
                "owner": r["owner"] or "",
                "previous": previous,
                "current": current,
                "fall": previous - current,
                "change": float((current - previous) / previous) if previous else None,
            }
        )
    return sorted(out, key=lambda r: (r["change"], -r["previous"], str(r["label"])))


def _warning_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    previous_start, previous_end, start, end = warning_periods(p)
    low, high = previous_start, end
    if series == "previous":
        high = previous_end
    elif series == "current":
        low = start
    query = {"customer": row["value"], "from": low.isoformat(), "to": high.isoformat()}
    return list_url(**query) + "&state=open&state=paid"


def _warning_default_start() -> date:
    return today() - timedelta(days=WARNING_DAYS - 1)


SALES_WARNING = Report(
    name="pharma_sales_warning",
    label="Sales early warning",
    label_zh="销售预警",
    description="Hospitals whose orders (cancelled ones left out) in the chosen dates fell by "
    "more than the threshold against the period of equal length just before: both amounts, "
    "the fall and the change. A hospital with orders before and none now is at -100 %.",
    description_zh="所选日期内订单金额（不含已取消）比之前同样长的时段下降超过阈值的医院：两期金额、"
    "降幅与变化率。之前有订单而本期没有的医院为 -100%。",
    params=(
        ReportParam("start", "Orders from", "订单日期起", "date", default=_warning_default_start),
        ReportParam("end", "Orders to", "订单日期止", "date", default=today),
        ReportParam(
            "threshold",
            "Fall of more than",
            "降幅超过",
            choices=THRESHOLDS,
            default=str(DEFAULT_THRESHOLD),
        ),
    ),
    query=_warning_query,
    shape=_warning_shape,
    columns=(
        ReportColumn("label", "Hospital", "医院", "text"),
        ReportColumn("grade", "Grade", "等级", "text"),
        ReportColumn("owner", "Sales rep", "销售代表", "text"),
        ReportColumn("previous", "Previous period", "上期金额", "money", color=BLUE),
        ReportColumn("current", "This period", "本期金额", "money", color=ORANGE),
        ReportColumn("fall", "Fall", "降幅金额", "money"),
        ReportColumn("change", "Change", "变化率", "percent"),
    ),
    series=("previous", "current"),
    chart="hbar",
    drill=_warning_drill,
    group="pharma",
    order=310,
)


def early_warning(limit: int = 5, threshold: int = DEFAULT_THRESHOLD) -> list[dict[str, Any]]:
    """The hospitals whose orders fell most in the last :data:`WARNING_DAYS` days against the
    days before (one query), as the early-warning report's rows."""
    p: dict[str, Any] = {"threshold": str(threshold)}
    rows = [r._mapping for r in db.session.execute(_warning_query(p))]
    return _warning_shape(rows, p)[:limit]


# -- activity per rep -------------------------------------------------------------------------


def _rep_query(p: Mapping[str, Any]) -> Any:
    month = _month_of().label("month")
    owner = aliased(User)
    stmt = (
        select(
            Order.owner_id.label("value"),
            owner.name.label("name"),
            month,
            func.count(Order.id).label("orders"),
            func.coalesce(func.sum(Order.amount), 0).label("amount"),
        )
        .select_from(Order)
        .join(Customer, Customer.id == Order.customer_id)
        .outerjoin(owner, owner.id == Order.owner_id)
        .where(Order.state != "cancelled")
        .group_by(Order.owner_id, owner.name, month)
    )
    return _in(p, stmt)


def _rep_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    from core.i18n import pick

    keys = _periods(p, [r["month"] for r in rows])
    out: dict[Any, dict[str, Any]] = {}
    for r in rows:
        row = out.setdefault(
            r["value"],
            {
                "value": r["value"],
                "label": r["name"] or pick("No rep", "无负责人"),
                "orders": 0,
                "amount": ZERO,
                **{_col(k): ZERO for k in keys},
                **{"n" + _col(k): 0 for k in keys},
            },
        )
        col = _col(r["month"])
        if col in row:
            row[col] += _money(r["amount"])
            row["n" + col] += int(r["orders"])
        row["orders"] += int(r["orders"])
        row["amount"] += _money(r["amount"])
    return sorted(out.values(), key=lambda r: (-r["amount"], str(r["label"])))


def _rep_columns(p: Mapping[str, Any]) -> list[ReportColumn]:
    keys = _periods({**p, "period": "month"}, [])
    columns = [ReportColumn("label", "Sales rep", "销售代表", "text")]
    for n, k in enumerate(keys):
        columns.append(ReportColumn(_col(k), k, k, "money", color=COLORS[n % len(COLORS)]))
        columns.append(ReportColumn("n" + _col(k), f"{k} orders", f"{k} 订单数"))
    columns += [
        ReportColumn("orders", "Orders", "订单数"),
        ReportColumn("amount", "Amount", "金额", "money"),
    ]
    return columns


def _rep_drill(row: Mapping[str, Any], p: Mapping[str, Any], series: str | None) -> Any:
    if row.get("value") is None:
        return None
    dates = {
        "from": p["start"].isoformat() if p.get("start") else None,
        "to": p["end"].isoformat() if p.get("end") else None,
    }
    for key in _periods({**p, "period": "month"}, []):
        if series in (_col(key), "n" + _col(key)):
            dates = _clip(p, key)
    return list_url(owner=row["value"], **dates) + "&state=open&state=paid"


REP_ACTIVITY = Report(
    name="pharma_rep_activity",
    label="Orders per rep and month",
    label_zh="代表月度订单",
    description="Orders (cancelled ones left out) per sales rep -- the order's owner -- and "
    "month: the amount and the number of orders each month, and the totals.",
    description_zh="按销售代表（订单负责人）和月份统计订单（不含已取消）：每月金额与订单数及合计。",
    params=twelve_months(),
    query=_rep_query,
    shape=_rep_shape,
    columns=_rep_columns,
    series=lambda p: [_col(k) for k in _periods({**p, "period": "month"}, [])],
    chart="hstacked",
    drill=_rep_drill,
    group="pharma",
    order=320,
)


# -- doctors per hospital ---------------------------------------------------------------------


def _doctors_query(p: Mapping[str, Any]) -> Any:
    side = _ext()
    link = side.alias("doctor_link")
    doctor = aliased(Customer)
    owner = aliased(User)
    grade = side.c.hospital_grade
    return (
        select(
            Customer.id.label("value"),
            Customer.name.label("name"),
            grade.label("grade"),
            owner.name.label("owner"),
            func.count(doctor.id).label("doctors"),
        )
        .select_from(Customer)
        .outerjoin(side, side.c.id == Customer.id)
        .outerjoin(owner, owner.id == Customer.owner_id)
        .outerjoin(link, link.c.hospital == Customer.id)
        .outerjoin(doctor, and_(doctor.id == link.c.id, doctor.kind == "doctor"))
        .where(Customer.kind == HOSPITAL)
        .group_by(Customer.id, Customer.name, grade, owner.name)
    )


def _doctors_shape(rows: list[Mapping[str, Any]], p: Mapping[str, Any]) -> list[dict]:
    out = [
        {
            "value": r["value"],
            "label": r["name"],
            "grade": _grade_label(r["grade"]),
            "owner": r["owner"] or "",
            "doctors": int(r["doctors"]),
        }
        for r in rows
    ]
    return sorted(out, key=lambda r: (-r["doctors"], str(r["label"])))


HOSPITAL_DOCTORS = Report(
    name="pharma_hospital_doctors",
    label="Doctors per hospital",
    label_zh="医院医生数",
    description="How many doctors are linked to each hospital (the doctor's Hospital field), "
    "with the hospital's grade and sales rep.",
    description_zh="每家医院关联的医生数（医生的“所属医院”字段），及医院等级与销售代表。",
    query=_doctors_query,
    shape=_doctors_shape,
    columns=(
        ReportColumn("label", "Hospital", "医院", "text"),
        ReportColumn("grade", "Grade", "等级", "text"),
        ReportColumn("owner", "Sales rep", "销售代表", "text"),
        ReportColumn("doctors", "Doctors", "医生数", color=BLUE),
    ),
    series=("doctors",),
    chart="hbar",
    drill=lambda row, p, series: (
        url_for("customers.index") + f"?kind=doctor&pharma__hospital={row['value']}"
    ),
    group="pharma",
    order=330,
)


def reports() -> list[Report]:
    return [HOSPITAL_ORDERS, SALES_WARNING, REP_ACTIVITY, HOSPITAL_DOCTORS]


# -- dashboard --------------------------------------------------------------------------------


def _widget() -> str:
    rows = early_warning()
    return render_template("pharma/kpis/_warning_widget.html", rows=rows, days=WARNING_DAYS)


def widgets(company: Any, user: Any) -> list[Panel]:
    """The early-warning box, for managers and admins."""
    if not is_manager():
        return []
    return [Panel("Sales early warning", _widget, "销售预警", order=25)]


# -- hospital page ----------------------------------------------------------------------------

#: Doctors a hospital's panel names (the rest are behind the link to the filtered list).
PANEL_DOCTORS = 20


def hospital_doctors(hospital_id: int, limit: int = PANEL_DOCTORS) -> tuple[int, list[Any]]:
    """How many doctors are linked to the hospital, and the first ``limit`` by name (two
    queries)."""
    link = _ext()
    base = (
        select(Customer.id, Customer.name)
        .join(link, link.c.id == Customer.id)
        .where(link.c.hospital == hospital_id, Customer.kind == "doctor")
    )
    count = db.session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = db.session.execute(base.order_by(Customer.name, Customer.id).limit(limit)).all()
    return count, rows


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """On a hospital's page: the doctors linked to it through their Hospital field."""
    if subject_type != "customer" or getattr(subject, "kind", None) != HOSPITAL:
        return []

    def render() -> str:
        count, doctors = hospital_doctors(subject.id)
        return render_template(
            "pharma/kpis/_doctors_panel.html", hospital=subject, count=count, doctors=doctors
        )

    return [Panel("Doctors at this hospital", render, "本院医生", order=40)]


# -- demo -------------------------------------------------------------------------------------


def demo(company: Any, fake: Any) -> None:
    """Make sure the early warning shows rows in the demo: for four hospitals (one without
    orders in the last 90 days first, if there is one: it shows -100 %), add paid orders in the
    90 days before, at least twice what they ordered since, so their orders fell by more than
    20 % (the sales demo's orders alone rise and fall at random)."""
    from core.models import Membership
    from plugins.sales import orders as svc

    rng = random.Random(f"pharma-kpis-{company.code}")
    previous_start, previous_end, start, end = warning_periods({})
    amounts = dict(
        db.session.execute(
            _orders(
                select(Customer.id, func.coalesce(func.sum(Order.amount), 0))
                .select_from(Order)
                .join(Customer, Customer.id == Order.customer_id)
                .where(Order.ordered_on >= start, Order.ordered_on <= end)
                .group_by(Customer.id)
                .order_by(Customer.id)
            )
        ).all()
    )
    hospitals = list(
        db.session.scalars(select(Customer).where(Customer.kind == HOSPITAL).order_by(Customer.id))
    )
    if not hospitals:
        return
    admin_id = db.session.scalar(
        select(Membership.user_id).where(Membership.role == "admin").order_by(Membership.id)
    )
    user = db.session.get(User, admin_id) if admin_id else None
    if user is None:
        return
    catalogue = svc.demo_products(company.code)
    idle = [h for h in hospitals if not amounts.get(h.id)]
    busy = [h for h in hospitals if amounts.get(h.id)]
    chosen = idle[:1] + rng.sample(busy, min(4 - len(idle[:1]), len(busy)))
    for hospital in chosen:
        recent = _money(amounts.get(hospital.id))
        before = max(recent * Decimal(2), Decimal(rng.choice([120000, 200000, 350000])))
        for part in (Decimal("0.6"), Decimal("0.4")):
            day = previous_start + timedelta(
                days=rng.randint(0, (previous_end - previous_start).days)
            )
            amount = (before * part).quantize(Decimal(1))
            data = svc.OrderInput(
                customer_id=hospital.id,
                ordered_on=day,
                lines=svc.demo_lines(amount, catalogue, rng),
            )
            order = svc.create_order(data, user, via="demo")
            paid_on = min(previous_end, day + timedelta(days=rng.randint(5, 30)))
            svc.record_payment(order, svc.money(order.amount), paid_on, user, via="demo")
    db.session.flush()
