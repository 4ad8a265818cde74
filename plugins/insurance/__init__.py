"""Insurance: agents, brokers and partner channels, licences, policies and renewals, commissions
(DOMAIN §2, §6).

The plugin adds the insurance channel types and the customer's underwriting basics (here), and
parts that each offer some of the functions below; every hook of the plugin gathers what the
parts return, in this order:

- :mod:`plugins.insurance.agents` -- producer profiles (licence, status, team, upline of any
  depth), the licence gate on sales, licence expiry notices;
- :mod:`plugins.insurance.policies` -- products, policies on the workflow engine, the sales
  order each issued premium becomes, renewals and renewal notices;
- :mod:`plugins.insurance.commissions` -- schedules, the hierarchy frozen at sale, commission
  lines, monthly settlements with locked periods, clawbacks;
- :mod:`plugins.insurance.leads` -- leads and their conversion funnel per agent and channel,
  referrals.

Models live in :mod:`plugins.insurance.models`, routes on :data:`plugins.insurance.blueprint.bp`.
See docs/insurance.md.
"""

from __future__ import annotations

from typing import Any

from core.extend import Choice, Field, Manifest, Parts, hookimpl
from plugins.insurance import agents, commissions, leads, models, policies  # noqa: F401
from plugins.insurance.blueprint import bp

manifest = Manifest(
    name="insurance",
    label="Insurance",
    label_zh="保险",
    version="0.2.0",
    depends=("sales",),
    description="Agents, brokers, bancassurance, licences, policies, renewals, commissions.",
    description_zh="代理人、经纪人、银保渠道，执业证、保单、续保与佣金。",
)

PARTS = Parts(agents, policies, commissions, leads)
_gather, _each = PARTS.gather, PARTS.each

OCCUPATION = tuple((str(n), f"Class {n}", f"{n}类职业") for n in range(1, 7))

#: Product classes; a licence covers some of them (``Agent.licence_classes``).
PRODUCT_CLASSES = (
    ("life", "Life", "寿险"),
    ("health", "Health", "健康险"),
    ("accident", "Accident", "意外险"),
    ("annuity", "Annuity", "年金险"),
    ("property", "Property", "财产险"),
    ("auto", "Motor", "车险"),
)


@hookimpl
def guanxi_choices() -> list[Choice]:
    return [
        Choice("channel_type", "direct_staff", "Direct sales staff", "直销人员"),
        Choice("channel_type", "insurance_agent", "Insurance agent", "保险代理人"),
        Choice("channel_type", "broker", "Broker", "保险经纪人"),
        Choice("channel_type", "bancassurance", "Bancassurance", "银行保险"),
        Choice("channel_type", "internet", "Internet", "互联网保险"),
        Choice("channel_type", "mobile", "Mobile / WeChat", "移动保险"),
        *(Choice("insurance_product_class", *c) for c in PRODUCT_CLASSES),
        *_gather("choices"),
    ]


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "customer",
            "occupation_class",
            "choice",
            "Occupation class",
            "职业类别",
            choices=OCCUPATION,
            list_column=True,
        ),
        Field(
            "customer",
            "annual_income",
            "decimal",
            "Annual income (CNY)",
            "年收入（元）",
            min=0,
            list_column=True,
        ),
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
    """Each part's demo rows, in order; then underwriting basics on every demo customer (the
    customers the parts made too: the two fields are the list's columns)."""
    from plugins import demo_values

    _each("demo", company, fake)
    demo_values(
        "customer",
        {
            "insurance__occupation_class": lambda rng: str(rng.randint(1, 6)),
            "insurance__annual_income": lambda rng: rng.choice([60000, 120000, 300000, 800000]),
        },
    )
    _each("demo_finish", company, fake)
