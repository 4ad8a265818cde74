"""Sales: opportunity funnel, orders and receivables, customer value, targets (DOMAIN §1, §2, §4).

The plugin is four parts, each a module that offers some of the functions below; every hook of
the plugin gathers what the parts return, in this order:

- :mod:`plugins.sales.funnel` -- stages (company data), opportunities on the workflow engine,
  the buying climate, call outcomes, the kanban, weighted forecast;
- :mod:`plugins.sales.orders` -- orders, payments, receivables ageing, channel credit, overdue
  reminders on the clock engine;
- :mod:`plugins.sales.value` -- RFM, historical/current/potential value, LTV, ABC classes, the
  attack/defend quadrant, computed set-based by a job and on demand;
- :mod:`plugins.sales.targets` -- targets per rep and team, attainment and the attack/defend
  scorecard.

Models live in :mod:`plugins.sales.models`, routes on :data:`plugins.sales.blueprint.bp`.
"""

from __future__ import annotations

from typing import Any

from core.extend import Field, Manifest, Parts, hookimpl
from plugins.sales import funnel, orders, targets, value
from plugins.sales.blueprint import bp

manifest = Manifest(
    name="sales",
    label="Sales",
    label_zh="销售",
    version="0.2.0",
    description="Opportunity funnel, orders, receivables, customer value and targets.",
    description_zh="商机漏斗、订单与回款、客户价值与销售目标。",
)

PARTS = Parts(funnel, orders, value, targets)
_gather, _each = PARTS.gather, PARTS.each


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "purchase_potential",
            "decimal",
            "Annual purchase potential (CNY)",
            "年采购潜力（元）",
            min=0,
            max=10**12,
            indexed=True,
        ),
        Field(
            "customer",
            "share_of_wallet",
            "integer",
            "Our share of wallet (%)",
            "客户份额（%）",
            min=0,
            max=100,
        ),
        *_gather("fields"),
    ]


@hookimpl
def guanxi_choices() -> list[Any]:
    return _gather("choices")


@hookimpl
def guanxi_workflows() -> list[Any]:
    return _gather("workflows")


@hookimpl
def guanxi_obligation_kinds() -> list[Any]:
    return _gather("obligation_kinds")


@hookimpl
def guanxi_jobs() -> list[Any]:
    return _gather("jobs")


@hookimpl
def guanxi_blueprints() -> list[Any]:
    return [bp]


@hookimpl
def guanxi_api_resources() -> list[Any]:
    return _gather("resources")


@hookimpl
def guanxi_reports() -> list[Any]:
    return _gather("reports")


@hookimpl
def guanxi_menu_items(company: Any) -> list[Any]:
    return _gather("menu_items", company)


@hookimpl
def guanxi_dashboard_widgets(company: Any, user: Any) -> list[Any]:
    return _gather("widgets", company, user)


@hookimpl
def guanxi_record_panels(subject_type: str, subject: Any) -> list[Any]:
    return _gather("panels", subject_type, subject)


@hookimpl
def guanxi_timeline(customer: Any) -> list[Any]:
    return _gather("timeline", customer)


@hookimpl
def guanxi_after_transition(
    subject: Any, to_state: str, from_state: str, at: Any, inputs: Any
) -> None:
    _each("after_transition", subject, from_state, to_state, at, inputs)


@hookimpl
def guanxi_plugin_enabled(company: Any) -> None:
    _each("enabled", company)


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    from plugins import demo_values

    demo_values(
        "customer",
        {
            "sales__purchase_potential": lambda rng: rng.choice([50000, 200000, 1000000, 5000000]),
            "sales__share_of_wallet": lambda rng: rng.randint(0, 100),
        },
    )
    _each("demo", company, fake)
