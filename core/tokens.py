"""Personal API tokens: issuing, checking and revoking a user's key to the JSON API.

A token belongs to one user in one company. Whoever sends it (``Authorization: Bearer gx_...``)
acts as that user with the role and record rules the user has in that company *at the moment
of the request*: the token grants nothing of its own, and losing the membership, being
deactivated, revocation or expiry end it at once.

The secret is ``"gx_"`` followed by 256 random bits (``secrets.token_urlsafe(32)``). It is
handed out once by :func:`issue` and never stored: the database keeps its SHA-256 (a fast hash
is enough for a random secret of that length; there is nothing to guess) and its first
characters (``prefix``), which lists show so people can tell their tokens apart.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import or_, select, update
from sqlalchemy.orm import contains_eager, joinedload

from core import audit
from core.db import db, utcnow
from core.models import ApiToken, Membership, User
from core.tenancy import company_scope, require_company, unscoped

#: Every secret starts with this, so scanners and people recognise a Guanxi token.
SECRET_PREFIX = "gx_"
#: How many leading characters of the secret are stored and shown (``gx_`` and 7 more).
PREFIX_LENGTH = 10
#: Longest name of a token.
MAX_NAME = 80
#: Strings longer than this are not looked up (a real secret has 46 characters).
MAX_SECRET = 200
#: ``last_used_at`` is written at most this often per token.
TOUCH_INTERVAL = timedelta(minutes=1)
#: The role that sees and revokes every token of its company.
ADMIN_ROLE = "admin"


class TokenError(ValueError):
    """Refused input for a token; ``field`` names what was wrong (``name``, ``expires_at``,
    ``user``), so a form can show the message next to it."""

    def __init__(self, message: str, field: str = "name") -> None:
        super().__init__(message)
        self.message, self.field = message, field


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which the secret ``secret`` is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def clean_name(name: object) -> str:
    """``name`` trimmed; raises :class:`TokenError` when it is empty, too long or has control
    characters (a NUL cannot be stored; a line break would garble every list)."""
    if not isinstance(name, str) or not name.strip():
        raise TokenError(_("Give the token a name."), "name")
    name = name.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise TokenError(_("Contains a character that cannot be stored."), "name")
    if len(name) > MAX_NAME:
        raise TokenError(_("At most %(n)s characters.", n=MAX_NAME), "name")
    return name


def _membership(user_id: int, company_id: int) -> Membership | None:
    with unscoped():
        return db.session.scalar(
            select(Membership).where(
                Membership.user_id == user_id, Membership.company_id == company_id
            )
        )


def issue(
    user: User, company_id: int, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token of ``user`` in company ``company_id``; returns ``(token, secret)``.

    The secret is returned here and nowhere else: show it to the user once. Only its SHA-256
    and its first :data:`PREFIX_LENGTH` characters are stored. ``expires_at`` (an aware
    datetime in the future) ends the token; ``None`` means it lasts until revoked.

    The user must be an active member of the company. Raises :class:`TokenError` for a bad
    name, expiry or user. The token and its audit row are flushed in the company's scope
    (whatever company the caller is in); committing is left to the caller.
    """
    name = clean_name(name)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise TokenError(_("Give the expiry as an aware date and time."), "expires_at")
        if expires_at <= utcnow():
            raise TokenError(_("The expiry must lie in the future."), "expires_at")
    if not user.active:
        raise TokenError(_("This user is deactivated."), "user")
    if _membership(user.id, company_id) is None:
        raise TokenError(_("This user is not a member of the company."), "user")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        company_id=company_id,
        user_id=user.id,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        token_hash=digest(secret),
        created_at=utcnow(),
        expires_at=expires_at,
    )
    with company_scope(company_id):
        db.session.add(token)
        db.session.flush()
        audit.record(
            "create",
            "api_token",
            token.id,
            {
                "name": name,
                "prefix": token.prefix,
                "user_id": user.id,
                "expires_at": expires_at.isoformat() if expires_at else None,
            },
        )
        db.session.flush()
    return token, secret


