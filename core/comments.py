"""Comments on any record, with @mentions that notify.

A comment's subject is named by its table and id: ``("customer", 12)``,
``("service_ticket", 3)``, or a plugin's record such as ``("sample_note", 7)``. The model is
found among every company-owned (:class:`~core.tenancy.TenantMixin`) model, core and plugins
alike, so a plugin's records take comments with no code of its own; a plugin's table counts
only while the plugin is enabled for the company. A subject that does not exist in the
current company is a 404.

Mentions: ``@`` followed by a member's name (``@王芳``, ``@Li Lei``) or the local part of their
e-mail (``@li.lei`` for ``li.lei@acme.cn``), case-insensitive. The ``@`` must not follow a
letter or digit (so ``a@b.com`` in a text mentions nobody); the longest matching member wins.
Only members of the current company can be mentioned; each one mentioned, except the author,
gets one notification linking back to the comment.
"""

from __future__ import annotations

import re
from typing import Any

from flask import abort
from flask_babel import gettext as _
from sqlalchemy import select

from core import audit
from core.db import db
from core.models import Comment, Membership, User
from core.notify import notify_users
from core.tenancy import TenantMixin

#: Company-owned tables that are bookkeeping, not records anyone comments on.
NOT_COMMENTABLE = frozenset(
    {
        "audit_log",
        "calendar_record",
        "comment",
        "company_plugin",
        "company_setting",
        "customer_tag",
        "job_run",
        "membership",
        "notification",
        "obligation",
        "workflow_history",
    }
)
#: Where a core record's page is, for the link in a mention's notification.
PAGES = {
    "customer": "/customers/{id}",
    "service_ticket": "/tickets/{id}",
    "channel": "/channels/{id}",
}
MAX_BODY = 5000
#: Ids beyond this name no row (PostgreSQL INTEGER).
MAX_ID = 2**31 - 1


class CommentError(ValueError):
    """A refused comment; ``field`` names the form field the message belongs to."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.message, self.field = message, field


def subject_models() -> dict[str, type]:
    """Every commentable company-owned model, by table name."""
    return {
        m.local_table.name: m.class_
        for m in db.Model.registry.mappers
        if issubclass(m.class_, TenantMixin)
        and m.local_table.name not in NOT_COMMENTABLE
        and not m.inherits
    }


def subject_model(subject_type: str) -> type | None:
    """The model of table ``subject_type`` when it is commentable here (its plugin enabled)."""
    from core.migrations import table_owner
    from core.plugins import current
    from core.web.context import enabled_plugins

    model = subject_models().get(subject_type)
    if model is None:
        return None
    owner = table_owner(subject_type, list(current().manifests))
    if owner != "core" and owner not in enabled_plugins():
        return None
    return model


def resolve(subject_type: str, subject_id: int) -> Any:
    """The record ``(subject_type, subject_id)`` of the current company; aborts with 404."""
    model = subject_model(subject_type)
    if model is None or not 0 < subject_id <= MAX_ID:
        abort(404)
    record = db.session.get(model, subject_id)
    if record is None:
        abort(404)
    return record


def subject_label(subject_type: str, record: Any) -> str:
    """A short human name of a record: its name, subject or title, else ``table #id``."""
    for attr in ("name", "subject", "title", "text"):
        value = getattr(record, attr, None)
        if isinstance(value, str) and value.strip():
            text = value.strip()
            if subject_type == "service_ticket":
                text = f"#{record.id} {text}"
            return text if len(text) <= 60 else text[:59] + "…"
    return f"{subject_type} #{record.id}"


def default_link(subject_type: str, subject_id: int) -> str:
    """The record's page when the core knows it, else its comment page."""
    pattern = PAGES.get(subject_type)
    if pattern:
        return pattern.format(id=subject_id)
    return f"/comments/{subject_type}/{subject_id}"


def members() -> list[tuple[int, str, str]]:
    """``(user id, name, e-mail)`` of the current company's members."""
    return list(
        db.session.execute(
            select(User.id, User.name, User.email).join(Membership, Membership.user_id == User.id)
        ).all()
    )


_WORD = re.compile(r"[A-Za-z0-9_]")


def mentioned(body: str, people: list[tuple[int, str, str]] | None = None) -> set[int]:
    """Ids of the members ``body`` mentions (see the module's rules)."""
    if "@" not in body:
        return set()
    people = members() if people is None else people
    handles: list[tuple[str, int]] = []
    for user_id, name, email in people:
        for handle in {(name or "").strip().lower(), (email or "").split("@")[0].lower()}:
            if handle:
                handles.append((handle, user_id))
    handles.sort(key=lambda h: len(h[0]), reverse=True)
    lowered = body.lower()
    found: set[int] = set()
    for at in (i for i, c in enumerate(body) if c == "@"):
        if at > 0 and _WORD.match(body[at - 1]):
            continue
        rest = lowered[at + 1 :]
        for handle, user_id in handles:
            if not rest.startswith(handle):
                continue
            after = rest[len(handle) : len(handle) + 1]
            if after and _WORD.match(after) and _WORD.match(handle[-1]):
                continue  # "@li" does not mention li when the text says "@lily"
            found.add(user_id)
            break
    return found


def add_comment(
    subject_type: str, subject_id: int, body: str, user: Any, *, link: str | None = None
) -> Comment:
    """Add ``user``'s comment on the record and notify the members it mentions.

    Aborts with 404 when the record does not exist in the current company; raises
    :class:`CommentError` for an empty or overlong body. ``link`` is the page the mention
    notifications point to (default: the record's page); the caller commits.
    """
    record = resolve(subject_type, subject_id)
    text = (body or "").strip()
    if not text:
        raise CommentError(_("Write a comment first."))
    if "\x00" in text:
        raise CommentError(_("Contains a character that cannot be stored."))
    if len(text) > MAX_BODY:
        raise CommentError(_("At most %(n)s characters.", n=MAX_BODY))
    comment = Comment(subject_type=subject_type, subject_id=subject_id, body=text, user_id=user.id)
    db.session.add(comment)
    db.session.flush()
    audit.record("create", "comment", comment.id, {"subject": f"{subject_type}:{subject_id}"})
    target = (link or default_link(subject_type, subject_id)).split("#")[0]
    label = subject_label(subject_type, record)
    excerpt = text if len(text) <= 80 else text[:79] + "…"
    notify_users(
        mentioned(text) - {user.id},
        "comment.mention",
        f"{target}#comment-{comment.id}",
        lambda: _(
            "%(name)s mentioned you on %(subject)s: “%(text)s”",
            name=user.name,
            subject=label,
            text=excerpt,
        ),
    )
    return comment


def thread(subject_type: str, subject_id: int, limit: int = 200) -> list[tuple[Comment, str]]:
    """The record's comments, oldest first, with their authors' names (one query)."""
    rows = db.session.execute(
        select(Comment, User.name)
        .outerjoin(User, User.id == Comment.user_id)
        .where(Comment.subject_type == subject_type, Comment.subject_id == subject_id)
        .order_by(Comment.id.desc())
        .limit(limit)
    ).all()
    return [(c, name or "—") for c, name in reversed(rows)]
