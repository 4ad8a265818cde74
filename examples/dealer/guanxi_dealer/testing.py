"""Fixtures of the dealer plugin for pytest (entry point ``pytest11``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def dealer_company(company: Callable[..., Any]) -> Any:
    """A new company with the dealer plugin enabled."""
    return company(plugins=["dealer"])
