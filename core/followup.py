"""Follow-up (回访) after a service: the customer's score and the internal quality score, apart.

:func:`record_followup` stores a follow-up as an :class:`~core.models.Interaction` of kind
``follow_up`` linked to the ticket. The customer's own satisfaction (1–5) and the internal
quality-control score (0–100) are separate columns and are never blended. A customer score at or
below the company's threshold (company setting ``followup``, value
``{"bad_score_threshold": 2}``; default 2 of 5) reopens the ticket through its workflow's
``reopen`` transition, with a comment saying why, and notifies the ticket's assignee and the
team's manager (the company's managers when the ticket has neither).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import has_request_context
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from core import audit, interactions, notify, workflow
from core.db import db, utcnow
from core.models import (
    Company,
    CompanySetting,
    Contact,
    Interaction,
    Membership,
    ServiceTicket,
    Team,
    User,
)

SETTING_KEY = "followup"
DEFAULT_THRESHOLD = 2
CUSTOMER_SCORE = (1, 5)
QUALITY_SCORE = (0, 100)
#: Ticket states after which a follow-up may be recorded.
FOLLOWUP_STATES = ("resolved", "closed")

F = TypeVar("F", bound=Callable[..., Any])


def in_company_language(func: F) -> F:
    """Outside a request (CLI, jobs, demo), run ``func`` in the company's language, so that
    its messages are translated without asking a request for the user's."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if has_request_context():
            return func(*args, **kwargs)
        from core.tenancy import current_company_id

        company_id = current_company_id()
        locale = None
        if company_id is not None:
            locale = db.session.scalar(select(Company.locale).where(Company.id == company_id))
        with force_locale(locale or "zh_CN"):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class FollowUpError(ValueError):
    """A refused follow-up; ``field`` names the form field the message belongs to (or None)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def threshold() -> int:
    """The current company's bad-score threshold: customer scores at or below it reopen."""
    stored = db.session.scalar(
        select(CompanySetting.value).where(CompanySetting.key == SETTING_KEY)
    )
    if isinstance(stored, dict):
        value = stored.get("bad_score_threshold")
        if isinstance(value, int) and CUSTOMER_SCORE[0] - 1 <= value <= CUSTOMER_SCORE[1]:
            return value
    return DEFAULT_THRESHOLD


def save_threshold(value: int) -> None:
    """Store the company's bad-score threshold (0 = never reopen); the caller commits."""
    row = db.session.scalar(select(CompanySetting).where(CompanySetting.key == SETTING_KEY))
    payload = {"bad_score_threshold": int(value)}
    if row is None:
        db.session.add(CompanySetting(key=SETTING_KEY, value=payload))
    else:
        row.value = payload
    audit.record("update", "company_setting", None, {"key": SETTING_KEY, **payload})


def _check_score(value: object, bounds: tuple[int, int], field: str, required: bool) -> int | None:
    if value is None or value == "":
        if required:
            raise FollowUpError(_("Give a score."), field=field)
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value))
        except ValueError:
            raise FollowUpError(_("Must be a whole number."), field=field) from None
    low, high = bounds
    if not low <= value <= high:
        raise FollowUpError(
            _("Must be between %(low)s and %(high)s.", low=low, high=high), field=field
        )
    return value


