"""Channels (渠道): the hierarchy, what each channel brings, claims and channel conflict.

Everything here is set-based SQL that works the same on SQLite and PostgreSQL (see
docs/channels.md for the rules as users read them):

* **Hierarchy.** A channel may have a parent (a distributor and its sub-dealers). The tree is
  walked with recursive CTEs: :func:`tree_cte` gives every channel's depth and a sortable path
  (list order: each parent right before its children, siblings in creation order);
  :func:`closure_cte` gives (ancestor, descendant) pairs for roll-ups and cycle checks.
* **What a channel brings.** A channel's *own* customers are those whose ``channel_id`` is the
  channel; its revenue is ``SUM(Customer.revenue)`` over them (a customer without revenue counts
  as a customer adding nothing). Its *network* adds every sub-channel's, at any depth.
  :func:`totals` computes both for any set of channels in one GROUP BY.
* **Claims and conflict (渠道冲突).** The *claimants* of a customer are the channels that filed
  a :class:`~core.models.ChannelClaim` on it plus the channel it is assigned to
  (``Customer.channel_id``); channels whose status is ``terminated`` do not count. A customer is
  *in conflict* when it has two or more distinct claimants: two channels claim it, or a channel
  claims a customer assigned to another. A parent and its sub-channel are distinct channels.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, Text, case, cast, func, literal, or_, select, union
from sqlalchemy.orm import aliased
from sqlalchemy.sql.selectable import CTE
from werkzeug.datastructures import MultiDict

from core import fields as ext
from core.db import capped_count, db
from core.models import Channel, ChannelClaim, Customer
from core.tenancy import require_company

#: Channel statuses (labels live with the pages); ``terminated`` channels' claims stop counting.
STATUSES = ("active", "suspended", "terminated")
#: Statuses whose claims and assignments take part in conflicts.
COUNTING_STATUSES = ("active", "suspended")
#: Deepest hierarchy walked (a guard against a cycle written around the forms, e.g. by SQL).
MAX_DEPTH = 32
#: Ids are INTEGER columns (32 bits on PostgreSQL): a larger number names no row.
MAX_ID = 2**31 - 1
#: Added to ids to make fixed-width path segments (ten digits for every 32-bit id).
_PAD = 1_000_000_000
TRUE_VALUES = ("1", "true", "on", "yes")


def extension_fields() -> list[ext.Field]:
    """The current company's extension fields on channels (e.g. an agent's licence number)."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    return current().registry.fields_for("channel", enabled_plugins())


def int_id(raw: str | None) -> int | None:
    """A positive database id from a request value (ASCII digits), else ``None``."""
    if raw is None or not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ID:
        return None
    return int(raw)


# -- hierarchy ----------------------------------------------------------------------------------


def _segment(column: Any) -> Any:
    return cast(column + _PAD, Text)


def tree_cte(company_id: int) -> CTE:
    """Every channel of the company reachable from a root: ``id``, ``depth``, ``path``.

    ``path`` is the chain of fixed-width ids from the root, so ordering by it lists each parent
    right before its children.
    """
    t = Channel.__table__
    anchor = select(
        t.c.id.label("id"),
        literal(0, Integer).label("depth"),
        _segment(t.c.id).label("path"),
    ).where(t.c.company_id == company_id, t.c.parent_id.is_(None))
    tree = anchor.cte("channel_tree", recursive=True)
    child = t.alias("tree_child")
    return tree.union_all(
        select(
            child.c.id,
            tree.c.depth + 1,
            cast(tree.c.path + "/" + _segment(child.c.id), Text),
        ).where(
            child.c.parent_id == tree.c.id,
            child.c.company_id == company_id,
            tree.c.depth < MAX_DEPTH,
        )
    )


