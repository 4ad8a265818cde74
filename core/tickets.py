"""Opening service tickets: the one path that also starts their deadline clocks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for
from flask_babel import gettext as _

from core import audit, clocks, notify, workflow
from core.db import db, utcnow
from core.models import ServiceTicket, User


def open_ticket(
    *, at: datetime | None = None, user_id: int | None = None, **values: Any
) -> ServiceTicket:
    """Create a ticket in its workflow's initial state and start its SLA clocks.

    The workflow is the one :func:`core.workflow.choose` picks for the ticket (a plugin's
    workflow that ``selects`` its type, else the core's ``ticket``) unless ``workflow`` is given.
    """
    at = at or utcnow()
    ticket = ServiceTicket(created_at=at, **values)
    if "workflow" not in values:
        chosen = workflow.choose(ticket)
        ticket.workflow, ticket.state = chosen.name, chosen.initial
    else:
        ticket.state = workflow.workflow_for(ticket).initial
    db.session.add(ticket)
    db.session.flush()
    clocks.start_all(ticket, at=at)
    audit.record("create", "service_ticket", ticket.id, user_id=user_id)
    return ticket


def notify_assigned(ticket: ServiceTicket, by: User) -> None:
    """Tell the ticket's assignee it is theirs (not when ``by`` assigned it to themselves)."""
    if ticket.assignee_id is None or ticket.assignee_id == by.id:
        return
    notify.notify_users(
        [ticket.assignee_id],
        "ticket.assigned",
        url_for("tickets.detail", ticket_id=ticket.id),
        lambda: _(
            "Ticket #%(id)s “%(subject)s” was assigned to you by %(name)s.",
            id=ticket.id,
            subject=ticket.subject,
            name=by.name,
        ),
    )
