"""Commission schedules, the hierarchy frozen at sale, monthly settlements, clawbacks
(佣金方案、佣金结算、佣金追回; DOMAIN §2 利润分配, §6). See docs/insurance-commissions.md.

Schedules (佣金方案)
    A :class:`~plugins.insurance.models.CommissionSchedule` gives rates in per cent of the
    annual premium for a product (or every product) sold through a channel type (or every
    type), valid from one date to another (inclusive, or open): the first-year rate (policy
    year 1), the renewal rate (later years) and one override rate per upline level. Rates run
    from 0 to 100 with at most three decimals; two schedules of the same product and type may
    not be valid on the same day. For a policy, the most specific schedule valid on its issue
    date wins: product and type, then product, then type, then neither (:func:`schedule_for`).
Issue (出单)
    When a policy enters the state ``issued`` (:func:`on_issued`, called by the plugin's
    ``after_transition``) its sales hierarchy is frozen (:class:`PolicyHierarchy`: level 0 the
    writing agent, then the upline chain as it stands that day); later moves in the team
    change nothing. The writing agent earns ``annual premium × rate / 100`` (the first-year
    rate for policy year 1, else the renewal rate), the agent ``i`` levels up earns
    ``override_rates[i-1]`` for as many levels as both the schedule and the frozen chain have.
    Amounts are rounded half-up to the fen, in Decimal. A line belongs to the month of the
    issue date, or to the agent's next open month when that month's statement is confirmed.
    No schedule, no agent, or a rate of 0: no line.
Clawback (追回)
    A policy cancelled within the company's clawback window (setting
    ``insurance_clawback_days``, 365 days from the issue date, the cancellation day included)
    gives back every first-year and override line it earned: a negative ``clawback`` line per
    line (``reverses_id``) in the agent's next open month from the cancellation month. After
    the window nothing is taken back. A line is reversed at most once (:func:`on_cancelled`
    may run any number of times).
Settlements (佣金结算)
    One :class:`Settlement` per agent and month holds its lines; ``total`` is their sum. The
    workflow ``insurance_settlement`` moves it ``open → confirmed → paid`` (admins and
    managers). A confirmed or paid statement is locked: :func:`add_line`,
    :func:`change_line` and :func:`remove_line` raise :class:`PeriodLocked`, and so does any
    ORM flush that would add, change or remove a line of a locked month (mapper events below);
    late lines and clawbacks go to the next open month. The job ``insurance.settlements``
    (monthly, and a button for managers) creates the missing settlements of lines written in
    bulk, attaches those lines and corrects totals, in three set-based statements.

Pages, API resources, reports and panels are in :mod:`plugins.insurance.web_commissions`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, event, exists, func, insert, literal, or_, select, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError

from core import audit
from core.extend import (
    Choice,
    Job,
    MenuItem,
    Panel,
    State,
    Transition,
    Workflow,
    db,
    monthly,
    require_company,
    utcnow,
)
from core.models import Channel, CompanySetting
from core.reports import today as company_today
from core.reports import zone
from plugins.insurance import agents
from plugins.insurance.models import (
    Agent,
    CommissionLine,
    CommissionSchedule,
    Policy,
    PolicyHierarchy,
    Product,
    Settlement,
)

WORKFLOW = "insurance_settlement"
MANAGERS = ("admin", "manager")
#: Company setting: the clawback window in days from the issue date.
CLAWBACK_KEY = "insurance_clawback_days"
DEFAULT_CLAWBACK_DAYS = 365
MAX_CLAWBACK_DAYS = 3650
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
HUNDRED = Decimal(100)
MAX_RATE = Decimal(100)
#: Decimal places a rate may have.
RATE_PLACES = 3
#: Upline levels a schedule may pay overrides to.
MAX_LEVELS = 10
EARLIEST = date(2000, 1, 1)
LATEST = date(2999, 12, 31)

#: Kinds of commission lines ``(value, label, label_zh)``.
KINDS = (
    ("first_year", "First year", "首年佣金"),
    ("renewal", "Renewal", "续期佣金"),
    ("override", "Override", "管理津贴"),
    ("clawback", "Clawback", "佣金追回"),
)
KIND_KEYS = tuple(k for k, _l, _z in KINDS)
#: Lines that a cancellation within the window takes back.
CLAWED_KINDS = ("first_year", "override")
STATES = (
    ("open", "Open", "待确认"),
    ("confirmed", "Confirmed", "已确认"),
    ("paid", "Paid", "已支付"),
)
#: Settlement states that lock the month.
LOCKED = ("confirmed", "paid")
#: Policy states in which a policy counts as persisting (the league's persistency).
PERSISTING = ("issued", "in_force", "renewed")


def money(value: Any) -> Decimal:
    """A SUM or a number as a 2-place Decimal (SQLite may hand back a float or an int)."""
    if value is None:
        return ZERO
    return Decimal(str(value)).quantize(CENT, ROUND_HALF_UP)


def commission(base: Decimal, rate: Decimal) -> Decimal:
    """``base × rate / 100`` rounded half-up to the fen: 12,345.67 at 30 % is 3,703.70."""
    return (Decimal(base) * Decimal(rate) / HUNDRED).quantize(CENT, ROUND_HALF_UP)


def label(options: Sequence[tuple[str, str, str]], value: str | None) -> str:
    """The label of ``value`` among ``(value, label, label_zh)`` options, in the user's
    language (the value itself when unknown)."""
    from core.i18n import pick

    for key, en, zh in options:
        if key == value:
            return pick(en, zh)
    return value or ""


def kind_label(kind: str | None) -> str:
    return label(KINDS, kind)


def state_label(state: str | None) -> str:
    return label(STATES, state)


# -- dates ----------------------------------------------------------------------------------------


def today() -> date:
    """Today in the company's time zone."""
    return company_today()


