"""Pharma rep KPIs and the hospital sales early warning."""

from __future__ import annotations

from plugins.pharma import models  # noqa: F401  (the tables are known before any part runs)
