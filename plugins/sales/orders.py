"""Sales part: orders (see :mod:`plugins.sales`)."""

from __future__ import annotations
