"""Campaigns (营销活动): one message to the customers of a segment, written to the outbox.

Python API (the caller commits)::

    from plugins.marketing import campaigns

    c = campaigns.create_campaign("双十一会员日", segment=seg, channel="sms", purpose="marketing",
                                  body="{name}您好，会员日全场九折。")
    campaigns.launch(c)                      # manual: written to the outbox now
    campaigns.launch(c)                      # refused: it was sent (and would add nobody)
    campaigns.send(c)                        # re-running the send adds nobody either

- triggers: ``manual`` (sent at launch), ``scheduled`` (sent by the job ``marketing.dispatch``
  once ``scheduled_at`` has come), ``birthday``, ``anniversary`` (of the first order),
  ``after_purchase`` (``days`` after an order) and ``decline`` (the customer's lifecycle stage
  is ``decline``: win-back): these stay ``active`` and the daily job ``marketing.care`` sends
  to the customers whose moment is today (:func:`run_triggers`).
- **Consent**: a message is written only for customers with a granted consent for the
  campaign's channel *and* purpose (:func:`core.consent.allowed`) and an
  address on that channel (e-mail; phone for SMS and WeChat).
- **Once**: ``UNIQUE (campaign_id, customer_id, occasion)`` on the outbox; the send is ONE
  ``INSERT … SELECT`` that skips rows already there (``NOT EXISTS``) and, should two runs race,
  ``ON CONFLICT DO NOTHING``. ``occasion`` is ``''`` for manual, scheduled and decline
  campaigns (once per customer, ever), the year for birthdays and anniversaries (once a year),
  the order id for after-purchase messages (once per order).
- ``{name}`` in the subject or body is replaced by the customer's name (in SQL); the text sent
  ends with the unsubscribe link (:func:`full_text`), a public page that withdraws the consent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date, datetime, timedelta
from typing import Any

from flask import current_app, has_request_context
from flask_babel import gettext as _
from sqlalchemy import String, and_, cast, exists, extract, func, literal, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.sql import Select

from core import audit, consent
from core.extend import UTCDateTime, db, require_company, utcnow
from core.fields import side_table
from core.i18n import pick
from core.models import Customer
from plugins.marketing import segments
from plugins.marketing.models import (
    CAMPAIGN_STATES,
    CHANNELS,
    MESSAGE_STATES,
    PURPOSES,
    TRIGGERS,
    Campaign,
    Message,
    Segment,
)
from plugins.marketing.senders import SENDERS

TRIGGER_KEYS = tuple(t[0] for t in TRIGGERS)
PURPOSE_KEYS = tuple(p[0] for p in PURPOSES)
CARE_TRIGGERS = ("birthday", "anniversary", "after_purchase", "decline")
MAX_ID = 2**31 - 1


class CampaignRefused(ValueError):
    """A campaign refused: ``errors`` by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _label(table: tuple[tuple[str, str, str], ...], key: str | None) -> str:
    for value, text, zh in table:
        if value == key:
            return pick(text, zh)
    return key or ""


def channel_label(key: str | None) -> str:
    return _label(CHANNELS, key)


def purpose_label(key: str | None) -> str:
    return _label(PURPOSES, key)


def trigger_label(key: str | None) -> str:
    return _label(TRIGGERS, key)


def state_label(key: str | None) -> str:
    return _label(CAMPAIGN_STATES, key)


def message_state_label(key: str | None) -> str:
    return _label(MESSAGE_STATES, key)


def today() -> date:
    from core.reports import today as company_today

    return company_today()


# -- campaigns ------------------------------------------------------------------------------------