def month_of(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def add_months(month: date, n: int) -> date:
    """The first day of the month ``n`` months after ``month``'s (``n`` may be negative)."""
    k = month.year * 12 + month.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def local_day(at: datetime | None) -> date:
    """The company's local date of the moment ``at`` (today when ``None``)."""
    if at is None:
        return today()
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(zone()).date()


def local_moment(day: date, hour: int = 10) -> datetime:
    """``hour`` o'clock of ``day`` in the company's zone, as aware UTC."""
    return datetime.combine(day, time(hour), zone()).astimezone(UTC)


# -- the clawback window --------------------------------------------------------------------------


def clawback_days() -> int:
    """The company's clawback window in days (:data:`DEFAULT_CLAWBACK_DAYS` when unset)."""
    value = db.session.scalar(
        select(CompanySetting.value).where(CompanySetting.key == CLAWBACK_KEY)
    )
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_CLAWBACK_DAYS:
        return value
    return DEFAULT_CLAWBACK_DAYS


def set_clawback_days(days: int, user_id: int | None = None) -> None:
    """Store the company's clawback window (0 to :data:`MAX_CLAWBACK_DAYS` days); audited.
    The caller commits."""
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_CLAWBACK_DAYS:
        raise ValueError(f"the clawback window must be 0 to {MAX_CLAWBACK_DAYS} days")
    row = CompanySetting.put(CLAWBACK_KEY, days)
    audit.record("update", "company_setting", row.id, {CLAWBACK_KEY: days}, user_id=user_id)


def in_clawback_window(issued_on: date, cancelled_on: date, days: int | None = None) -> bool:
    """Whether a policy issued on ``issued_on`` and cancelled on ``cancelled_on`` is within
    the window: at most ``days`` (the company's setting) days after the issue date."""
    window = clawback_days() if days is None else days
    return (cancelled_on - issued_on).days <= window


# -- schedules ------------------------------------------------------------------------------------


@dataclass
class ScheduleInput:
    """A schedule as entered: ``None`` product or channel type means every one."""

    product_id: int | None
    channel_type: str | None
    first_year_rate: Decimal
    renewal_rate: Decimal
    override_rates: list[Decimal]
    valid_from: date
    valid_to: date | None = None


class ScheduleError(ValueError):
    """A schedule that cannot be saved; ``errors`` maps fields to messages."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def rate_problem(value: Decimal | None) -> str | None:
    """Why ``value`` is no rate (0 to 100 per cent, at most three decimals), or ``None``."""
    if value is None or not value.is_finite():
        return _("Enter a rate in per cent.")
    if not ZERO <= value <= MAX_RATE:
        return _("A rate is from 0 to 100 (per cent).")
    if value.as_tuple().exponent < -RATE_PLACES:  # type: ignore[operator]
        return _("At most %(n)s decimal places.", n=RATE_PLACES)
    return None


def parse_rate(raw: Any) -> Decimal:
    """A rate from text (``"30"``, ``"12.5"``, ``"7.125%"``); raises :class:`ValueError` with a
    message for anything that is not a rate from 0 to 100 with at most three decimals."""
    text = str(raw if raw is not None else "").strip().rstrip("%％").strip()
    if not text or len(text) > 20:
        raise ValueError(_("Enter a rate in per cent."))
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(_("Enter a rate in per cent, e.g. 30 or 12.5.")) from exc
    problem = rate_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def parse_overrides(raw: str | None) -> list[Decimal]:
    """Override rates from text: ``"5, 2"`` (commas, Chinese commas, semicolons or spaces
    between them; empty: no overrides). Raises :class:`ValueError` naming the bad level."""
    text = (raw or "").strip()
    for sep in ("，", "、", ";", "；", " "):
        text = text.replace(sep, ",")
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) > MAX_LEVELS:
        raise ValueError(_("At most %(n)s upline levels.", n=MAX_LEVELS))
    out = []
    for n, part in enumerate(parts, start=1):
        try:
            out.append(parse_rate(part))
        except ValueError as exc:
            raise ValueError(_("Level %(n)s: %(message)s", n=n, message=str(exc))) from exc
    return out


def overrides_of(schedule: CommissionSchedule) -> list[Decimal]:
    """The schedule's override rates as Decimals, level 1 first."""
    return [Decimal(str(r)) for r in schedule.override_rates or []]


def rate_text(value: Any) -> str:
    """A rate without trailing zeros: ``30``, ``12.5``, ``7.125``."""
    if value is None:
        return ""
    number = Decimal(str(value))
    text = f"{number:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _same_target(product_id: int | None, channel_type: str | None) -> list[Any]:
    return [
        CommissionSchedule.product_id.is_(None)
        if product_id is None
        else CommissionSchedule.product_id == product_id,
        CommissionSchedule.channel_type.is_(None)
        if channel_type is None
        else CommissionSchedule.channel_type == channel_type,
    ]


def schedule_problems(
    data: ScheduleInput, schedule: CommissionSchedule | None = None
) -> dict[str, str]:
    """What is wrong with saving ``data`` (as a new schedule, or over ``schedule``), by field."""
    from core.choices import options

    out: dict[str, str] = {}
    for key in ("first_year_rate", "renewal_rate"):
        problem = rate_problem(getattr(data, key))
        if problem:
            out[key] = problem
    if len(data.override_rates) > MAX_LEVELS:
        out["override_rates"] = _("At most %(n)s upline levels.", n=MAX_LEVELS)
    for n, rate in enumerate(data.override_rates, start=1):
        problem = rate_problem(rate)
        if problem and "override_rates" not in out:
            out["override_rates"] = _("Level %(n)s: %(message)s", n=n, message=problem)
    if data.product_id is not None:
        found = db.session.scalar(select(Product.id).where(Product.id == data.product_id))
        if found is None:
            out["product_id"] = _("Choose a product of this company.")
    if data.channel_type is not None:
        types = {value for value, _label in options("channel_type")}
        if data.channel_type not in types:
            out["channel_type"] = _("Choose one of the channel types.")
    if not EARLIEST <= data.valid_from <= LATEST:
        out["valid_from"] = _("Enter a date from 2000 on.")
    if data.valid_to is not None:
        if data.valid_to < data.valid_from:
            out["valid_to"] = _("The end cannot be before the start.")
        elif data.valid_to > LATEST:
            out["valid_to"] = _("Enter a date before 3000.")
    if out:
        return out
    clash = db.session.scalars(
        select(CommissionSchedule)
        .where(
            *_same_target(data.product_id, data.channel_type),
            CommissionSchedule.valid_from <= (data.valid_to or LATEST),
            or_(
                CommissionSchedule.valid_to.is_(None),
                CommissionSchedule.valid_to >= data.valid_from,
            ),
            CommissionSchedule.id != (schedule.id if schedule is not None else 0),
        )
        .order_by(CommissionSchedule.valid_from)
        .limit(1)
    ).first()
    if clash is not None:
        out["valid_from"] = _(
            "Another schedule for this product and channel type is valid from %(start)s "
            "to %(end)s; the dates may not overlap.",
            start=clash.valid_from.isoformat(),
            end=clash.valid_to.isoformat() if clash.valid_to else _("open end"),
        )
    return out


def save_schedule(
    data: ScheduleInput, schedule: CommissionSchedule | None = None, *, user_id: int | None = None
) -> CommissionSchedule:
    """Create a schedule from ``data``, or change ``schedule``; raises :class:`ScheduleError`.
    Lines already written keep their rates. Audited; the caller commits."""
    problems = schedule_problems(data, schedule)
    if problems:
        raise ScheduleError(problems)
    created = schedule is None
    row = schedule or CommissionSchedule()
    row.product_id = data.product_id
    row.channel_type = data.channel_type
    row.first_year_rate = data.first_year_rate
    row.renewal_rate = data.renewal_rate
    row.override_rates = [rate_text(r) for r in data.override_rates]
    row.valid_from = data.valid_from
    row.valid_to = data.valid_to
    if created:
        db.session.add(row)
    db.session.flush()
    audit.record(
        "create" if created else "update",
        CommissionSchedule.__tablename__,
        row.id,
        {
            "product_id": row.product_id,
            "channel_type": row.channel_type,
            "first_year_rate": rate_text(row.first_year_rate),
            "renewal_rate": rate_text(row.renewal_rate),
            "override_rates": row.override_rates,
            "valid_from": row.valid_from.isoformat(),
            "valid_to": row.valid_to.isoformat() if row.valid_to else None,
        },
        user_id=user_id,
    )
    return row


def delete_schedule(schedule: CommissionSchedule, *, user_id: int | None = None) -> None:
    """Delete a schedule; lines written under it keep their rates (their ``schedule_id`` is
    emptied). Audited; the caller commits."""
    audit.record("delete", CommissionSchedule.__tablename__, schedule.id, {}, user_id=user_id)
    db.session.delete(schedule)
    db.session.flush()


def schedule_for(product_id: int, channel_type: str | None, day: date) -> CommissionSchedule | None:
    """The schedule that applies to a policy of ``product_id`` sold through a channel of
    ``channel_type`` and issued on ``day``: of those valid that day, product and type first,
    then product, then type, then neither. One query."""
    candidates = db.session.scalars(
        select(CommissionSchedule).where(
            or_(
                CommissionSchedule.product_id.is_(None), CommissionSchedule.product_id == product_id
            ),
            or_(
                CommissionSchedule.channel_type.is_(None),
                CommissionSchedule.channel_type == channel_type,
            )
            if channel_type is not None
            else CommissionSchedule.channel_type.is_(None),
            CommissionSchedule.valid_from <= day,
            or_(CommissionSchedule.valid_to.is_(None), CommissionSchedule.valid_to >= day),
        )
    ).all()
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda s: (s.product_id is not None, s.channel_type is not None, s.valid_from, s.id),
    )


