"""Marketing: segments, campaigns with consent, loyalty tiers and points, care moments.

This first version records the birthday and the loyalty membership level of a customer.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from core.extend import Field, Manifest, hookimpl

manifest = Manifest(
    name="marketing",
    label="Marketing & loyalty",
    label_zh="营销与会员",
    version="0.1.0",
    depends=("sales",),
    description="Segments, campaigns, loyalty tiers and points, birthday care.",
)

LEVELS = (
    ("regular", "Regular", "普通会员"),
    ("silver", "Silver", "银卡会员"),
    ("gold", "Gold", "金卡会员"),
    ("platinum", "Platinum", "白金会员"),
)


@hookimpl
def guanxi_extension_fields() -> list[Field]:
    return [
        Field("customer", "birthday", "date", "Birthday", "生日", min=date(1900, 1, 1)),
        Field(
            "customer",
            "member_level",
            "choice",
            "Membership level",
            "会员等级",
            choices=LEVELS,
            indexed=True,
        ),
    ]


@hookimpl
def guanxi_demo_data(company: Any, fake: Any) -> None:
    from plugins import demo_values

    demo_values(
        "customer",
        {
            "marketing__birthday": lambda rng: (
                date(1960, 1, 1) + timedelta(days=rng.randint(0, 16000))
            ),
            "marketing__member_level": lambda rng: rng.choice([lv[0] for lv in LEVELS]),
        },
    )
