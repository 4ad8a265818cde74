"""Merging two records of one customer (客户合并): everything moves to the survivor.

:func:`merge_customers` finds what refers to a customer *from the SQLAlchemy metadata*, so core
and plugin tables are treated alike and the core names no plugin:

* every ``ForeignKey`` to ``customer.id`` -- its rows are re-pointed at the survivor with one
  ``UPDATE`` per column. Where the column is part of a unique constraint (a tag on a customer,
  a channel's claim) a row that would duplicate one the survivor already has stays behind; those
  left-overs are written into the audit row and deleted;
* a table whose primary key *is* the customer id (an extension-field side table, 1:1): the
  survivor keeps its values and gets the merged record's values where its own are empty;
* polymorphic references, i.e. tables with ``subject_type``/``subject_id`` columns (comments,
  workflow history, obligations …) where ``subject_type = 'customer'``: moved the same way.

The survivor's empty core fields are filled from the merged record, revenue is summed, the
earliest ``created_at`` and latest ``last_contact_at`` kept, notes appended; the merged customer
is deleted and one audit row (``merge``, ``customer``, survivor id) records the merged id, a
snapshot of the merged record and the rows moved per table. All of it happens in the caller's
transaction: the caller commits (or rolls back on :class:`MergeRefused`).

The audit log itself (``entity_type``/``entity_id``) is history and stays as written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import has_request_context
from flask_babel import gettext
from sqlalchemy import (
    Column,
    MetaData,
    Table,
    UniqueConstraint,
    delete,
    exists,
    func,
    inspect,
    or_,
    select,
    update,
)

from core import access, audit, classify, permissions
from core.db import db
from core.models import Customer, Membership, Notification, User
from core.tenancy import require_company

#: Roles allowed to merge customers.
#: ``subject_type`` of customers in polymorphic references.
SUBJECT_TYPE = "customer"
#: Core columns the merge never copies (identity, bookkeeping, computed by rules).
NOT_FILLED = {
    "id",
    "company_id",
    "version",
    "created_at",
    "updated_at",
    "value_tier",
    "loyalty",
    "lifecycle_stage",
    "revenue",
    "last_contact_at",
    "notes",
    "status",
    "is_organization",
}


def _(message: str, **values: Any) -> str:
    """``message`` translated in a request (Flask-Babel), plain English elsewhere (CLI, jobs)."""
    if has_request_context():
        return gettext(message, **values)
    return message % values if values else message


class MergeRefused(Exception):
    """A merge that may not happen; ``status`` is the HTTP status a page should answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Reference:
    """A column that refers to customers.

    ``kind`` is ``fk`` (a foreign key), ``one_to_one`` (the primary key is the customer id)
    or ``subject`` (``subject_id`` with ``subject_type = 'customer'``). ``unique`` lists the
    other columns of each unique constraint that includes ``column``.
    """

    table: Table
    column: Column
    kind: str
    unique: tuple[tuple[Column, ...], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


@dataclass
class MergeResult:
    survivor_id: int
    merged_id: int
    moved: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    filled: list[str] = field(default_factory=list)
    audit_id: int | None = None


def _unique_sets(table: Table, column: Column) -> tuple[tuple[Column, ...], ...]:
    sets: list[tuple[Column, ...]] = []
    candidates: list[Iterable[Column]] = [table.primary_key.columns]
    candidates += [c.columns for c in table.constraints if isinstance(c, UniqueConstraint)]
    candidates += [i.columns for i in table.indexes if i.unique]
    for cols in candidates:
        cols = list(cols)
        if column in cols and len(cols) > 1:
            sets.append(tuple(c for c in cols if c is not column))
    return tuple(sets)


def references(existing: set[str] | None = None) -> list[Reference]:
    """Every column that refers to a customer: in the metadata (core and installed plugins),
    limited to the tables in ``existing`` when given; with ``existing`` (the database's tables),
    also in tables the metadata does not know (a plugin installed once and removed since), found
    by reflection, so that deleting the merged customer never cascades into rows nobody moved."""
    found: list[Reference] = []
    for table in _tables(existing):
        for fk in sorted(table.foreign_keys, key=lambda f: f.parent.name):
            if fk.target_fullname != "customer.id":
                continue
            column = fk.parent
            if list(table.primary_key.columns) == [column]:
                found.append(Reference(table, column, "one_to_one"))
            else:
                found.append(Reference(table, column, "fk", _unique_sets(table, column)))
        if "subject_type" in table.c and "subject_id" in table.c:
            column = table.c.subject_id
            found.append(Reference(table, column, "subject", _unique_sets(table, column)))
    return found


def _tables(existing: set[str] | None) -> list[Table]:
    tables = [t for t in db.metadata.sorted_tables if existing is None or t.name in existing]
    if existing is None:
        return tables
    unknown = sorted(existing - set(db.metadata.tables))
    if not unknown:
        return tables
    connection = db.session.connection()
    inspector = inspect(connection)
    for name in unknown:
        columns = {c["name"] for c in inspector.get_columns(name)}
        refers = (
            any(
                fk["referred_table"] == "customer" and fk["referred_columns"] == ["id"]
                for fk in inspector.get_foreign_keys(name)
            )
            or {"subject_type", "subject_id"} <= columns
        )
        if refers:
            tables.append(Table(name, MetaData(), autoload_with=connection, resolve_fks=False))
    return tables


def _existing_tables() -> set[str]:
    return set(inspect(db.session.connection()).get_table_names())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row_dict(row: Any) -> dict[str, Any]:
    return {k: _jsonable(v) for k, v in row._mapping.items()}


def snapshot(customer: Customer) -> dict[str, Any]:
    """The customer's core columns, JSON-ready (for the audit log)."""
    return {c.key: _jsonable(getattr(customer, c.key)) for c in inspect(Customer).column_attrs}


def _scope(ref: Reference, table: Any, customer_id: int, company_id: int) -> list[Any]:
    where = [table.c[ref.column.name] == customer_id]
    if ref.kind == "subject":
        where.append(table.c.subject_type == SUBJECT_TYPE)
    if "company_id" in table.c:
        where.append(table.c.company_id == company_id)
    return where


def related_counts(
    customer_ids: list[int], kinds: tuple[str, ...] = ("fk", "one_to_one", "subject")
) -> dict[str, dict[int, int]]:
    """Rows referring to each of ``customer_ids``, per reference (``table.column``) of the given
    ``kinds``; one query per referring table. Used by the merge screen."""
    company_id = require_company()
    existing = _existing_tables()
    out: dict[str, dict[int, int]] = {}
    for ref in references(existing):
        if ref.kind not in kinds:
            continue
        t = ref.table
        where = [t.c[ref.column.name].in_(customer_ids)]
        if ref.kind == "subject":
            where.append(t.c.subject_type == SUBJECT_TYPE)
        if "company_id" in t.c:
            where.append(t.c.company_id == company_id)
        rows = db.session.execute(
            select(t.c[ref.column.name], func.count()).where(*where).group_by(t.c[ref.column.name])
        ).all()
        out[ref.name] = {cid: 0 for cid in customer_ids} | {cid: n for cid, n in rows}
    return out


def role_of(user: User) -> str | None:
    """``user``'s role in the current company."""
    return db.session.scalar(select(Membership.role).where(Membership.user_id == user.id))


def check(survivor: Customer, merged: Customer, user: User) -> None:
    """Raise :class:`MergeRefused` unless ``user`` may merge ``merged`` into ``survivor``."""
    company_id = require_company()
    if survivor.company_id != company_id or merged.company_id != company_id:
        raise MergeRefused(_("Both customers must belong to the current company."), 404)
    if survivor.id == merged.id:
        raise MergeRefused(_("A customer cannot be merged into itself."))
    role = role_of(user)
    if not permissions.grant("merge", role, access.company_permissions()).held:
        raise MergeRefused(
            _(
                "Merging customers needs the permission “%(label)s” (merge), which your role "
                "%(role)s does not hold in this company; ask an administrator.",
                label=permissions.declared()["merge"].text,
                role=role or _("not a member"),
            ),
            403,
        )


def merge_customers(survivor: Customer, merged: Customer, user: User) -> MergeResult:
    """Merge ``merged`` into ``survivor`` (see the module documentation); the caller commits.

    Raises :class:`MergeRefused` (nothing written) when the two are the same record, belong to
    another company, or ``user`` is not an admin or manager of the current company.
    """
    check(survivor, merged, user)
    company_id = require_company()
    db.session.flush()
    result = MergeResult(survivor.id, merged.id)
    s_id, m_id = survivor.id, merged.id
    merged_snapshot = snapshot(merged)
    extension: dict[str, dict[str, Any]] = {}
    dropped_rows: dict[str, list[dict[str, Any]]] = {}

    for ref in references(_existing_tables()):
        table = ref.table
        if ref.kind == "one_to_one":
            values = _merge_side_row(ref, s_id, m_id)
            if values is not None:
                extension[table.name] = values
                result.moved[ref.name] = 1
            continue
        stmt = update(table).where(*_scope(ref, table, m_id, company_id))
        for others in ref.unique:
            other = table.alias("other")
            stmt = stmt.where(
                ~exists().where(
                    *_scope(ref, other, s_id, company_id),
                    *[other.c[c.name] == table.c[c.name] for c in others],
                )
            )
        moved = db.session.execute(
            stmt.values({ref.column.name: s_id}), execution_options={"synchronize_session": False}
        ).rowcount
        if moved:
            result.moved[ref.name] = moved
        if ref.unique:
            left = db.session.execute(select(table).where(*_scope(ref, table, m_id, company_id)))
            rows = [_row_dict(r) for r in left]
            if rows:
                db.session.execute(delete(table).where(*_scope(ref, table, m_id, company_id)))
                dropped_rows[ref.name] = rows
                result.dropped[ref.name] = len(rows)

    result.filled = _fill(survivor, merged)
    _relink_notifications(m_id, s_id)
    db.session.execute(
        delete(Customer).where(Customer.id == m_id),
        execution_options={"synchronize_session": False},
    )
    if merged in db.session:
        db.session.expunge(merged)
    db.session.flush()
    db.session.expire_all()
    classify.classify_customers([s_id])
    row = audit.record(
        "merge",
        "customer",
        s_id,
        {
            "merged_id": m_id,
            "merged": merged_snapshot,
            "extension": extension,
            "moved": result.moved,
            "dropped_duplicates": dropped_rows,
            "filled": result.filled,
        },
        user_id=user.id,
    )
    db.session.flush()
    result.audit_id = row.id
    return result


def _relink_notifications(m_id: int, s_id: int) -> None:
    """Point notifications about the merged customer (``/customers/<id>`` and pages below it)
    at the survivor, so no bell entry leads to a page that no longer exists."""
    old, new = f"/customers/{m_id}", f"/customers/{s_id}"
    db.session.execute(
        update(Notification)
        .where(
            or_(Notification.link == old, Notification.link.startswith(old + "/", autoescape=True))
        )
        .values(link=func.replace(Notification.link, old, new))
        .execution_options(synchronize_session=False)
    )


def _merge_side_row(ref: Reference, s_id: int, m_id: int) -> dict[str, Any] | None:
    """Merge a 1:1 side row: the survivor keeps its values, empty ones come from the merged.
    Returns the merged row's values (``None`` when it had no row)."""
    table, key = ref.table, ref.table.c[ref.column.name]
    rows = {
        r._mapping[key.name]: r
        for r in db.session.execute(select(table).where(key.in_([s_id, m_id])))
    }
    mine, theirs = rows.get(s_id), rows.get(m_id)
    if theirs is None:
        return None
    values = {k: v for k, v in theirs._mapping.items() if k != key.name}
    if mine is None:
        db.session.execute(update(table).where(key == m_id).values({key.name: s_id}))
    else:
        fill = {
            k: v
            for k, v in values.items()
            if mine._mapping[k] in (None, "") and v not in (None, "")
        }
        if fill:
            db.session.execute(update(table).where(key == s_id).values(fill))
        db.session.execute(delete(table).where(key == m_id))
    return {k: _jsonable(v) for k, v in values.items()}


def _fill(survivor: Customer, merged: Customer) -> list[str]:
    """Give the survivor what only the merged record knew; returns the fields changed."""
    filled = []
    for attr in inspect(Customer).column_attrs:
        name = attr.key
        if name in NOT_FILLED:
            continue
        mine, theirs = getattr(survivor, name), getattr(merged, name)
        if mine in (None, "") and theirs not in (None, ""):
            setattr(survivor, name, theirs)
            filled.append(name)
    if merged.revenue:
        survivor.revenue = (survivor.revenue or Decimal(0)) + merged.revenue
        filled.append("revenue")
    if merged.last_contact_at and (
        survivor.last_contact_at is None or merged.last_contact_at > survivor.last_contact_at
    ):
        survivor.last_contact_at = merged.last_contact_at
        filled.append("last_contact_at")
    if merged.created_at and survivor.created_at and merged.created_at < survivor.created_at:
        survivor.created_at = merged.created_at
        filled.append("created_at")
    if (
        survivor.status in classify.PROSPECT_STATUSES
        and merged.status not in classify.PROSPECT_STATUSES
    ):
        survivor.status = merged.status
        filled.append("status")
    if merged.notes and merged.notes != survivor.notes:
        survivor.notes = "\n\n".join(filter(None, [survivor.notes, merged.notes]))
        filled.append("notes")
    return filled