def authenticate(secret: str) -> ApiToken | None:
    """The live token whose secret is ``secret``, with its ``user`` and ``membership`` loaded
    (one statement); else ``None``.

    Any string may come in (it is whatever followed ``Bearer``): garbage, a huge or non-ASCII
    value or a NUL gives ``None``, never an exception. A token counts only while it is not
    revoked, not expired, its user is active and still a member of the token's company.

    It works before the request has chosen a company (it looks across companies with
    :func:`core.tenancy.unscoped`); the caller then scopes the request to
    ``token.company_id`` and acts as ``token.user``.

    ``last_used_at`` is written at most once per :data:`TOUCH_INTERVAL` (a conditional
    ``UPDATE``, so several workers do not all write). When it writes, **it commits that
    update itself** -- a GET request commits nothing, and the timestamp would be lost -- so
    call it first in a request, before anything else is pending in the session. The commit
    does not expire the loaded token or user.
    """
    if (
        not isinstance(secret, str)
        or len(secret) > MAX_SECRET
        or not secret.isascii()
        or not secret.startswith(SECRET_PREFIX)
        or len(secret) <= len(SECRET_PREFIX)
    ):
        return None
    now = utcnow()
    with unscoped():
        token = db.session.scalar(
            select(ApiToken)
            .join(ApiToken.user)
            .join(ApiToken.membership)
            .where(
                ApiToken.token_hash == digest(secret),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
                User.active.is_(True),
            )
            .options(
                contains_eager(ApiToken.user),
                contains_eager(ApiToken.membership).contains_eager(Membership.user),
            )
        )
        if token is None:
            return None
        if token.last_used_at is None or now - token.last_used_at >= TOUCH_INTERVAL:
            _touch(token, now)
    return token


def _touch(token: ApiToken, now: datetime) -> None:
    """Record ``now`` as the token's last use and commit, keeping loaded objects loaded."""
    from sqlalchemy.orm.attributes import set_committed_value

    db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - TOUCH_INTERVAL),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(token, "last_used_at", now)
    session = db.session()
    keep = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = keep


def status(token: ApiToken, now: datetime | None = None) -> str:
    """``"revoked"``, ``"expired"`` or ``"active"`` (what lists show)."""
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def can_revoke(token: ApiToken, user: User) -> bool:
    """Whether ``user`` may revoke ``token``: their own, or any of a company they administer."""
    if token.user_id == user.id:
        return True
    member = _membership(user.id, token.company_id)
    return member is not None and member.role == ADMIN_ROLE


def revoke(token: ApiToken, by_user: User | None) -> bool:
    """Revoke ``token`` now; returns ``False`` when it was revoked already.

    ``by_user`` is who revokes it: the owner or an admin of the token's company (anyone else
    gets a :class:`PermissionError`); ``None`` is the system (the ``guanxi tokens revoke``
    command). The change and its audit row are flushed in the token's company; committing is
    left to the caller. A revoked token stays listed, marked revoked.
    """
    if by_user is not None and not can_revoke(token, by_user):
        raise PermissionError(_("Only the token's owner or an administrator may revoke it."))
    if token.revoked_at is not None:
        return False
    with company_scope(token.company_id):
        token.revoked_at = utcnow()
        audit.record(
            "revoke",
            "api_token",
            token.id,
            {"name": token.name, "prefix": token.prefix, "user_id": token.user_id},
            user_id=by_user.id if by_user is not None else None,
        )
        db.session.flush()
    return True


def for_user(user_id: int) -> list[ApiToken]:
    """The tokens of user ``user_id`` in the company in scope, newest first (revoked and
    expired ones included; :func:`status` tells them apart)."""
    require_company()
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user_id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def for_company() -> list[ApiToken]:
    """Every token of the company in scope with its user loaded, newest first (for admins)."""
    require_company()
    return list(
        db.session.scalars(
            select(ApiToken)
            .options(joinedload(ApiToken.user))
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )
