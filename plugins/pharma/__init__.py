"""Pharma: hospitals and doctors, dynamic doctor tiering, visit quotas, rep KPIs (DOMAIN §5).

This first version adds the hospital and doctor archive fields and the pharma customer kinds
and channel types; tiering and visit quotas arrive with their issue.
"""

from __future__ import annotations

from typing import Any

from core.extend import Choice, Field, Manifest, hookimpl

manifest = Manifest(
    name="pharma",
    label="Pharma",
    label_zh="医药",
    version="0.1.0",
    depends=("sales",),
    description="Hospitals and doctors, doctor tiering, visit quotas, rep KPIs.",
)

GRADES = (
    ("3a", "Grade III-A", "三级甲等"),
    ("3b", "Grade III-B", "三级乙等"),
    ("2a", "Grade II-A", "二级甲等"),
    ("2b", "Grade II-B", "二级乙等"),
    ("1", "Grade I", "一级"),
    ("none", "Ungraded", "未定级"),
)
TITLES = (
    ("chief", "Chief physician", "主任医师"),
    ("associate", "Associate chief", "副主任医师"),
    ("attending", "Attending physician", "主治医师"),
    ("resident", "Resident", "住院医师"),
)


@hookimpl
def guanxi_choices() -> list[Choice]:
    return [
        Choice("customer_kind", "hospital", "Hospital", "医院"),
        Choice("customer_kind", "doctor", "Doctor", "医生"),
        Choice("customer_kind", "pharmacy", "Retail pharmacy", "零售药店"),
        Choice("customer_kind", "drug_distributor", "Drug distributor", "医药经销商"),
        Choice("channel_type", "hospital", "Hospital", "医院"),
        Choice("channel_type", "retail_pharmacy", "Retail pharmacy", "零售药店"),
        Choice("channel_type", "drug_agent", "Drug agent", "药品代理商"),
    ]


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "hospital_grade",
            "choice",
            "Hospital grade",
            "医院等级",
            choices=GRADES,
            indexed=True,
        ),
        Field("customer", "beds", "integer", "Beds", "床位数", min=0, max=20000),
        Field("customer", "department", "string", "Department", "科室", max_length=60),
        Field("customer", "title", "choice", "Professional title", "职称", choices=TITLES),
        Field(
            "customer",
            "prescription_potential",
            "integer",
            "Prescription potential (0–100)",
            "处方潜力（0–100）",
            min=0,
            max=100,
        ),
    ]


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    """Turn the demo archive into hospitals, pharmacies and the doctors who work there."""
    import random

    from core import fields
    from core.extend import db
    from core.models import Customer
    from core.plugins import current

    rng = random.Random(f"pharma-{company.code}")
    declared = current().registry.fields_for("customer", ["pharma"])
    customers = db.session.scalars(db.select(Customer).order_by(Customer.id)).all()
    for n, customer in enumerate(customers):
        if customer.is_organization:
            city = fake.city_name()
            if n % 4 == 3:
                customer.kind, customer.name = (
                    "pharmacy",
                    f"{city}{rng.choice(['大药房', '百姓药房', '益丰药房'])}",
                )
                values: dict[str, Any] = {}
            else:
                customer.kind = "hospital"
                customer.name = (
                    f"{city}{rng.choice(['第一人民医院', '中医院', '中心医院', '妇幼保健院'])}"
                )
                values = {
                    "pharma__hospital_grade": rng.choice([g[0] for g in GRADES]),
                    "pharma__beds": rng.choice([200, 500, 800, 1500, 3000]),
                }
        else:
            customer.kind = "doctor"
            values = {
                "pharma__department": rng.choice(["心内科", "肿瘤科", "内分泌科", "呼吸科"]),
                "pharma__title": rng.choice([t[0] for t in TITLES]),
                "pharma__prescription_potential": rng.randint(10, 100),
            }
        if values:
            fields.save(declared, customer.id, values)
    db.session.flush()
