"""Personal API tokens: a user's key to the JSON API in one company."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, and_
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import UTCDateTime, db, utcnow
from core.models.user import Membership, User
from core.tenancy import TenantMixin


class ApiToken(TenantMixin, db.Model):
    """A bearer token of ``user`` in the company; the secret itself is never stored.

    ``token_hash`` is the SHA-256 of the secret (secrets are 256 random bits, so a fast hash is
    enough); ``prefix`` is the secret's first characters, shown in lists so people can tell
    their tokens apart. A request with the token acts as the user with the role and record
    rules the user has in the company *at that moment*.
    """

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
    #: The user's membership in the token's company, which the token acts through (read
    #: only; :func:`core.tokens.authenticate` loads it in the token's own query).
    membership: Mapped[Membership | None] = relationship(
        primaryjoin=lambda: and_(
            ApiToken.user_id == Membership.user_id, ApiToken.company_id == Membership.company_id
        ),
        foreign_keys=lambda: [Membership.user_id, Membership.company_id],
        viewonly=True,
        uselist=False,
    )
