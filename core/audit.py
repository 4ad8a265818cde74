"""Writing the audit log. Every create, update, delete, transition, merge, import, export,
login, enable and disable goes through :func:`record`, inside the transaction of the change it
describes.

**Old → new values.** An ``update`` (or ``transition``, or any action that is not a create,
delete, erase, export, import or merge) of a row that the ORM changed in the same transaction
gets ``data["changes"]``: ``{column: [old, new]}``, read from SQLAlchemy's attribute history at
each flush, so no caller has to list what it changed; extension fields, written by SQL
statements, add theirs through :func:`note_changes` (:func:`core.fields.save` does). Secrets
(columns named like ``password``, ``token``, ``secret`` or ``hash``) are written as ``"***"``;
long texts are cut; bookkeeping columns (``updated_at``, ``version``) are left out. Other
changes made with Core SQL statements (bulk ``UPDATE``) are not seen: their callers describe
them in ``data``.

**Links.** :func:`entity_endpoint` names the page of an audited row: the GET rule whose address
ends in ``<int:<name>_id>`` where the row's table is ``<name>`` or ``…_<name>`` and the
blueprint belongs to the same owner (core or plugin) as the table. A plugin's detail page is
found the day it is registered; no list to keep.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from flask import Flask, has_request_context
from flask_login import current_user
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session

from core.db import db
from core.models import AuditLog

#: Actions whose rows get no ``changes`` (they describe a whole row, or no row).
WHOLE_ROW = frozenset(
    {"create", "delete", "erase", "export", "export_person", "import", "merge", "login"}
)
#: Columns whose values are never written into the log.
SECRET = re.compile(r"password|secret|token|hash", re.IGNORECASE)
#: Columns that change with every save and say nothing.
NOISE = frozenset({"updated_at", "version", "version_id"})
#: Characters of a text value kept in the log.
MAX_TEXT = 200
_CHANGES = "guanxi.audit.changes"
#: The transaction's audit rows that may carry ``changes``, by (entity type, id).
_ROWS = "guanxi.audit.rows"


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


def plain(value: Any) -> Any:
    """``value`` as JSON can hold it (dates as ISO text, decimals as text, long text cut)."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def _changes_of(obj: Any) -> dict[str, list[Any]]:
    state = inspect(obj)
    out: dict[str, list[Any]] = {}
    for attr in state.mapper.column_attrs:
        if attr.key in NOISE:
            continue
        history = state.attrs[attr.key].history
        if not history.added and not history.deleted:
            continue
        old = history.deleted[0] if history.deleted else None
        new = history.added[0] if history.added else None
        if old == new:
            continue
        if SECRET.search(attr.key):
            out[attr.key] = ["***", "***"]
        else:
            out[attr.key] = [plain(old), plain(new)]
    return out


def note_changes(entity_type: str, entity_id: int, changes: dict[str, list[Any]]) -> None:
    """Old → new values of ``entity_type`` row ``entity_id`` that a SQL statement changed (the
    ORM does not see those: extension fields, :func:`core.fields.save`), for the ``changes`` of
    the record's audit row in this transaction, whether it is added before or after."""
    if not changes:
        return
    seen: dict[tuple[str, int], dict[str, list[Any]]] = db.session.info.setdefault(_CHANGES, {})
    kept = seen.setdefault((entity_type, entity_id), {})
    for key, (old, new) in changes.items():
        value = plain(new) if not SECRET.search(key) else "***"
        kept[key] = [kept[key][0] if key in kept else plain(old), value]
    for row in db.session.info.get(_ROWS, {}).get((entity_type, entity_id), ()):
        row.data = {**(row.data or {}), "changes": {**(row.data or {}).get("changes", {}), **kept}}


@event.listens_for(Session, "before_flush")
def _track_changes(session: Session, flush_context: Any, instances: Any) -> None:
    """Keep the old → new values of every changed row of this transaction, and put them on
    the pending audit rows that describe those rows."""
    seen: dict[tuple[str, int], dict[str, list[Any]]] = session.info.setdefault(_CHANGES, {})
    for obj in session.dirty:
        table = getattr(obj, "__tablename__", None)
        ident = inspect(obj).identity
        if table is None or isinstance(obj, AuditLog) or not ident or len(ident) != 1:
            continue
        found = _changes_of(obj)
        if not found:
            continue
        kept = seen.setdefault((table, ident[0]), {})
        for key, (old, new) in found.items():
            kept[key] = [kept[key][0] if key in kept else old, new]
    rows: dict[tuple[str, int], list[AuditLog]] = session.info.setdefault(_ROWS, {})
    for obj in session.new:
        if (
            isinstance(obj, AuditLog)
            and obj.entity_id is not None
            and obj.action not in WHOLE_ROW
            and not (obj.data or {}).get("changes")
        ):
            rows.setdefault((obj.entity_type, obj.entity_id), []).append(obj)
            changes = seen.get((obj.entity_type, obj.entity_id))
            if changes:
                obj.data = {**(obj.data or {}), "changes": changes}


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    session.info.pop(_CHANGES, None)
    session.info.pop(_ROWS, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    if not previous_transaction.nested:
        session.info.pop(_CHANGES, None)
        session.info.pop(_ROWS, None)


def _detail_endpoints(app: Flask) -> dict[str, tuple[str, str, str]]:
    """``base name -> [(endpoint, argument, owner)]`` of the app's detail pages (cached)."""
    cached = app.extensions.get("guanxi.audit.pages")
    if cached is not None:
        return cached
    registry = app.extensions["guanxi.plugins"].registry
    pages: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        found = re.search(r"<int:(\w+)_id>$", rule.rule)
        if (
            found is None
            or "GET" not in (rule.methods or ())
            or len(rule.arguments) != 1
            or rule.rule.startswith("/api/")
        ):
            continue
        owner = registry.blueprint_owner.get(rule.endpoint.split(".")[0]) or "core"
        pages.setdefault(found.group(1), []).append((rule.endpoint, f"{found.group(1)}_id", owner))
    app.extensions["guanxi.audit.pages"] = pages
    return pages


def entity_endpoint(app: Flask, entity_type: str) -> tuple[str, str] | None:
    """``(endpoint, argument)`` of the page showing a row of table ``entity_type``, or ``None``
    when no page of the table's owner ends in ``<int:<name>_id>`` (see the module's docstring)."""
    from core.migrations import table_owner

    manager = app.extensions["guanxi.plugins"]
    owner = table_owner(entity_type, list(manager.manifests))
    for base, pages in _detail_endpoints(app).items():
        if entity_type == base or entity_type.endswith(f"_{base}"):
            for endpoint, argument, page_owner in pages:
                if page_owner == owner:
                    return endpoint, argument
    return None
