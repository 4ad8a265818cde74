"""The audit log viewer (``/audit/``): who did what to which record, and when.

Admins and managers of the company read its audit rows newest first, filtered by user, action,
entity type, entity id and a date range (days in the company's time zone), one keyset page at
a time (the same cost on page 1 and page 1,000). An update shows its old → new values
(``data["changes"]``, see :mod:`core.audit`); a row links to its record's page where the
record has one (:func:`core.audit.entity_endpoint`). The CSV export of the filtered rows needs
the ``export`` permission and is itself audited. Other roles get a 403 that says why.

A member without the ``pii`` permission sees the personal values in a row's data masked on the
page and in the export, as the customer pages and exports mask them (:func:`redact`): customers'
phones and addresses, contacts' phones and every installed plugin's extension field declared
``pii``, in the old and new values of ``changes``, in a merge's snapshot of the merged customer
and in its extension values. E-mail addresses stay whole, as on the customer pages.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

from flask import Blueprint, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import login_required
from sqlalchemy import Select, select
from werkzeug.datastructures import MultiDict

from core import access, audit, exporter, keyset
from core import fields as ext
from core.db import db
from core.models import AuditLog, Membership, User
from core.plugins import current as current_plugins
from core.tenancy import company_scope, current_company_id
from core.web.context import enabled_plugins
from core.web.helpers import require_member, role
from core.web.interactions import company_zone

bp = Blueprint("audit", __name__, url_prefix="/audit")

#: Roles that may read the audit log.
AUDIT_ROLES = ("admin", "manager")
#: Newest first; the id is the order (rows are only ever added).
SORT = keyset.Sort("id", AuditLog.id, descending=True, kind="integer")
#: Actions the filter offers (any other text is accepted too).
ACTIONS = (
    "create",
    "update",
    "delete",
    "transition",
    "merge",
    "import",
    "export",
    "login",
    "login_failed",
    "logout",
    "enable",
    "disable",
    "erase",
)
MAX_ID = 2**31 - 1
#: The column ``info`` key that declares a column personal, with its kind of
#: :func:`core.access.mask`: ``mapped_column(String(40), info={"pii": "phone"})`` (the core's
#: customer phone and address and contact phone; a plugin marks its own columns the same way).
PII_INFO = "pii"

#: Masks one value.
Masker = Callable[[Any], Any]


@bp.before_request
@login_required
def _guard() -> None:
    require_member()
    if role() not in AUDIT_ROLES:
        abort(
            403,
            _(
                "The audit log is for the roles admin and manager; you are %(role)s.",
                role=role(),
            ),
        )


@dataclass(frozen=True)
class Filters:
    """The viewer's filters, checked (bad input is a 400 naming the field)."""

    user_id: int | None = None
    action: str = ""
    entity_type: str = ""
    entity_id: int | None = None
    since: date | None = None
    until: date | None = None

    def args(self) -> dict[str, Any]:
        """The filters as query arguments (for links to the next page and the export)."""
        raw = {
            "user": self.user_id,
            "action": self.action,
            "entity": self.entity_type,
            "entity_id": self.entity_id,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }
        return {k: v for k, v in raw.items() if v not in (None, "")}


def _int(args: MultiDict, name: str, label: str) -> int | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_ID:
        abort(400, _("%(field)s must be a whole number: %(value)s", field=label, value=raw[:40]))
    return int(raw)


def _date(args: MultiDict, name: str, label: str) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(
            400,
            _("%(field)s must be a date like 2026-01-31: %(value)s", field=label, value=raw[:40]),
        )


def parse_filters(args: MultiDict) -> Filters:
    """:class:`Filters` from query arguments ``args``; a 400 for malformed values."""
    return Filters(
        user_id=_int(args, "user", _("User")),
        action=(args.get("action") or "").strip()[:40],
        entity_type=(args.get("entity") or "").strip()[:60],
        entity_id=_int(args, "entity_id", _("Record number")),
        since=_date(args, "since", _("From")),
        until=_date(args, "until", _("Until")),
    )


