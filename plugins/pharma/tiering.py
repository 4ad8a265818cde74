"""Pharma doctor tiering: schemes, the set-based recompute, history and overrides."""

from __future__ import annotations

from plugins.pharma import models  # noqa: F401  (the tables are known before any part runs)
