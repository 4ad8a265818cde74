"""Sales part: targets (see :mod:`plugins.sales`)."""

from __future__ import annotations
