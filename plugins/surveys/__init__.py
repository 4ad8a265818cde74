"""Surveys: questionnaires, campaigns, CSAT and NPS (generic; reused by other plugins).

This first version records whether a customer agreed to be surveyed and by which channel.
"""

from __future__ import annotations

from typing import Any

from core.extend import Field, Manifest, hookimpl

manifest = Manifest(
    name="surveys",
    label="Surveys",
    label_zh="满意度调查",
    version="0.1.0",
    description="Questionnaires, survey campaigns, CSAT and NPS.",
)

CHANNELS = (
    ("phone", "Phone", "电话"),
    ("sms", "SMS", "短信"),
    ("wechat", "WeChat", "微信"),
    ("email", "E-mail", "邮件"),
)


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field("customer", "opt_out", "boolean", "Does not want surveys", "拒绝调查", default=False),
        Field(
            "customer",
            "preferred_channel",
            "choice",
            "Preferred survey channel",
            "首选调查方式",
            choices=CHANNELS,
        ),
    ]


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    from plugins import demo_values

    demo_values(
        "customer",
        {
            "surveys__opt_out": lambda rng: rng.random() < 0.1,
            "surveys__preferred_channel": lambda rng: rng.choice([c[0] for c in CHANNELS]),
        },
    )
