"""Reports (being written)."""

from typing import Any


def reports() -> list[Any]:
    return []
