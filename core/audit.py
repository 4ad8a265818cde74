"""Writing the audit log. Every create, update, delete, transition, import, export, enable and
disable goes through :func:`record`, inside the transaction of the change it describes."""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from flask_login import current_user

from core.db import db
from core.models import AuditLog


def record(
    action: str,
    entity_type: str,
    entity_id: int | None,
    data: dict[str, Any] | None = None,
    *,
    user_id: int | None = None,
) -> AuditLog:
    """Add an audit row for the current company; the user defaults to the one logged in."""
    if user_id is None and has_request_context() and current_user.is_authenticated:
        user_id = current_user.id
    row = AuditLog(
        action=action, entity_type=entity_type, entity_id=entity_id, data=data, user_id=user_id
    )
    db.session.add(row)
    return row
