"""Keyset (cursor) pagination: sort orders, opaque cursors and the "rows after" condition.

A page of a list is the first ``size`` rows *after* a cursor in a fixed order, never an
``OFFSET``: page 1,000 costs what page 1 costs, and rows added meanwhile neither repeat nor go
missing. Every order ends with the record's id, so it is total. A cursor is the sort value and
the id of the last row shown, as url-safe base64 of a small JSON array; it is opaque to clients
and checked strictly when it comes back (a tampered cursor is a 400, never a 500).

Used by the customer pages, the JSON API and every plugin list that pages.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import and_, or_

MAX_ID = 2**31 - 1
KINDS = ("datetime", "date", "decimal", "integer", "text")


@dataclass(frozen=True)
class Sort:
    """A sort order: a column, its direction and whether it may be empty (empty rows last).

    ``kind`` says how the cursor stores the value: ``datetime``, ``date``, ``decimal``,
    ``integer`` or ``text``.
    """

    key: str
    column: Any
    descending: bool = False
    nullable: bool = False
    kind: str = "text"


def encode(value: Any, row_id: int) -> str:
    """The cursor after a row whose sort value is ``value`` and id ``row_id``."""
    if isinstance(value, datetime | date):
        value = value.isoformat()
    elif isinstance(value, Decimal):
        value = str(value)
    raw = json.dumps([value, row_id], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def cursor_after(sort: Sort, row: Any) -> str:
    """The cursor after ``row`` (an ORM object with an ``id``) in ``sort``."""
    return encode(getattr(row, sort.column.key), row.id)


def decode(sort: Sort, cursor: str) -> tuple[Any, int] | None:
    """``(value, id)`` of a cursor made by :func:`encode` for ``sort``, or ``None`` when the
    cursor is malformed or does not belong to this sort."""
    if not cursor.isascii() or len(cursor) > 600:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, row_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(row_id, int) or isinstance(row_id, bool) or not 0 < row_id <= MAX_ID:
        return None
    if value is None:
        return (None, row_id) if sort.nullable else None
    if sort.kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**63
        return (value, row_id) if ok else None
    if not isinstance(value, str):
        return None
    try:
        if sort.kind == "datetime":
            moment = datetime.fromisoformat(value)
            return (moment, row_id) if moment.tzinfo is not None else None
        if sort.kind == "date":
            return date.fromisoformat(value), row_id
        if sort.kind == "decimal":
            number = Decimal(value)
            return (number, row_id) if number.is_finite() else None
    except (ValueError, InvalidOperation):
        return None
    return (value, row_id) if "\x00" not in value else None


def order(sort: Sort, id_column: Any) -> list[Any]:
    """``ORDER BY`` terms of ``sort``, ties broken by ``id_column`` (empty values last)."""
    col = sort.column
    if col is id_column:
        return [col.desc() if sort.descending else col.asc()]
    terms = [col.desc(), id_column.desc()] if sort.descending else [col.asc(), id_column.asc()]
    return [col.is_(None).asc(), *terms] if sort.nullable else terms


def after(sort: Sort, id_column: Any, value: Any, row_id: int) -> Any:
    """The condition "comes after ``(value, row_id)``" in ``sort``."""
    col = sort.column
    beyond = id_column < row_id if sort.descending else id_column > row_id
    if col is id_column:
        return beyond
    if value is None:
        return and_(col.is_(None), beyond)
    further = col < value if sort.descending else col > value
    # The first term repeats what the OR implies: it gives the planner a range to start an
    # index scan at (PostgreSQL otherwise walks the index from its end, filtering: 3 s deep
    # in a million customers, 0.1 ms with it).
    bound = col <= value if sort.descending else col >= value
    clause = and_(bound, or_(further, and_(col == value, beyond)))
    return or_(clause, col.is_(None)) if sort.nullable else clause


def batches(stmt: Any, id_column: Any, size: int = 1000) -> Iterator[list[Any]]:
    """Every row of ``stmt``, highest id first, ``size`` rows per query (exports of any length).

    After each batch the session is emptied, so memory holds one batch, not every row read.
    """
    from core.db import db

    last: int | None = None
    while True:
        batch_stmt = stmt if last is None else stmt.where(id_column < last)
        rows = db.session.execute(batch_stmt.order_by(id_column.desc()).limit(size)).all()
        if not rows:
            return
        last = rows[-1][0].id
        yield rows
        db.session.expunge_all()
