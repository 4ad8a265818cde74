"""Consent (授权同意, PIPL): whether a customer may be contacted, per channel and purpose.

One engine for every plugin that contacts customers. A plugin declares the **purposes** it
contacts them for (hook ``guanxi_consent_purposes``: :class:`Purpose`); the **channels** are the
``contact_channel`` choice list (phone, SMS, e-mail, WeChat; plugins may add theirs). For each
(customer, channel, purpose) the table ``consent`` holds the current answer -- granted or
refused -- with its ``source`` (form, call, import, unsubscribe link…), when and by whom. Every
change is also an audit row ``consent`` with the previous answer, so the history is kept.

What an answer means depends on the purpose:

- ``needs_consent=True`` (marketing, care messages, membership notices): **no answer means no**.
  Only customers with a granted row are reached.
- ``needs_consent=False`` (a satisfaction survey after a service the customer asked for):
  **no answer means yes**; a refusal stops it.

A plugin's mass sending applies the answer in SQL: :func:`allowed` is a clause for the
``WHERE`` of its ``INSERT … SELECT`` (one correlated ``EXISTS`` served by the unique index on
(customer, channel, purpose)), never a Python loop over customers. The customer page shows the
answers for the purposes of the company's enabled plugins and records new ones
(:mod:`core.web.customers`); a person's data export includes them (:mod:`core.privacy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import exists, false, select, true

from core import audit
from core.db import db, utcnow
from core.i18n import pick
from core.models import Consent

#: The choice list of the channels consent is recorded for.
CHANNEL_LIST = "contact_channel"


@dataclass(frozen=True)
class Purpose:
    """Something a plugin contacts customers for (``name``: ``marketing``, ``survey``…).

    ``needs_consent``: reach only customers who agreed (``True``), or everyone but those who
    refused (``False``)."""

    name: str
    label: str
    label_zh: str = ""
    needs_consent: bool = True
    plugin: str = ""

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)


class ConsentRefused(ValueError):
    """A consent answer refused; ``errors`` by form field (``channel``, ``purpose``, ``source``)."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _registry() -> Any:
    from core.plugins import current

    return current().registry


def purposes(enabled: frozenset[str] | None = None) -> list[Purpose]:
    """The purposes of the company's enabled plugins (``enabled``: that set instead), in
    declaration order."""
    from core.web.context import enabled_plugins

    on = enabled if enabled is not None else enabled_plugins()
    return [p for p in _registry().consent_purposes.values() if p.plugin in on]


def declared(name: str) -> Purpose:
    """The purpose ``name`` of any installed plugin (``KeyError`` when none declares it)."""
    return _registry().consent_purposes[name]


def channels() -> list[tuple[str, str]]:
    """``(value, label)`` of the channels consent is recorded for, for the company in scope."""
    from core.choices import options

    return options(CHANNEL_LIST)


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
    one), audited with the previous answer. The caller checks the customer is visible and
    commits. Raises :class:`ConsentRefused` for a channel or purpose the company does not
    have, or an empty source."""
    errors: dict[str, str] = {}
    if channel not in {value for value, _label in channels()}:
        errors["channel"] = _("Unknown channel.")
    if purpose not in {p.name for p in purposes()}:
        errors["purpose"] = _("Unknown purpose.")
    source = (source or "").strip()[:200]
    if not source:
        errors["source"] = _("Say where the consent comes from.")
    if errors:
        raise ConsentRefused(errors)
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
    """The customer's answers by ``(channel, purpose)``."""
    rows = db.session.scalars(select(Consent).where(Consent.customer_id == customer_id))
    return {(r.channel, r.purpose): r for r in rows}


def may_contact(customer_id: int, channel: str, purpose: str) -> bool:
    """Whether one customer may be contacted through ``channel`` for ``purpose`` now."""
    row = of_customer(customer_id).get((channel, purpose))
    if row is None:
        return not declared(purpose).needs_consent
    return row.granted


def allowed(customer_id: Any, channel: Any, purpose: str, company_id: int) -> Any:
    """SQL: the customer of the column ``customer_id`` may be contacted through ``channel`` (a
    value or a column, such as the customer's preferred channel) for ``purpose``.

    A purpose that needs consent: a granted answer exists. Otherwise: no refusal exists."""
    c = Consent.__table__

    def answered(granted: Any) -> Any:
        return exists().where(
            c.c.company_id == company_id,
            c.c.customer_id == customer_id,
            c.c.channel == channel,
            c.c.purpose == purpose,
            c.c.granted == granted,
        )

    if declared(purpose).needs_consent:
        return answered(true())
    return ~answered(false())
