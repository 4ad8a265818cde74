"""Car dealerships (汽车经销商) for Guanxi: leads ranked by a weighted buyer-value score, the
test-drive workflow, a per-vehicle report.

An example third-party plugin: an installed package found through the ``guanxi.plugins``
entry point, importing only ``core.extend``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, func, select

from core.extend import (
    Field,
    Manifest,
    MenuItem,
    Panel,
    Report,
    ReportColumn,
    Setting,
    State,
    Transition,
    Workflow,
    hookimpl,
    plugin_settings,
)
from guanxi_dealer.models import DealerLead
from guanxi_dealer.scoring import CRITERIA

manifest = Manifest(
    name="dealer",
    label="Car dealership",
    label_zh="汽车经销商",
    version="0.1.0",
    core=">=0.1,<1",
    description="Leads ranked by buyer value, test drives, sales per vehicle.",
    settings=(
        *(
            Setting(
                f"weight_{name}",
                "integer",
                f"Weight: {label}",
                f"权重：{label_zh}",
                default=weight,
                min=0,
                max=100,
            )
            for name, label, label_zh, weight in CRITERIA
        ),
        Setting(
            "max_discount",
            "integer",
            "Largest discount (%)",
            "最大折扣（%）",
            default=10,
            min=0,
            max=50,
            help="A sale below list price less this share is refused.",
            help_zh="低于指导价减去此比例的成交将被拒绝。",
        ),
    ),
)


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "cars_owned",
            "integer",
            "Cars bought before",
            "以往购车数",
            min=0,
            max=50,
            help="Counts towards the buyer-value score.",
        ),
    ]


def _within_discount(lead: DealerLead, inputs: Any) -> str | None:
    """Guard of "sell": the offer must be within the company's largest discount."""
    limit = plugin_settings("dealer", lead.company_id)["max_discount"]
    floor = lead.list_price * (100 - limit) / 100
    if lead.offer is None or lead.offer < floor:
        return f"offer below list price less {limit}% ({floor:.0f})"
    return None


@hookimpl
def guanxi_workflows() -> list[Workflow]:
    return [
        Workflow(
            name="dealer_lead",
            model=DealerLead,
            initial="new",
            label="Test drive",
            label_zh="试驾流程",
            states=(
                State("new", "New", "新线索"),
                State("booked", "Test drive booked", "已预约试驾"),
                State("driven", "Test driven", "已试驾"),
                State("sold", "Sold", "已成交", category="done"),
                State("lost", "Lost", "已流失", category="cancelled"),
            ),
            transitions=(
                Transition("book", ("new",), "booked", "Book test drive", "预约试驾"),
                Transition("drive", ("booked",), "driven", "Test drive done", "完成试驾"),
                Transition("sell", ("driven",), "sold", "Sell", "成交", guard=_within_discount),
                Transition(
                    "lose", ("new", "booked", "driven"), "lost", "Lost", "流失", inputs=("comment",)
                ),
            ),
        )
    ]


def leads_per_vehicle(params: Any) -> Any:
    """One GROUP BY: leads, test drives and sales per vehicle, with the average score."""
    driven = case((DealerLead.state.in_(("driven", "sold")), 1), else_=0)
    sold = case((DealerLead.state == "sold", 1), else_=0)
    return (
        select(
            DealerLead.vehicle.label("label"),
            func.count(DealerLead.id).label("leads"),
            func.sum(driven).label("test_drives"),
            func.sum(sold).label("sold"),
            func.round(func.avg(DealerLead.score), 1).label("avg_score"),
        )
        .group_by(DealerLead.vehicle)
        .order_by(DealerLead.vehicle)
    )


@hookimpl
def guanxi_reports() -> list[Report]:
    return [
        Report(
            name="dealer_vehicles",
            label="Leads, test drives and sales per vehicle",
            label_zh="各车型线索、试驾与成交",
            query=leads_per_vehicle,
            columns=(
                ReportColumn("label", "Vehicle", "车型", "text"),
                ReportColumn("leads", "Leads", "线索"),
                ReportColumn("test_drives", "Test drives", "试驾"),
                ReportColumn("sold", "Sold", "成交"),
                ReportColumn("avg_score", "Average buyer value", "平均客户价值"),
            ),
            series=("leads", "test_drives", "sold"),
            chart="bar",
        )
    ]


@hookimpl
def guanxi_blueprints() -> list[Any]:
    from guanxi_dealer.views import bp

    return [bp]


@hookimpl
def guanxi_menu_items(company: Any) -> list[MenuItem]:
    return [MenuItem("dealer.index", "Leads", "购车线索", order=25)]


@hookimpl
def guanxi_record_panels(subject_type: str, subject: Any) -> list[Panel]:
    if subject_type != "customer":
        return []
    from guanxi_dealer.views import customer_panel

    return [Panel("Car leads", lambda: customer_panel(subject), "购车线索", order=60)]
