"""Identify (识别): duplicate customers found by normalised phone, e-mail and name.

One customer often arrives twice through different channels ("+86 138-0013-8000" from the web
form, "13800138000" from the sales rep). Each kind of match has a *key*, computed the same way
in Python (:func:`phone_key`, :func:`email_key`, :func:`name_key`) and in SQL (:func:`keyed`),
so a page finds every duplicate group with one ``GROUP BY`` and no stored extra column:

phone
    Separators people type are dropped (spaces, ``- ( ) + . /`` and their full-width forms),
    full-width digits become ASCII; a number with anything else in it (letters, "转 123") has no
    key. Then the China country code goes (``0086…``, ``+86…``/``86…`` when 11 digits or more
    remain), an international ``00`` prefix becomes nothing, and one leading trunk ``0`` goes, so
    ``+86 10 6552 9988`` and ``010-65529988`` match. Keys shorter than 7 digits are ignored.
e-mail
    Surrounding spaces trimmed, A–Z lower-cased.
name
    Spaces (half- and full-width) removed, full-width ASCII (``ＡＢＣ（）``) made half-width,
    A–Z lower-cased; then *one* legal-form suffix of an organisation is dropped (``股份有限公司``,
    ``有限责任公司``, ``有限公司``, ``公司``, ``集团``, ``co.,ltd.``, ``ltd``, ``inc`` …), so
    "康泰医药有限公司" and "康泰 医药" match. Keys shorter than 2 characters are ignored.

The SQL is portable on purpose: nested ``replace()``, ``substr()``, ``length()`` and ``CASE``
only (no regular expressions, which SQLite lacks), so SQLite and PostgreSQL give the same keys as
Python. Name matches are the weakest (two people may share a name); the page says which key
matched and a person decides.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from sqlalchemy import CTE, ColumnElement, Select, and_, case, func, or_, select

from core.db import db
from core.models import Customer, User
from core.tenancy import require_company

KINDS = ("phone", "email", "name")
MIN_LENGTH = {"phone": 7, "email": 3, "name": 2}

_DIGITS = "0123456789"
_UPPER = {chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}
#: Characters dropped from phone numbers, and full-width digits made ASCII.
_PHONE_MAP: dict[str, str] = {
    **{ch: "" for ch in " \t\u00a0\u3000-()+./\uff0d\uff08\uff09\uff0b\uff0e\uff0f\u2013\u2014"},
    **{chr(0xFF10 + i): str(i) for i in range(10)},
}
#: Full-width ASCII (U+FF01–U+FF5E) made half-width and lower-cased; spaces dropped.
_NAME_MAP: dict[str, str] = {
    **{ch: "" for ch in " \t\u00a0\u3000"},
    **{chr(0xFF01 + i): chr(0x21 + i).lower() for i in range(94)},
    **_UPPER,
}
_EMAIL_MAP: dict[str, str] = dict(_UPPER)
#: Legal-form suffixes of organisations, dropped from name keys (longest first; one at most).
ORG_SUFFIXES = (
    "股份有限公司",
    "有限责任公司",
    "有限公司",
    "co.,ltd.",
    "co.,ltd",
    "co.ltd.",
    "co.ltd",
    "集团",
    "公司",
    "ltd.",
    "ltd",
    "inc.",
    "inc",
)

_PHONE_TABLE = str.maketrans(_PHONE_MAP)
_NAME_TABLE = str.maketrans(_NAME_MAP)
_EMAIL_TABLE = str.maketrans(_EMAIL_MAP)


# -- Python keys -------------------------------------------------------------------------------


def _strip_country(digits: str) -> str:
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("00") or (digits.startswith("86") and len(digits) >= 11):
        digits = digits[2:]
    return digits[1:] if digits.startswith("0") else digits


def phone_key(phone: str | None) -> str | None:
    """The comparison key of a phone number, e.g. ``"+86 138-0013-8000"`` → ``"13800138000"``;
    ``None`` when it has none (empty, too short, or letters in it)."""
    if not phone:
        return None
    digits = phone.translate(_PHONE_TABLE)
    if not digits or digits.strip(_DIGITS):
        return None
    key = _strip_country(digits)
    return key if len(key) >= MIN_LENGTH["phone"] else None


def email_key(email: str | None) -> str | None:
    """The comparison key of an e-mail address (trimmed, A–Z lower-cased)."""
    if not email or "\x00" in email:
        return None
    key = email.strip(" ").translate(_EMAIL_TABLE)
    return key if len(key) >= MIN_LENGTH["email"] else None


def _strip_suffix(name: str) -> str:
    for suffix in ORG_SUFFIXES:
        if len(name) > len(suffix) + 1 and name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def name_key(name: str | None) -> str | None:
    """The comparison key of a customer name (see the module's documentation)."""
    if not name or "\x00" in name:
        return None
    key = _strip_suffix(name.translate(_NAME_TABLE))
    return key if len(key) >= MIN_LENGTH["name"] else None


KEY_FUNCTIONS = {"phone": phone_key, "email": email_key, "name": name_key}


def keys_of(customer: Any) -> dict[str, str | None]:
    """The three keys of a customer (or anything with ``name``, ``phone``, ``email``)."""
    return {kind: KEY_FUNCTIONS[kind](getattr(customer, kind, None)) for kind in KINDS}


def matching_kinds(a: Any, b: Any) -> list[str]:
    """Which keys two customers share (``["phone", "name"]`` …)."""
    ka, kb = keys_of(a), keys_of(b)
    return [kind for kind in KINDS if ka[kind] is not None and ka[kind] == kb[kind]]


# -- the same keys in SQL ----------------------------------------------------------------------


def _translate(expr: Any, mapping: dict[str, str]) -> Any:
    """Nested ``replace()`` calls equal to ``str.translate`` with ``mapping`` (no source character
    is the target of another, so the order does not matter)."""
    return reduce(lambda e, pair: func.replace(e, pair[0], pair[1]), mapping.items(), expr)


#: ``replace()`` calls nested in one SQL expression at most (SQLite's parser allows about 30).
CHUNK = 12


def _translated(name: str, start: Select, mapping: dict[str, str]) -> CTE:
    """A chain of CTEs applying ``mapping`` to column ``s`` of ``start`` (``id``, ``s``),
    :data:`CHUNK` replacements per step, so no expression nests too deep for SQLite."""
    current = start.cte(f"{name}_0")
    items = list(mapping.items())
    for step, first in enumerate(range(0, len(items), CHUNK), start=1):
        expr = _translate(current.c.s, dict(items[first : first + CHUNK]))
        current = select(current.c.id, expr.label("s")).cte(f"{name}_{step}")
    return current


def _only_digits(expr: Any) -> ColumnElement[bool]:
    return _translate(expr, {d: "" for d in _DIGITS}) == ""


def _starts(expr: Any, prefix: str) -> ColumnElement[bool]:
    return func.substr(expr, 1, len(prefix)) == prefix


def _ends(expr: Any, suffix: str) -> ColumnElement[bool]:
    return and_(
        func.length(expr) > len(suffix) + 1,
        func.substr(expr, func.length(expr) - len(suffix) + 1) == suffix,
    )


def keyed(kind: str) -> CTE:
    """The current company's customers with a ``kind`` key: a CTE with columns ``id``, ``key``
    (customers without a key are left out). Built as a chain of CTEs, each step simple."""
    if kind not in KINDS:
        raise ValueError(f"unknown duplicate kind {kind!r}; one of {', '.join(KINDS)}")
    scoped = Customer.company_id == require_company()
    column = getattr(Customer, kind)
    start = select(Customer.id, column.label("s")).where(scoped, column.is_not(None))
    if kind == "email":
        start = select(Customer.id, func.trim(Customer.email).label("s")).where(
            scoped, Customer.email.is_not(None)
        )
        inner = _translated("email_key", start, _EMAIL_MAP)
        key = inner.c.s
    elif kind == "phone":
        cleaned = _translated("phone_key", start, _PHONE_MAP)
        s = cleaned.c.s
        country = select(
            cleaned.c.id,
            case(
                (s == "", None),
                (~_only_digits(s), None),
                (_starts(s, "0086"), func.substr(s, 5)),
                (_starts(s, "00"), func.substr(s, 3)),
                (and_(_starts(s, "86"), func.length(s) >= 11), func.substr(s, 3)),
                else_=s,
            ).label("s"),
        ).cte("phone_key_country")
        k = country.c.s
        inner = country
        key = case((_starts(k, "0"), func.substr(k, 2)), else_=k)
    else:
        inner = _translated("name_key", start, _NAME_MAP)
        n = inner.c.s
        key = case(
            *[
                (_ends(n, suffix), func.substr(n, 1, func.length(n) - len(suffix)))
                for suffix in ORG_SUFFIXES
            ],
            else_=n,
        )
    keys = select(inner.c.id, key.label("key")).cte(f"{kind}_keys")
    return (
        select(keys.c.id, keys.c.key)
        .where(keys.c.key.is_not(None), func.length(keys.c.key) >= MIN_LENGTH[kind])
        .cte(f"{kind}_keyed")
    )


# -- duplicate groups --------------------------------------------------------------------------


@dataclass
class Group:
    """Customers sharing one key."""

    kind: str
    key: str
    size: int
    customers: list[Customer] = field(default_factory=list)
    owners: dict[int, str] = field(default_factory=dict)


@dataclass
class GroupPage:
    groups: list[Group] = field(default_factory=list)
    count: int = 0
    capped: bool = False
    next_after: str | None = None


def groups(kind: str, *, after: str | None = None, size: int = 25, cap: int = 1000) -> GroupPage:
    """One keyset page of duplicate groups by ``kind`` (ordered by key), with a capped count of
    groups. Three queries whatever the page size."""
    k = keyed(kind)
    grouped = select(k.c.key, func.count().label("size")).group_by(k.c.key).having(func.count() > 1)
    page = GroupPage()
    counted = db.session.scalar(select(func.count()).select_from(grouped.limit(cap + 1).subquery()))
    page.count, page.capped = min(counted or 0, cap), (counted or 0) > cap
    if after:
        grouped = grouped.where(k.c.key > after)
    rows = db.session.execute(grouped.order_by(k.c.key).limit(size + 1)).all()
    if len(rows) > size:
        page.next_after = rows[size - 1].key
    rows = rows[:size]
    if not rows:
        return page
    by_key = {row.key: Group(kind, row.key, row.size) for row in rows}
    members = db.session.execute(
        select(Customer, k.c.key, User.name)
        .join(k, k.c.id == Customer.id)
        .outerjoin(User, User.id == Customer.owner_id)
        .where(k.c.key.in_(list(by_key)))
        .order_by(k.c.key, Customer.id)
    ).all()
    for customer, key, owner in members:
        group = by_key[key]
        group.customers.append(customer)
        if owner:
            group.owners[customer.id] = owner
    page.groups = list(by_key.values())
    return page


def possible_duplicates(
    name: str | None,
    phone: str | None,
    email: str | None,
    *,
    exclude_id: int | None = None,
    limit: int = 10,
) -> list[Customer]:
    """Customers of the current company who share the phone, e-mail or name key of the given
    values (e.g. what is being typed into the customer form), oldest first.

    Meant for a warning on the create/edit form: ``possible_duplicates(form.name.data,
    form.phone.data, form.email.data, exclude_id=customer.id)``. One query (none when no value
    has a key).
    """
    wanted = {"phone": phone_key(phone), "email": email_key(email), "name": name_key(name)}
    parts = []
    for kind, key in wanted.items():
        if key is None:
            continue
        k = keyed(kind)
        parts.append(Customer.id.in_(select(k.c.id).where(k.c.key == key)))
    if not parts:
        return []
    stmt = select(Customer).where(or_(*parts)).order_by(Customer.id).limit(limit)
    if exclude_id is not None:
        stmt = stmt.where(Customer.id != exclude_id)
    return list(db.session.scalars(stmt))


# -- demo --------------------------------------------------------------------------------------


def seed_demo(customers: Sequence[Customer], rng: random.Random, fake: Any) -> list[Customer]:
    """Turn a few demo customers into duplicates of others, as if one customer had arrived
    twice through different channels: the same phone written differently, the same e-mail in
    capitals, the name with spaces. Each copy keeps its own
    contacts, interactions and tickets, so a merge shows rows moving. The number of customers
    does not change. Returns the copies."""
    # People only: an industry plugin's demo may rename organisations afterwards (pharma does).
    usable = [c for c in customers if phone_key(c.phone) and not c.is_organization]
    picked = rng.sample(usable, min(8, len(usable) - len(usable) % 2))
    copies: list[Customer] = []
    for i in range(0, len(picked), 2):
        original, copy = picked[i], picked[i + 1]
        digits = phone_key(original.phone) or ""
        copy.name = original.name
        copy.kind, copy.is_organization = original.kind, original.is_organization
        copy.code = None
        style = (i // 2) % 3
        if style == 0:
            copy.phone = f"+86 {digits[:3]}-{digits[3:7]}-{digits[7:]}"
            copy.name = " ".join(original.name)
        elif style == 1:
            copy.phone = f"0086 {digits}"
            copy.email = (original.email or fake.email()).upper()
        else:
            copy.phone = f"({digits[:3]}) {digits[3:7]} {digits[7:]}"
        copies.append(copy)
    db.session.flush()
    return copies
