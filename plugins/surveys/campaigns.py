"""Campaigns, invitations and responses: whom a questionnaire goes to and what comes back.

Python API (other plugins call these; the caller commits)::

    from plugins.surveys import campaigns

    campaign = campaigns.create_campaign(
        questionnaire, "2026年第四季度住户满意度调查",
        audience={"kind": ["resident"]}, starts_on=date(2026, 10, 1), ends_on=date(2026, 12, 31),
    )
    campaigns.launch_campaign(campaign)            # running; the segment is invited at once
    campaigns.invite(campaign, [customer.id])      # a few more, by id
    invitation = ...                               # e.g. campaigns.invitation_for_token(token)
    campaigns.record_response(invitation, {question.id: 4, ...}, user=staff)  # phone entry

- :func:`create_campaign` -- a draft campaign of a questionnaire: ``trigger="segment"`` with an
  ``audience`` (customer ``kind``, ``value_tier``, ``status``: lists of allowed values; empty:
  every customer), or ``trigger="ticket_closed"`` (optionally limited to ``ticket_types``);
- :func:`launch_campaign` -- the campaign runs; a segment campaign invites its audience in ONE
  ``INSERT … SELECT``; :func:`finish_campaign` ends it (its links then answer "closed");
- :func:`invite` -- invite customers by id (one ``INSERT … SELECT``, whatever their number);
  customers who refused surveys on the invitation's channel (:mod:`core.consent`) and
  customers invited already are skipped;
- :func:`record_response` -- store the answers to an invitation, by link or entered by staff
  (``user``); the invitation is used up (one-time) by a conditional ``UPDATE``, so two
  submissions of one link cannot both count;
- :func:`token_for`, :func:`invitation_for_token`, :func:`answer_url` -- the one-time link.

**Tokens.** An invitation's token is ``HMAC-SHA256(SECRET_KEY, "surveys:<company>:<id>")``
(base64url, 43 characters): staff pages can show each invitation's link again, while the
database keeps only the token's SHA-256 (``token_hash``, looked up when a link is opened), as
:mod:`core.tokens` does for API tokens. Changing ``SECRET_KEY`` invalidates unanswered links.

**After a ticket closes** (:func:`after_transition`, hook ``guanxi_after_transition``): when a
service ticket enters the state ``closed``, every running ``ticket_closed`` campaign whose
period includes today and whose ``ticket_types`` is empty or lists the ticket's type invites
the ticket's customer (once per ticket; not when the customer opted out).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import and_, bindparam, exists, func, literal, or_, select, update
from sqlalchemy import insert as sql_insert

from core import audit, consent
from core.extend import UTCDateTime, db, require_company, utcnow
from core.fields import side_table
from core.i18n import pick
from core.models import Customer, ServiceTicket
from plugins.surveys.models import (
    STATES,
    TRIGGERS,
    Answer,
    Campaign,
    Invitation,
    Questionnaire,
    Response,
)
from plugins.surveys.questionnaires import check_answers, questions_of

#: Customer columns a segment's audience may filter on.
AUDIENCE_KEYS = ("kind", "value_tier", "status")
#: Channels an invitation may go by (the customer field ``surveys__preferred_channel``'s values).
CHANNEL_KEYS = ("phone", "sms", "wechat", "email")
STATE_LABELS = {
    "draft": ("Draft", "草稿"),
    "running": ("Running", "进行中"),
    "finished": ("Finished", "已结束"),
}
TRIGGER_LABELS = {
    "segment": ("Customer segment", "客户分群"),
    "ticket_closed": ("After a ticket closes", "工单关闭后"),
}
#: The ticket state that triggers ``ticket_closed`` campaigns.
CLOSED = "closed"
MAX_ID = 2**31 - 1


class CampaignRefused(ValueError):
    """A campaign refused: ``errors`` by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class AnswersRefused(ValueError):
    """Answers refused: ``errors`` by question id (0: about the whole response)."""

    def __init__(self, errors: dict[int, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


class AlreadyAnswered(ValueError):
    """The invitation was answered already (its link is used up)."""


class CampaignClosed(ValueError):
    """The invitation's campaign is finished: no more answers."""


def state_label(state: str) -> str:
    text, zh = STATE_LABELS.get(state, (state, state))
    return pick(text, zh)


def trigger_label(trigger: str) -> str:
    text, zh = TRIGGER_LABELS.get(trigger, (trigger, trigger))
    return pick(text, zh)


def today() -> date:
    from core.reports import today as company_today

    return company_today()


# -- campaigns ------------------------------------------------------------------------------------


def _clean_audience(audience: Mapping[str, Any] | None, errors: dict[str, str]) -> dict[str, list]:
    from core.choices import options

    out: dict[str, list[str]] = {}
    for key, values in (audience or {}).items():
        if key not in AUDIENCE_KEYS:
            errors["audience"] = _("Unknown audience filter %(key)s.", key=key)
            continue
        values = [values] if isinstance(values, str) else list(values or [])
        if not values:
            continue
        allowed = {v for v, _label in options(_AUDIENCE_LISTS[key])}
        if any(v not in allowed for v in values):
            errors[f"audience.{key}"] = _("Choose among the listed values.")
        out[key] = [str(v) for v in values]
    return out


_AUDIENCE_LISTS = {"kind": "customer_kind", "value_tier": "value_tier", "status": "customer_status"}


def create_campaign(
    questionnaire: Questionnaire | int,
    name: str,
    *,
    trigger: str = "segment",
    audience: Mapping[str, Sequence[str]] | None = None,
    ticket_types: Sequence[str] = (),
    channel: str = "sms",
    starts_on: date | None = None,
    ends_on: date | None = None,
    user: Any = None,
) -> Campaign:
    """A draft campaign of ``questionnaire``; raises :class:`CampaignRefused` by field
    (``name``, ``trigger``, ``audience.kind``, ``ticket_types``, ``channel``, ``ends_on``…).
    Audited; the caller commits."""
    from core.choices import options

    errors: dict[str, str] = {}
    q_id = questionnaire if isinstance(questionnaire, int) else questionnaire.id
    if db.session.get(Questionnaire, q_id) is None:
        errors["questionnaire_id"] = _("Choose a questionnaire of this company.")
    clean = (name or "").strip() if isinstance(name, str) else ""
    if not clean or len(clean) > 200 or "\x00" in clean:
        errors["name"] = _("Name the campaign (at most 200 characters).")
    if trigger not in TRIGGERS:
        errors["trigger"] = _("Must be one of: %(values)s.", values=", ".join(TRIGGERS))
    clean_audience = _clean_audience(audience, errors)
    types = [str(t) for t in ticket_types or ()]
    if types and not set(types) <= {v for v, _label in options("ticket_type")}:
        errors["ticket_types"] = _("Choose among the listed ticket types.")
    if channel not in CHANNEL_KEYS:
        errors["channel"] = _("Must be one of: %(values)s.", values=", ".join(CHANNEL_KEYS))
    starts_on = starts_on or today()
    if ends_on is not None and ends_on < starts_on:
        errors["ends_on"] = _("The end date must not be before the start date.")
    if errors:
        raise CampaignRefused(errors)
    campaign = Campaign(
        questionnaire_id=q_id,
        name=clean,
        trigger=trigger,
        audience=clean_audience if trigger == "segment" else {},
        ticket_types=types if trigger == "ticket_closed" else [],
        channel=channel,
        starts_on=starts_on,
        ends_on=ends_on,
        state="draft",
        created_by=getattr(user, "id", None),
    )
    db.session.add(campaign)
    db.session.flush()
    audit.record(
        "create",
        Campaign.__tablename__,
        campaign.id,
        {"trigger": trigger, "questionnaire_id": q_id},
        user_id=getattr(user, "id", None),
    )
    return campaign


def _set_state(campaign: Campaign, state: str, user: Any) -> None:
    assert state in STATES
    before = campaign.state
    campaign.state = state
    db.session.flush()
    audit.record(
        "update",
        Campaign.__tablename__,
        campaign.id,
        {"state": state, "from": before},
        user_id=getattr(user, "id", None),
    )


def launch_campaign(campaign: Campaign, user: Any = None, at: datetime | None = None) -> int:
    """Start ``campaign`` (from draft): a segment campaign invites its whole audience at once
    (one ``INSERT … SELECT``); a ticket_closed campaign waits for tickets. Returns how many
    customers were invited. Raises :class:`CampaignRefused` unless the campaign is a draft."""
    if campaign.state != "draft":
        raise CampaignRefused({"state": _("Only a draft campaign can be launched.")})
    _set_state(campaign, "running", user)
    if campaign.trigger == "segment":
        return invite(campaign, None, at=at)
    return 0


def finish_campaign(campaign: Campaign, user: Any = None) -> None:
    """End a running campaign: its open links then say the survey is closed."""
    if campaign.state != "running":
        raise CampaignRefused({"state": _("Only a running campaign can be finished.")})
    _set_state(campaign, "finished", user)


def audience_conditions(audience: Mapping[str, Sequence[str]], table: Any) -> list[Any]:
    """SQL conditions on the customer table ``table`` for a segment ``audience``."""
    return [table.c[key].in_(list(values)) for key, values in audience.items() if values]


# -- invitations ----------------------------------------------------------------------------------


def token_for(invitation_id: int, company_id: int | None = None) -> str:
    """The one-time token of invitation ``invitation_id`` (derived from ``SECRET_KEY``)."""
    company_id = company_id if company_id is not None else require_company()
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    message = f"surveys:{company_id}:{invitation_id}".encode()
    mac = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def digest(token: str) -> str:
    """The SHA-256 (hex) under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invite(
    campaign: Campaign,
    customer_ids: Sequence[int] | None,
    *,
    ticket_id: int | None = None,
    at: datetime | None = None,
) -> int:
    """Invite customers to ``campaign``: those of ``customer_ids``, or (``None``) the
    campaign's audience. One ``INSERT … SELECT`` skips customers who refused surveys on the
    invitation's channel (:func:`core.consent.allowed`) and those invited already (to this
    ticket, with ``ticket_id``);
    then one query reads the new ids and one batched ``UPDATE`` stores their tokens' hashes.
    The invitation's channel is the customer's preferred survey channel, else the campaign's.
    Returns how many were invited."""
    company_id = require_company()
    moment = at or utcnow()
    customers = Customer.__table__
    ext = side_table("surveys", "customer")
    inv = Invitation.__table__
    if customer_ids is not None:
        ids = [int(i) for i in customer_ids if 0 < int(i) <= MAX_ID]
        if not ids:
            return 0
        chosen = [customers.c.id.in_(ids)]
    else:
        chosen = audience_conditions(campaign.audience or {}, customers)
    already = exists().where(
        inv.c.campaign_id == campaign.id,
        inv.c.customer_id == customers.c.id,
        inv.c.ticket_id.is_(None) if ticket_id is None else inv.c.ticket_id == ticket_id,
    )
    channel = func.coalesce(ext.c.preferred_channel, literal(campaign.channel))
    not_refused = consent.allowed(customers.c.id, channel, "survey", company_id)
    stamp = literal(moment, UTCDateTime())
    rows = (
        select(
            literal(company_id),
            literal(campaign.id),
            customers.c.id,
            literal(ticket_id),
            channel,
            stamp,
            stamp,
        )
        .select_from(customers.outerjoin(ext, ext.c.id == customers.c.id))
        .where(customers.c.company_id == company_id, not_refused, ~already, *chosen)
    )
    db.session.execute(
        sql_insert(inv).from_select(
            [
                "company_id",
                "campaign_id",
                "customer_id",
                "ticket_id",
                "channel",
                "sent_at",
                "created_at",
            ],
            rows,
        )  # fmt: skip
    )
    new_ids = db.session.scalars(
        select(inv.c.id).where(
            inv.c.company_id == company_id,
            inv.c.campaign_id == campaign.id,
            inv.c.token_hash.is_(None),
        )
    ).all()
    if new_ids:
        db.session.execute(
            update(inv)
            .where(and_(inv.c.id == bindparam("row_id"), inv.c.company_id == company_id))
            .values(token_hash=bindparam("hash")),
            [{"row_id": i, "hash": digest(token_for(i, company_id))} for i in new_ids],
        )
        audit.record(
            "create",
            Invitation.__tablename__,
            new_ids[0],
            {"campaign_id": campaign.id, "invited": len(new_ids), "ticket_id": ticket_id},
        )
    return len(new_ids)


def invitation_for_token(token: str) -> Invitation | None:
    """The invitation of the current company whose token is ``token`` (``None``: unknown)."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    return db.session.scalar(select(Invitation).where(Invitation.token_hash == digest(token)))


def answer_url(invitation_id: int, company_code: str | None = None, external: bool = False) -> str:
    """The public answer link of an invitation of the current company (give ``company_code``
    when building many links: it saves a query per link)."""
    from flask import url_for

    from core.extend import public_url

    token = token_for(invitation_id)
    if company_code:  # public_url would look the code up again (setdefault is eager)
        return url_for(
            "surveys_public.answer", company=company_code, token=token, _external=external
        )
    return public_url("surveys_public.answer", token=token, external=external)


def channel_of(invitation: Invitation) -> str:
    """The channel ``invitation`` went by (its own, else its campaign's)."""
    if invitation.channel:
        return invitation.channel
    campaign = db.session.get(Campaign, invitation.campaign_id)
    return campaign.channel if campaign else "sms"


def refuse(invitation: Invitation, at: datetime | None = None) -> str:
    """The customer of ``invitation`` wants no more surveys by the channel it came by: a refusal
    for purpose ``survey`` (:mod:`core.consent`, source ``survey link (invitation N)``),
    audited. Returns the channel. Refusing twice says the same."""
    channel = channel_of(invitation)
    consent.record(
        invitation.customer_id,
        channel,
        "survey",
        False,
        f"survey link (invitation {invitation.id})",
        at=at,
    )
    return channel


# -- responses ------------------------------------------------------------------------------------


def record_response(
    invitation: Invitation,
    answers: Mapping[Any, Any],
    user: Any = None,
    at: datetime | None = None,
    mode: str | None = None,
) -> Response:
    """Store the answers to ``invitation`` (question id → value: an int for rating/NPS, an
    option for single, a list of options for multiple, a string for text).

    ``user``: the member who entered them on the phone (``mode`` defaults to ``phone`` with a
    user, ``link`` without). Raises :class:`AnswersRefused` (messages by question id),
    :class:`AlreadyAnswered` (the link is used up, also when another submission won the race)
    or :class:`CampaignClosed`. Audited; the caller commits."""
    campaign = db.session.get(Campaign, invitation.campaign_id)
    if campaign is None or campaign.state == "finished":
        raise CampaignClosed(_("This survey is closed."))
    if invitation.answered_at is not None:
        raise AlreadyAnswered(_("This survey was already answered."))
    questions = questions_of(campaign.questionnaire_id)
    values, errors = check_answers(questions, answers)
    if errors:
        raise AnswersRefused(errors)
    moment = at or utcnow()
    won = db.session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.answered_at.is_(None))
        .values(answered_at=moment)
        .execution_options(synchronize_session=False)
    ).rowcount
    if won != 1:
        raise AlreadyAnswered(_("This survey was already answered."))
    db.session.refresh(invitation, ["answered_at"])
    mode = mode or ("phone" if user is not None else "link")
    response = Response(
        invitation_id=invitation.id,
        campaign_id=campaign.id,
        questionnaire_id=campaign.questionnaire_id,
        customer_id=invitation.customer_id,
        mode=mode,
        user_id=getattr(user, "id", None),
        answered_at=moment,
    )
    by_id = {q.id: q for q in questions}
    for question_id, value in values.items():
        kind = by_id[question_id].kind
        if kind in ("rating", "nps"):
            response.answers.append(Answer(question_id=question_id, score=value))
        elif kind == "single":
            response.answers.append(Answer(question_id=question_id, choice=value))
        elif kind == "multiple":
            for option in value:
                response.answers.append(Answer(question_id=question_id, choice=option))
        else:
            response.answers.append(Answer(question_id=question_id, text=value))
    db.session.add(response)
    db.session.flush()
    audit.record(
        "create",
        Response.__tablename__,
        response.id,
        {"invitation_id": invitation.id, "mode": mode},
        user_id=getattr(user, "id", None),
    )
    return response