def _moment(day: date) -> datetime:
    return datetime.combine(day, time.min, company_zone()).astimezone(UTC)


def query(filters: Filters) -> Select:
    """Audit rows of the company in scope (with the user's name) matching ``filters``."""
    stmt = select(AuditLog, User.name).outerjoin(User, User.id == AuditLog.user_id)
    if filters.user_id is not None:
        stmt = stmt.where(AuditLog.user_id == filters.user_id)
    if filters.action:
        stmt = stmt.where(AuditLog.action == filters.action)
    if filters.entity_type:
        stmt = stmt.where(AuditLog.entity_type == filters.entity_type)
    if filters.entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == filters.entity_id)
    if filters.since is not None:
        stmt = stmt.where(AuditLog.created_at >= _moment(filters.since))
    if filters.until is not None:
        stmt = stmt.where(AuditLog.created_at < _moment(filters.until + timedelta(days=1)))
    return stmt


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def describe(
    data: dict[str, Any] | None,
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
    """``(changes, details)`` of an audit row's ``data``: ``(field, old, new)`` for each
    changed column, and ``(key, value)`` for everything else, as readable text."""
    data = dict(data or {})
    changes = [(k, _text(v[0]), _text(v[1])) for k, v in (data.pop("changes", None) or {}).items()]
    if isinstance(data.get("from"), list | tuple) and isinstance(data.get("to"), list | tuple):
        before, after = data.pop("from"), data.pop("to")
        changes += [
            (str(n + 1), _text(o), _text(n_))
            for n, (o, n_) in enumerate(zip(before, after, strict=False))
            if o != n_
        ]
    return changes, [(k, _text(v)) for k, v in data.items()]


def personal_columns() -> dict[str, dict[str, Masker]]:
    """``table -> column -> masking function`` of the personal values an audit row may hold:
    every mapped column declared personal (``info={"pii": kind}``, :data:`PII_INFO`), and each
    extension field declared ``pii`` by any installed plugin (enabled or not: a row written
    while it was enabled stays masked), under its column in its side table and under its key
    (``<plugin>__<name>``) on its model."""
    out: dict[str, dict[str, Masker]] = {}
    for mapper in db.Model.registry.mappers:
        for column in mapper.local_table.columns:
            kind = column.info.get(PII_INFO)
            if kind:
                masker = partial(access.mask, kind=kind)
                out.setdefault(mapper.local_table.name, {})[column.key] = masker
    for field in current_plugins().registry.fields:
        if field.pii:
            masker = partial(ext.masked, field)
            out.setdefault(field.table_name, {})[field.name] = masker
            out.setdefault(field.model, {})[field.key] = masker
    return out


def _masked(values: Any, columns: Mapping[str, Masker]) -> Any:
    """A copy of dict ``values`` with ``columns`` masked (the row's own data is left as it is)."""
    if not isinstance(values, dict):
        return values
    return {k: columns[k](v) if k in columns else v for k, v in values.items()}


def redact(
    entity_type: str,
    data: dict[str, Any] | None,
    personal: Mapping[str, Mapping[str, Masker]] | None,
) -> dict[str, Any] | None:
    """``data`` of an audit row about a row of table ``entity_type``, with its personal values
    masked: ``personal`` is :func:`personal_columns`, or ``None`` for a member holding ``pii``
    (``data`` is returned as it is). Masked are the values of the row's personal columns at the
    top level and in ``changes`` (old and new), in ``merged`` (a merge's snapshot of the merged
    record) and, per side table, in ``extension`` (a merge's extension values)."""
    if not data or personal is None:
        return data
    own = personal.get(entity_type, {})
    out = _masked(data, own)
    changes = data.get("changes")
    if isinstance(changes, dict) and own:
        out["changes"] = {
            k: [own[k](v) for v in pair] if k in own and isinstance(pair, list) else pair
            for k, pair in changes.items()
        }
    if isinstance(data.get("merged"), dict):
        out["merged"] = _masked(data["merged"], own)
    if isinstance(data.get("extension"), dict):
        out["extension"] = {
            table: _masked(values, personal.get(table, {}))
            for table, values in data["extension"].items()
        }
    return out


def _personal() -> dict[str, dict[str, Masker]] | None:
    """What the request's member sees masked (``None``: nothing, they hold ``pii``)."""
    return None if access.has_permission("pii") else personal_columns()


def _link(row: AuditLog, on: frozenset[str] | set[str]) -> str | None:
    if row.entity_id is None or row.action in ("delete", "erase"):
        return None
    found = audit.entity_endpoint(current_app, row.entity_type)
    if found is None:
        return None
    endpoint, argument = found
    owner = current_app.extensions["guanxi.plugins"].registry.blueprint_owner.get(
        endpoint.split(".")[0]
    )
    if owner and owner not in on:
        return None
    return url_for(endpoint, **{argument: row.entity_id})


def _members() -> list[tuple[int, str]]:
    """The company's users, for the user filter (one query)."""
    return [
        (uid, name)
        for uid, name in db.session.execute(
            select(User.id, User.name)
            .join(Membership, Membership.user_id == User.id)
            .order_by(User.name)
        )
    ]


@bp.get("/")
def index() -> str:
    """One page of the company's audit rows, newest first."""
    filters = parse_filters(request.args)
    size = current_app.config["LIST_PAGE_SIZE"]
    stmt = query(filters)
    cursor = request.args.get("after")
    if cursor:
        position = keyset.decode(SORT, cursor)
        if position is None:
            abort(400, _("Not a valid page cursor: %(value)s", value=cursor[:40]))
        stmt = stmt.where(keyset.after(SORT, AuditLog.id, *position))
    found = db.session.execute(stmt.order_by(*keyset.order(SORT, AuditLog.id)).limit(size + 1))
    rows = list(found)
    more = len(rows) > size
    rows = rows[:size]
    on = enabled_plugins()
    personal = _personal()
    entries = [
        {
            "row": row,
            "who": name,
            "link": _link(row, on),
            "described": describe(redact(row.entity_type, row.data, personal)),
        }
        for row, name in rows
    ]
    return render_template(
        "audit/index.html",
        entries=entries,
        filters=filters,
        members=_members(),
        actions=ACTIONS,
        next_after=keyset.encode(rows[-1][0].id, rows[-1][0].id) if more else None,
        can_export=_can_export(),
    )


def _can_export() -> bool:
    from core.access import has_permission

    return has_permission("export")


@bp.get("/export.csv")
def export() -> Any:
    """The filtered rows as CSV (``export`` permission; the export is audited; personal values
    masked without ``pii``, as on the page)."""
    filters = parse_filters(request.args)
    exporter.authorize("audit_log", filters.args())
    stmt = query(filters)
    zone, company_id = company_zone(), current_company_id()
    personal = _personal()  # decided in the request: the stream runs after it

    def rows() -> Iterator[list[Any]]:
        with company_scope(company_id):
            yield from _csv_rows(stmt, zone, personal)

    header = ["id", "time", "user_id", "user", "action", "entity_type", "entity_id", "data"]
    return exporter.download("csv", "audit-log", header, rows)


def _csv_rows(
    stmt: Select, zone: Any, personal: Mapping[str, Mapping[str, Masker]] | None
) -> Iterator[list[Any]]:
    for batch in keyset.batches(stmt, AuditLog.id):
        for row, name in batch:
            data = redact(row.entity_type, row.data, personal)
            yield [
                row.id,
                row.created_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                row.user_id,
                name,
                row.action,
                row.entity_type,
                row.entity_id,
                json.dumps(data, ensure_ascii=False) if data else "",
            ]