def channel_type_of(policy: Policy) -> str | None:
    """The channel type of the policy's sale: its channel's, else its agent's channel's."""
    if policy.channel_id is not None:
        found = db.session.scalar(select(Channel.type).where(Channel.id == policy.channel_id))
        if found is not None:
            return found
    if policy.agent_id is None:
        return None
    return db.session.scalar(
        select(Channel.type)
        .join(Agent, Agent.channel_id == Channel.id)
        .where(Agent.id == policy.agent_id)
    )


# -- the settlement workflow ----------------------------------------------------------------------

SETTLEMENT_WORKFLOW = Workflow(
    name=WORKFLOW,
    model=Settlement,
    label="Commission statement",
    label_zh="佣金结算单",
    initial="open",
    states=(
        State("open", "Open", "待确认", "open"),
        State("confirmed", "Confirmed", "已确认", "open"),
        State("paid", "Paid", "已支付", "done"),
    ),
    transitions=(
        Transition("confirm", ("open",), "confirmed", "Confirm", "确认结算", roles=MANAGERS),
        Transition("pay", ("confirmed",), "paid", "Mark paid", "确认支付", roles=MANAGERS),
    ),
)


def workflows() -> list[Workflow]:
    return [SETTLEMENT_WORKFLOW]


def choices() -> list[Choice]:
    return [Choice("insurance_commission_kind", *k) for k in KINDS]


