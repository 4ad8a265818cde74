"""Opening service tickets: the one path that also starts their deadline clocks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core import audit, clocks
from core.db import db, utcnow
from core.models import ServiceTicket


def open_ticket(
    *, at: datetime | None = None, user_id: int | None = None, **values: Any
) -> ServiceTicket:
    """Create a ticket in its workflow's initial state and start its SLA clocks."""
    at = at or utcnow()
    ticket = ServiceTicket(created_at=at, state="new", **values)
    db.session.add(ticket)
    db.session.flush()
    clocks.start_all(ticket, at=at)
    audit.record("create", "service_ticket", ticket.id, user_id=user_id)
    return ticket
