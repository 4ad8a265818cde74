"""The notification pages: the bell's count in the header, the list, marking read."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import func, select, update

from core.db import db, utcnow
from core.models import Notification
from core.tenancy import current_company_id
from core.web.helpers import require_member

bp = Blueprint("notifications", __name__, url_prefix="/notifications")

#: The bell shows at most this many, then "99+".
BELL_CAP = 99
#: Ids beyond this name no row (PostgreSQL INTEGER).
MAX_ID = 2**31 - 1


def safe_next(value: str | None, default: str) -> str:
    """``value`` when it is a path on this site (``/customers/3?x=1``), else ``default``."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in value):
        return default
    return value


def unread_count() -> int:
    """Unread notifications of the current user in the current company, capped at
    ``BELL_CAP + 1`` (one query, cached for the request)."""
    if not current_user.is_authenticated or current_company_id() is None:
        return 0
    if "_unread_notifications" not in g:
        capped = (
            select(Notification.id)
            .where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
            .limit(BELL_CAP + 1)
            .subquery()
        )
        g._unread_notifications = db.session.scalar(select(func.count()).select_from(capped))
    return g._unread_notifications


def template_context() -> dict[str, Any]:
    """Context processor: ``unread_notifications()`` for the bell in ``base.html``."""
    return {"unread_notifications": unread_count, "bell_cap": BELL_CAP}


@bp.before_request
@login_required
def _guard() -> None:
    require_member()


def _cursor(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10 or int(raw) > MAX_ID:
        abort(400, _("Not a valid page cursor: %(value)s", value=raw[:40]))
    return int(raw)


@bp.route("/")
def index() -> str:
    """The current user's notifications, newest first, one keyset page at a time."""
    size = current_app.config["LIST_PAGE_SIZE"]
    before = _cursor(request.args.get("before"))
    unread_only = request.args.get("unread") == "1"
    stmt = select(Notification).where(Notification.user_id == current_user.id)
    if unread_only:
        stmt = stmt.where(Notification.read_at.is_(None))
    if before is not None:
        stmt = stmt.where(Notification.id < before)
    rows = list(db.session.scalars(stmt.order_by(Notification.id.desc()).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    return render_template(
        "notifications/index.html",
        rows=rows,
        next_before=rows[-1].id if more else None,
        unread_only=unread_only,
        zone=_zone(),
    )


def _zone() -> Any:
    from core.web.interactions import company_zone

    return company_zone()


def _own(notification_id: int) -> Notification:
    row = db.session.get(Notification, notification_id) if notification_id <= MAX_ID else None
    if row is None or row.user_id != current_user.id:
        abort(404)
    return row


@bp.route("/<int:notification_id>/open", methods=["POST"])
def open_(notification_id: int) -> Any:
    """Mark the notification read and go to what it is about."""
    row = _own(notification_id)
    if row.read_at is None:
        row.read_at = utcnow()
        db.session.commit()
    return redirect(safe_next(row.link, url_for(".index")))


@bp.route("/<int:notification_id>/read", methods=["POST"])
def mark_read(notification_id: int) -> Any:
    row = _own(notification_id)
    if row.read_at is None:
        row.read_at = utcnow()
        db.session.commit()
    return redirect(safe_next(request.form.get("next"), url_for(".index")))


@bp.route("/read-all", methods=["POST"])
def mark_all_read() -> Any:
    """Mark every unread notification of the user read (one UPDATE)."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == current_user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    flash(_("%(n)s notifications marked read.", n=result.rowcount))
    return redirect(safe_next(request.form.get("next"), url_for(".index")))
