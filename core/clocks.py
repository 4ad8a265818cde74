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

**Date-bound kinds** (``deadline=`` instead of ``target``) count calendar days to a date the
record holds -- a licence's expiry, a policy's end -- and send notices ``notices`` days before
it (``(90, 60, 30)``), each once, then one more when the date passes unmet. Their obligation's
``due_at`` is the deadline, ``warn_at`` the first notice (so "at risk" means "in its notice
period") and ``escalation_level`` the number of the last notice sent. A scan that finds several
thresholds passed (the job did not run for a while) sends only the nearest one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, select, update

from core.calendar import DEFAULT, END_OF_DAY, BusinessCalendar
from core.db import db, utcnow
from core.i18n import pick
from core.models import CalendarRecord, Company, Membership, Obligation, Team
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

    A date-bound kind gives ``deadline(subject)`` instead of ``target`` (pass ``None`` for it):
    a ``date`` (the promise holds to the end of that day in the company's time zone), an aware
    ``datetime``, or ``None`` for no obligation; ``notices`` are the days before the deadline
    at which :func:`scan` notifies the assignee (the company's managers when the record has
    none). Warn and escalate fractions and pause states do not apply to it.

    ``applies(subject)``, when given, limits the kind to the records it accepts (the core's
    ticket clocks run on tickets of the core workflow; a plugin's complaint tickets keep
    clocks of their own). ``team`` names the subject's team column: a breach then goes to
    the team's manager (the team lead) and only an escalation further to the company's
    managers and administrators (without it, or when the team has no manager: the company's
    managers at breach, its administrators too at escalation). ``around_the_clock=True``
    counts every minute -- nights, weekends, holidays -- in the company's time zone instead of
    its working hours: for services promised day and night (an emergency repair on site in
    30 minutes).
    """

    name: str
    model: type
    target: Callable[[Any], int | None] | None
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
    deadline: Callable[[Any], date | datetime | None] | None = None
    notices: tuple[int, ...] = ()
    applies: Callable[[Any], bool] | None = None
    team: str | None = None
    around_the_clock: bool = False

    def __post_init__(self) -> None:
        if (self.target is None) == (self.deadline is None):
            raise ValueError(f"obligation kind {self.name!r}: give either target or deadline")
        if self.notices and self.deadline is None:
            raise ValueError(f"obligation kind {self.name!r}: notices need a deadline")
        if any(n <= 0 for n in self.notices) or len(set(self.notices)) != len(self.notices):
            raise ValueError(f"obligation kind {self.name!r}: notices are distinct days > 0")
        object.__setattr__(self, "notices", tuple(sorted(self.notices, reverse=True)))

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)

    @property
    def dated(self) -> bool:
        """Whether the kind counts calendar days to a date (``deadline``), not working time."""
        return self.deadline is not None


def kinds_for(subject: Any) -> list[ObligationKind]:
    """Kinds of the enabled plugins that apply to ``subject``'s model."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    on = enabled_plugins()
    return [
        k
        for k in current().registry.obligation_kinds.values()
        if isinstance(subject, k.model)
        and k.plugin in on
        and (k.applies is None or k.applies(subject))
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


def calendar_of(kind: ObligationKind, company_id: int) -> BusinessCalendar:
    """The calendar ``kind``'s targets are counted on for ``company_id``."""
    cal = calendar_for(company_id)
    if kind.around_the_clock:
        return BusinessCalendar(
            timezone=cal.timezone, hours={day: ((time(0), END_OF_DAY),) for day in range(7)}
        )
    return cal


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


def deadline_of(kind: ObligationKind, subject: Any) -> datetime | None:
    """The UTC moment a date-bound kind falls due on ``subject`` (a date: the end of that day
    in the company's calendar zone), or ``None``."""
    assert kind.deadline is not None
    value = kind.deadline(subject)
    if value is None or isinstance(value, datetime):
        return value
    zone = ZoneInfo(calendar_for(subject.company_id).timezone)
    return datetime.combine(value + timedelta(days=1), time(), zone).astimezone(UTC)


def _dated_moments(kind: ObligationKind, due: datetime) -> dict[str, datetime]:
    first = due - timedelta(days=kind.notices[0]) if kind.notices else due
    return {"warn_at": first, "due_at": due, "escalate_at": due}


def _plan(kind: ObligationKind, subject: Any, at: datetime) -> tuple[int, dict] | None:
    """``(target_minutes, moments)`` of a fresh clock of ``kind`` on ``subject``, or ``None``."""
    if kind.dated:
        due = deadline_of(kind, subject)
        return None if due is None else (0, _dated_moments(kind, due))
    assert kind.target is not None
    minutes = kind.target(subject)
    if minutes is None:
        return None
    return minutes, _moments(calendar_of(kind, subject.company_id), kind, at, minutes, 0.0)


def start(kind: ObligationKind, subject: Any, at: datetime | None = None) -> Obligation | None:
    """Start ``kind``'s clock on ``subject`` (no-op when its target or deadline is ``None``)."""
    at = at or utcnow()
    plan = _plan(kind, subject, at)
    if plan is None:
        return None
    minutes, moments = plan
    row = Obligation(
        kind=kind.name,
        subject_type=subject.__tablename__,
        subject_id=subject.id,
        started_at=at,
        target_minutes=minutes,
        **moments,
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
    if row is None:
        return start(kind, subject, at)
    at = at or utcnow()
    plan = _plan(kind, subject, at)
    if plan is None:
        db.session.delete(row)
        return None
    minutes, moments = plan
    row.started_at, row.target_minutes, row.escalation_level = at, minutes, 0
    row.met_at = row.paused_at = row.remaining_minutes = None
    for key, value in moments.items():
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
    for row in obligations_of(subject):
        kind = kinds.get(row.kind)
        if kind is None:
            continue
        if row.met_at is not None:
            if to_state not in kind.met_states and kind.met_states:
                # Reopened: a fresh target from now (a date-bound kind: its date as it is
                # now), escalation starting over.
                if kind.dated:
                    restart(kind, subject, at)
                    continue
                cal = calendar_of(kind, subject.company_id)
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
        if kind.dated:
            continue
        cal = calendar_of(kind, subject.company_id)
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
    """Raise escalation levels of every company's open obligations; notify. Returns how many.

    Working-time kinds: one UPDATE for all of them. Date-bound kinds: one UPDATE per kind and
    notice, nearest notice first, so that an obligation past several thresholds moves to the
    nearest one and is notified once."""
    from core.plugins import current

    now = now or utcnow()
    table = Obligation.__table__
    kinds = current().registry.obligation_kinds
    dated = [k for k in kinds.values() if k.dated]
    returning = (
        table.c.company_id,
        table.c.kind,
        table.c.subject_type,
        table.c.subject_id,
        table.c.escalation_level,
        table.c.due_at,
    )
    open_rows = (table.c.met_at.is_(None), table.c.paused_at.is_(None))
    level = case(
        (table.c.escalate_at <= now, 3),
        (table.c.due_at <= now, 2),
        else_=1,
    )
    stmt = (
        update(table)
        .where(
            *open_rows,
            table.c.escalation_level < 3,  # implied by the next two; lets the index range
            table.c.warn_at <= now,
            table.c.escalation_level < level,
            table.c.kind.not_in([k.name for k in dated]),
        )
        .values(escalation_level=level)
        .returning(*returning)
    )
    with unscoped():
        raised = list(db.session.execute(stmt).all())
        for kind in dated:
            # Level n is the n-th notice; len(notices) + 1 is the deadline itself.
            offsets = [*kind.notices, 0]
            for n in range(len(offsets), 0, -1):
                raised += db.session.execute(
                    update(table)
                    .where(
                        *open_rows,
                        table.c.kind == kind.name,
                        table.c.due_at <= now + timedelta(days=offsets[n - 1]),
                        table.c.escalation_level < n,
                    )
                    .values(escalation_level=n)
                    .returning(*returning)
                ).all()
        if raised:
            _notify(raised, kinds, now)
        db.session.commit()
    return len(raised)


#: Subject ids per ``IN (…)`` when the people of raised obligations are looked up.
IN_CHUNK = 10_000


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
    leads: dict[tuple[str, int], int | None] = {}
    by_kind: dict[str, list[int]] = {}
    for r in raised:
        by_kind.setdefault(r.kind, []).append(r.subject_id)
    for name, all_ids in by_kind.items():
        kind = kinds.get(name)
        if kind is None:
            continue
        # In chunks: a wave of escalations can name more subjects than a statement may carry
        # parameters (SQLite: 32,766; PostgreSQL: 65,535).
        for start in range(0, len(all_ids), IN_CHUNK):
            ids = all_ids[start : start + IN_CHUNK]
            if kind.assignee:
                column = getattr(kind.model, kind.assignee)
                for subject_id, user_id in db.session.execute(
                    select(kind.model.id, column).where(kind.model.id.in_(ids))
                ):
                    assignees[(name, subject_id)] = user_id
            if kind.team:
                team_column = getattr(kind.model, kind.team)
                for subject_id, manager_id in db.session.execute(
                    select(kind.model.id, Team.manager_id)
                    .join(Team, Team.id == team_column)
                    .where(kind.model.id.in_(ids))
                ):
                    leads[(name, subject_id)] = manager_id
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
        if kind is not None and kind.dated:
            if not recipients:
                recipients.update(staff.get((r.company_id, "manager"), []))
            message = f"{label} #{r.subject_id} {_days_left(r.due_at, now)}"
        else:
            lead = leads.get((r.kind, r.subject_id))
            if r.escalation_level >= 2 and lead is not None:
                recipients.add(lead)
                if r.escalation_level >= 3:
                    recipients.update(staff.get((r.company_id, "manager"), []))
                    recipients.update(staff.get((r.company_id, "admin"), []))
            else:
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


def _days_left(due_at: datetime, now: datetime) -> str:
    """``还有 30 天到期`` / ``今天到期`` / ``已到期`` (notification texts are Chinese, as above)."""
    if due_at.tzinfo is None:  # SQLite returns naive UTC through RETURNING
        due_at = due_at.replace(tzinfo=UTC)
    seconds = (due_at - now).total_seconds()
    if seconds <= 0:
        return "已到期"
    days = -int(-seconds // 86400)  # whole days, rounded up
    return "今天到期" if days <= 1 else f"还有 {days} 天到期"
