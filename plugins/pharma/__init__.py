"""Pharma: hospitals and doctors, dynamic doctor tiering, visit quotas, rep KPIs (DOMAIN §5).

The plugin adds the hospital and doctor archive fields, the pharma customer kinds and channel
types (here), and parts that each offer some of the functions below; every hook of the plugin
gathers what the parts return, in this order:

- :mod:`plugins.pharma.tiering` -- tier schemes per company (weighted criteria, thresholds or
  deciles, versioned), the set-based recompute with its history, tier override requests;
- :mod:`plugins.pharma.visits` -- visits (interactions with duration, purpose, result, products,
  samples), visit quotas per tier and month on the clock engine, month-end reminders,
  supervision comments, the visit planner and compliance;
- :mod:`plugins.pharma.kpis` -- rep KPIs and the hospital sales early warning.

Models live in :mod:`plugins.pharma.models`, routes on :data:`plugins.pharma.blueprint.bp`.
"""

from __future__ import annotations

from typing import Any

from core.extend import Choice, Field, Manifest, Parts, hookimpl
from plugins.pharma import kpis, tiering, visits
from plugins.pharma.blueprint import bp

manifest = Manifest(
    name="pharma",
    label="Pharma",
    label_zh="医药",
    version="0.2.0",
    depends=("sales",),
    description="Hospitals and doctors, doctor tiering, visit quotas, rep KPIs.",
    description_zh="医院与医生档案、医生分级、拜访指标、代表考核。",
)

PARTS = Parts(tiering, visits, kpis)
_gather, _each = PARTS.gather, PARTS.each


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
        *_gather("choices"),
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
            list_column=True,
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
        Field("customer", "specialty", "string", "Specialty", "专长", max_length=80),
        Field(
            "customer",
            "academic_influence",
            "integer",
            "Academic influence (0–100)",
            "学术影响力（0–100）",
            min=0,
            max=100,
        ),
        Field(
            "customer",
            "adoption",
            "integer",
            "Adoption of our products (0–100)",
            "产品认可度（0–100）",
            min=0,
            max=100,
        ),
        Field(
            "customer",
            "hospital",
            "customer",
            "Hospital",
            "所属医院",
            kinds=("hospital",),
            help="The hospital the doctor works at.",
            list_column=True,
        ),
        *_gather("fields"),
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
                "pharma__specialty": rng.choice(["高血压", "冠心病", "肺癌", "糖尿病", "哮喘"]),
                "pharma__academic_influence": rng.randint(0, 100),
                "pharma__adoption": rng.randint(0, 100),
            }
        if values:
            fields.save(declared, customer.id, values)
    hospitals = [c.id for c in customers if c.kind == "hospital"]
    if hospitals:  # each doctor works at one of the demo hospitals
        fields.save_many(
            declared,
            [
                (c.id, {"pharma__hospital": rng.choice(hospitals)})
                for c in customers
                if c.kind == "doctor"
            ],
        )
    db.session.flush()
    _each("demo", company, fake)
    _each("demo_finish", company, fake)  # a second pass, once every part has its demo rows


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
def guanxi_interaction_saved(interaction: Any, created: bool) -> None:
    _each("interaction_saved", interaction, created)


@hookimpl
def guanxi_plugin_enabled(company: Any) -> None:
    _each("enabled", company)
