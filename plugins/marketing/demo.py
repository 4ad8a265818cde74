"""(being written)"""

from typing import Any


def seed(company: Any, fake: Any) -> None:
    pass