# -- locked periods and lines ---------------------------------------------------------------------


class PeriodLocked(Exception):
    """A change to a confirmed or paid commission statement (its month is locked)."""

    def __init__(self, agent_id: int | None, month: date | None, state: str) -> None:
        self.agent_id, self.month, self.state = agent_id, month, state
        self.message = _(
            "The commission statement of %(month)s is %(state)s: its lines can no longer be "
            "added, changed or removed.",
            month=month.strftime("%Y-%m") if month else "?",
            state=state_label(state),
        )
        super().__init__(self.message)


def locked_months(agent_id: int, since: date) -> set[date]:
    """Months from ``since`` on whose statement for ``agent_id`` is confirmed or paid."""
    return set(
        db.session.scalars(
            select(Settlement.month).where(
                Settlement.agent_id == agent_id,
                Settlement.month >= month_of(since),
                Settlement.state.in_(LOCKED),
            )
        )
    )


def next_open_month(agent_id: int, month: date) -> date:
    """``month`` (a first day) or, when the agent's statement of it is locked, the first month
    after it that is not. One query."""
    month = month_of(month)
    locked = locked_months(agent_id, month)
    while month in locked:
        month = add_months(month, 1)
    return month


def open_settlement(agent_id: int, month: date) -> Settlement:
    """The agent's open statement of ``month`` (created when missing); raises
    :class:`PeriodLocked` when that month is confirmed or paid."""
    month = month_of(month)
    stmt = select(Settlement).where(Settlement.agent_id == agent_id, Settlement.month == month)
    row = db.session.scalars(stmt).first()
    if row is None:
        try:
            with db.session.begin_nested():
                row = Settlement(agent_id=agent_id, month=month, total=ZERO, state="open")
                db.session.add(row)
                db.session.flush()
        except IntegrityError:  # another request made it meanwhile
            row = db.session.scalars(stmt).one()
    if row.state in LOCKED:
        raise PeriodLocked(agent_id, month, row.state)
    return row


