"""(being written)"""

from typing import Any


def customer_panel(customer: Any) -> str:
    return ""
