"""Insurance: agents, brokers and partner channels, licences, policies, commissions (DOMAIN §6).

This first version adds the insurance channel types, agent licence fields on channels and
customer underwriting basics; policies and commissions arrive with their issue.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from core.extend import Choice, Field, Manifest, hookimpl

manifest = Manifest(
    name="insurance",
    label="Insurance",
    label_zh="保险",
    version="0.1.0",
    depends=("sales",),
    description="Agents, brokers, bancassurance, licences, policies, renewals, commissions.",
)

OCCUPATION = tuple((str(n), f"Class {n}", f"{n}类职业") for n in range(1, 7))


@hookimpl
def guanxi_choices() -> list[Choice]:
    return [
        Choice("channel_type", "direct_staff", "Direct sales staff", "直销人员"),
        Choice("channel_type", "insurance_agent", "Insurance agent", "保险代理人"),
        Choice("channel_type", "broker", "Broker", "保险经纪人"),
        Choice("channel_type", "bancassurance", "Bancassurance", "银行保险"),
        Choice("channel_type", "internet", "Internet", "互联网保险"),
        Choice("channel_type", "mobile", "Mobile / WeChat", "移动保险"),
    ]


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field(
            "channel",
            "licence_number",
            "string",
            "Licence number",
            "执业证号",
            max_length=40,
            indexed=True,
        ),
        Field("channel", "licence_expiry", "date", "Licence expiry", "执业证有效期至"),
        Field(
            "customer",
            "occupation_class",
            "choice",
            "Occupation class",
            "职业类别",
            choices=OCCUPATION,
        ),
        Field("customer", "annual_income", "decimal", "Annual income (CNY)", "年收入（元）", min=0),
    ]


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    from plugins import demo_values

    demo_values(
        "customer",
        {
            "insurance__occupation_class": lambda rng: str(rng.randint(1, 6)),
            "insurance__annual_income": lambda rng: rng.choice([60000, 120000, 300000, 800000]),
        },
    )
    demo_values(
        "channel",
        {
            "insurance__licence_number": lambda rng: f"0201{rng.randint(10**11, 10**12 - 1)}",
            "insurance__licence_expiry": lambda rng: (
                date.today() + timedelta(days=rng.randint(-30, 900))
            ),
        },
    )