def refresh_total(settlement: Settlement) -> Decimal:
    """``settlement.total`` := the SQL sum of its lines (a change bumps its version, so a
    manager confirming what they saw before the change is told to look again)."""
    db.session.flush()
    total = db.session.scalar(
        select(func.sum(CommissionLine.amount)).where(CommissionLine.settlement_id == settlement.id)
    )
    if money(settlement.total) != money(total):
        settlement.total = money(total)
        db.session.flush()
    return settlement.total


def add_line(
    *,
    agent_id: int,
    policy_id: int,
    month: date,
    kind: str,
    base: Decimal,
    rate: Decimal,
    level: int = 0,
    policy_year: int = 1,
    amount: Decimal | None = None,
    reverses_id: int | None = None,
    schedule_id: int | None = None,
    at: datetime | None = None,
    roll_forward: bool = False,
) -> CommissionLine:
    """Write one commission line into the agent's statement of ``month`` (created when
    missing) and keep its total. ``amount`` defaults to ``base × rate / 100`` rounded half-up
    to the fen. A confirmed or paid month raises :class:`PeriodLocked`, unless
    ``roll_forward``: then the line goes to the agent's next open month. The caller commits."""
    if kind not in KIND_KEYS:
        raise ValueError(f"unknown commission kind {kind!r}")
    month = next_open_month(agent_id, month) if roll_forward else month_of(month)
    settlement = open_settlement(agent_id, month)
    line = CommissionLine(
        agent_id=agent_id,
        policy_id=policy_id,
        settlement_id=settlement.id,
        month=month,
        kind=kind,
        level=level,
        policy_year=policy_year,
        base=money(base),
        rate=Decimal(rate),
        amount=money(amount) if amount is not None else commission(base, rate),
        reverses_id=reverses_id,
        schedule_id=schedule_id,
        created_at=at or utcnow(),
    )
    db.session.add(line)
    refresh_total(settlement)
    return line


def _settlement_of(line: CommissionLine) -> Settlement | None:
    if line.settlement_id is None:
        return None
    return db.session.get(Settlement, line.settlement_id)


def _check_unlocked(line: CommissionLine) -> Settlement | None:
    settlement = _settlement_of(line)
    if settlement is not None and settlement.state in LOCKED:
        raise PeriodLocked(line.agent_id, line.month, settlement.state)
    if settlement is None:
        state = db.session.scalar(
            select(Settlement.state).where(
                Settlement.agent_id == line.agent_id, Settlement.month == line.month
            )
        )
        if state in LOCKED:
            raise PeriodLocked(line.agent_id, line.month, state)
    return settlement


def change_line(
    line: CommissionLine,
    *,
    base: Decimal | None = None,
    rate: Decimal | None = None,
    amount: Decimal | None = None,
) -> CommissionLine:
    """Correct a line of an open month (its amount follows ``base × rate`` unless given) and
    keep its statement's total; raises :class:`PeriodLocked` in a confirmed or paid month.
    The caller commits."""
    settlement = _check_unlocked(line)
    if base is not None:
        line.base = money(base)
    if rate is not None:
        line.rate = Decimal(rate)
    line.amount = money(amount) if amount is not None else commission(line.base, line.rate)
    if settlement is not None:
        refresh_total(settlement)
    return line


def remove_line(line: CommissionLine) -> None:
    """Delete a line of an open month and keep its statement's total; raises
    :class:`PeriodLocked` in a confirmed or paid month. The caller commits."""
    settlement = _check_unlocked(line)
    db.session.delete(line)
    if settlement is not None:
        refresh_total(settlement)


def _locked_state(connection: Any, target: CommissionLine, settlement_ids: Iterable[Any]) -> Any:
    """``(month, state)`` of a locked statement the line is in or would land in, or ``None``."""
    s = Settlement.__table__
    ids = [i for i in settlement_ids if i is not None]
    conditions = [s.c.id.in_(ids)] if ids else []
    if target.agent_id is not None and target.month is not None:
        conditions.append(
            and_(
                s.c.company_id == target.company_id,
                s.c.agent_id == target.agent_id,
                s.c.month == target.month,
            )
        )
    if not conditions:
        return None
    return connection.execute(
        select(s.c.month, s.c.state).where(or_(*conditions), s.c.state.in_(LOCKED)).limit(1)
    ).first()


def _refuse_if_locked(connection: Any, target: CommissionLine, *extra: Any) -> None:
    found = _locked_state(connection, target, [target.settlement_id, *extra])
    if found is not None:
        raise PeriodLocked(target.agent_id, found.month, found.state)


