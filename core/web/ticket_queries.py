"""Ticket list and board queries: filters, keyset pages, capped counts and SLA badges.

Tickets come with their customer, assignee and team names in one query and their SLA badges
(from :class:`~core.models.Obligation` rows) in a second, so a page costs the same number of
queries whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import aliased
from werkzeug.datastructures import MultiDict

from core import fields as ext
from core import keyset, workflow
from core.db import capped_count, db, utcnow
from core.models import Customer, Obligation, ServiceTicket, Team, User
from core.plugins import current
from core.tenancy import require_company
from core.web.context import enabled_plugins

SUBJECT = "service_ticket"
#: Ids are 32-bit INTEGER columns on PostgreSQL: a larger number names no row (and must not
#: reach the database, which would refuse it with an error rather than find nothing).
MAX_ID = 2**31 - 1
#: SLA statuses by urgency; a ticket's badge shows its most urgent clock.
SLA_URGENCY = {"breached": 5, "at_risk": 4, "running": 3, "paused": 2, "met_late": 1, "met": 0}
SLA_LABELS = {
    "running": _l("On track"),
    "at_risk": _l("At risk"),
    "breached": _l("Breached"),
    "paused": _l("Paused"),
    "met": _l("Met"),
    "met_late": _l("Met late"),
}
SLA_FILTERS = ("at_risk", "breached")
TRUE_VALUES = ("1", "true", "on", "yes")
FALSE_VALUES = ("0", "false", "off", "no")


def ticket_workflow() -> workflow.Workflow:
    """The workflow of service tickets (the core's ``ticket`` unless a plugin replaced it)."""
    return workflow.workflow_for(ServiceTicket(workflow="ticket"))


def state_label(name: str) -> str:
    try:
        return ticket_workflow().state(name).text
    except KeyError:
        return name


def extension_fields() -> list[ext.Field]:
    return current().registry.fields_for(SUBJECT, enabled_plugins())


def int_id(raw: str | None) -> int | None:
    """A positive database id from a request value, else ``None``."""
    if raw is None or not raw.isdigit() or int(raw) > MAX_ID:
        return None
    return int(raw)


# -- SLA badges -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Badge:
    """The SLA state shown for a ticket: its most urgent clock."""

    status: str
    due_at: datetime | None
    kind: str

    @property
    def text(self) -> str:
        return str(SLA_LABELS.get(self.status, self.status))

    @property
    def open(self) -> bool:
        return self.status in ("running", "at_risk", "breached", "paused")


def badges(ids: Iterable[int], now: datetime | None = None) -> dict[int, Badge]:
    """The SLA badge of each ticket in ``ids`` (one query over their obligations)."""
    ids = list(ids)
    if not ids:
        return {}
    now = now or utcnow()
    status = Obligation.status_expr(now).label("status")
    rows = db.session.execute(
        select(Obligation.subject_id, Obligation.kind, Obligation.due_at, status).where(
            Obligation.subject_type == SUBJECT, Obligation.subject_id.in_(ids)
        )
    ).all()
    out: dict[int, Badge] = {}
    for subject_id, kind, due_at, state in rows:
        best = out.get(subject_id)
        if best is None or SLA_URGENCY.get(state, 0) > SLA_URGENCY.get(best.status, 0):
            out[subject_id] = Badge(state, due_at, kind)
    return out


# -- list and board queries ---------------------------------------------------------------------


@dataclass
class TicketRow:
    ticket: ServiceTicket
    customer_name: str
    assignee_name: str | None
    team_name: str | None
    values: dict[str, Any]
    badge: Badge | None = None


@dataclass
class TicketPage:
    rows: list[TicketRow] = field(default_factory=list)
    #: The ``after`` of the next page: a ticket id (newest first) or a cursor (by deadline).
    next_after: int | str | None = None
    sort: str = "newest"
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    fields: list[ext.Field] = field(default_factory=list)


def _known(list_name: str) -> set[str]:
    return {c.value for c in current().registry.choices if c.list == list_name}


def query(args: MultiDict, *, with_state: bool = True) -> tuple[Any, dict[str, str], list]:
    """The ticket query for request ``args`` (filters), its errors by parameter, and the
    extension fields it carries. Rows: ticket, customer name, assignee name, team name, then
    one column per extension field."""
    fields = extension_fields()
    assignee = aliased(User, name="assignee")
    stmt = (
        select(
            ServiceTicket,
            Customer.name.label("customer_name"),
            assignee.name.label("assignee_name"),
            Team.name.label("team_name"),
        )
        .join(Customer, Customer.id == ServiceTicket.customer_id)
        .outerjoin(assignee, assignee.id == ServiceTicket.assignee_id)
        .outerjoin(Team, Team.id == ServiceTicket.team_id)
    )
    stmt = ext.join(stmt, ServiceTicket, fields)
    errors: dict[str, str] = {}

    def values(name: str) -> list[str]:
        return [v.strip() for v in args.getlist(name) if v.strip()]

    if with_state and values("state"):
        states = {s.name for s in ticket_workflow().states}
        bad = [v for v in values("state") if v not in states]
        if bad:
            errors["state"] = _("unknown state %(value)s", value=bad[0])
        else:
            stmt = stmt.where(ServiceTicket.state.in_(values("state")))
    for param, list_name, column in (
        ("type", "ticket_type", ServiceTicket.type),
        ("priority", "ticket_priority", ServiceTicket.priority),
        ("intake", "intake_channel", ServiceTicket.intake_channel),
    ):
        wanted = values(param)
        if not wanted:
            continue
        bad = [v for v in wanted if v not in _known(list_name)]
        if bad:
            errors[param] = _("unknown value %(value)s", value=bad[0])
        else:
            stmt = stmt.where(column.in_(wanted))
    for param, column in (("assignee", ServiceTicket.assignee_id), ("team", ServiceTicket.team_id)):
        wanted = values(param)
        if not wanted:
            continue
        ids = [int_id(v) for v in wanted if v != "none"]
        if any(i is None for i in ids):
            errors[param] = _("must be a number (or 'none')")
            continue
        clause = column.in_(ids)
        if "none" in wanted:
            clause = or_(clause, column.is_(None))
        stmt = stmt.where(clause)
    mine = (args.get("mine") or "").strip().lower()
    if mine in TRUE_VALUES:
        stmt = stmt.where(ServiceTicket.assignee_id == current_user.id)
    elif mine and mine not in FALSE_VALUES:
        errors["mine"] = _("must be 1 or 0")
    sla = values("sla")
    if sla:
        if any(v not in SLA_FILTERS for v in sla):
            errors["sla"] = _("must be at_risk or breached")
        else:
            status = Obligation.status_expr(utcnow())
            stmt = stmt.where(
                exists().where(
                    Obligation.subject_type == SUBJECT,
                    Obligation.subject_id == ServiceTicket.id,
                    status.in_(sla),
                )
            )
    for param, bound in (("created_from", 0), ("created_to", 1)):
        raw = (args.get(param) or "").strip()
        if not raw:
            continue
        moment = _day_start(raw, bound)
        if moment is None:
            errors[param] = _("Enter a date as YYYY-MM-DD.")
        elif bound:
            stmt = stmt.where(ServiceTicket.created_at < moment)
        else:
            stmt = stmt.where(ServiceTicket.created_at >= moment)
    q = (args.get("q") or "").strip().lstrip("#")
    if q:
        clause = ServiceTicket.subject.contains(q, autoescape=True)
        if int_id(q) is not None:
            clause = or_(clause, ServiceTicket.id == int(q))
        stmt = stmt.where(or_(clause, Customer.name.contains(q, autoescape=True)))
    stmt, ext_errors = ext.apply_filters(stmt, fields, args)
    errors.update(ext_errors)
    return stmt, errors, fields


def _day_start(raw: str, days_after: int) -> datetime | None:
    """The start (in the company's zone) of day ``raw`` (``YYYY-MM-DD``) plus ``days_after``
    days, or ``None`` for a malformed day; the ``created_to`` day is included."""
    from core.interactions import company_zone

    try:
        day = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        day = None
    if day is None or not 1970 <= day.year <= 2999:
        return None
    return datetime.combine(day + timedelta(days=days_after), time.min, tzinfo=company_zone())


def _rows(result: Iterable[Any], fields: list[ext.Field]) -> list[TicketRow]:
    rows = [
        TicketRow(
            ticket=row[0],
            customer_name=row.customer_name,
            assignee_name=row.assignee_name,
            team_name=row.team_name,
            values=ext.row_values(fields, row),
        )
        for row in result
    ]
    found = badges(r.ticket.id for r in rows)
    for r in rows:
        r.badge = found.get(r.ticket.id)
    return rows


#: Orders of the ticket list: ``newest`` (the default) and ``due``, the ticket whose SLA
#: deadline comes first at the top.
SORTS = ("newest", "due")


def open_deadlines() -> Any:
    """Per ticket, the earliest deadline of its running SLA clocks (met or paused ones do not
    count: a ticket waiting on the customer is not urgent): a subquery ``(ticket_id, due_at)``
    over the open clocks only, one row per ticket that has any."""
    return (
        select(
            Obligation.subject_id.label("ticket_id"),
            func.min(Obligation.due_at).label("due_at"),
        )
        .where(
            Obligation.company_id == require_company(),
            Obligation.subject_type == SUBJECT,
            Obligation.met_at.is_(None),
            Obligation.paused_at.is_(None),
        )
        .group_by(Obligation.subject_id)
        .subquery("open_deadlines")
    )


def page(args: MultiDict, size: int, cap: int) -> TicketPage:
    """One keyset page of tickets and a capped count. ``sort``: ``newest`` (``after`` is the
    last id seen) or ``due`` -- the earliest running SLA deadline first, tickets without one
    last (``after`` is the cursor of the last page)."""
    stmt, errors, fields = query(args)
    result = TicketPage(errors=errors, fields=fields)
    result.sort = args.get("sort") or "newest"
    if result.sort not in SORTS:
        result.errors["sort"] = _("must be one of %(values)s", values=", ".join(SORTS))
    after = args.get("after", "")
    if result.sort == "due":
        return _page_by_deadline(stmt, result, after, size, cap)
    if after and int_id(after) is None:
        result.errors["after"] = _("must be the id of the last ticket seen (a whole number)")
    if result.errors:
        return result
    result.count, result.capped = capped_count(stmt, ServiceTicket.id, cap)
    if after:
        stmt = stmt.where(ServiceTicket.id < int(after))
    rows = db.session.execute(stmt.order_by(ServiceTicket.id.desc()).limit(size + 1)).all()
    result.rows = _rows(rows[:size], fields)
    if len(rows) > size:
        result.next_after = rows[size - 1][0].id
    return result


def _page_by_deadline(stmt: Any, result: TicketPage, after: str, size: int, cap: int) -> TicketPage:
    deadlines = open_deadlines()
    sort = keyset.Sort("due", deadlines.c.due_at, nullable=True, kind="datetime")
    position = keyset.decode(sort, after) if after else None
    if after and position is None:
        result.errors["after"] = _("must be the cursor of the last page (next_after)")
    if result.errors:
        return result
    result.count, result.capped = capped_count(stmt, ServiceTicket.id, cap)
    stmt = stmt.outerjoin(deadlines, deadlines.c.ticket_id == ServiceTicket.id)
    if position is not None:
        stmt = stmt.where(keyset.after(sort, ServiceTicket.id, *position))
    stmt = stmt.add_columns(deadlines.c.due_at).order_by(*keyset.order(sort, ServiceTicket.id))
    rows = db.session.execute(stmt.limit(size + 1)).all()
    result.rows = _rows(rows[:size], result.fields)
    if len(rows) > size:
        last = rows[size - 1]
        result.next_after = keyset.encode(last[-1], last[0].id)
    return result


def iterate(args: MultiDict, batch: int = 500) -> Iterable[list[TicketRow]]:
    """Every ticket matching ``args`` in batches of ``batch`` rows, newest first (exports);
    each batch is one query plus its SLA badges, and leaves the session empty behind it."""
    stmt, _errors, fields = query(args)
    for rows in keyset.batches(stmt, ServiceTicket.id, batch):
        yield _rows(rows, fields)


@dataclass
class Column:
    state: workflow.State
    count: int
    rows: list[TicketRow]


def board(args: MultiDict, limit: int) -> tuple[list[Column], dict[str, str]]:
    """Kanban columns, one per workflow state, each with its newest ``limit`` cards."""
    stmt, errors, fields = query(args, with_state=False)
    if errors:
        return [], errors
    counts = dict(_state_counts(stmt))
    number = (
        func.row_number()
        .over(partition_by=ServiceTicket.state, order_by=ServiceTicket.id.desc())
        .label("n")
    )
    ranked = stmt.with_only_columns(ServiceTicket.id, number).subquery()
    top = select(ranked.c.id).where(ranked.c.n <= limit)
    rows = db.session.execute(
        stmt.where(ServiceTicket.id.in_(top)).order_by(ServiceTicket.id.desc())
    ).all()
    by_state: dict[str, list[TicketRow]] = {}
    for row in _rows(rows, fields):
        by_state.setdefault(row.ticket.state, []).append(row)
    columns = [
        Column(state, counts.get(state.name, 0), by_state.get(state.name, []))
        for state in ticket_workflow().states
    ]
    return columns, errors


def _state_counts(stmt: Any) -> list[tuple[str, int]]:
    inner = stmt.with_only_columns(ServiceTicket.state.label("state")).subquery()
    return list(
        db.session.execute(select(inner.c.state, func.count()).group_by(inner.c.state)).all()
    )