@in_company_language
def record_followup(
    ticket: ServiceTicket,
    user: User,
    customer_score: int,
    quality_score: int | None,
    result: str | None,
    contact_id: int | None = None,
    *,
    at: datetime | None = None,
) -> Interaction:
    """Record a follow-up of the resolved or closed ``ticket`` by ``user``; the caller commits.

    Raises :class:`FollowUpError` (nothing written) for a bad score, a contact of another
    customer, a ticket not yet resolved or a user who may not write; a bad customer score
    reopens the ticket (``core.workflow.WorkflowError`` propagates if the workflow refuses).
    """
    role = workflow.role_of(user, ticket.company_id)
    if role is None or role == "viewer":
        raise FollowUpError(_("Your role cannot record a follow-up."))
    if ticket.state not in FOLLOWUP_STATES:
        raise FollowUpError(_("A follow-up is recorded once the ticket is resolved or closed."))
    customer_score = _check_score(customer_score, CUSTOMER_SCORE, "customer_score", True)
    quality_score = _check_score(quality_score, QUALITY_SCORE, "quality_score", False)
    if contact_id is not None:
        owner = db.session.scalar(select(Contact.customer_id).where(Contact.id == contact_id))
        if owner != ticket.customer_id:
            raise FollowUpError(
                _("Choose a contact of this ticket's customer."), field="contact_id"
            )
    at = at or utcnow()
    visit = Interaction(
        customer_id=ticket.customer_id,
        contact_id=contact_id if contact_id is not None else ticket.contact_id,
        ticket_id=ticket.id,
        user_id=user.id,
        kind="follow_up",
        occurred_at=at,
        purpose=(ticket.subject or "")[:200],
        result=(result or "").strip() or None,
        customer_score=customer_score,
        quality_score=quality_score,
    )
    db.session.add(visit)
    db.session.flush()
    audit.record(
        "create",
        "interaction",
        visit.id,
        {
            "follow_up_of": ticket.id,
            "customer_score": customer_score,
            "quality_score": quality_score,
        },
        user_id=user.id,
    )
    limit = threshold()
    if customer_score <= limit:
        reason = _(
            "Follow-up: the customer scored %(score)s of 5 (at or below %(limit)s), "
            "so the ticket is reopened.",
            score=customer_score,
            limit=limit,
        )
        if visit.result:
            reason = f"{reason} {visit.result}"
        workflow.transition(ticket, "reopen", user=user, inputs={"comment": reason}, at=at)
        _notify_reopened(ticket, user, customer_score)
    interactions.announce(visit, created=True)
    return visit


def _notify_reopened(ticket: ServiceTicket, actor: User, score: int) -> None:
    recipients: set[int | None] = {ticket.assignee_id}
    if ticket.team_id is not None:
        recipients.add(db.session.scalar(select(Team.manager_id).where(Team.id == ticket.team_id)))
    recipients.discard(None)
    if not recipients:
        recipients.update(
            db.session.scalars(select(Membership.user_id).where(Membership.role == "manager"))
        )
    recipients.discard(actor.id)
    notify.notify_users(
        recipients,
        "ticket.reopened",
        f"/tickets/{ticket.id}",
        lambda: _(
            "Ticket #%(id)s “%(subject)s” reopened: the customer scored the follow-up "
            "%(score)s of 5.",
            id=ticket.id,
            subject=ticket.subject,
            score=score,
        ),
    )


def seed_demo(users: dict[str, User]) -> None:
    """Demo data: service recovery on a few complaints and follow-ups on the resolved and closed
    tickets of the company in scope, one with a bad customer score that reopened its ticket.

    ``users`` maps roles to the company's demo users. Uses its own seeded random generator, so
    the rest of the demo data does not shift.
    """
    import random
    from decimal import Decimal

    from core import recovery

    tickets = list(db.session.scalars(select(ServiceTicket).order_by(ServiceTicket.id)))
    if not tickets:
        return
    rng = random.Random(f"guanxi-followup-{tickets[0].company_id}")
    grants = [
        ("service_agent", Decimal("100"), "电话致歉，赠送一次免费上门检修"),
        ("manager", Decimal("800"), "经理上门致歉，减免当月服务费"),
        ("service_agent", None, "已当面致歉，客户表示理解"),
    ]
    complaints = [t for t in tickets if t.type == "complaint"] or tickets
    for ticket, (role, amount, note) in zip(complaints, grants, strict=False):
        recovery.apply(
            ticket,
            role=role,
            apology=True,
            compensation=amount,
            note=note,
            user_id=users[role].id,
        )
    done = [t for t in tickets if t.state in FOLLOWUP_STATES]
    bad = next((t for t in done if t.assignee_id is not None), None)
    praise = ["问题已解决，服务态度很好", "维修及时，很满意", "处理得还可以，就是等得有点久"]
    for ticket in done:
        if ticket is bad:
            score, quality, result = 1, 55, "问题仍未解决，客户很不满意"
        else:
            score = rng.choice([3, 4, 5, 5])
            quality, result = rng.randint(70, 98), rng.choice(praise)
        record_followup(ticket, users["manager"], score, quality, result)