@event.listens_for(CommissionLine, "before_insert")
def _guard_insert(mapper: Any, connection: Any, target: CommissionLine) -> None:
    _refuse_if_locked(connection, target)


@event.listens_for(CommissionLine, "before_update")
def _guard_update(mapper: Any, connection: Any, target: CommissionLine) -> None:
    history = sa_inspect(target).attrs.settlement_id.history
    _refuse_if_locked(connection, target, *(history.deleted or ()))


@event.listens_for(CommissionLine, "before_delete")
def _guard_delete(mapper: Any, connection: Any, target: CommissionLine) -> None:
    _refuse_if_locked(connection, target)


# -- issue and cancellation -----------------------------------------------------------------------


def upline_chain(agent: Agent) -> list[Agent]:
    """The agent's upline, nearest first (:func:`plugins.insurance.agents.upline_chain`)."""
    return list(agents.upline_chain(agent))


def agent_for_user(user_id: int | None) -> Agent | None:
    """The agent profile whose login is ``user_id``
    (:func:`plugins.insurance.agents.agent_for_user`)."""
    return agents.agent_for_user(user_id) if user_id is not None else None


def hierarchy_of(policy_id: int) -> list[PolicyHierarchy]:
    """The policy's frozen hierarchy, level 0 (the writing agent) first."""
    return list(
        db.session.scalars(
            select(PolicyHierarchy)
            .where(PolicyHierarchy.policy_id == policy_id)
            .order_by(PolicyHierarchy.level)
        )
    )


def freeze_hierarchy(policy: Policy) -> list[int]:
    """The agent ids of the policy's hierarchy by level, written once when it is first asked
    for (at issue): the writing agent, then the upline chain as it stands now. Kept as it is
    afterwards, whatever moves in the team."""
    rows = hierarchy_of(policy.id)
    if rows:
        return [r.agent_id for r in rows]
    if policy.agent_id is None:
        return []
    agent = db.session.get(Agent, policy.agent_id)
    if agent is None:
        return []
    chain = [agent, *upline_chain(agent)]
    for level, member in enumerate(chain):
        db.session.add(PolicyHierarchy(policy_id=policy.id, level=level, agent_id=member.id))
    db.session.flush()
    return [member.id for member in chain]


def lines_of(policy_id: int) -> list[CommissionLine]:
    """The policy's commission lines, oldest first."""
    return list(
        db.session.scalars(
            select(CommissionLine)
            .where(CommissionLine.policy_id == policy_id)
            .order_by(CommissionLine.id)
        )
    )


def on_issued(policy: Policy, at: datetime | None = None) -> list[CommissionLine]:
    """Freeze the policy's hierarchy and write its commission lines (see the module
    documentation); nothing when it has no agent or no schedule applies, and nothing again
    when it has lines already. Returns the lines written. The caller commits."""
    chain = freeze_hierarchy(policy)
    if not chain:
        return []
    written = db.session.scalar(
        select(func.count(CommissionLine.id)).where(
            CommissionLine.policy_id == policy.id, CommissionLine.kind != "clawback"
        )
    )
    if written:
        return []
    day = policy.issued_on or local_day(at)
    schedule = schedule_for(policy.product_id, channel_type_of(policy), day)
    if schedule is None:
        return []
    base = money(policy.annual_premium)
    year = policy.policy_year or 1
    first = year <= 1
    common = {
        "policy_id": policy.id,
        "month": month_of(day),
        "base": base,
        "policy_year": year,
        "schedule_id": schedule.id,
        "at": at,
        "roll_forward": True,
    }
    lines = []
    rate = Decimal(schedule.first_year_rate if first else schedule.renewal_rate)
    if rate > 0 and base > 0:
        kind = "first_year" if first else "renewal"
        lines.append(add_line(agent_id=chain[0], kind=kind, rate=rate, level=0, **common))
    for level, rate in enumerate(overrides_of(schedule), start=1):
        if level >= len(chain):
            break
        if rate > 0 and base > 0:
            lines.append(
                add_line(agent_id=chain[level], kind="override", rate=rate, level=level, **common)
            )
    return lines


