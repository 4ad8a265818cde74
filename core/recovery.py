"""Service recovery (服务补救): an apology and a compensation within an authorised limit.

The company authorises, per role, the largest compensation one person may grant on a ticket
(company setting ``service_recovery``, value ``{"limits": {"service_agent": 200, ...}}``; a role
mapped to ``None`` may grant any amount, a role missing from the mapping gets the default).
:func:`apply` writes the recovery on a ticket after checking the limit for the granting user's
role; :class:`RecoveryError` names the form field and the limit that refused it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from core import audit
from core.db import db
from core.followup import in_company_language
from core.models import CompanySetting, ServiceTicket

SETTING_KEY = "service_recovery"

#: Default compensation limits per role (in the company's currency); ``None`` = no limit.
#: Roles not listed (and the viewer) may apologise but grant no compensation.
DEFAULT_LIMITS: dict[str, Decimal | None] = {
    "service_agent": Decimal("200"),
    "manager": Decimal("2000"),
    "admin": None,
    "sales_rep": Decimal("0"),
}

#: The roles whose limit the settings form offers.
LIMIT_ROLES = ("service_agent", "sales_rep", "manager", "admin")


class RecoveryError(ValueError):
    """A refused service recovery; ``field`` is the form field the message belongs to."""

    def __init__(self, message: str, *, field: str = "compensation") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal("0")


def limits() -> dict[str, Decimal | None]:
    """The current company's compensation limit per role (defaults merged with its setting)."""
    stored = db.session.scalar(
        select(CompanySetting.value).where(CompanySetting.key == SETTING_KEY)
    )
    merged = dict(DEFAULT_LIMITS)
    if isinstance(stored, dict) and isinstance(stored.get("limits"), dict):
        for role, value in stored["limits"].items():
            merged[role] = _decimal(value)
    return merged


def limit_for(role: str | None) -> Decimal | None:
    """The largest compensation ``role`` may grant (``None``: no limit)."""
    if role is None or role == "viewer":
        return Decimal("0")
    return limits().get(role, Decimal("0"))


def save_limits(values: dict[str, Decimal | None]) -> None:
    """Store the company's limits (``None`` = unlimited); the caller commits."""
    row = db.session.scalar(select(CompanySetting).where(CompanySetting.key == SETTING_KEY))
    payload = {"limits": {r: (None if v is None else str(v)) for r, v in values.items()}}
    if row is None:
        db.session.add(CompanySetting(key=SETTING_KEY, value=payload))
    else:
        row.value = payload
    audit.record("update", "company_setting", None, {"key": SETTING_KEY, **payload})


@in_company_language
def format_amount(amount: Decimal | None) -> str:
    """``¥200.00``, or "no limit" for ``None``."""
    return _("no limit") if amount is None else f"¥{amount:,.2f}"


@in_company_language
def check(role: str | None, amount: Decimal | None) -> str | None:
    """Why ``role`` may not grant ``amount`` (a message naming the limit), or ``None``."""
    if amount is None or amount == 0:
        return None
    if amount < 0:
        return _("Compensation cannot be negative.")
    limit = limit_for(role)
    if limit is not None and amount > limit:
        return _(
            "Above your authorised limit of %(limit)s for your role; ask someone with a "
            "higher limit (see Tickets › Settings).",
            limit=format_amount(limit),
        )
    return None


@in_company_language
def apply(
    ticket: ServiceTicket,
    *,
    role: str | None,
    apology: bool,
    compensation: Decimal | None,
    note: str | None,
    user_id: int | None = None,
) -> None:
    """Record the service recovery on ``ticket`` as a user with ``role``; the caller commits.

    The limit applies to a changed amount: someone with a lower limit may still edit the note
    of a recovery a manager granted. Raises :class:`RecoveryError` and changes nothing when the
    amount is refused.
    """
    if role is None or role == "viewer":
        raise RecoveryError(_("Your role cannot record a service recovery."), field="apology")
    if compensation is not None and compensation != (ticket.compensation or None):
        reason = check(role, compensation)
        if reason:
            raise RecoveryError(reason)
    before = {
        "apology": ticket.apology,
        "compensation": None if ticket.compensation is None else str(ticket.compensation),
    }
    ticket.apology = bool(apology)
    ticket.compensation = compensation
    ticket.recovery_note = (note or "").strip() or None
    audit.record(
        "update",
        "service_ticket",
        ticket.id,
        {
            "service_recovery": {
                "before": before,
                "apology": ticket.apology,
                "compensation": None if compensation is None else str(compensation),
            }
        },
        user_id=user_id,
    )
