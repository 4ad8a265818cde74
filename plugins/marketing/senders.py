"""Senders: how a message in the outbox leaves -- e-mail (SMTP), SMS and WeChat, pluggable.

Every campaign message is first a row of the outbox (:class:`~plugins.marketing.models.Message`,
state ``queued``). The job ``marketing.deliver`` (every 5 minutes) hands queued messages to the
sender of their channel:

- ``email`` -- sent by SMTP with the app's mail settings (``MAIL_SERVER`` …, as notifications);
- ``sms``, ``wechat`` -- given to the gateway named in the app's config ``MARKETING_GATEWAYS``
  (``{"sms": "package.module:function"}``): ``function(address, subject, text) -> bool``.

A channel without a gateway (no ``MAIL_SERVER``, no entry in ``MARKETING_GATEWAYS``) leaves its
messages ``queued`` in the outbox: nothing is lost, a gateway configured later sends them, and
tests and staff read them on ``/marketing/outbox``. Another plugin or a deployment registers a
sender for a new channel with :func:`register`.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select

from core.extend import db, utcnow
from plugins.marketing.models import Message

log = logging.getLogger("guanxi.marketing.senders")

#: Messages one delivery run takes per company.
BATCH = 500


@dataclass(frozen=True)
class Sender:
    """A channel's sender: ``address`` names the customer column messages go to;
    ``gateway()`` returns the function that sends one message, or ``None`` (no gateway)."""

    channel: str
    address: str
    gateway: Callable[[], Callable[[str, str | None, str], bool] | None]


def _smtp() -> Callable[[str, str | None, str], bool] | None:
    from core import notify

    if not notify.mail_configured():
        return None

    def send(address: str, subject: str | None, text: str) -> bool:
        return notify.send(notify.Mail(address, subject or "", text, notify._settings()))

    return send


def _configured(channel: str) -> Callable[[], Callable[[str, str | None, str], bool] | None]:
    def gateway() -> Callable[[str, str | None, str], bool] | None:
        target = (current_app.config.get("MARKETING_GATEWAYS") or {}).get(channel)
        if not target:
            return None
        if callable(target):
            return target
        module, _sep, name = str(target).partition(":")
        return getattr(importlib.import_module(module), name)

    return gateway


SENDERS: dict[str, Sender] = {
    "email": Sender("email", "email", _smtp),
    "sms": Sender("sms", "phone", _configured("sms")),
    "wechat": Sender("wechat", "phone", _configured("wechat")),
}


def register(sender: Sender) -> None:
    """Add or replace the sender of ``sender.channel``."""
    SENDERS[sender.channel] = sender


def deliver(company: Any = None) -> int:
    """Hand the current company's queued messages to their channels' gateways; messages of a
    channel without one stay queued. Returns how many were sent."""
    from core.web.public import company_code
    from plugins.marketing.campaigns import full_text

    code = company_code()
    sent = 0
    for channel, sender in SENDERS.items():
        gateway = sender.gateway()
        if gateway is None:
            continue
        rows = db.session.scalars(
            select(Message)
            .where(Message.state == "queued", Message.channel == channel)
            .order_by(Message.id)
            .limit(BATCH)
        ).all()
        for message in rows:
            try:
                ok = bool(gateway(message.address, message.subject, full_text(message, code)))
            except Exception as exc:  # noqa: BLE001 - one failure must not stop the batch
                log.exception("marketing message %s failed", message.id)
                ok, message.error = False, str(exc)[:300]
            message.state = "sent" if ok else "failed"
            message.delivered_at = utcnow() if ok else None
            sent += ok
        db.session.flush()
    return sent