def on_cancelled(policy: Policy, at: datetime | None = None) -> list[CommissionLine]:
    """Take back the policy's first-year and override lines when it was cancelled within the
    clawback window: one negative line per line not yet reversed, in the agent's next open
    month from the cancellation month. Returns the clawback lines written. The caller
    commits."""
    if policy.issued_on is None:
        return []
    day = policy.cancelled_on or local_day(at)
    if not in_clawback_window(policy.issued_on, day):
        return []
    reversed_ids = select(CommissionLine.reverses_id).where(
        CommissionLine.policy_id == policy.id, CommissionLine.reverses_id.is_not(None)
    )
    owed = db.session.scalars(
        select(CommissionLine)
        .where(
            CommissionLine.policy_id == policy.id,
            CommissionLine.kind.in_(CLAWED_KINDS),
            CommissionLine.id.not_in(reversed_ids),
        )
        .order_by(CommissionLine.id)
    ).all()
    return [
        add_line(
            agent_id=line.agent_id,
            policy_id=policy.id,
            month=month_of(day),
            kind="clawback",
            base=line.base,
            rate=line.rate,
            level=line.level,
            policy_year=line.policy_year,
            amount=-money(line.amount),
            reverses_id=line.id,
            schedule_id=line.schedule_id,
            at=at,
            roll_forward=True,
        )
        for line in owed
    ]


def after_transition(subject: Any, from_state: str, to_state: str, at: Any, inputs: Any) -> None:
    """A policy issued earns its commissions, a policy cancelled gives them back (within the
    window); a statement confirmed or paid is stamped with the moment."""
    if getattr(subject, "__tablename__", None) == Policy.__tablename__:
        if to_state == "issued":
            on_issued(subject, at)
        elif to_state == "cancelled":
            on_cancelled(subject, at)
        return
    if isinstance(subject, Settlement):
        if to_state == "confirmed":
            _file_strays(subject)
            subject.confirmed_at = at
        elif to_state == "paid":
            subject.paid_at = at


def _file_strays(settlement: Settlement) -> None:
    """Lines of the statement's agent and month written without a statement (in bulk) join
    it before it is locked, and its total is their sum."""
    c = CommissionLine.__table__
    db.session.execute(
        update(c)
        .where(
            c.c.company_id == settlement.company_id,
            c.c.agent_id == settlement.agent_id,
            c.c.month == settlement.month,
            c.c.settlement_id.is_(None),
        )
        .values(settlement_id=settlement.id)
    )
    refresh_total(settlement)


# -- the monthly job ------------------------------------------------------------------------------


def run_settlements(company: Any = None) -> dict[str, int]:
    """Make the statements right for the company in scope, whatever the number of lines, in
    three statements: create the open statement of every agent and month that has lines
    without one (lines written in bulk, imports), attach those lines, and set every open
    statement's total to the sum of its lines (bumping its version when it changes).
    Returns ``created``, ``attached`` and ``corrected``. The caller commits."""
    company_id = require_company()
    db.session.flush()
    s, c = Settlement.__table__, CommissionLine.__table__
    now = utcnow()
    missing = (
        select(
            literal(company_id).label("company_id"),
            c.c.agent_id,
            c.c.month,
            literal(0).label("total"),
            literal("open").label("state"),
            bindparam("created", now, type_=s.c.created_at.type).label("created_at"),
            literal(1).label("version"),
        )
        .where(
            c.c.company_id == company_id,
            c.c.settlement_id.is_(None),
            ~exists().where(
                s.c.company_id == company_id,
                s.c.agent_id == c.c.agent_id,
                s.c.month == c.c.month,
            ),
        )
        .distinct()
    )
    created = db.session.execute(
        insert(s)
        .from_select(
            ["company_id", "agent_id", "month", "total", "state", "created_at", "version"], missing
        )  # fmt: skip
        .execution_options(preserve_rowcount=True)
    ).rowcount
    home = (
        select(s.c.id)
        .where(
            s.c.company_id == c.c.company_id,
            s.c.agent_id == c.c.agent_id,
            s.c.month == c.c.month,
            s.c.state == "open",
        )
        .scalar_subquery()
    )
    attached = db.session.execute(
        update(c)
        .where(c.c.company_id == company_id, c.c.settlement_id.is_(None))
        .values(settlement_id=home)
        .execution_options(preserve_rowcount=True)
    ).rowcount
    line = c.alias("line")
    summed = func.round(
        func.coalesce(
            select(func.sum(line.c.amount)).where(line.c.settlement_id == s.c.id).scalar_subquery(),
            0,
        ),
        2,
    )
    corrected = db.session.execute(
        update(s)
        .where(s.c.company_id == company_id, s.c.state == "open", s.c.total != summed)
        .values(total=summed, version=s.c.version + 1)
        .execution_options(preserve_rowcount=True)
    ).rowcount
    db.session.expire_all()
    return {"created": created, "attached": attached, "corrected": corrected}


def run_job(company: Any) -> str:
    """The job ``insurance.settlements`` (inside the company's scope)."""
    counts = run_settlements(company)
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def jobs() -> list[Job]:
    return [
        Job(
            "insurance.settlements",
            run_job,
            monthly(day=1, at="03:00"),
            label="Insurance: commission statements of the month",
            label_zh="保险：生成当月佣金结算单",
        )
    ]