def closure_cte(company_id: int, ancestors: Iterable[int] | None = None) -> CTE:
    """``(ancestor_id, descendant_id, depth)`` for the company's channels, each channel being its
    own descendant at depth 0; only from ``ancestors`` when given."""
    t = Channel.__table__
    anchor = select(
        t.c.id.label("ancestor_id"),
        t.c.id.label("descendant_id"),
        literal(0, Integer).label("depth"),
    ).where(t.c.company_id == company_id)
    if ancestors is not None:
        anchor = anchor.where(t.c.id.in_(list(ancestors)))
    closure = anchor.cte("channel_closure", recursive=True)
    child = t.alias("closure_child")
    return closure.union_all(
        select(closure.c.ancestor_id, child.c.id, closure.c.depth + 1).where(
            child.c.parent_id == closure.c.descendant_id,
            child.c.company_id == company_id,
            closure.c.depth < MAX_DEPTH,
        )
    )


def descendants(channel_id: int) -> set[int]:
    """The sub-channels of ``channel_id`` at any depth (not the channel itself)."""
    closure = closure_cte(require_company(), [channel_id])
    found = db.session.scalars(select(closure.c.descendant_id).where(closure.c.depth > 0))
    return set(found) - {channel_id}


def parent_error(channel_id: int | None, parent_id: int | None) -> str | None:
    """Why ``parent_id`` cannot be the parent of ``channel_id`` (``None`` for a new channel), or
    ``None`` when it can: ``"missing"`` (no such channel in the company) or ``"cycle"``."""
    if parent_id is None:
        return None
    parent = db.session.get(Channel, parent_id) if parent_id <= MAX_ID else None
    if parent is None or parent.company_id != require_company():  # get() may use the identity map
        return "missing"
    if channel_id is not None and (parent_id == channel_id or parent_id in descendants(channel_id)):
        return "cycle"
    return None


def tree_options(exclude: int | None = None) -> list[tuple[int, str, int]]:
    """``(id, name, depth)`` of every channel in tree order, leaving out ``exclude`` and its
    sub-channels (the parents a channel may take). One query."""
    tree = tree_cte(require_company())
    rows = db.session.execute(
        select(Channel.id, Channel.name, tree.c.depth, tree.c.path)
        .join(tree, tree.c.id == Channel.id)
        .order_by(tree.c.path)
    ).all()
    prefix = next((r.path for r in rows if r.id == exclude), None)
    return [
        (r.id, r.name, r.depth)
        for r in rows
        if prefix is None or not (r.path == prefix or r.path.startswith(prefix + "/"))
    ]


# -- what channels bring ----------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """Customers and revenue of a channel: its own, and with all its sub-channels (network)."""

    customers: int = 0
    revenue: Decimal = Decimal("0.00")
    total_customers: int = 0
    total_revenue: Decimal = Decimal("0.00")


def totals(channel_ids: Sequence[int]) -> dict[int, Totals]:
    """:class:`Totals` of each channel in ``channel_ids`` (one GROUP BY over the closure)."""
    ids = list(channel_ids)
    if not ids:
        return {}
    company_id = require_company()
    closure = closure_cte(company_id, ids)
    c = Customer.__table__
    own = closure.c.depth == 0
    revenue = func.coalesce(c.c.revenue, 0)
    rows = db.session.execute(
        select(
            closure.c.ancestor_id,
            func.sum(case((own, 1), else_=0)),
            func.sum(case((own, revenue), else_=0)),
            func.count(c.c.id),
            func.sum(revenue),
        )
        .join(c, c.c.channel_id == closure.c.descendant_id)
        .where(c.c.company_id == company_id)
        .group_by(closure.c.ancestor_id)
    ).all()
    out = {i: Totals() for i in ids}
    for channel_id, n, rev, net_n, net_rev in rows:
        out[channel_id] = Totals(int(n or 0), _money(rev), int(net_n or 0), _money(net_rev))
    return out


def _money(value: Any) -> Decimal:
    """A SUM as a 2-place Decimal (SQLite may hand back a float or an int)."""
    if value is None:
        return Decimal("0.00")
    return Decimal(str(value)).quantize(Decimal("0.01"))


# -- claims and conflict ------------------------------------------------------------------------


