"""The clock engine: every promise with a deadline, kept in one place.

An :class:`ObligationKind` (declared by the core or a plugin through ``guanxi_obligation_kinds``)
says, for records of one model, how many working minutes the promise allows (``target``), which
workflow states meet it, which pause it, when to warn (``warn_fraction`` of the target used) and
when to escalate beyond the deadline (``escalate_fraction``). Targets are counted on the
company's :class:`~core.calendar.BusinessCalendar` (working hours, holidays, make-up workdays).

An :class:`~core.models.Obligation` row stores the moments once -- ``warn_at``, ``due_at``,
``escalate_at`` -- so whether any number of obligations are running, at risk, breached, paused
or met is one SQL comparison (:meth:`Obligation.status_expr`). Pausing keeps the working time
left; resuming counts it again from the moment of resumption (and warns again). Leaving the
met states (a reopened ticket) restarts the clock with its full target.

:func:`scan` (the ``clocks.scan`` job) raises escalation levels with one set-based UPDATE and
notifies: level 1 (warning) the assignee, level 2 (breach) the assignee and the company's
managers, level 3 (escalation) its admins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update

from core.calendar import DEFAULT, BusinessCalendar
from core.db import db, utcnow
from core.i18n import pick
from core.models import CalendarRecord, Company, Membership, Obligation
from core.notify import notify_rows
from core.tenancy import require_company, unscoped


@dataclass(frozen=True)
class ObligationKind:
    """A kind of promise on records of ``model``.

    ``target(subject)`` gives the working minutes allowed, or ``None`` for no obligation.
    ``assignee`` names the subject's attribute holding the user to notify; ``link`` is a URL
    pattern with ``{id}`` for notifications. ``notify=False``: :func:`scan` still raises the
    levels (the status and the reports follow) but sends nothing -- for kinds whose owner
    reminds people its own way (visit quotas: one month-end digest per rep, not one per doctor).
    """

    name: str
    model: type
    target: Callable[[Any], int | None]
    label: str
    label_zh: str = ""
    met_states: tuple[str, ...] = ()
    pause_states: tuple[str, ...] = ()
    warn_fraction: float = 0.75
    escalate_fraction: float = 1.5
    assignee: str | None = "assignee_id"
    link: str = ""
    auto_start: bool = True
    plugin: str = ""
    notify: bool = True

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


def kinds_for(subject: Any) -> list[ObligationKind]:
    """Kinds of the enabled plugins that apply to ``subject``'s model."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    on = enabled_plugins()
    return [
        k
        for k in current().registry.obligation_kinds.values()
        if isinstance(subject, k.model) and k.plugin in on
    ]


def calendar_for(company_id: int) -> BusinessCalendar:
    """The company's default calendar, or the built-in Mon–Fri 9:00–18:00 in its time zone."""
    with unscoped():
        config = db.session.scalar(
            select(CalendarRecord.config).where(
                CalendarRecord.company_id == company_id, CalendarRecord.name == "default"
            )
        )
        timezone = db.session.scalar(select(Company.timezone).where(Company.id == company_id))
    if config:
        return BusinessCalendar.from_config(**config)
    if timezone and timezone != DEFAULT.timezone:
        return BusinessCalendar(timezone=timezone)
    return DEFAULT


def _moments(
    cal: BusinessCalendar, kind: ObligationKind, start: datetime, target: float, used: float
) -> dict[str, datetime]:
    def at(fraction: float) -> datetime:
        return cal.add(start, timedelta(minutes=max(0.0, fraction * target - used)))

    return {
        "warn_at": at(kind.warn_fraction),
        "due_at": at(1.0),
        "escalate_at": at(kind.escalate_fraction),
    }


def start(kind: ObligationKind, subject: Any, at: datetime | None = None) -> Obligation | None:
    """Start ``kind``'s clock on ``subject`` (no-op when its target is ``None``)."""
    minutes = kind.target(subject)
    if minutes is None:
        return None
    at = at or utcnow()
    cal = calendar_for(subject.company_id)
    row = Obligation(
        kind=kind.name,
        subject_type=subject.__tablename__,
        subject_id=subject.id,
        started_at=at,
        target_minutes=minutes,
        **_moments(cal, kind, at, minutes, 0.0),
    )
    db.session.add(row)
    return row


def restart(kind: ObligationKind, subject: Any, at: datetime | None = None) -> Obligation | None:
    """Count ``kind``'s clock on ``subject`` afresh from ``at`` with its target as it is now
    (a changed due date, a reopened record): the moments are recomputed in place, the
    escalation starts over, a met or paused clock runs again. Starts one if there was none;
    removes it when the target is now ``None``."""
    db.session.flush()
    row = db.session.scalar(
        select(Obligation).where(
            Obligation.kind == kind.name,
            Obligation.subject_type == subject.__tablename__,
            Obligation.subject_id == subject.id,
        )
    )
    minutes = kind.target(subject)
    if row is None:
        return start(kind, subject, at)
    if minutes is None:
        db.session.delete(row)
        return None
    at = at or utcnow()
    cal = calendar_for(subject.company_id)
    row.started_at, row.target_minutes, row.escalation_level = at, minutes, 0
    row.met_at = row.paused_at = row.remaining_minutes = None
    for key, value in _moments(cal, kind, at, minutes, 0.0).items():
        setattr(row, key, value)
    return row


def start_all(subject: Any, at: datetime | None = None) -> list[Obligation]:
    """Start every auto-starting kind that applies to a newly created ``subject``."""
    db.session.flush()
    rows = [start(k, subject, at) for k in kinds_for(subject) if k.auto_start]
    return [r for r in rows if r is not None]


