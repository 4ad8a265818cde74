"""Customer queries shared by pages, API and export: search, filters, sorts, keyset pages, counts.

Every query here goes through the ORM, so the company scope (:mod:`core.tenancy`) and the record
rule (:mod:`core.access`) apply without a word here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql import Select
from werkzeug.datastructures import MultiDict

from core import (
    access,  # noqa: F401 - installs the record rule on every ORM query
    keyset,
    search,
)
from core import columns as list_columns
from core import fields as ext
from core.choices import options
from core.db import capped_count, db
from core.keyset import MAX_ID as _MAX_ID
from core.keyset import Sort
from core.models import Channel, Customer, CustomerTag, Membership, Tag, User

#: Filters on the customer's own columns whose values come from a choice list.
CHOICE_FILTERS = {
    "kind": "customer_kind",
    "status": "customer_status",
    "value_tier": "value_tier",
    "loyalty": "loyalty",
    "lifecycle_stage": "lifecycle_stage",
}
#: Filters by id (several values allowed: any of them).
ID_FILTERS = ("owner_id", "channel_id", "tag")
CORE_FILTERS = (*CHOICE_FILTERS, *ID_FILTERS)

SORTS: dict[str, Sort] = {
    "newest": Sort("newest", Customer.created_at, True, False, "datetime"),
    "name": Sort("name", Customer.name, False, False, "text"),
    "last_contact": Sort("last_contact", Customer.last_contact_at, True, True, "datetime"),
    "revenue": Sort("revenue", Customer.revenue, True, True, "decimal"),
}
DEFAULT_SORT = "newest"


def extension_fields(model: str = "customer") -> list[ext.Field]:
    """The current company's extension fields on ``model``."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    return current().registry.fields_for(model, enabled_plugins())


def search_clause(q: str) -> Any:
    """Customers whose name, phone (as typed, or its digits), e-mail or code contain ``q``
    (:mod:`core.search` says how, and which index serves it)."""
    return search.customer_clause(q)


def _ids(values: list[str]) -> list[int] | None:
    if not all(v.isascii() and v.isdigit() and 0 < int(v) <= _MAX_ID for v in values):
        return None
    return [int(v) for v in values]


def query(
    args: MultiDict, columns: list[ext.Field] | None = None
) -> tuple[Select, dict[str, str], list[ext.Field]]:
    """The customer query for request ``args``: search ``q``, core and extension filters.

    Returns the statement (rows: ``Customer`` then one column per extension field of
    ``columns``, by default every field of the company), the filter errors keyed by parameter,
    and the extension fields whose values the rows hold. Every field filters: the side table of
    a field not among ``columns`` is joined only when ``args`` filter on it.
    """
    declared = extension_fields()
    fields = declared if columns is None else columns
    hidden = [f for f in declared if f not in fields]
    stmt = ext.join(select(Customer), Customer, fields, filtered=ext.filtered_by(hidden, args))
    errors: dict[str, str] = {}
    q = (args.get("q") or "").strip()
    if "\x00" in q or len(q) > 200:
        errors["q"] = "must be at most 200 characters of text"
    elif q:
        stmt = stmt.where(search_clause(q))
    for name, list_name in CHOICE_FILTERS.items():
        values = [v for v in args.getlist(name) if v]
        if not values:
            continue
        allowed = {value for value, _label in options(list_name)}
        unknown = [v for v in values if v not in allowed]
        if unknown:
            errors[name] = f"unknown value {unknown[0][:40]!r}"
            continue
        stmt = stmt.where(getattr(Customer, name).in_(values))
    for name in ID_FILTERS:
        raw = [v for v in args.getlist(name) if v]
        if not raw:
            continue
        ids = _ids(raw)
        if ids is None:
            errors[name] = "must be the id of a record (a whole number)"
        elif name == "tag":
            tagged = select(CustomerTag.customer_id).where(CustomerTag.tag_id.in_(ids))
            stmt = stmt.where(Customer.id.in_(tagged))
        else:
            stmt = stmt.where(getattr(Customer, name).in_(ids))
    stmt, ext_errors = ext.apply_filters(stmt, declared, args)
    errors.update(ext_errors)
    return stmt, errors, fields


# -- pages ------------------------------------------------------------------------------------


