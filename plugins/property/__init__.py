"""Property management: estates, units and residents, complaints and repairs with dispatch,
SLA, follow-up and root cause, the residents' satisfaction programme (DOMAIN §3).

The plugin adds the resident customer kind and the ticket's place (here), and parts that each
offer some of the functions below; every hook gathers what the parts return, in this order:

- :mod:`plugins.property.complaints` -- the complaint workflow on core tickets, the classifier,
  dispatch rules, SLA clocks, repeat detection, root cause, follow-up closing;
- :mod:`plugins.property.places` -- estates, buildings, units and the residents living there;
- :mod:`plugins.property.web_places` -- the pages that keep estates, classifier and rules;
- :mod:`plugins.property.web_complaints` -- intake, the complaints list, the ticket panel;
- :mod:`plugins.property.public` -- the public complaint form and the tracking page;
- :mod:`plugins.property.reports` -- complaint and satisfaction reports, dashboard widgets;
- :mod:`plugins.property.demo` -- the demo company's estates, residents and complaints.

Models live in :mod:`plugins.property.models`. See docs/property.md.
"""

from __future__ import annotations

from typing import Any

from core.extend import Choice, Field, Manifest, Parts, hookimpl
from plugins.property import (
    complaints,
    demo,
    models,  # noqa: F401
    places,
    public,
    reports,
    web_complaints,
    web_places,
)
from plugins.property.blueprint import bp

manifest = Manifest(
    name="property",
    label="Property management",
    label_zh="物业管理",
    version="0.2.0",
    depends=("surveys",),
    description="Estates, units, residents, complaints with dispatch and SLA, follow-up.",
    description_zh="小区、房屋与住户，投诉派单与时限、回访与根因分析。",
)

PARTS = Parts(complaints, places, web_places, web_complaints, public, reports, demo)
_gather, _each = PARTS.gather, PARTS.each

RESIDENT = (
    ("owner", "Owner", "业主"),
    ("tenant", "Tenant", "租户"),
    ("family", "Family member", "家庭成员"),
)
PLACES = (
    ("home", "Inside the home", "户内"),
    ("common", "Common area", "公共区域"),
    ("parking", "Car park", "停车场"),
    ("outside", "Grounds", "小区环境"),
)


@hookimpl
def guanxi_choices() -> list[Choice]:
    return [
        Choice("customer_kind", "resident", "Resident", "住户"),
        *(Choice("property_resident_role", *r) for r in RESIDENT),
        *_gather("choices"),
    ]


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "resident_type",
            "choice",
            "Resident type",
            "住户类型",
            choices=RESIDENT,
            indexed=True,
            list_column=True,
        ),
        Field("customer", "unit_label", "string", "Unit", "房号", max_length=40, list_column=True),
        Field("service_ticket", "place", "choice", "Place", "问题位置", choices=PLACES),
        *_gather("fields"),
    ]


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
    return [bp, *_gather("blueprints")]


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
def guanxi_interaction_saved(interaction: Any, created: bool) -> None:
    _each("interaction_saved", interaction, created)


@hookimpl
def guanxi_personal_data(customer: Any) -> list[Any]:
    return _gather("personal_data", customer)


@hookimpl
def guanxi_erase_personal_data(customer: Any) -> None:
    _each("erase_personal_data", customer)


@hookimpl
def guanxi_plugin_enabled(company: Any) -> None:
    _each("enabled", company)


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    """Resident types and units on the core's demo customers; then the parts' demo rows."""
    from plugins import demo_values

    demo_values(
        "customer",
        {
            "property__resident_type": lambda rng: rng.choice(
                ["owner", "owner", "tenant", "family"]
            ),
            "property__unit_label": lambda rng: (
                f"{rng.randint(1, 12)}栋{rng.randint(1, 3)}单元"
                f"{rng.randint(1, 30):02d}{rng.randint(1, 4):02d}"
            ),
        },
    )
    demo_values(
        "service_ticket",
        {
            "property__place": lambda rng: rng.choice([p[0] for p in PLACES]),
        },
    )
    _each("demo", company, fake)
