"""Interactions (calls, visits, e-mails, WeChat messages, meetings, follow-ups) and next steps.

:func:`log` and :func:`update` validate and write an interaction: the contact and the ticket
must be the customer's own, a plugin record (``subject_type``/``subject_id``) must exist in the
company, the duration is a whole number of minutes ≥ 0, the moment is not in the future, and a
next step comes with its due date. Logging moves the customer's ``last_contact_at`` forward
(never back).

A *next step* is open while ``next_step`` is set and ``next_step_done_at`` is empty; it is
overdue once ``next_step_due`` has passed. :func:`remind_overdue` (the daily job
``interactions.overdue``) tells each user once a day how many of theirs are overdue.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import and_, func, or_, select, union

from core import audit, tenancy
from core.choices import options
from core.db import db, utcnow
from core.models import (
    Company,
    Contact,
    Customer,
    Interaction,
    Membership,
    Notification,
    ServiceTicket,
    Team,
    User,
)
from core.tenancy import require_company

#: Kind of the daily reminder notification.
OVERDUE_KIND = "next_step.overdue"
#: The longest interaction one may log, in minutes (a week).
MAX_DURATION = 7 * 24 * 60
#: How far ahead of now an interaction's moment may lie (clock skew, not planning).
FUTURE_SLACK = timedelta(minutes=10)
NEXT_STEPS_PATH = "/interactions/next-steps"
FIELDS = (
    "kind",
    "occurred_at",
    "duration_minutes",
    "purpose",
    "result",
    "contact_id",
    "ticket_id",
    "next_step",
    "next_step_due",
    "subject_type",
    "subject_id",
)


class InteractionError(ValueError):
    """A refused interaction; ``field`` names the form field the message belongs to."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def company_zone(company_id: int | None = None) -> ZoneInfo:
    """The time zone of the company (``company_id`` or the one in scope)."""
    return tenancy.company_zone(company_id)


def _check(customer: Customer, values: dict[str, Any]) -> None:
    for name in ("purpose", "result", "next_step"):
        if isinstance(values.get(name), str) and "\x00" in values[name]:
            raise InteractionError(_("Contains a character that cannot be stored."), name)
    kinds = {value for value, _label in options("interaction_kind")}
    if values.get("kind") not in kinds:
        raise InteractionError(_("Choose a kind from the list."), "kind")
    when = values.get("occurred_at")
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise InteractionError(_("Give the date and time."), "occurred_at")
    if when > utcnow() + FUTURE_SLACK:
        raise InteractionError(
            _("Cannot be in the future; plan it as a next step instead."), "occurred_at"
        )
    duration = values.get("duration_minutes")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int) or duration < 0
    ):
        raise InteractionError(_("Minutes, zero or more."), "duration_minutes")
    if duration is not None and duration > MAX_DURATION:
        raise InteractionError(_("At most %(n)s minutes.", n=MAX_DURATION), "duration_minutes")
    contact_id = values.get("contact_id")
    if contact_id is not None:
        owner = db.session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
        if owner != customer.id:
            raise InteractionError(_("This contact is not one of this customer's."), "contact_id")
    ticket_id = values.get("ticket_id")
    if ticket_id is not None:
        owner = db.session.scalar(
            select(ServiceTicket.customer_id).where(ServiceTicket.id == ticket_id)
        )
        if owner != customer.id:
            raise InteractionError(_("This ticket is not one of this customer's."), "ticket_id")
    subject_type, subject_id = values.get("subject_type"), values.get("subject_id")
    if subject_type or subject_id is not None:
        from core.comments import MAX_ID, subject_model

        model = subject_model(subject_type or "")
        if (
            model is None
            or not isinstance(subject_id, int)
            or not 0 < subject_id <= MAX_ID
            or db.session.get(model, subject_id) is None
        ):
            raise InteractionError(_("No such record here."), "subject_id")
    step = (values.get("next_step") or "").strip()
    due = values.get("next_step_due")
    if due is not None and not step:
        raise InteractionError(_("Say what the next step is."), "next_step")
    if step and due is None:
        raise InteractionError(_("Give the next step's due date."), "next_step_due")


def _write(row: Interaction, customer: Customer, values: dict[str, Any]) -> None:
    _check(customer, values)
    for name in FIELDS:
        if name in values:
            value = values[name]
            if isinstance(value, str):
                value = value.strip() or None
            setattr(row, name, value)
    row.customer_id = customer.id
    if row.occurred_at and (
        customer.last_contact_at is None or row.occurred_at > customer.last_contact_at
    ):
        customer.last_contact_at = row.occurred_at


