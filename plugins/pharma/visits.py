"""Pharma visits: quotas per tier and month on the clock engine, reminders, supervision, planner."""

from __future__ import annotations

from plugins.pharma import models  # noqa: F401  (the tables are known before any part runs)