# -- after a ticket closes ------------------------------------------------------------------------


def after_transition(subject: Any, from_state: str, to_state: str, at: datetime) -> None:
    """A service ticket entered ``closed``: invite its customer to each running
    ``ticket_closed`` campaign that covers today and the ticket's type (once per ticket)."""
    if not isinstance(subject, ServiceTicket) or to_state != CLOSED:
        return
    day = today()
    found = db.session.scalars(
        select(Campaign).where(
            Campaign.state == "running",
            Campaign.trigger == "ticket_closed",
            Campaign.starts_on <= day,
            or_(Campaign.ends_on.is_(None), Campaign.ends_on >= day),
        )
    ).all()
    for campaign in found:
        if campaign.ticket_types and subject.type not in campaign.ticket_types:
            continue
        invite(campaign, [subject.customer_id], ticket_id=subject.id, at=at)


def campaign_counts(campaign_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """``(invited, answered)`` per campaign id (one GROUP BY)."""
    if not campaign_ids:
        return {}
    rows = db.session.execute(
        select(
            Invitation.campaign_id,
            func.count(Invitation.id),
            func.count(Invitation.answered_at),
        )
        .where(Invitation.campaign_id.in_(list(campaign_ids)))
        .group_by(Invitation.campaign_id)
    ).all()
    return {cid: (int(n), int(done)) for cid, n, done in rows}
