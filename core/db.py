"""The database handle, the declarative base and the column types every model shares.

* ``db`` is the Flask-SQLAlchemy extension; models subclass ``db.Model``.
* Constraint names follow a fixed convention so Alembic migrations are stable on SQLite and
  PostgreSQL alike.
* :class:`UTCDateTime` stores naive UTC and hands back aware UTC datetimes on both databases.
* SQLite connections get WAL, foreign keys and a busy timeout.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, MetaData, event, types
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    """The current moment as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(types.TypeDecorator):
    """A timestamp stored as naive UTC, returned as an aware UTC datetime.

    Aware values of any zone are converted to UTC on the way in; naive values are refused,
    because a naive local time in a CRM used across time zones is a bug waiting to happen.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware datetime (e.g. core.db.utcnow())")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def capped_count(stmt: Any, id_column: Any, cap: int) -> tuple[int, bool]:
    """How many rows ``stmt`` gives, counting no further than ``cap``: ``(count, capped)``.

    List pages show "1000+" instead of paying for an exact count of a huge result.
    """
    from sqlalchemy import func, select

    ids = stmt.with_only_columns(id_column).limit(cap + 1).subquery()
    counted = db.session.scalar(select(func.count()).select_from(ids)) or 0
    return min(counted, cap), counted > cap
