"""Customer queries shared by pages, API and export: search, filters, keyset pages, counts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.sql import Select
from werkzeug.datastructures import MultiDict

from core import fields as ext
from core.db import db
from core.models import Customer

CORE_FILTERS = (
    "kind",
    "status",
    "value_tier",
    "loyalty",
    "lifecycle_stage",
    "owner_id",
    "channel_id",
)


def extension_fields(model: str = "customer") -> list[ext.Field]:
    """The current company's extension fields on ``model``."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    return current().registry.fields_for(model, enabled_plugins())


def query(args: MultiDict) -> tuple[Select, dict[str, str], list[ext.Field]]:
    """The customer query for request ``args``: search ``q``, core and extension filters.

    Returns the statement (rows: ``Customer`` then one column per extension field), the filter
    errors keyed by parameter, and the extension fields used.
    """
    fields = extension_fields()
    stmt = ext.join(select(Customer), Customer, fields)
    q = (args.get("q") or "").strip()
    if q:
        stmt = stmt.where(
            or_(
                Customer.name.contains(q, autoescape=True),
                Customer.phone.contains(q, autoescape=True),
                Customer.email.contains(q, autoescape=True),
                Customer.code == q,
            )
        )
    errors: dict[str, str] = {}
    for name in CORE_FILTERS:
        values = [v for v in args.getlist(name) if v]
        if not values:
            continue
        column = getattr(Customer, name)
        if name.endswith("_id"):
            if not all(v.isdigit() for v in values):
                errors[name] = "must be a number"
                continue
            values = [int(v) for v in values]
        stmt = stmt.where(column.in_(values))
    stmt, ext_errors = ext.apply_filters(stmt, fields, args)
    errors.update(ext_errors)
    return stmt, errors, fields


@dataclass
class Page:
    rows: list[tuple[Customer, dict[str, Any]]] = field(default_factory=list)
    next_after: int | None = None
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    fields: list[ext.Field] = field(default_factory=list)


def page(args: MultiDict, size: int, cap: int) -> Page:
    """One keyset page (newest first; ``after`` is the last id seen) and a capped count."""
    stmt, errors, fields = query(args)
    result = Page(errors=errors, fields=fields)
    counted = db.session.scalar(
        select(func.count()).select_from(
            stmt.with_only_columns(Customer.id).limit(cap + 1).subquery()
        )
    )
    result.count, result.capped = min(counted, cap), counted > cap
    after = args.get("after", "")
    if after:
        if not after.isascii() or not after.isdigit() or int(after) >= 2**31:
            result.errors["after"] = "must be the id of the last row seen (a whole number)"
            return result
        stmt = stmt.where(Customer.id < int(after))
    rows = db.session.execute(stmt.order_by(Customer.id.desc()).limit(size + 1)).all()
    for row in rows[:size]:
        result.rows.append((row[0], {f.key: row._mapping[f.key] for f in fields}))
    if len(rows) > size:
        result.next_after = rows[size - 1][0].id
    return result


def iterate(args: MultiDict, batch: int = 1000) -> Iterator[tuple[Customer, dict[str, Any]]]:
    """Every customer matching ``args``, in keyset batches (for exports)."""
    stmt, _errors, fields = query(args)
    last: int | None = None
    while True:
        batch_stmt = stmt if last is None else stmt.where(Customer.id < last)
        rows = db.session.execute(batch_stmt.order_by(Customer.id.desc()).limit(batch)).all()
        if not rows:
            return
        for row in rows:
            yield row[0], {f.key: row._mapping[f.key] for f in fields}
        last = rows[-1][0].id
        db.session.expunge_all()