@dataclass
class Page:
    """One page of the customer list, with the names its rows show (loaded once per page).

    ``fields`` are every extension field of the company (the filter bar offers them all);
    ``columns`` those the list shows (:mod:`core.columns`), the only ones whose values the rows
    hold."""

    rows: list[tuple[Customer, dict[str, Any]]] = field(default_factory=list)
    next_after: str | None = None
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    fields: list[ext.Field] = field(default_factory=list)
    columns: list[ext.Field] = field(default_factory=list)
    sort: str = DEFAULT_SORT
    owners: dict[int, str] = field(default_factory=dict)
    channels: dict[int, str] = field(default_factory=dict)
    tags: dict[int, list[str]] = field(default_factory=dict)


def page(args: MultiDict, size: int, cap: int) -> Page:
    """One keyset page in the requested ``sort`` (``after`` is the cursor) and a capped count;
    its rows hold the extension fields the company shows as list columns, and no others."""
    declared = extension_fields()
    shown = list_columns.shown(declared, "customer")
    stmt, errors, fields = query(args, shown)
    result = Page(errors=errors, fields=declared, columns=fields)
    sort_key = args.get("sort") or DEFAULT_SORT
    if sort_key not in SORTS:
        result.errors["sort"] = "must be one of " + ", ".join(SORTS)
        return result
    sort = SORTS[sort_key]
    result.sort = sort_key
    after = args.get("after", "")
    position = keyset.decode(sort, after) if after else None
    if after and position is None:
        result.errors["after"] = "must be the cursor of the last page (next_after)"
    if result.errors:
        return result
    result.count, result.capped = capped_count(stmt, Customer.id, cap)
    if position is not None:
        stmt = stmt.where(keyset.after(sort, Customer.id, *position))
    rows = db.session.execute(stmt.order_by(*keyset.order(sort, Customer.id)).limit(size + 1))
    rows = rows.all()
    for row in rows[:size]:
        result.rows.append((row[0], ext.row_values(fields, row)))
    if len(rows) > size:
        result.next_after = keyset.cursor_after(sort, rows[size - 1][0])
    customers = [c for c, _values in result.rows]
    if customers:
        result.owners, result.channels, result.tags = related_names(customers)
    return result


def related_names(
    customers: Iterable[Customer],
) -> tuple[dict[int, str], dict[int, str], dict[int, list[str]]]:
    """Owner names, channel names and tag names of ``customers``: one query each."""
    rows = list(customers)
    owner_ids = sorted({c.owner_id for c in rows if c.owner_id})
    channel_ids = sorted({c.channel_id for c in rows if c.channel_id})
    owners = dict(
        db.session.execute(select(User.id, User.name).where(User.id.in_(owner_ids))).all()
    )
    channels = dict(
        db.session.execute(
            select(Channel.id, Channel.name).where(Channel.id.in_(channel_ids))
        ).all()
    )
    return owners, channels, tags_of([c.id for c in rows])


def tags_of(customer_ids: list[int]) -> dict[int, list[str]]:
    """Tag names of each customer (by name), one query."""
    tags: dict[int, list[str]] = {}
    stmt = (
        select(CustomerTag.customer_id, Tag.name)
        .join(Tag, Tag.id == CustomerTag.tag_id)
        .where(CustomerTag.customer_id.in_(customer_ids))
        .order_by(Tag.name)
    )
    for customer_id, name in db.session.execute(stmt):
        tags.setdefault(customer_id, []).append(name)
    return tags


def iterate(args: MultiDict, batch: int = 1000) -> Iterator[tuple[Customer, dict[str, Any]]]:
    """Every customer matching ``args``, in keyset batches (for exports)."""
    stmt, _errors, fields = query(args)
    for rows in keyset.batches(stmt, Customer.id, batch):
        for row in rows:
            yield row[0], ext.row_values(fields, row)


# -- choices for the filter bar and the form --------------------------------------------------


def members() -> list[tuple[int, str]]:
    """``(user id, name)`` of the company's members, by name (owners to choose from)."""
    stmt = (
        select(User.id, User.name)
        .join(Membership, Membership.user_id == User.id)
        .order_by(User.name, User.id)
    )
    return [(row.id, row.name) for row in db.session.execute(stmt)]