def create_campaign(
    name: str,
    *,
    body: str,
    segment: Segment | int | None = None,
    channel: str = "sms",
    purpose: str = "marketing",
    trigger: str = "manual",
    days: int | None = None,
    scheduled_at: datetime | None = None,
    subject: str | None = None,
    conversion_days: int = 30,
    user: Any = None,
) -> Campaign:
    """A draft campaign; raises :class:`CampaignRefused` by field. Audited; the caller commits."""
    errors: dict[str, str] = {}
    clean = (name or "").strip()
    if not clean or len(clean) > 200 or "\x00" in clean:
        errors["name"] = _("Name the campaign (at most 200 characters).")
    text = (body or "").strip()
    if not text or len(text) > 5000 or "\x00" in text:
        errors["body"] = _("Write the message (at most 5000 characters).")
    segment_id = segment.id if isinstance(segment, Segment) else segment
    if segment_id is not None and db.session.get(Segment, segment_id) is None:
        errors["segment_id"] = _("Choose a segment of this company.")
    if channel not in SENDERS:
        errors["channel"] = _("Must be one of: %(values)s.", values=", ".join(SENDERS))
    if purpose not in PURPOSE_KEYS:
        errors["purpose"] = _("Must be one of: %(values)s.", values=", ".join(PURPOSE_KEYS))
    if trigger not in TRIGGER_KEYS:
        errors["trigger"] = _("Must be one of: %(values)s.", values=", ".join(TRIGGER_KEYS))
    if trigger == "after_purchase" and not (isinstance(days, int) and 0 <= days <= 3650):
        errors["days"] = _("Say how many days after the purchase (0 to 3650).")
    if trigger == "scheduled" and scheduled_at is None:
        errors["scheduled_at"] = _("Choose when to send.")
    if not (isinstance(conversion_days, int) and 1 <= conversion_days <= 365):
        errors["conversion_days"] = _("Between 1 and 365 days.")
    if subject is not None and len(subject) > 200:
        errors["subject"] = _("At most 200 characters.")
    if errors:
        raise CampaignRefused(errors)
    campaign = Campaign(
        name=clean,
        body=text,
        subject=(subject or "").strip() or None,
        segment_id=segment_id,
        channel=channel,
        purpose=purpose,
        trigger=trigger,
        days=days if trigger == "after_purchase" else None,
        scheduled_at=scheduled_at if trigger == "scheduled" else None,
        conversion_days=conversion_days,
        state="draft",
        created_by=getattr(user, "id", None),
    )
    db.session.add(campaign)
    db.session.flush()
    audit.record(
        "create",
        Campaign.__tablename__,
        campaign.id,
        {"trigger": trigger, "channel": channel, "purpose": purpose, "segment_id": segment_id},
        user_id=getattr(user, "id", None),
    )
    return campaign


def _set_state(campaign: Campaign, state: str, user: Any = None) -> None:
    before, campaign.state = campaign.state, state
    db.session.flush()
    audit.record(
        "update",
        Campaign.__tablename__,
        campaign.id,
        {"state": state, "from": before},
        user_id=getattr(user, "id", None),
    )


def launch(campaign: Campaign, user: Any = None, at: datetime | None = None) -> int:
    """Launch a draft: a manual campaign is written to the outbox at once (returns how many
    messages); a scheduled one waits for its time, a triggered one for its moments."""
    if campaign.state != "draft":
        raise CampaignRefused({"state": _("Only a draft campaign can be launched.")})
    campaign.launched_at = at or utcnow()
    if campaign.trigger == "manual":
        n = send(campaign, at=at)
        _set_state(campaign, "sent", user)
        return n
    _set_state(campaign, "scheduled" if campaign.trigger == "scheduled" else "active", user)
    return 0


def stop(campaign: Campaign, user: Any = None) -> None:
    """Stop a scheduled or triggered campaign (what it wrote stays in the outbox)."""
    if campaign.state not in ("scheduled", "active"):
        raise CampaignRefused({"state": _("Only a scheduled or active campaign can be stopped.")})
    _set_state(campaign, "stopped", user)


# -- the send -------------------------------------------------------------------------------------


def _segment(campaign: Campaign) -> Segment | None:
    return db.session.get(Segment, campaign.segment_id) if campaign.segment_id else None