def log(customer: Customer, user: User | None, **values: Any) -> Interaction:
    """Log an interaction with ``customer`` by ``user``; raises :class:`InteractionError`.

    ``values`` are the columns in :data:`FIELDS`; the caller commits."""
    values.setdefault("occurred_at", utcnow())
    row = Interaction(user_id=user.id if user else None)
    _write(row, customer, values)
    db.session.add(row)
    db.session.flush()
    audit.record("create", "interaction", row.id, {"customer_id": customer.id})
    announce(row, created=True)
    return row


def update(row: Interaction, customer: Customer, **values: Any) -> Interaction:
    """Change an interaction (same rules as :func:`log`); the caller commits."""
    _write(row, customer, values)
    audit.record("update", "interaction", row.id, {"customer_id": customer.id})
    announce(row, created=False)
    return row


def announce(row: Interaction, created: bool) -> None:
    """Tell the enabled plugins (``guanxi_interaction_saved``); also used by
    :func:`core.followup.record_followup`, after a follow-up is stored (and has reopened its
    ticket when the score was bad)."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    with db.session.no_autoflush:  # (the plugin lookup runs unscoped; flush in scope, later)
        hooks = current().hooks(enabled_plugins())
    hooks.guanxi_interaction_saved(interaction=row, created=created)


def mark_done(row: Interaction, at: datetime | None = None) -> None:
    """Close the interaction's next step (no-op when already done)."""
    if row.next_step_done_at is None:
        row.next_step_done_at = at or utcnow()
        audit.record("update", "interaction", row.id, {"next_step_done": True})


# -- next steps ---------------------------------------------------------------------------------


def open_steps() -> Any:
    """Condition of an open next step."""
    return and_(Interaction.next_step.is_not(None), Interaction.next_step_done_at.is_(None))


def team_member_ids(user_id: int) -> list[int]:
    """Members of the teams ``user_id`` manages or belongs to (themselves included)."""
    teams = union(
        select(Team.id).where(Team.manager_id == user_id),
        select(Membership.team_id).where(
            Membership.user_id == user_id, Membership.team_id.is_not(None)
        ),
    ).subquery()
    ids = set(
        db.session.scalars(
            select(Membership.user_id).where(Membership.team_id.in_(select(teams.c[0])))
        )
    )
    return sorted(ids | {user_id})


@dataclass(frozen=True)
class StepsPage:
    rows: list[Any]
    next_after: str | None
    overdue: int


def _after_clause(raw: str) -> Any:
    """Keyset condition from a cursor ``<due timestamp or ->:<id>``; ``ValueError`` if bad."""
    due_part, _sep, id_part = raw.partition(":")
    if not id_part.isascii() or not id_part.isdigit() or int(id_part) > 2**31 - 1:
        raise ValueError(raw)
    last_id = int(id_part)
    if due_part == "-":
        return and_(Interaction.next_step_due.is_(None), Interaction.id > last_id)
    if not due_part.isascii() or not due_part.isdigit() or len(due_part) > 11:
        raise ValueError(raw)
    try:
        due = datetime.fromtimestamp(int(due_part), tz=ZoneInfo("UTC"))
    except (OverflowError, OSError) as exc:
        raise ValueError(raw) from exc
    return or_(
        Interaction.next_step_due > due,
        and_(Interaction.next_step_due == due, Interaction.id > last_id),
        Interaction.next_step_due.is_(None),
    )


def next_steps(
    user_ids: list[int] | None, size: int, after: str | None = None, now: datetime | None = None
) -> StepsPage:
    """Open next steps of ``user_ids`` (``None``: everyone's), by due date, one keyset page,
    with the customer's and the owner's names; plus how many are overdue. Three queries."""
    now = now or utcnow()
    base = open_steps()
    if user_ids is not None:
        base = and_(base, Interaction.user_id.in_(user_ids))
    stmt = (
        select(Interaction, Customer.name, User.name)
        .join(Customer, Customer.id == Interaction.customer_id)
        .outerjoin(User, User.id == Interaction.user_id)
        .where(base)
    )
    if after:
        stmt = stmt.where(_after_clause(after))
    rows = db.session.execute(
        stmt.order_by(
            Interaction.next_step_due.is_(None), Interaction.next_step_due, Interaction.id
        ).limit(size + 1)
    ).all()
    cursor = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1][0]
        due = last.next_step_due
        cursor = f"{int(due.timestamp()) if due else '-'}:{last.id}"
    overdue = db.session.scalar(  # joined like the rows, so record rules narrow both alike
        select(func.count(Interaction.id))
        .join(Customer, Customer.id == Interaction.customer_id)
        .where(base, Interaction.next_step_due < now)
    )
    return StepsPage(list(rows), cursor, overdue or 0)


# -- the daily reminder -------------------------------------------------------------------------