def obligations_of(subject: Any) -> list[Obligation]:
    return list(
        db.session.scalars(
            select(Obligation)
            .where(
                Obligation.subject_type == subject.__tablename__,
                Obligation.subject_id == subject.id,
            )
            .order_by(Obligation.id)
        )
    )


def on_transition(subject: Any, to_state: str, at: datetime | None = None) -> None:
    """Meet, pause or resume ``subject``'s clocks for its new state ``to_state``."""
    at = at or utcnow()
    kinds = {k.name: k for k in kinds_for(subject)}
    cal: BusinessCalendar | None = None
    for row in obligations_of(subject):
        kind = kinds.get(row.kind)
        if kind is None:
            continue
        if row.met_at is not None:
            if to_state not in kind.met_states and kind.met_states:
                # Reopened: a fresh target from now, escalation starting over.
                cal = cal or calendar_for(subject.company_id)
                row.met_at, row.started_at, row.escalation_level = None, at, 0
                for key, value in _moments(cal, kind, at, row.target_minutes, 0.0).items():
                    setattr(row, key, value)
                if to_state in kind.pause_states:
                    row.paused_at, row.remaining_minutes = at, float(row.target_minutes)
            continue
        if to_state in kind.met_states:
            row.met_at = at
            if row.paused_at is not None:
                row.paused_at = None
            continue
        cal = cal or calendar_for(subject.company_id)
        if to_state in kind.pause_states and row.paused_at is None:
            left = cal.working_time_between(at, row.due_at) if row.due_at > at else timedelta(0)
            row.remaining_minutes = left.total_seconds() / 60
            row.paused_at = at
        elif to_state not in kind.pause_states and row.paused_at is not None:
            used = row.target_minutes - (row.remaining_minutes or 0.0)
            for key, value in _moments(cal, kind, at, row.target_minutes, used).items():
                setattr(row, key, value)
            row.paused_at = None
            row.remaining_minutes = None
            row.escalation_level = 0  # new moments: warn and escalate again as they pass


def status_counts(kind: str | None = None, now: datetime | None = None) -> dict[str, int]:
    """Obligations of the current company per status (one GROUP BY)."""
    status = Obligation.status_expr(now or utcnow())
    stmt = select(status, func.count()).where(Obligation.company_id == require_company())
    if kind:
        stmt = stmt.where(Obligation.kind == kind)
    return {s: n for s, n in db.session.execute(stmt.group_by(status))}


def scan(now: datetime | None = None) -> int:
    """Raise escalation levels of every company's open obligations; notify. Returns how many."""
    from core.plugins import current

    now = now or utcnow()
    table = Obligation.__table__
    level = case(
        (table.c.escalate_at <= now, 3),
        (table.c.due_at <= now, 2),
        else_=1,
    )
    stmt = (
        update(table)
        .where(
            table.c.met_at.is_(None),
            table.c.paused_at.is_(None),
            table.c.warn_at <= now,
            table.c.escalation_level < level,
        )
        .values(escalation_level=level)
        .returning(
            table.c.company_id,
            table.c.kind,
            table.c.subject_type,
            table.c.subject_id,
            table.c.escalation_level,
        )
    )
    with unscoped():
        raised = db.session.execute(stmt).all()
        if raised:
            kinds = current().registry.obligation_kinds
            _notify(raised, kinds, now)
        db.session.commit()
    return len(raised)


def _notify(raised: Iterable[Any], kinds: dict[str, ObligationKind], now: datetime) -> None:
    raised = list(raised)
    companies = {r.company_id for r in raised}
    staff: dict[tuple[int, str], list[int]] = {}
    for company_id, role, user_id in db.session.execute(
        select(Membership.company_id, Membership.role, Membership.user_id).where(
            Membership.company_id.in_(companies), Membership.role.in_(("manager", "admin"))
        )
    ):
        staff.setdefault((company_id, role), []).append(user_id)
    assignees: dict[tuple[str, int], int | None] = {}
    by_kind: dict[str, list[int]] = {}
    for r in raised:
        by_kind.setdefault(r.kind, []).append(r.subject_id)
    for name, ids in by_kind.items():
        kind = kinds.get(name)
        if kind is None or not kind.assignee:
            continue
        column = getattr(kind.model, kind.assignee)
        for subject_id, user_id in db.session.execute(
            select(kind.model.id, column).where(kind.model.id.in_(ids))
        ):
            assignees[(name, subject_id)] = user_id
    words = {1: ("at risk", "即将超时"), 2: ("breached", "已超时"), 3: ("escalated", "已升级")}
    rows = []
    for r in raised:
        kind = kinds.get(r.kind)
        if kind is not None and not kind.notify:
            continue
        label = kind.label_zh or kind.label if kind else r.kind
        recipients: set[int] = set()
        if assignees.get((r.kind, r.subject_id)):
            recipients.add(assignees[(r.kind, r.subject_id)])
        if r.escalation_level >= 2:
            recipients.update(staff.get((r.company_id, "manager"), []))
        if r.escalation_level >= 3:
            recipients.update(staff.get((r.company_id, "admin"), []))
        message = f"{label} #{r.subject_id} {words[r.escalation_level][1]}"
        link = kind.link.format(id=r.subject_id) if kind and kind.link else None
        rows += [
            {
                "company_id": r.company_id,
                "user_id": user_id,
                "kind": f"clock.level{r.escalation_level}",
                "message": message,
                "link": link,
                "created_at": now,
            }
            for user_id in sorted(recipients)
        ]
    if rows:
        notify_rows(rows)  # one INSERT; e-mail after commit when SMTP is configured
