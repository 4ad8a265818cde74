"""Sales part: value (see :mod:`plugins.sales`)."""

from __future__ import annotations
