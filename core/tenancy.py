"""Company scoping: the one mechanism that keeps each company's rows to itself.

Every business model mixes in :class:`TenantMixin` (a ``company_id`` column). Two SQLAlchemy
session events then enforce the current company, so no view filters by hand:

* reads -- every ORM ``SELECT`` (and ORM-enabled ``UPDATE``/``DELETE``) touching a tenant model
  gets ``company_id = <current company>`` added through ``with_loader_criteria``, including
  joins, relationship loads and ``session.get()``;
* writes -- at flush, a new row gets the current company when it has none, and creating,
  changing or deleting a row of another company raises :class:`TenancyError`; so does pointing
  a foreign key at another company's row (a contact of company A on a customer of company B),
  checked with one query per referenced table.

The current company lives in a context variable, set per request by the web layer and by
:func:`company_scope` in CLI commands, jobs and tests. Outside any scope, touching a tenant model
raises :class:`TenancyError` rather than silently reading every company: code that really must
cross companies (the plugin admin page, ``guanxi plugins list``, cross-company jobs) says so with
:func:`unscoped`.

Core SQL (``db.session.execute(text(...))`` or Core ``select()`` on tables) is not rewritten;
set-based code filters by ``company_id`` explicitly, with :func:`require_company` giving the id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy import ForeignKey, event, inspect, select
from sqlalchemy.orm import (
    MANYTOONE,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    with_loader_criteria,
)
from sqlalchemy.sql.util import find_tables

_company: ContextVar[int | None] = ContextVar("guanxi_company", default=None)
_unscoped: ContextVar[bool] = ContextVar("guanxi_unscoped", default=False)


class TenancyError(PermissionError):
    """A read or write crossed the current company's boundary (or no company was in scope)."""


class TenantMixin:
    """Columns and behaviour of a row that belongs to one company."""

    @declared_attr
    def company_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(ForeignKey("company.id", ondelete="CASCADE"), index=True)


def current_company_id() -> int | None:
    """The id of the company in scope, or ``None``."""
    return _company.get()


def require_company() -> int:
    """The id of the company in scope; raises :class:`TenancyError` when there is none."""
    company_id = _company.get()
    if company_id is None:
        raise TenancyError("no company in scope")
    return company_id


@contextmanager
def company_scope(company_id: int) -> Iterator[int]:
    """Run the block as company ``company_id``: reads are narrowed to it, writes checked."""
    token = _company.set(company_id)
    unscoped_token = _unscoped.set(False)
    try:
        yield company_id
    finally:
        _unscoped.reset(unscoped_token)
        _company.reset(token)


@contextmanager
def unscoped() -> Iterator[None]:
    """Run the block across all companies. Use only for system work that must see them all."""
    token = _unscoped.set(True)
    try:
        yield
    finally:
        _unscoped.reset(token)


def activate(company_id: int | None) -> object:
    """Set the company for the rest of this context (a request); returns a :func:`reset` token."""
    return _company.set(company_id)


def reset(token: Any) -> None:
    """Undo :func:`activate`."""
    _company.reset(token)


def _touches_tenant_model(state: ORMExecuteState) -> bool:
    if any(issubclass(mapper.class_, TenantMixin) for mapper in state.all_mappers):
        return True
    tenant = _tenant_tables()
    return any(t.name in tenant for t in find_tables(state.statement, include_joins=True))


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    if state.is_column_load or not (state.is_select or state.is_update or state.is_delete):
        return
    if _unscoped.get() or state.execution_options.get("guanxi_unscoped"):
        return
    company_id = _company.get()
    if company_id is None:
        if not _touches_tenant_model(state):
            return
        names = ", ".join(sorted(m.class_.__name__ for m in state.all_mappers)) or "tables"
        raise TenancyError(f"no company in scope for a query of {names}")
    # Added to every ORM statement, not only those whose columns name a tenant model: an entity
    # that appears only in FROM (``select(func.count()).select_from(Customer)``) is scoped too.
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantMixin,
            lambda cls: cls.company_id == company_id,
            include_aliases=True,
            propagate_to_loaders=True,
        )
    )