def claimants(company_id: int) -> Any:
    """Subquery ``(customer_id, channel_id)``: each claim and each assignment, once per pair,
    of channels whose status counts (:data:`COUNTING_STATUSES`)."""
    ch = Channel.__table__
    claim = ChannelClaim.__table__
    c = Customer.__table__
    claimed = (
        select(claim.c.customer_id.label("customer_id"), claim.c.channel_id.label("channel_id"))
        .join(ch, ch.c.id == claim.c.channel_id)
        .where(claim.c.company_id == company_id, ch.c.status.in_(COUNTING_STATUSES))
    )
    assigned = (
        select(c.c.id, c.c.channel_id)
        .join(ch, ch.c.id == c.c.channel_id)
        .where(c.c.company_id == company_id, ch.c.status.in_(COUNTING_STATUSES))
    )
    return union(claimed, assigned).subquery("claimants")


def conflicted(company_id: int) -> Any:
    """Subquery ``(customer_id, channels)`` of the customers in conflict (two or more claimants)."""
    who = claimants(company_id)
    return (
        select(who.c.customer_id, func.count().label("channels"))
        .group_by(who.c.customer_id)
        .having(func.count() >= 2)
        .subquery("conflicted")
    )


def conflicts_for(customer_ids: Iterable[int]) -> dict[int, list[Channel]]:
    """The customers of ``customer_ids`` that are in conflict, each with its claimants (the
    claiming channels and the assigned one) ordered by name. Others are absent. One query."""
    ids = [i for i in set(customer_ids) if i is not None]
    if not ids:
        return {}
    who = claimants(require_company())
    rows = db.session.execute(
        select(who.c.customer_id, Channel)
        .join(Channel, Channel.id == who.c.channel_id)
        .where(who.c.customer_id.in_(ids))
        .order_by(who.c.customer_id, Channel.name, Channel.id)
    ).all()
    found: dict[int, list[Channel]] = {}
    for customer_id, channel in rows:
        found.setdefault(customer_id, []).append(channel)
    return {k: v for k, v in found.items() if len(v) >= 2}


def conflict_counts(channel_ids: Sequence[int]) -> dict[int, int]:
    """How many customers in conflict each channel of ``channel_ids`` is a claimant of."""
    ids = list(channel_ids)
    if not ids:
        return {}
    company_id = require_company()
    who = claimants(company_id)
    bad = conflicted(company_id)
    rows = db.session.execute(
        select(who.c.channel_id, func.count())
        .join(bad, bad.c.customer_id == who.c.customer_id)
        .where(who.c.channel_id.in_(ids))
        .group_by(who.c.channel_id)
    ).all()
    return {channel_id: n for channel_id, n in rows}


def claimed_by(customer_ids: Sequence[int]) -> dict[int, list[tuple[ChannelClaim, Channel]]]:
    """The claims on each customer of ``customer_ids`` with their channels, oldest first."""
    ids = list(customer_ids)
    out: dict[int, list[tuple[ChannelClaim, Channel]]] = {i: [] for i in ids}
    if not ids:
        return out
    for claim, channel in db.session.execute(
        select(ChannelClaim, Channel)
        .join(Channel, Channel.id == ChannelClaim.channel_id)
        .where(ChannelClaim.customer_id.in_(ids))
        .order_by(ChannelClaim.claimed_at, ChannelClaim.id)
    ):
        out[claim.customer_id].append((claim, channel))
    return out


# -- pages --------------------------------------------------------------------------------------


@dataclass
class Node:
    """A channel with its place in the tree and what it brings (own and network totals);
    ``conflicts`` counts its customers in conflict."""

    channel: Channel
    depth: int = 0
    parent_name: str | None = None
    children: list[Channel] = field(default_factory=list)
    has_children: bool = False
    totals: Totals = field(default_factory=Totals)
    conflicts: int = 0
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    rows: list[Any] = field(default_factory=list)
    next_after: int | None = None
    count: int = 0
    capped: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    fields: list[ext.Field] = field(default_factory=list)


