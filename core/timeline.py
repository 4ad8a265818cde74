"""A customer's timeline: one list, newest first, of everything that happened with them.

Sources: interactions (calls, visits, …), tickets opened and resolved, the workflow transitions
of the customer's tickets, and what the company's enabled plugins return from
``guanxi_timeline(customer)``. Comments are not repeated here: the customer page shows their
thread below the timeline.

Each core source is one query, limited to the newest ``limit + 1`` rows before ``before``; the
people's names are one more query. So the page costs the same number of queries whatever the
customer's history.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func, select
from werkzeug.routing import BuildError

from core.choices import label
from core.db import db
from core.models import Customer, Interaction, ServiceTicket, User, WorkflowHistory
from core.web.panels import TimelineEntry

DEFAULT_LIMIT = 50


@dataclass
class Timeline:
    """Entries newest first; ``older`` is the moment to pass as ``before`` for the next ones."""

    entries: list[TimelineEntry] = field(default_factory=list)
    older: datetime | None = None


def _url(endpoint: str, **values: Any) -> str | None:
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def _state(name: str) -> str:
    from core.web.ticket_queries import state_label

    return state_label(name)


def _plugin_entries(customer: Customer) -> list[TimelineEntry]:
    from core.plugins import current
    from core.web.context import enabled_plugins

    entries: list[TimelineEntry] = []
    for found in current().hooks(enabled_plugins()).guanxi_timeline(customer=customer):
        for entry in found or []:
            if isinstance(entry, TimelineEntry) and isinstance(entry.at, datetime):
                if entry.at.tzinfo is None:  # a naive moment is taken as UTC
                    entry = replace(entry, at=entry.at.replace(tzinfo=UTC))
                entries.append(entry)
    return entries


def latest_interaction(customer_ids: list[int]) -> dict[int, datetime]:
    """When each customer was last in touch by a logged interaction (one query)."""
    stmt = (
        select(Interaction.customer_id, func.max(Interaction.occurred_at))
        .where(Interaction.customer_id.in_(customer_ids))
        .group_by(Interaction.customer_id)
    )
    return {cid: at for cid, at in db.session.execute(stmt) if at is not None}


def customer_timeline(
    customer: Customer, before: datetime | None = None, limit: int = DEFAULT_LIMIT
) -> Timeline:
    """The newest ``limit`` entries of ``customer``'s timeline strictly before ``before``."""
    entries: list[TimelineEntry] = []

    stmt = select(Interaction).where(Interaction.customer_id == customer.id)
    if before is not None:
        stmt = stmt.where(Interaction.occurred_at < before)
    interactions = list(
        db.session.scalars(stmt.order_by(Interaction.occurred_at.desc()).limit(limit + 1))
    )

    opened = select(ServiceTicket).where(ServiceTicket.customer_id == customer.id)
    if before is not None:
        opened = opened.where(ServiceTicket.created_at < before)
    tickets = list(
        db.session.scalars(opened.order_by(ServiceTicket.created_at.desc()).limit(limit + 1))
    )

    resolved = select(ServiceTicket).where(
        ServiceTicket.customer_id == customer.id, ServiceTicket.resolved_at.is_not(None)
    )
    if before is not None:
        resolved = resolved.where(ServiceTicket.resolved_at < before)
    resolved_tickets = list(
        db.session.scalars(resolved.order_by(ServiceTicket.resolved_at.desc()).limit(limit + 1))
    )

    moves = (
        select(WorkflowHistory, ServiceTicket.subject)
        .join(ServiceTicket, ServiceTicket.id == WorkflowHistory.subject_id)
        .where(
            WorkflowHistory.subject_type == ServiceTicket.__tablename__,
            ServiceTicket.customer_id == customer.id,
        )
    )
    if before is not None:
        moves = moves.where(WorkflowHistory.created_at < before)
    transitions = db.session.execute(
        moves.order_by(WorkflowHistory.created_at.desc()).limit(limit + 1)
    ).all()

    people = {i.user_id for i in interactions} | {h.user_id for h, _s in transitions}
    people.discard(None)
    names = dict(db.session.execute(select(User.id, User.name).where(User.id.in_(people))).all())

    for row in interactions:
        who = names.get(row.user_id, "")
        title = row.purpose or label("interaction_kind", row.kind)
        detail = " · ".join(x for x in (who, row.result or "") if x)
        entries.append(
            TimelineEntry(
                row.occurred_at,
                label("interaction_kind", row.kind),
                title,
                detail,
                _url("interactions.edit", interaction_id=row.id),
            )
        )
    for ticket in tickets:
        entries.append(
            TimelineEntry(
                ticket.created_at,
                _("Ticket opened"),
                f"#{ticket.id} {ticket.subject}",
                label("ticket_type", ticket.type),
                _url("tickets.detail", ticket_id=ticket.id),
            )
        )
    for ticket in resolved_tickets:
        entries.append(
            TimelineEntry(
                ticket.resolved_at,
                _("Ticket resolved"),
                f"#{ticket.id} {ticket.subject}",
                "",
                _url("tickets.detail", ticket_id=ticket.id),
            )
        )
    for history, subject in transitions:
        if history.to_state == "resolved":
            continue  # shown as "Ticket resolved"
        detail = " · ".join(x for x in (names.get(history.user_id, ""), history.comment or "") if x)
        entries.append(
            TimelineEntry(
                history.created_at,
                _("Ticket step"),
                f"#{history.subject_id} {subject}: "
                f"{_state(history.from_state)} → {_state(history.to_state)}",
                detail,
                _url("tickets.detail", ticket_id=history.subject_id),
            )
        )
    for entry in _plugin_entries(customer):
        if before is None or entry.at < before:
            entries.append(entry)

    entries.sort(key=lambda e: e.at, reverse=True)
    result = Timeline(entries=entries[:limit])
    if len(entries) > limit:
        result.older = entries[limit - 1].at
    return result
