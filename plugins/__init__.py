"""Guanxi's built-in plugins, one package each; enabled per company like any other plugin."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any


def demo_values(model: str, makers: dict[str, Callable[[random.Random], Any]]) -> None:
    """Fill extension fields of every ``model`` row of the current company with demo values.

    ``makers`` maps field keys to functions of a seeded ``random.Random``. A helper for the
    built-in plugins' ``guanxi_demo_data``; third-party plugins can copy the idea.
    """
    from core import fields as ext
    from core.db import db
    from core.models import Channel, Customer, ServiceTicket
    from core.plugins import current
    from core.web.context import enabled_plugins

    model_class = {"customer": Customer, "channel": Channel, "service_ticket": ServiceTicket}[model]
    fields = [f for f in current().registry.fields_for(model, enabled_plugins()) if f.key in makers]
    rng = random.Random(model + ",".join(sorted(makers)))
    ids = db.session.scalars(db.select(model_class.id).order_by(model_class.id)).all()
    for row_id in ids:
        ext.save(fields, row_id, {key: make(rng) for key, make in makers.items()})