def channel_page(args: MultiDict, size: int, cap: int) -> Page:
    """One page of the channel tree matching ``args`` -- ``q`` (name, code, territory), ``type``,
    ``status``, ``conflicts=1``, extension-field filters; ``after`` the id of the last channel
    seen -- with totals and conflict counts. Five queries whatever the page size."""
    company_id = require_company()
    fields = extension_fields()
    result = Page(fields=fields)
    tree = tree_cte(company_id)
    parent = aliased(Channel)
    stmt = (
        select(Channel, tree.c.depth, parent.name.label("parent_name"))
        .join(tree, tree.c.id == Channel.id)
        .outerjoin(parent, parent.id == Channel.parent_id)
    )
    stmt = ext.join(stmt, Channel, fields)
    q = (args.get("q") or "").strip()
    if q:
        stmt = stmt.where(
            or_(
                Channel.name.contains(q, autoescape=True),
                Channel.code == q,
                Channel.territory.contains(q, autoescape=True),
            )
        )
    for name in ("type", "status"):
        values = [v for v in args.getlist(name) if v]
        if values:
            stmt = stmt.where(getattr(Channel, name).in_(values))
    if (args.get("conflicts") or "").lower() in TRUE_VALUES:
        who = claimants(company_id)
        bad = conflicted(company_id)
        stmt = stmt.where(
            Channel.id.in_(
                select(who.c.channel_id).join(bad, bad.c.customer_id == who.c.customer_id)
            )
        )
    stmt, ext_errors = ext.apply_filters(stmt, fields, args)
    result.errors.update(ext_errors)
    after = args.get("after", "")
    if after and int_id(after) is None:
        result.errors["after"] = "must be the id of the last channel seen (a whole number)"
    if result.errors:
        return result
    result.count, result.capped = capped_count(stmt, Channel.id, cap)
    if after:
        last_path = select(tree.c.path).where(tree.c.id == int(after)).scalar_subquery()
        stmt = stmt.where(tree.c.path > last_path)
    rows = db.session.execute(stmt.order_by(tree.c.path).limit(size + 1)).all()
    for row in rows[:size]:
        values = ext.row_values(fields, row)
        result.rows.append(Node(row[0], row.depth, row.parent_name, values=values))
    if len(rows) > size:
        result.next_after = rows[size - 1][0].id
    ids = [n.channel.id for n in result.rows]
    _fill(result.rows, ids)
    return result


def _fill(nodes: list[Node], ids: list[int]) -> None:
    """Totals, conflict counts and whether each node has sub-channels (three queries)."""
    sums, flags = totals(ids), conflict_counts(ids)
    parents = set()
    if ids:
        parents = set(
            db.session.scalars(select(Channel.parent_id).where(Channel.parent_id.in_(ids)))
        )
    for n in nodes:
        n.totals = sums[n.channel.id]
        n.conflicts = flags.get(n.channel.id, 0)
        n.has_children = n.channel.id in parents


def node(channel: Channel) -> Node:
    """``channel`` with its direct sub-channels, totals and conflicts (for its page)."""
    children = list(
        db.session.scalars(
            select(Channel).where(Channel.parent_id == channel.id).order_by(Channel.id)
        )
    )
    found = Node(channel, children=children)
    _fill([found], [channel.id])
    return found


def customer_page(
    channel_id: int, after: int | None, size: int
) -> tuple[list[Customer], int | None]:
    """One keyset page of the channel's own customers (newest first) and the next cursor."""
    stmt = select(Customer).where(Customer.channel_id == channel_id)
    if after is not None:
        stmt = stmt.where(Customer.id < after)
    rows = list(db.session.scalars(stmt.order_by(Customer.id.desc()).limit(size + 1)))
    return rows[:size], (rows[size - 1].id if len(rows) > size else None)


@dataclass
class ConflictRow:
    """A customer in conflict, its assigned channel and its claims (claim, channel)."""

    customer: Customer
    assigned: Channel | None
    claims: list[tuple[ChannelClaim, Channel]]