def channel_options() -> list[tuple[int, str]]:
    """``(channel id, name)`` of the company's channels, by name."""
    stmt = select(Channel.id, Channel.name).order_by(Channel.name, Channel.id)
    return [(row.id, row.name) for row in db.session.execute(stmt)]


def tag_options() -> list[tuple[int, str]]:
    """``(tag id, name)`` of the company's tags, by name."""
    return [
        (row.id, row.name)
        for row in db.session.execute(select(Tag.id, Tag.name).order_by(Tag.name))
    ]


def split_tags(text: str | Iterable[str] | None) -> list[str]:
    """Tag names from a comma-separated text (``,`` ``，`` ``、`` ``;``), trimmed, deduplicated."""
    if text is None:
        return []
    parts = re.split(r"[,，、;；]", text) if isinstance(text, str) else list(text)
    seen: dict[str, None] = {}
    for part in parts:
        name = " ".join(part.split())
        if name and name.casefold() not in {s.casefold() for s in seen}:
            seen[name] = None
    return list(seen)


def set_tags(customer: Customer, names: list[str]) -> None:
    """Make ``names`` the customer's tags, creating tags the company does not have yet."""
    existing = {t.name: t for t in db.session.scalars(select(Tag).where(Tag.name.in_(names)))}
    wanted = []
    for name in names:
        tag = existing.get(name)
        if tag is None:
            tag = Tag(name=name)
            db.session.add(tag)
            existing[name] = tag
        wanted.append(tag)
    db.session.flush()
    current = {
        link.tag_id: link
        for link in db.session.scalars(
            select(CustomerTag).where(CustomerTag.customer_id == customer.id)
        )
    }
    keep = {t.id for t in wanted}
    for tag_id, link in current.items():
        if tag_id not in keep:
            db.session.delete(link)
    for tag in wanted:
        if tag.id not in current:
            db.session.add(CustomerTag(customer_id=customer.id, tag_id=tag.id))
    db.session.flush()


def get_visible(customer_id: int) -> Customer | None:
    """The customer ``customer_id`` if it exists in the company and the record rule shows it."""
    if not 0 < customer_id <= _MAX_ID:
        return None
    return db.session.scalar(select(Customer).where(Customer.id == customer_id))


def exists_hidden(customer_id: int) -> bool:
    """Whether ``customer_id`` is a customer of the company that the record rule hides."""
    if not 0 < customer_id <= _MAX_ID:
        return False
    with access.all_customers():
        return db.session.scalar(select(Customer.id).where(Customer.id == customer_id)) is not None


# -- demo -------------------------------------------------------------------------------------

DEMO_TAGS = ("重点客户", "VIP", "新客户", "老客户", "待跟进", "价格敏感", "转介绍")


def seed_demo(users: dict[str, User], customers: list[Customer], rng: Any, fake: Any) -> None:
    """Demo data of the customer pages: a second sales team with its own rep (login
    ``sales_rep2@<company>.demo``), owners spread over the reps of both teams and the manager (so
    the record rule shows: each rep sees their team's customers), and tags on most customers."""
    from core.demo import _user
    from core.models import Team

    rep = users["sales_rep"]
    domain = rep.email.split("@", 1)[1]
    second = _user(f"sales_rep2@{domain}", fake.name())
    team = Team(name="销售二部", manager_id=users["manager"].id)
    db.session.add(team)
    db.session.flush()
    db.session.add(Membership(user_id=second.id, role="sales_rep", team_id=team.id))
    owners = [rep.id, rep.id, second.id, second.id, users["manager"].id]
    for i, customer in enumerate(customers):
        customer.owner_id = owners[i % len(owners)]
    db.session.flush()
    from core.models import Interaction

    latest = dict(
        db.session.execute(
            select(Interaction.customer_id, func.max(Interaction.occurred_at)).group_by(
                Interaction.customer_id
            )
        ).all()
    )
    for customer in customers:
        if customer.last_contact_at is None and customer.id in latest:
            customer.last_contact_at = latest[customer.id]  # as logging an interaction keeps it
        names = rng.sample(DEMO_TAGS, rng.choice([0, 1, 1, 2, 2, 3]))
        if names:
            set_tags(customer, names)