def remind_overdue(company: Company | None = None, now: datetime | None = None) -> str:
    """Notify each member with overdue next steps, once per (company-local) day.

    One GROUP BY finds the users and their counts; users already reminded today are left out
    by the same query, so running the job twice a day notifies nobody twice."""
    from core.notify import notify_users

    now = now or utcnow()
    zone = company_zone()
    local = now.astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    reminded = select(Notification.user_id).where(
        Notification.company_id == require_company(),
        Notification.kind == OVERDUE_KIND,
        Notification.created_at >= day_start,
    )
    rows = db.session.execute(
        select(Interaction.user_id, func.count(Interaction.id), func.min(Interaction.next_step_due))
        .join(Membership, Membership.user_id == Interaction.user_id)
        .where(
            open_steps(),
            Interaction.next_step_due < now,
            Interaction.user_id.not_in(reminded),
        )
        .group_by(Interaction.user_id)
    ).all()
    for user_id, count, oldest in rows:
        since = oldest.astimezone(zone).strftime("%Y-%m-%d")
        notify_users(
            [user_id],
            OVERDUE_KIND,
            NEXT_STEPS_PATH,
            lambda count=count, since=since: _(
                "You have %(n)s overdue next steps (the oldest was due %(date)s).",
                n=count,
                date=since,
            ),
        )
    return f"{len(rows)} users reminded"


# -- demo ---------------------------------------------------------------------------------------


def seed_demo(users: dict[str, User], customers: list[Customer], rng: random.Random) -> None:
    """Demo next steps for the sales rep and the manager: some overdue, some due soon, some
    done; comments with @mentions on customers and tickets; unread notifications."""
    from core.comments import add_comment
    from core.notify import notify

    now = utcnow()
    # Next steps of the older demo interactions were done in time, a day or two after being due.
    for row in db.session.scalars(
        select(Interaction).where(open_steps(), Interaction.next_step_due < now - timedelta(days=8))
    ):
        row.next_step_done_at = row.next_step_due + timedelta(days=rng.choice([-1, 0, 1]))
    rep, manager = users["sales_rep"], users["manager"]
    steps = ["发送报价单", "安排产品演示", "约见采购负责人", "确认合同条款", "回访使用情况"]
    purposes = ["需求沟通", "合同跟进", "产品介绍", "售后回访"]
    for i, customer in enumerate(customers[:16]):
        owner = rep if i % 3 else manager
        when = now - timedelta(days=rng.randint(3, 20), hours=rng.randint(0, 6))
        # overdue by 1-6 days, due within the next days, or done already
        due = now + timedelta(days=(-rng.randint(1, 6), rng.randint(0, 4), -2)[i % 3])
        row = Interaction(
            customer_id=customer.id,
            user_id=owner.id,
            kind=rng.choice(["call", "visit", "wechat", "meeting"]),
            occurred_at=when,
            duration_minutes=rng.choice([10, 20, 45, 90]),
            purpose=rng.choice(purposes),
            result=rng.choice(["客户有意向，需要报价", "约定下周再谈", "对方决策人出差"]),
            next_step=steps[i % len(steps)],
            next_step_due=due.replace(minute=0, second=0, microsecond=0),
            next_step_done_at=(when + timedelta(days=1)) if i % 5 == 4 else None,
        )
        db.session.add(row)
        if customer.last_contact_at is None or when > customer.last_contact_at:
            customer.last_contact_at = when
    db.session.flush()

    class _Author:  # add_comment needs only id and name
        def __init__(self, user: User) -> None:
            self.id, self.name = user.id, user.name

    texts = [
        (manager, rep, "@{name} 这个客户下周要续约，请先把报价单发过去。"),
        (rep, manager, "@{name} 报价已发，客户希望再给 5% 折扣，您看可以吗？"),
        (manager, rep, "可以，@{name} 折扣控制在 5% 以内，合同走标准模板。"),
    ]
    for customer in customers[:3]:
        for hours, (author, target, text) in zip((50, 26, 3), texts, strict=True):
            comment = add_comment(
                "customer", customer.id, text.format(name=target.name), _Author(author)
            )
            comment.created_at = now - timedelta(hours=hours)
    ticket_ids = list(db.session.scalars(select(ServiceTicket.id).limit(2)))
    agent = users.get("service_agent")
    for ticket_id in ticket_ids:
        if agent is not None:
            add_comment(
                "service_ticket",
                ticket_id,
                f"@{manager.name} 客户情绪较大，建议今天内电话致歉。",
                _Author(agent),
            )
    for user in (rep, manager):
        notify(
            user.id,
            "welcome",
            "欢迎使用关系 CRM：右上角的铃铛会提醒您待办跟进、工单分派与超时。",
            NEXT_STEPS_PATH,
            email=False,
        )
    remind_overdue(now=now)
