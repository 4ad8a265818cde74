"""Notifications: the in-app bell, and e-mail when SMTP is configured.

:func:`notify` adds a :class:`~core.models.Notification` for a member of the current company.
When ``MAIL_SERVER`` is set (``GUANXI_MAIL_*`` in the environment, see :mod:`core.config`),
an e-mail with the same message is queued on the database session and sent only after the
session commits: a rolled-back request sends nothing. Sending failures are logged, never raised
into the request or job that caused them.

:func:`notify_rows` is the set-based variant for jobs that notify many users of several
companies at once (the clock scan): one INSERT, one query for the e-mail addresses.
"""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from flask import current_app, has_app_context, has_request_context, request
from flask_babel import force_locale
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from core.db import db, utcnow
from core.models import Notification, User
from core.tenancy import require_company

log = logging.getLogger("guanxi.notify")

#: Key of the pending e-mails in ``Session.info``.
_PENDING = "guanxi_mail"
#: SMTP connection timeout, seconds (a dead server must not hang a request for long).
SMTP_TIMEOUT = 10


@dataclass(frozen=True)
class Mail:
    """An e-mail waiting for the session's commit, with the SMTP settings of its app."""

    to: str
    subject: str
    body: str
    settings: tuple[Any, ...]


def notify(
    user_id: int, kind: str, message: str, link: str | None = None, *, email: bool = True
) -> Notification:
    """Notify member ``user_id`` of the current company: a bell entry, and an e-mail after the
    commit when SMTP is configured and ``email`` is true. ``kind`` is a dotted code such as
    ``ticket.assigned``; ``link`` a path inside the site (``/tickets/12``)."""
    row = Notification(
        company_id=require_company(),
        user_id=user_id,
        kind=kind[:60],
        message=message[:500],
        link=(link or None) and link[:300],
    )
    db.session.add(row)
    if email and mail_configured():
        address = db.session.scalar(select(User.email).where(User.id == user_id))
        if address:
            _queue([_mail(address, message, link)])
    return row


def notify_users(
    user_ids: Iterable[int | None],
    kind: str,
    link: str | None,
    message: Callable[[], str],
    *,
    email: bool = True,
) -> list[int]:
    """Notify each of ``user_ids`` once, ``message()`` rendered in the recipient's language
    (their own, else Chinese). Returns the ids notified, sorted."""
    ids = sorted({i for i in user_ids if i})
    if not ids:
        return []
    locales = dict(db.session.execute(select(User.id, User.locale).where(User.id.in_(ids))).all())
    for user_id in ids:
        with force_locale(locales.get(user_id) or "zh_CN"):
            text = str(message())
        notify(user_id, kind, text, link, email=email)
    return ids


def notify_rows(rows: list[dict[str, Any]], *, email: bool = True) -> None:
    """Insert many notifications at once (``company_id``, ``user_id``, ``kind``, ``message``,
    ``link``, optionally ``created_at``) and queue their e-mails; for cross-company jobs."""
    if not rows:
        return
    now = utcnow()
    db.session.execute(
        insert(Notification),
        [{"created_at": now, "link": None, **r, "message": r["message"][:500]} for r in rows],
    )
    if email and mail_configured():
        ids = {r["user_id"] for r in rows}
        addresses = dict(
            db.session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()
        )
        _queue(
            [
                _mail(addresses[r["user_id"]], r["message"], r.get("link"))
                for r in rows
                if addresses.get(r["user_id"])
            ]
        )


def mail_configured() -> bool:
    """Whether notification e-mail is on (``MAIL_SERVER`` set in the app's config)."""
    return has_app_context() and bool(current_app.config.get("MAIL_SERVER"))


def _settings() -> tuple[Any, ...]:
    c = current_app.config
    return (
        c["MAIL_SERVER"],
        int(c.get("MAIL_PORT") or 25),
        bool(c.get("MAIL_USE_TLS")),
        c.get("MAIL_USERNAME"),
        c.get("MAIL_PASSWORD"),
        c.get("MAIL_DEFAULT_SENDER") or "guanxi@localhost",
    )


def _absolute(link: str) -> str:
    if link.startswith(("http://", "https://")):
        return link
    base = current_app.config.get("MAIL_BASE_URL") or ""
    if not base and has_request_context():
        base = request.host_url
    return base.rstrip("/") + link if base else link


def _mail(address: str, message: str, link: str | None) -> Mail:
    subject = message.splitlines()[0] if message else "Guanxi"
    if len(subject) > 120:
        subject = subject[:119] + "…"
    body = message + (f"\n\n{_absolute(link)}\n" if link else "\n")
    return Mail(address, f"[Guanxi] {subject}", body, _settings())


def _queue(mails: list[Mail]) -> None:
    if mails:
        db.session().info.setdefault(_PENDING, []).extend(mails)


def send(mail: Mail) -> bool:
    """Send one e-mail now; logs and returns ``False`` on any failure."""
    host, port, use_tls, username, password, sender = mail.settings
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = mail.subject, sender, mail.to
    msg.set_content(mail.body)
    try:
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT) as smtp:
            if use_tls:
                smtp.starttls()
            if username:
                smtp.login(username, password or "")
            smtp.send_message(msg)
    except Exception:  # noqa: BLE001 - a mail failure must never break the caller
        log.exception("notification e-mail to %s failed", mail.to)
        return False
    return True


@event.listens_for(Session, "after_commit")
def _send_pending(session: Session) -> None:
    for mail in session.info.pop(_PENDING, []):
        send(mail)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if not previous_transaction.nested:
        session.info.pop(_PENDING, None)