def send(
    campaign: Campaign,
    candidates: Select | None = None,
    *,
    at: datetime | None = None,
    day: date | None = None,
) -> int:
    """Write the campaign's messages to the outbox in ONE ``INSERT … SELECT``.

    ``candidates`` selects ``(customer_id, occasion)`` (default: the segment, occasion ``''``);
    it is narrowed to the campaign's segment, to customers who consented to the campaign's
    channel and purpose and have an address on it, and to those not written to already for that
    occasion. Returns how many messages were written."""
    company_id = require_company()
    moment = at or utcnow()
    day = day or today()
    sender = SENDERS[campaign.channel]
    seg = _segment(campaign)
    in_segment = segments.customer_ids(seg)
    if candidates is None:
        candidates = select(
            in_segment.subquery().c[0].label("customer_id"), literal("").label("occasion")
        )
        restrict: list[Any] = []
    else:
        restrict = [] if seg is None else [Customer.id.in_(in_segment)]
    cand = candidates.subquery("cand")
    cust = Customer.__table__
    msg = Message.__table__
    address = cust.c[sender.address]
    stamp = literal(moment, UTCDateTime())

    def personal(text: str | None) -> Any:
        if text is None:
            return literal(None, String())
        return func.replace(literal(text, String()), "{name}", cust.c.name)

    already = exists().where(
        msg.c.campaign_id == campaign.id,
        msg.c.customer_id == cand.c.customer_id,
        msg.c.occasion == cand.c.occasion,
    )
    rows = (
        select(
            literal(company_id),
            literal(campaign.id),
            cust.c.id,
            cand.c.occasion,
            literal(campaign.channel),
            address,
            personal(campaign.subject),
            personal(campaign.body),
            literal("queued"),
            literal(day),
            literal(day + timedelta(days=campaign.conversion_days)),
            stamp,
        )
        .select_from(cand.join(cust, cust.c.id == cand.c.customer_id))
        .where(
            cust.c.company_id == company_id,
            address.is_not(None),
            address != "",
            consent.allowed(cust.c.id, campaign.channel, campaign.purpose, company_id),
            ~already,
            *restrict,
        )
        .distinct()
    )
    columns = [
        "company_id",
        "campaign_id",
        "customer_id",
        "occasion",
        "channel",
        "address",
        "subject",
        "body",
        "state",
        "sent_on",
        "convert_until",
        "created_at",
    ]
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - Guanxi runs on SQLite and PostgreSQL
        dialect_insert = sql_insert  # type: ignore[assignment]
    stmt = dialect_insert(msg).from_select(columns, rows)
    if hasattr(stmt, "on_conflict_do_nothing"):
        stmt = stmt.on_conflict_do_nothing()
    written = db.session.execute(stmt.execution_options(preserve_rowcount=True)).rowcount
    if written:
        audit.record(
            "send",
            Campaign.__tablename__,
            campaign.id,
            {"messages": written, "on": day.isoformat()},
        )
    return int(written)


def _month_day(column: Any, day: date) -> Any:
    """SQL: the date ``column`` falls on ``day``'s month and day (29 February on the 28th in
    other years)."""
    month_ok = extract("month", column) == day.month
    if day.month == 2 and day.day == 28 and not _leap(day.year):
        return and_(month_ok, extract("day", column).in_([28, 29]))
    return and_(month_ok, extract("day", column) == day.day)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def moments(campaign: Campaign, day: date) -> Select | None:
    """``(customer_id, occasion)`` of a triggered campaign's moments on ``day``."""
    from plugins.sales.models import Order

    company_id = require_company()
    if campaign.trigger == "birthday":
        ext = side_table("marketing", "customer")
        return select(
            ext.c.id.label("customer_id"), literal(str(day.year)).label("occasion")
        ).where(ext.c.birthday.is_not(None), _month_day(ext.c.birthday, day))
    orders = Order.__table__
    live = and_(orders.c.company_id == company_id, orders.c.state != "cancelled")
    if campaign.trigger == "anniversary":
        first = func.min(orders.c.ordered_on)
        return (
            select(
                orders.c.customer_id.label("customer_id"), literal(str(day.year)).label("occasion")
            )
            .where(live)
            .group_by(orders.c.customer_id)
            .having(first < date(day.year, 1, 1), _month_day(first, day))
        )
    if campaign.trigger == "after_purchase":
        return select(
            orders.c.customer_id.label("customer_id"),
            cast(orders.c.id, String).label("occasion"),
        ).where(live, orders.c.ordered_on == day - timedelta(days=campaign.days or 0))
    if campaign.trigger == "decline":
        cust = Customer.__table__
        return select(cust.c.id.label("customer_id"), literal("").label("occasion")).where(
            cust.c.company_id == company_id, cust.c.lifecycle_stage == "decline"
        )
    return None


def run_triggers(day: date | None = None, at: datetime | None = None) -> int:
    """Send every active triggered campaign's messages of ``day`` (default today)."""
    day = day or today()
    total = 0
    for campaign in db.session.scalars(
        select(Campaign).where(Campaign.state == "active").order_by(Campaign.id)
    ):
        candidates = moments(campaign, day)
        if candidates is not None:
            total += send(campaign, candidates, at=at, day=day)
    return total


def run_scheduled(at: datetime | None = None) -> int:
    """Send the scheduled campaigns whose time has come."""
    moment = at or utcnow()
    total = 0
    for campaign in db.session.scalars(
        select(Campaign).where(Campaign.state == "scheduled", Campaign.scheduled_at <= moment)
    ):
        total += send(campaign, at=moment)
        _set_state(campaign, "sent")
    return total