@event.listens_for(Session, "before_flush")
def _check_writes(session: Session, flush_context: Any, instances: Any) -> None:
    if _unscoped.get():
        return
    company_id = _company.get()
    for obj in session.new:
        if not isinstance(obj, TenantMixin):
            continue
        name = type(obj).__name__
        if company_id is None:
            raise TenancyError(f"no company in scope for writing a {name}")
        if obj.company_id is None:
            obj.company_id = company_id
        elif obj.company_id != company_id:
            raise TenancyError(f"a {name} of company {obj.company_id} cannot be created here")
    for obj in list(session.dirty) + list(session.deleted):
        if not isinstance(obj, TenantMixin):
            continue
        name = type(obj).__name__
        if company_id is None:
            raise TenancyError(f"no company in scope for writing a {name}")
        history = inspect(obj).attrs.company_id.history
        original = history.deleted[0] if history.deleted else obj.company_id
        if original != company_id or obj.company_id != company_id:
            raise TenancyError(f"{name} {getattr(obj, 'id', '')} belongs to another company")
    _check_references(session, company_id)


def _tenant_tables() -> dict[str, Any]:
    """Tables of the mapped tenant models, by name (cached until a new model is mapped)."""
    from core.db import db

    mappers = db.Model.registry.mappers
    if _tables_cache.get("count") != len(mappers):
        _tables_cache["tables"] = {
            m.local_table.name: m.local_table for m in mappers if issubclass(m.class_, TenantMixin)
        }
        _tables_cache["count"] = len(mappers)
    return _tables_cache["tables"]


_tables_cache: dict[str, Any] = {}


def _check_references(session: Session, company_id: int | None) -> None:
    """Refuse foreign keys (set on new or changed rows) to rows of another company."""
    tenant_tables = _tenant_tables()
    wanted: dict[str, dict[Any, str]] = {}
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, TenantMixin):
            continue
        state = inspect(obj)
        for rel in state.mapper.relationships:
            related = state.dict.get(rel.key)  # only what is loaded or assigned; no lazy load
            if (
                rel.direction is MANYTOONE
                and isinstance(related, TenantMixin)
                and related.company_id not in (None, company_id)
            ):
                raise TenancyError(
                    f"{type(obj).__name__}.{rel.key} points at a "
                    f"{type(related).__name__} of another company"
                )
        for column in state.mapper.local_table.columns:
            for fk in column.foreign_keys:
                target = fk.column.table
                if target.name not in tenant_tables or fk.column.name != "id":
                    continue
                prop = state.mapper.get_property_by_column(column)
                value = getattr(obj, prop.key)
                if value is None or (
                    obj not in session.new and not state.attrs[prop.key].history.added
                ):
                    continue
                wanted.setdefault(target.name, {})[value] = f"{type(obj).__name__}.{prop.key}"
    for table_name, refs in wanted.items():
        table = tenant_tables[table_name]
        foreign = (
            session.connection()
            .execute(
                select(table.c.id).where(
                    table.c.id.in_(list(refs)), table.c.company_id != company_id
                )
            )
            .scalars()
            .first()
        )
        if foreign is not None:
            raise TenancyError(
                f"{refs[foreign]} points at {table_name} {foreign} of another company"
            )


#: The time zone of a company that names none, or one Python does not know.
DEFAULT_ZONE = "Asia/Shanghai"


def company_zone(company_id: int | None = None) -> Any:
    """The ``ZoneInfo`` of company ``company_id`` (default: the one in scope), in which its
    days, months and clocks are counted; read once per request and company."""
    from zoneinfo import ZoneInfo

    from flask import g, has_request_context

    from core.db import db
    from core.models import Company

    found = company_id or require_company()
    cache: dict[int, Any] = g.setdefault("_guanxi_zones", {}) if has_request_context() else {}
    if found not in cache:
        # The session's company row when a page has loaded it (its header does): no query.
        company = db.session.get(Company, found)
        name = company.timezone if company is not None else None
        try:
            cache[found] = ZoneInfo(name or DEFAULT_ZONE)
        except (KeyError, ValueError):
            cache[found] = ZoneInfo(DEFAULT_ZONE)
    return cache[found]
