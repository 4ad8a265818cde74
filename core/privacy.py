"""A person's rights over their data (PIPL 个人信息保护法 art. 45 and 47): a copy of everything
held about them, and erasure.

:func:`export_person` gathers, for one customer, the customer row with its extension fields
and tags, their contacts, interactions, service tickets, comments and consent answers
(:mod:`core.consent`), and whatever the enabled plugins hold about them (hook
``guanxi_personal_data``: sections of rows). The web page offers it as one JSON document or as
a ZIP of one CSV per section.

:func:`erase_person` anonymises in place instead of deleting: the rows stay, so counts,
revenue, SLA figures, survey scores and the audit trail keep adding up, but nothing in them
identifies the person any more -- the name becomes ``已删除 #<id>``; phone, e-mail, address,
notes and code are emptied; the text extension fields are emptied; the contacts lose name,
phone, e-mail and notes; interactions lose their free texts (purpose, result, next step), tickets
their subject (replaced by ``#<id>``) and description; comments on the customer and their
tickets are blanked; the enabled plugins anonymise their own rows (hook
``guanxi_erase_personal_data``). The consent answers stay: a refusal must go on being
respected. One audit row ``erase`` records who did it and when; no personal value is copied
into it. Erasure cannot be undone.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, cast, literal, or_, select, update

from core import audit
from core import fields as ext
from core.db import db
from core.models import (
    AuditLog,
    Comment,
    Consent,
    Contact,
    Customer,
    CustomerTag,
    Interaction,
    ServiceTicket,
    Tag,
    User,
)

#: Customer columns that identify a person, emptied on erasure.
PERSONAL_COLUMNS = ("phone", "email", "address", "notes", "code")
#: Extension field types whose values are free text (emptied on erasure).
TEXT_TYPES = ("string", "text")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _row(obj: Any) -> dict[str, Any]:
    return {c.key: _plain(getattr(obj, c.key)) for c in obj.__table__.columns}


def _hooks() -> Any:
    from core.plugins import current
    from core.web.context import enabled_plugins

    with db.session.no_autoflush:
        return current().hooks(enabled_plugins())


def export_person(customer: Customer) -> dict[str, list[dict[str, Any]]]:
    """Everything held about ``customer``, as sections of plain rows (JSON-ready)."""
    from core.customers import extension_fields

    fields = extension_fields()
    values = ext.load(fields, [customer.id]).get(customer.id, {})
    person = _row(customer)
    person.update({f.key: _plain(values.get(f.key)) for f in fields})
    person["tags"] = list(
        db.session.scalars(
            select(Tag.name)
            .join(CustomerTag, CustomerTag.tag_id == Tag.id)
            .where(CustomerTag.customer_id == customer.id)
            .order_by(Tag.name)
        )
    )
    tickets = list(
        db.session.scalars(
            select(ServiceTicket)
            .where(ServiceTicket.customer_id == customer.id)
            .order_by(ServiceTicket.id)
        )
    )
    sections: dict[str, list[dict[str, Any]]] = {
        "customer": [person],
        "contacts": [
            _row(c)
            for c in db.session.scalars(
                select(Contact).where(Contact.customer_id == customer.id).order_by(Contact.id)
            )
        ],
        "interactions": [
            _row(i)
            for i in db.session.scalars(
                select(Interaction)
                .where(Interaction.customer_id == customer.id)
                .order_by(Interaction.id)
            )
        ],
        "tickets": [_row(t) for t in tickets],
        "comments": [
            _row(c) for c in db.session.scalars(_comments(customer.id, [t.id for t in tickets]))
        ],
        "consent": [
            _row(c)
            for c in db.session.scalars(
                select(Consent).where(Consent.customer_id == customer.id).order_by(Consent.id)
            )
        ],
    }
    for plugin_sections in _hooks().guanxi_personal_data(customer=customer):
        for name, rows in plugin_sections or ():
            sections.setdefault(name, []).extend(
                {k: _plain(v) for k, v in row.items()} for row in rows
            )
    audit.record("export_person", "customer", customer.id, {"sections": sorted(sections)})
    return sections


def _comments(customer_id: int, ticket_ids: list[int]) -> Any:
    return (
        select(Comment)
        .where(
            or_(
                (Comment.subject_type == "customer") & (Comment.subject_id == customer_id),
                (Comment.subject_type == "service_ticket") & Comment.subject_id.in_(ticket_ids),
            )
        )
        .order_by(Comment.id)
    )


def as_zip(sections: dict[str, list[dict[str, Any]]]) -> bytes:
    """The sections as a ZIP of CSV files (UTF-8 with BOM, so Excel reads the Chinese)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in sections.items():
            text = io.StringIO()
            text.write("\ufeff")
            columns = _columns(rows)
            writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: _cell(v) for k, v in row.items()})
            archive.writestr(f"{name}.csv", text.getvalue())
    return out.getvalue()


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen) or ["(none)"]


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else value


def erase_person(customer: Customer, user: User) -> None:
    """Anonymise ``customer`` and what identifies them (see the module docstring); the caller
    commits. Idempotent."""
    from core.customers import extension_fields

    cid = customer.id
    customer.name = f"已删除 #{cid}"
    for column in PERSONAL_COLUMNS:
        setattr(customer, column, None)
    text_fields = [f for f in extension_fields() if f.type in TEXT_TYPES]
    if text_fields:
        ext.save(text_fields, cid, {f.key: None for f in text_fields})
    db.session.execute(
        update(Contact)
        .where(Contact.customer_id == cid)
        .values(name="—", phone=None, email=None, notes=None, title=None)
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(Interaction)
        .where(Interaction.customer_id == cid)
        .values(purpose=None, result=None, next_step=None)
        .execution_options(synchronize_session=False)
    )
    ticket_ids = list(
        db.session.scalars(select(ServiceTicket.id).where(ServiceTicket.customer_id == cid))
    )
    db.session.execute(
        update(ServiceTicket)
        .where(ServiceTicket.customer_id == cid)
        .values(
            subject=literal("#") + cast(ServiceTicket.id, String),
            description=None,
            recovery_note=None,
            version=ServiceTicket.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(Comment)
        .where(
            or_(
                (Comment.subject_type == "customer") & (Comment.subject_id == cid),
                (Comment.subject_type == "service_ticket") & Comment.subject_id.in_(ticket_ids),
            )
        )
        .values(body="（已删除）")
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        CustomerTag.__table__.delete().where(CustomerTag.__table__.c.customer_id == cid)
    )
    _hooks().guanxi_erase_personal_data(customer=customer)
    # The audit log keeps who did what and when to the person's rows, not the old → new
    # values it recorded of them (names, phones, subjects).
    db.session.execute(
        update(AuditLog)
        .where(
            or_(
                (AuditLog.entity_type == "customer") & (AuditLog.entity_id == cid),
                (AuditLog.entity_type == "service_ticket") & AuditLog.entity_id.in_(ticket_ids),
            )
        )
        .values(data=None)
        .execution_options(synchronize_session=False)
    )
    audit.record("erase", "customer", cid, {"tickets": len(ticket_ids)}, user_id=user.id)
    db.session.flush()
    db.session.expire_all()