# -- tokens, unsubscribe, opens -----------------------------------------------------------------


def _mac(message_id: int, company_id: int) -> str:
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    mac = hmac.new(key, f"marketing:{company_id}:{message_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:18]).decode("ascii")


def token_for(message_id: int, company_id: int | None = None) -> str:
    """The message's link token: its id and an HMAC of it (nothing to store)."""
    company_id = company_id if company_id is not None else require_company()
    return f"{message_id}-{_mac(message_id, company_id)}"


def message_for_token(token: str) -> Message | None:
    """The current company's message whose token is ``token`` (``None``: not a valid one)."""
    if not isinstance(token, str) or len(token) > 60 or "-" not in token:
        return None
    raw_id, _sep, mac = token.partition("-")
    if not (raw_id.isascii() and raw_id.isdigit() and 0 < int(raw_id) <= MAX_ID):
        return None
    if not hmac.compare_digest(mac, _mac(int(raw_id), require_company())):
        return None
    return db.session.get(Message, int(raw_id))


def unsubscribe_url(message: Message, external: bool = True, code: str | None = None) -> str:
    """The public unsubscribe link of ``message`` (give the company ``code`` when building
    many: it saves a query per link). Outside a request the host is ``MAIL_BASE_URL``."""
    from core.extend import public_url

    values: dict[str, Any] = {"token": token_for(message.id), "external": external}
    if code:
        values["company"] = code
    if has_request_context():
        return public_url("marketing_public.unsubscribe", **values)
    base = current_app.config.get("MAIL_BASE_URL") or "http://localhost"
    with current_app.test_request_context("/", base_url=base):
        return public_url("marketing_public.unsubscribe", **values)


def full_text(message: Message, code: str | None = None) -> str:
    """What the customer receives: the message and the unsubscribe link."""
    url = unsubscribe_url(message, code=code)
    return message.body + "\n\n" + _("Unsubscribe: %(url)s", url=url)


def unsubscribe(message: Message, at: datetime | None = None) -> bool:
    """Withdraw the consent the message relied on (its channel and its campaign's purpose).
    Returns whether it was granted before."""
    campaign = db.session.get(Campaign, message.campaign_id)
    purpose = campaign.purpose if campaign else "marketing"
    row = consent.of_customer(message.customer_id).get((message.channel, purpose))
    before = bool(row and row.granted)
    consent.record(
        message.customer_id,
        message.channel,
        purpose,
        False,
        f"unsubscribe link (message {message.id})",
        at=at,
    )
    return before


def mark(message: Message, what: str, at: datetime | None = None) -> None:
    """Record that the message was ``opened`` or ``replied`` to (first time only)."""
    column = {"opened": Message.opened_at, "replied": Message.replied_at}[what]
    db.session.execute(
        update(Message)
        .where(Message.id == message.id, column.is_(None))
        .values({column.key: at or utcnow()})
        .execution_options(synchronize_session=False)
    )


# -- counts ---------------------------------------------------------------------------------------


def campaign_counts(campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Messages, delivered, opened, replied per campaign (one GROUP BY)."""
    if not campaign_ids:
        return {}
    rows = db.session.execute(
        select(
            Message.campaign_id,
            func.count(Message.id),
            func.count(Message.delivered_at),
            func.count(Message.opened_at),
            func.count(Message.replied_at),
        )
        .where(Message.campaign_id.in_(campaign_ids))
        .group_by(Message.campaign_id)
    ).all()
    return {
        cid: {"messages": n, "delivered": d, "opened": o, "replied": r} for cid, n, d, o, r in rows
    }


def reach(campaign: Campaign) -> dict[str, int]:
    """Who the campaign would reach now: the segment, with consent, with an address."""
    company_id = require_company()
    ids = segments.customer_ids(_segment(campaign))
    sender = SENDERS[campaign.channel]
    address = getattr(Customer, sender.address)
    consented = consent.allowed(Customer.id, campaign.channel, campaign.purpose, company_id)
    from core import access

    with access.all_customers():
        total = segments.count(ids)
        ok = db.session.scalar(
            select(func.count(Customer.id)).where(
                Customer.id.in_(ids), consented, address.is_not(None), address != ""
            )
        )
    return {"segment": total, "reachable": int(ok or 0)}
