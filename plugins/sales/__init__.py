"""Sales: opportunity funnel, orders and receivables, customer value.

This first version declares the attack/defend inputs on customers (purchase potential and our
share of it, DOMAIN §4); opportunities, orders and value analytics arrive with their issue.
"""

from __future__ import annotations

from typing import Any

from core.extend import Field, Manifest, hookimpl

manifest = Manifest(
    name="sales",
    label="Sales",
    label_zh="销售",
    version="0.1.0",
    description="Opportunity funnel, orders, receivables and customer value.",
)


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
    ]


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
