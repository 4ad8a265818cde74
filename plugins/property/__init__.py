"""Property management: units and residents, complaints with dispatch, follow-up (DOMAIN §3).

This first version marks residents as owners or tenants with their unit, and where in the
estate a ticket's problem is; estates, complaint classifier and dispatch arrive with their issue.
"""

from __future__ import annotations

from typing import Any

from core.extend import Choice, Field, Manifest, hookimpl

manifest = Manifest(
    name="property",
    label="Property management",
    label_zh="物业管理",
    version="0.1.0",
    depends=("surveys",),
    description="Estates, units, residents, complaints with dispatch and SLA, follow-up.",
)

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
        Choice("ticket_type", "property_complaint", "Property complaint", "物业投诉"),
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
        ),
        Field("customer", "unit_label", "string", "Unit", "房号", max_length=40),
        Field("service_ticket", "place", "choice", "Place", "问题位置", choices=PLACES),
    ]


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
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