# -- hooks gathered by plugins.insurance ----------------------------------------------------------


def menu_items(company: Any) -> list[MenuItem]:
    return [
        MenuItem(
            "insurance.statements",
            "Commissions",
            "佣金",
            order=27,
            group="Insurance",
            group_zh="保险",
        )
    ]


def panels(subject_type: str, subject: Any) -> list[Panel]:
    """A policy's commission lines and frozen hierarchy; an agent's recent statements."""
    if subject_type == Policy.__tablename__:
        return [
            Panel("Commissions", lambda: web_commissions.policy_panel(subject), "佣金", order=40)
        ]
    if subject_type == Agent.__tablename__:
        return [
            Panel(
                "Commission statements",
                lambda: web_commissions.agent_panel(subject),
                "佣金结算",
                order=40,
            )
        ]
    return []


def resources() -> list[Any]:
    return web_commissions.resources()


def reports() -> list[Any]:
    return web_commissions.reports()


# -- demo -----------------------------------------------------------------------------------------


def demo_schedules(rng: random.Random | None = None) -> list[CommissionSchedule]:
    """One schedule per product of the company that has none: first year 25–35 %, renewal
    5–10 %, overrides [5, 2], valid from three years ago with an open end. Safe to call more
    than once (the policies part may call it before it issues its demo policies)."""
    rng = rng or random.Random("insurance-commissions")
    covered = set(
        db.session.scalars(
            select(CommissionSchedule.product_id).where(CommissionSchedule.product_id.is_not(None))
        )
    )
    start = date(today().year - 3, 1, 1)
    made = []
    for product in db.session.scalars(select(Product).order_by(Product.id)):
        if product.id in covered:
            continue
        made.append(
            save_schedule(
                ScheduleInput(
                    product_id=product.id,
                    channel_type=None,
                    first_year_rate=Decimal(rng.choice([25, 28, 30, 32, 35])),
                    renewal_rate=Decimal(rng.choice([5, 6, 8, 10])),
                    override_rates=[Decimal(5), Decimal(2)],
                    valid_from=start,
                )
            )
        )
    return made


def demo(company: Any, fake: Any) -> None:
    """Schedules for the demo products (the policies part's demo ran before this one)."""
    demo_schedules(random.Random(f"insurance-commissions-{company.code}"))


def _demo_manager() -> Any:
    from core.models import Membership, User

    return db.session.scalars(
        select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role.in_(MANAGERS))
        .order_by((Membership.role == "manager").desc(), User.id)
        .limit(1)
    ).first()


def backfill(policies: Sequence[Policy] | None = None) -> int:
    """Write the lines of issued policies that have none yet (in order of issue), and the
    clawbacks of cancelled ones, through :func:`on_issued` and :func:`on_cancelled` (the demo
    issues its policies before the schedules exist). Returns the lines written."""
    if policies is None:
        policies = db.session.scalars(
            select(Policy)
            .where(Policy.issued_on.is_not(None))
            .order_by(Policy.issued_on, Policy.id)
        ).all()
    count = 0
    for policy in policies:
        count += len(on_issued(policy, local_moment(policy.issued_on)))
    cancelled = [p for p in policies if p.state == "cancelled"]
    for policy in sorted(cancelled, key=lambda p: (p.cancelled_on or today(), p.id)):
        count += len(on_cancelled(policy, local_moment(policy.cancelled_on or today())))
    return count


def demo_finish(company: Any, fake: Any) -> None:
    """Lines for every demo policy issued before the schedules existed, the month's
    statements, then every month before this one confirmed and paid by the manager (a settled
    month and an open current month)."""
    from core import workflow

    backfill()
    run_settlements(company)
    manager = _demo_manager()
    if manager is None:
        return
    current = month_of(today())
    earlier = db.session.scalars(
        select(Settlement)
        .where(Settlement.state == "open", Settlement.month < current)
        .order_by(Settlement.month, Settlement.id)
    ).all()
    now = utcnow()
    for settlement in earlier:
        closed = add_months(settlement.month, 1)
        confirmed = min(local_moment(closed + timedelta(days=2)), now - timedelta(hours=2))
        paid = min(local_moment(closed + timedelta(days=9)), now - timedelta(hours=1))
        workflow.transition(settlement, "confirm", user=manager, at=confirmed)
        workflow.transition(settlement, "pay", user=manager, at=max(paid, confirmed))
    db.session.flush()


__all__ = [
    "KINDS",
    "PeriodLocked",
    "ScheduleError",
    "ScheduleInput",
    "add_line",
    "change_line",
    "on_cancelled",
    "on_issued",
    "remove_line",
    "run_settlements",
    "schedule_for",
]

from plugins.insurance import web_commissions  # noqa: E402  - registers the pages on the blueprint