def conflict_page(args: MultiDict, size: int, cap: int) -> Page:
    """One keyset page (newest customer first) of the customers in conflict with their assigned
    channel and claims; ``channel`` narrows to the conflicts a channel takes part in.
    Four queries whatever the page size."""
    company_id = require_company()
    result = Page()
    bad = conflicted(company_id)
    stmt = select(Customer).join(bad, bad.c.customer_id == Customer.id)
    raw_channel = args.get("channel", "")
    if raw_channel:
        channel_id = int_id(raw_channel)
        if channel_id is None:
            result.errors["channel"] = "must be a channel id (a whole number)"
        else:
            who = claimants(company_id)
            stmt = stmt.where(
                Customer.id.in_(select(who.c.customer_id).where(who.c.channel_id == channel_id))
            )
    after = args.get("after", "")
    if after and int_id(after) is None:
        result.errors["after"] = "must be the id of the last customer seen (a whole number)"
    if result.errors:
        return result
    result.count, result.capped = capped_count(stmt, Customer.id, cap)
    if after:
        stmt = stmt.where(Customer.id < int(after))
    rows = list(db.session.scalars(stmt.order_by(Customer.id.desc()).limit(size + 1)))
    page = rows[:size]
    claims = claimed_by([c.id for c in page])
    assigned_ids = {c.channel_id for c in page if c.channel_id}
    assigned = {}
    if assigned_ids:
        assigned = {
            ch.id: ch
            for ch in db.session.scalars(select(Channel).where(Channel.id.in_(assigned_ids)))
        }
    result.rows = [
        ConflictRow(c, assigned.get(c.channel_id) if c.channel_id else None, claims[c.id])
        for c in page
    ]
    if len(rows) > size:
        result.next_after = page[-1].id
    return result


def find_customers(q: str, limit: int = 10) -> list[Customer]:
    """Customers matching ``q`` by name, phone or code (for picking one to claim)."""
    q = q.strip()
    if not q:
        return []
    return list(
        db.session.scalars(
            select(Customer)
            .where(
                or_(
                    Customer.name.contains(q, autoescape=True),
                    Customer.phone.contains(q, autoescape=True),
                    Customer.code == q,
                )
            )
            .order_by(Customer.name, Customer.id)
            .limit(limit)
        )
    )


# -- demo ---------------------------------------------------------------------------------------


def seed_demo(channels: list[Channel], customers: list[Customer], rng: random.Random) -> None:
    """Demo data: a distributor with two sub-dealers sharing its customers, claims filed by the
    channels customers are assigned to, and exactly one conflict (another channel claims a
    sub-dealer's customer). Draws from its own generator, leaving ``rng`` untouched so the
    seeds after it stay as they were."""
    del rng  # the shared generator is left untouched on purpose
    rng = random.Random(20261124)
    distributor = next((c for c in channels if c.type == "distributor"), None)
    rival = next((c for c in channels if c.type == "agent"), None)
    if distributor is None or rival is None or not customers:
        return
    distributor.code = distributor.code or "D001"
    subs = [
        Channel(
            name=f"{distributor.name}·{suffix}二级经销商",
            code=f"D001-{n}",
            type="distributor",
            parent_id=distributor.id,
            territory=territory,
            commission_rate=Decimal(rate),
            credit_limit=Decimal(limit),
        )
        for n, (suffix, territory, rate, limit) in enumerate(
            [("东区", "广州市", "6", "200000"), ("西区", "佛山市", "5", "100000")], start=1
        )
    ]
    db.session.add_all(subs)
    db.session.flush()
    mine = [c for c in customers if c.channel_id == distributor.id]
    for i, customer in enumerate(mine):
        if i % 3:
            customer.channel_id = subs[i % 3 - 1].id
    db.session.flush()
    claims: list[ChannelClaim] = []
    for channel in [distributor, *subs, rival]:
        own = [c for c in customers if c.channel_id == channel.id]
        for customer in rng.sample(own, min(2, len(own))):
            claims.append(
                ChannelClaim(channel_id=channel.id, customer_id=customer.id, note="报备客户")
            )
    claimed = {(c.channel_id, c.customer_id) for c in claims}
    disputed = next(
        (c for c in customers if c.channel_id == subs[0].id and (rival.id, c.id) not in claimed),
        None,
    )
    if disputed is not None:
        claims.append(
            ChannelClaim(
                channel_id=rival.id, customer_id=disputed.id, note="代理商称该客户由其首先开发"
            )
        )
    db.session.add_all(claims)
    db.session.flush()
