"""Segments (客户分群): saved, dynamic filters over customers, and static lists.

A dynamic segment stores the customer list's own filter parameters as ``[[key, value], …]``
pairs, so one machinery (:func:`core.customers.query`) reads them: search ``q``, ``kind``,
``status``, ``value_tier``, ``loyalty``, ``lifecycle_stage``, ``owner_id``, ``channel_id``,
``tag`` and every enabled plugin's extension field (``marketing__member_level``,
``marketing__birthday__min``, ``sales__purchase_potential__min``, ``pharma__…``). The marketing
plugin adds what the core's list does not know (:data:`OWN_FILTERS`):

- ``rfm_segment`` -- the RFM segment the sales plugin computed (``sales_customer_value``);
- ``last_purchase__min`` / ``last_purchase__max`` -- the day of the last order (ISO dates);
- ``points__min`` -- members with at least this many points.

A static segment is a list of customers (:class:`SegmentMember`), filled from an import of
customer codes, phones or names (:func:`import_members`).

:func:`customer_ids` gives the segment as a plain SQL ``SELECT customer.id`` with the company
named explicitly, so it can be embedded in an ``INSERT … SELECT`` (the campaigns' send) where
the ORM's automatic company scope does not reach. Counts are of the whole segment: the record
rule of the member looking does not narrow them (a campaign reaches the whole segment).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import false, func, or_, select
from sqlalchemy.sql import Select
from werkzeug.datastructures import MultiDict

from core import access, audit
from core import customers as core_customers
from core.extend import db, require_company
from core.models import Customer
from plugins.marketing.models import PointsEntry, Segment, SegmentMember

#: Filters this plugin adds to the customer list's.
OWN_FILTERS = ("rfm_segment", "last_purchase__min", "last_purchase__max", "points__min")
MAX_PAIRS = 60


class SegmentRefused(ValueError):
    """A segment refused: ``errors`` by field or filter parameter."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def clean_pairs(args: MultiDict | Iterable[tuple[str, str]]) -> list[list[str]]:
    """The filter pairs of request ``args`` (empty values and non-filters dropped). The
    segment form's ``seg_kind`` is not a filter; the customer ``kind`` filter is."""
    items = args.items(multi=True) if isinstance(args, MultiDict) else args
    out = []
    for key, value in items:
        if key in ("sort", "after", "csrf_token", "name", "description", "seg_kind", "launch"):
            continue
        value = str(value).strip()
        if value and len(key) <= 80 and len(value) <= 200:
            out.append([key, value])
    return out[:MAX_PAIRS]


def _date(raw: str) -> date | None:
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        return None
    return day if date(1900, 1, 1) <= day <= date(2999, 12, 31) else None


def _own_filters(args: MultiDict, company_id: int) -> tuple[list[Any], dict[str, str]]:
    """SQL conditions on ``customer.id`` for :data:`OWN_FILTERS`."""
    from plugins.sales.models import CustomerValue

    conds: list[Any] = []
    errors: dict[str, str] = {}
    value = CustomerValue.__table__
    from plugins.sales.value import SEGMENTS

    segments = [v for v in args.getlist("rfm_segment") if v]
    if segments and not set(segments) <= {key for key, _t, _z in SEGMENTS}:
        errors["rfm_segment"] = _("Choose among the listed values.")
    elif segments:
        conds.append(
            Customer.id.in_(
                select(value.c.customer_id).where(
                    value.c.company_id == company_id, value.c.segment.in_(segments)
                )
            )
        )
    for key, op in (("last_purchase__min", "ge"), ("last_purchase__max", "le")):
        raw = args.get(key)
        if not raw:
            continue
        day = _date(raw)
        if day is None:
            errors[key] = _("Enter a date as YYYY-MM-DD.")
            continue
        col = value.c.last_order_on
        cond = col >= day if op == "ge" else col <= day
        conds.append(
            Customer.id.in_(
                select(value.c.customer_id).where(value.c.company_id == company_id, cond)
            )
        )
    raw = args.get("points__min")
    if raw:
        if not (raw.isascii() and raw.lstrip("-").isdigit() and abs(int(raw)) < 10**9):
            errors["points__min"] = _("Enter a whole number.")
        else:
            ledger = PointsEntry.__table__
            conds.append(
                Customer.id.in_(
                    select(ledger.c.customer_id)
                    .where(ledger.c.company_id == company_id)
                    .group_by(ledger.c.customer_id)
                    .having(func.sum(ledger.c.points) >= int(raw))
                )
            )
    return conds, errors


def filter_query(pairs: Sequence[Sequence[str]]) -> tuple[Select, dict[str, str]]:
    """``SELECT customer.id`` of the customers matching filter ``pairs`` (company explicit),
    and the errors by parameter."""
    company_id = require_company()
    args = MultiDict([(k, v) for k, v in pairs])
    stmt, errors, _fields = core_customers.query(args)
    conds, own_errors = _own_filters(args, company_id)
    errors.update(own_errors)
    errors = {k: v for k, v in errors.items() if k not in ("sort", "after")}
    ids = stmt.with_only_columns(Customer.id).where(Customer.company_id == company_id, *conds)
    return ids, errors


