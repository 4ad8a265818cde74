"""Who do we sell the last car to? A weighted buyer-value score (0-100) for each lead.

From the DS CRM training on dealer customer management: one GOLF 2.0 AT left in stock,
customer A offers 150,000 yuan, customer B 152,000. The higher offer is not the whole answer:
will the buyer service the car here (home address), what social influence comes with their
occupation, can their position bring us other buyers, have they bought cars before (so will
again), and how long is their lifetime as a customer (age)? Each criterion is quantified on
0-5 and weighted; the weights are the company's plugin settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

#: The criteria, their setting (weight) names and default weights (sum 100).
CRITERIA: tuple[tuple[str, str, str, int], ...] = (
    ("price", "Offer against list price", "出价占指导价", 30),
    ("service", "Will service the car here (home address)", "回店保养可能（家庭住址）", 20),
    ("influence", "Social influence (occupation)", "社会影响力（职业）", 15),
    ("referral", "Can refer other buyers (position)", "介绍新客户能力（职务）", 15),
    ("repurchase", "Bought cars before (will again)", "以往购车（再次购买）", 10),
    ("lifetime", "Customer lifetime left (age)", "客户终生价值周期（年龄）", 10),
)


def price_points(offer: Decimal | None, list_price: Decimal | None) -> float:
    """0-5: the offer as a share of the list price (at or above list: 5)."""
    if not offer or not list_price:
        return 0.0
    return round(5 * min(float(offer) / float(list_price), 1.0), 2)


def repurchase_points(cars_owned: int | None) -> float:
    """0-5 from the cars bought before: a first car 2, a second buyer 4, more 5."""
    return {0: 2.0, 1: 4.0}.get(cars_owned or 0, 5.0)


def lifetime_points(age: int | None) -> float:
    """0-5 from the buyer's age: the younger, the longer they will buy and service cars."""
    if age is None:
        return 2.5
    for limit, points in ((30, 5.0), (40, 4.0), (50, 3.0), (60, 2.0)):
        if age < limit:
            return points
    return 1.0


def points(lead: Any, cars_owned: int | None) -> dict[str, float]:
    """Each criterion of ``lead`` on 0-5."""
    return {
        "price": price_points(lead.offer, lead.list_price),
        "service": float(lead.service or 0),
        "influence": float(lead.influence or 0),
        "referral": float(lead.referral or 0),
        "repurchase": repurchase_points(cars_owned),
        "lifetime": lifetime_points(lead.age),
    }


def score(criteria: Mapping[str, float], weights: Mapping[str, Any]) -> Decimal:
    """The weighted score, 0-100: sum(weight * points / 5) / sum(weights) * 100."""
    total = sum(int(weights.get(f"weight_{name}", 0) or 0) for name, *_ in CRITERIA)
    if total <= 0:
        return Decimal("0.0")
    value = sum(
        int(weights.get(f"weight_{name}", 0) or 0) * criteria[name] / 5 for name, *_ in CRITERIA
    )
    return Decimal(str(round(100 * value / total, 1)))
