"""Consent (授权同意, PIPL): whether a customer agreed to be contacted, per channel and purpose.

The core has no consent or opt-out notion of its own (the surveys plugin's ``surveys__opt_out``
is that plugin's, about surveys only), so the record lives here: one current row per
(customer, channel, purpose) with ``granted``, its ``source`` (``form``, ``import``, ``phone``,
``unsubscribe link``, …) and time; every change is also written to the audit log, which keeps
the history. No row means no consent: campaigns reach only customers with a granted row for the
campaign's channel and purpose (:func:`granted_clause`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import exists, select, true

from core import audit
from core.extend import db, utcnow
from plugins.marketing.models import CHANNELS, PURPOSES, Consent

CHANNEL_KEYS = tuple(c[0] for c in CHANNELS)
PURPOSE_KEYS = tuple(p[0] for p in PURPOSES)


class ConsentRefused(ValueError):
    """A consent change refused (unknown channel or purpose, no source)."""


def record(
    customer_id: int,
    channel: str,
    purpose: str,
    granted: bool,
    source: str,
    *,
    user: Any = None,
    at: datetime | None = None,
) -> Consent:
    """Record the customer's answer for ``channel`` and ``purpose`` (replacing the current
    one). Audited with the previous answer; the caller commits."""
    if channel not in CHANNEL_KEYS or purpose not in PURPOSE_KEYS:
        raise ConsentRefused(_("Unknown channel or purpose."))
    source = (source or "").strip()[:200]
    if not source:
        raise ConsentRefused(_("Say where the consent comes from."))
    row = db.session.scalar(
        select(Consent).where(
            Consent.customer_id == customer_id,
            Consent.channel == channel,
            Consent.purpose == purpose,
        )
    )
    before = None if row is None else row.granted
    if row is None:
        row = Consent(customer_id=customer_id, channel=channel, purpose=purpose)
        db.session.add(row)
    row.granted = bool(granted)
    row.source = source
    row.recorded_at = at or utcnow()
    row.recorded_by = getattr(user, "id", None)
    db.session.flush()
    audit.record(
        "consent",
        "customer",
        customer_id,
        {
            "channel": channel,
            "purpose": purpose,
            "granted": bool(granted),
            "before": before,
            "source": source,
        },
        user_id=getattr(user, "id", None),
    )
    return row


def of_customer(customer_id: int) -> dict[tuple[str, str], Consent]:
    """The customer's consent rows by ``(channel, purpose)``."""
    rows = db.session.scalars(select(Consent).where(Consent.customer_id == customer_id))
    return {(r.channel, r.purpose): r for r in rows}


def granted_clause(customer_id_column: Any, channel: str, purpose: str, company_id: int) -> Any:
    """SQL: the customer of ``customer_id_column`` consented to ``channel`` for ``purpose``."""
    c = Consent.__table__
    return exists().where(
        c.c.company_id == company_id,
        c.c.customer_id == customer_id_column,
        c.c.channel == channel,
        c.c.purpose == purpose,
        c.c.granted == true(),
    )