def customer_ids(segment: Segment | None) -> Select:
    """``SELECT customer.id`` of the segment's customers (``None``: every customer)."""
    company_id = require_company()
    if segment is None:
        return select(Customer.id).where(Customer.company_id == company_id)
    if segment.kind == "static":
        m = SegmentMember.__table__
        return select(m.c.customer_id).where(
            m.c.company_id == company_id, m.c.segment_id == segment.id
        )
    ids, errors = filter_query(segment.filters or [])
    # A filter that no longer reads (a plugin disabled since, a tag deleted…) must not widen
    # the segment to everyone: the segment is then empty until it is corrected.
    return ids.where(false()) if errors else ids


def count(ids: Select) -> int:
    """How many customers ``ids`` selects (the whole segment, whoever looks)."""
    with access.all_customers():
        return int(db.session.scalar(select(func.count()).select_from(ids.subquery())) or 0)


def preview(ids: Select, limit: int = 20) -> list[Customer]:
    """The first customers of a segment, by name."""
    with access.all_customers():
        return list(
            db.session.scalars(
                select(Customer).where(Customer.id.in_(ids)).order_by(Customer.name).limit(limit)
            )
        )


def counts(segments: Sequence[Segment]) -> dict[int, int]:
    """The live count of each segment, in ONE statement (a scalar subquery per segment)."""
    if not segments:
        return {}
    columns = [
        select(func.count())
        .select_from(customer_ids(s).subquery())
        .scalar_subquery()
        .label(f"s{s.id}")
        for s in segments
    ]
    with access.all_customers():
        row = db.session.execute(select(*columns)).one()
    return {s.id: int(n or 0) for s, n in zip(segments, row, strict=True)}


def save_segment(
    name: str,
    pairs: Sequence[Sequence[str]] = (),
    *,
    kind: str = "dynamic",
    description: str | None = None,
    segment: Segment | None = None,
    user: Any = None,
) -> Segment:
    """Create (or update ``segment``) a segment; raises :class:`SegmentRefused`. Audited; the
    caller commits."""
    errors: dict[str, str] = {}
    clean = (name or "").strip()
    if not clean or len(clean) > 200 or "\x00" in clean:
        errors["name"] = _("Name the segment (at most 200 characters).")
    if kind not in ("dynamic", "static"):
        errors["kind"] = _("Must be one of: %(values)s.", values="dynamic, static")
    pairs = [[str(k), str(v)] for k, v in pairs]
    if kind == "dynamic":
        _ids, filter_errors = filter_query(pairs)
        errors.update(filter_errors)
    if errors:
        raise SegmentRefused(errors)
    created = segment is None
    if segment is None:
        segment = Segment(kind=kind, created_by=getattr(user, "id", None))
        db.session.add(segment)
    segment.name = clean
    segment.filters = pairs if kind == "dynamic" else []
    segment.description = (description or "").strip()[:2000] or None
    db.session.flush()
    audit.record(
        "create" if created else "update",
        Segment.__tablename__,
        segment.id,
        {"kind": kind, "filters": pairs},
        user_id=getattr(user, "id", None),
    )
    return segment


def import_members(
    segment: Segment, lines: Iterable[str], user: Any = None
) -> tuple[int, list[str]]:
    """Add customers to a static segment, one per line: a customer code, phone or exact name.
    Returns how many were added and the lines that matched no single customer."""
    if segment.kind != "static":
        raise SegmentRefused({"kind": _("Only a static list takes imported customers.")})
    wanted = [line.strip() for line in lines if line.strip()][:10000]
    found: dict[str, set[int]] = {}
    with access.all_customers():
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = db.session.execute(
                select(Customer.id, Customer.code, Customer.phone, Customer.name).where(
                    or_(
                        Customer.code.in_(chunk),
                        Customer.phone.in_(chunk),
                        Customer.name.in_(chunk),
                    )
                )
            ).all()
            for cid, code, phone, name in rows:
                for key in (code, phone, name):
                    if key:
                        found.setdefault(key, set()).add(cid)
    ids: set[int] = set()
    missing: list[str] = []
    for line in wanted:
        match = found.get(line, set())
        if len(match) == 1:
            ids |= match
        else:
            missing.append(line)
    have = set(
        db.session.scalars(
            select(SegmentMember.customer_id).where(SegmentMember.segment_id == segment.id)
        )
    )
    new = sorted(ids - have)
    db.session.add_all(SegmentMember(segment_id=segment.id, customer_id=cid) for cid in new)
    db.session.flush()
    audit.record(
        "import",
        Segment.__tablename__,
        segment.id,
        {"added": len(new), "unmatched": len(missing)},
        user_id=getattr(user, "id", None),
    )
    return len(new), missing
