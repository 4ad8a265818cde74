"""API resources: a kind of record served under ``/api/v1/<name>``, and the operations on it.

The core and plugins declare resources (hook ``guanxi_api_resources``) by subclassing
:class:`Resource` and setting class attributes; the generic operations here (list, read, create,
update, bulk upsert, workflow transitions) and the OpenAPI document (:mod:`core.api.openapi`)
follow from the declaration. A plugin's resource exists only for companies that enabled the
plugin, and extension fields of a core model appear in that model's records only for those
companies.

What every resource gets:

* ``GET /<name>`` -- filters (``<column>=v`` repeated for "any of"; ``<column>__min`` /
  ``__max`` on numbers and times; extension fields the same way), ``q`` search where declared,
  ``sort`` among the declared orders, keyset pages (``limit`` ≤ 500, ``after`` = the
  ``next_after`` of the previous page) and a count capped at ``COUNT_CAP``;
* ``GET /<name>/<id>`` with an ``ETag`` of the record's version;
* ``POST /<name>`` and ``PATCH /<name>/<id>`` (partial; ``If-Match`` → 412 on an old version,
  a ``version`` in the body → 409), unless the resource is read-only;
* ``POST /<name>/bulk`` when :attr:`Resource.bulk_key` is set: up to :data:`BULK_MAX` items,
  each created or, when an existing record has its key, updated -- all or nothing;
* ``GET /<name>/<id>/transitions`` and ``POST /<name>/<id>/transitions/<transition>`` when a
  workflow governs the model.

Records are read through the ORM, so the company scope and the customer record rule apply;
:meth:`Resource.query` of a record that belongs to a customer joins the customer, so a record of
a customer the rule hides is hidden too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app, g, request
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import Select

from core import access, audit, keyset
from core import fields as ext
from core.api import schemas
from core.api.errors import ApiError
from core.choices import options
from core.db import capped_count, db
from core.keyset import MAX_ID, Sort
from core.models import Customer, Membership

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
BULK_MAX = 1000
PAGE_PARAMS = ("limit", "after", "sort")


class Resource:
    """A kind of record in the API. Subclass it and set the class attributes; override the
    methods only where the record needs more than the default (see :mod:`core.api.records`)."""

    #: URL segment and OpenAPI tag, plural: ``customers``, ``pharma_visits``.
    name: ClassVar[str] = ""
    #: The SQLAlchemy model (a ``TenantMixin`` model).
    model: ClassVar[type]
    label: ClassVar[str] = ""
    label_zh: ClassVar[str] = ""
    #: The marshmallow schema class (default: :func:`core.api.schemas.model_schema` of the
    #: model, with ``state`` and ``workflow`` read-only).
    schema: ClassVar[type[ma.Schema] | None] = None
    #: Core model name whose extension fields the records carry (``"customer"``…), if any.
    extension_model: ClassVar[str | None] = None
    #: Fields whose values come from a choice list: field name → list name.
    choice_fields: ClassVar[dict[str, str]] = {}
    #: Columns a list can be filtered by (``?kind=a&kind=b``; numbers and times also
    #: ``?<column>__min=``/``__max=``).
    filters: ClassVar[tuple[str, ...]] = ()
    #: Sort orders (the first is the default); default: newest first by id.
    sorts: ClassVar[tuple[Sort, ...]] = ()
    #: Whether ``?q=`` searches (see :meth:`search`).
    searchable: ClassVar[bool] = False
    #: No create or update through the API (workflow transitions still go through).
    read_only: ClassVar[bool] = False
    #: Roles that may write (empty: every role but ``viewer``).
    write_roles: ClassVar[tuple[str, ...]] = ()
    #: Fields set when a record is created that a ``PATCH`` may not change.
    create_only: ClassVar[tuple[str, ...]] = ()
    #: The field bulk requests upsert on (``code``, ``external_id``); ``None``: no bulk.
    bulk_key: ClassVar[str | None] = None
    #: Whether the customer record rule can hide these records (they are customers or belong
    #: to one): a hidden record answers 403 naming the rule instead of 404.
    rule_hides: ClassVar[bool] = False
    #: The plugin that declared the resource (set by the plugin manager).
    plugin: str = ""

    # -- declaration helpers --------------------------------------------------------------

    def schema_class(self) -> type[ma.Schema]:
        if self.schema is None:
            # ``state`` and ``workflow`` belong to the workflow engine: read-only here.
            type(self).schema = schemas.model_schema(self.model, dump_only=("state", "workflow"))
        return self.schema  # type: ignore[return-value]

    def declared_fields(self) -> dict[str, ma.fields.Field]:
        """The core fields of a record, by name (no extension fields)."""
        cached = self.__dict__.get("_fields")
        if cached is None:
            cached = self._fields = dict(self.dumper().fields)
        return cached

    def dumper(self) -> ma.Schema:
        """The schema instance that dumps records, made once (dumping keeps no state in it;
        making one per request cost a few tenths of a millisecond)."""
        cached = self.__dict__.get("_dumper")
        if cached is None:
            cached = self._dumper = self.schema_class()()
        return cached

    def sort_orders(self) -> dict[str, Sort]:
        found = self.sorts or (Sort("newest", self.model.id, True, False, "integer"),)
        return {s.key: s for s in found}

    def extension_fields(self) -> list[ext.Field]:
        """The current company's extension fields of this resource's records."""
        if self.extension_model is None:
            return []
        from core.plugins import current
        from core.web.context import enabled_plugins

        return current().registry.fields_for(self.extension_model, enabled_plugins())

    def input_fields(self, *, partial: bool) -> dict[str, ma.fields.Field]:
        """The fields a write accepts, with today's choices of the company."""
        out = {}
        for key, field in self.declared_fields().items():
            if field.dump_only:
                continue
            if key in self.choice_fields:
                field = schemas.with_choices(
                    field, [v for v, _l in options(self.choice_fields[key])]
                )
            out[key] = schemas.optional(field) if partial else field
        return out

    # -- overridable behaviour -------------------------------------------------------------

    def query(self) -> Select:
        """The statement of the records the request may see (extension columns are added)."""
        return select(self.model)

    def search(self, q: str) -> Any:
        """The condition of ``?q=``; a resource with :attr:`searchable` overrides it (the
        plugin manager refuses one that does not)."""
        return sa.false()

    def filter(self, stmt: Select, args: Mapping[str, list[str]]) -> tuple[Select, dict]:
        """Apply the resource's own query parameters (those in :meth:`extra_params`)."""
        return stmt, {}

    def extra_params(self) -> dict[str, dict[str, Any]]:
        """Query parameters of the list besides the generic ones: name → OpenAPI schema."""
        return {}

    def may_write(self, record: Any | None) -> str | None:
        """Why the request may not write ``record`` (``None`` for a create), or ``None``."""
        return None

    def check(self, values: dict[str, Any], record: Any | None) -> dict[str, list[str]]:
        """Rules across fields or against the database; messages by field."""
        return {}

    def create(self, values: dict[str, Any]) -> Any:
        """Make and flush the record from validated ``values``."""
        record = self.model(**values)
        db.session.add(record)
        db.session.flush()
        audit.record("create", self.model.__tablename__, record.id, {"via": "api"})
        return record

    def update(self, record: Any, values: dict[str, Any]) -> None:
        """Apply validated ``values`` (only the fields sent) to ``record``."""
        for key, value in values.items():
            setattr(record, key, value)
        audit.record(
            "update", self.model.__tablename__, record.id, {"via": "api", "fields": sorted(values)}
        )

    def after_write(self, records: Sequence[Any], values: Sequence[dict[str, Any]]) -> None:
        """Called once after records were created or updated and their extension values
        saved (e.g. to recompute classifications for all of them in one statement)."""

    def dump_many(self, records: Sequence[Any], ext_values: Mapping[int, dict]) -> list[dict]:
        """JSON of ``records`` (one page): core fields, then extension fields."""
        schema = self.dumper()
        fields = self.extension_fields()
        return [{**schema.dump(r), **ext.dump(fields, ext_values.get(r.id, {}))} for r in records]

    def transition_inputs(self, record: Any, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """The workflow inputs of a transition request (default: ``comment``)."""
        comment = body.get("comment")
        if comment is not None and not isinstance(comment, str):
            raise ApiError(422, "invalid", "comment must be text", {"comment": ["Not text."]})
        return {"comment": (comment or "").strip()}

    def after_transition(self, record: Any, name: str, body: dict[str, Any]) -> None:
        """Side effects of a transition taken through the API, inside its transaction."""

    # -- reading ---------------------------------------------------------------------------

    def _id(self, raw: int) -> int:
        if not 0 < raw <= MAX_ID:
            raise ApiError(404, "not_found", f"no such record in {self.name}")
        return raw

    def get(self, record_id: int) -> Any:
        """The record, or :class:`ApiError` 404 (403 when the record rule hides it)."""
        record_id = self._id(record_id)
        stmt = self.query().where(self.model.id == record_id)
        record = db.session.scalars(stmt).first()
        if record is not None:
            return record
        if not self.rule_hides:
            raise ApiError(404, "not_found", f"no such record in {self.name}")
        with access.all_customers():
            hidden = db.session.scalar(select(self.model.id).where(self.model.id == record_id))
        if hidden is not None:
            rule = access.current_rule()
            raise ApiError(403, "record_rule", f"hidden by the record rule {rule!r} of your role")
        raise ApiError(404, "not_found", f"no such record in {self.name}")

    def one(self, record: Any) -> dict[str, Any]:
        fields = self.extension_fields()
        return self.dump_many([record], ext.load(fields, [record.id]))[0]

    def page(self, args: Mapping[str, list[str]]) -> dict[str, Any]:
        """One keyset page of the list for query ``args`` (parameter → values)."""
        fields = self.extension_fields()
        errors = self._unknown_params(args, fields)
        stmt = ext.join(self.query(), self.model, fields)
        q = _single(args, "q")
        if q is not None and self.searchable:
            q = q.strip()
            if "\x00" in q or len(q) > 200:
                errors["q"] = ["At most 200 characters of text."]
            elif q:
                stmt = stmt.where(self.search(q))
        for name in self.filters:
            stmt = self._filter_column(stmt, name, args, errors)
        stmt, own = self.filter(stmt, args)
        errors.update(own)
        stmt, ext_errors = ext.apply_filters(stmt, fields, _multidict(args))
        errors.update({k: [v] for k, v in ext_errors.items()})
        sorts = self.sort_orders()
        sort_key = _single(args, "sort") or next(iter(sorts))
        if sort_key not in sorts:
            errors["sort"] = ["Must be one of: " + ", ".join(sorts) + "."]
        limit = _single(args, "limit")
        size = DEFAULT_LIMIT
        if limit is not None:
            if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT):
                errors["limit"] = [f"A whole number from 1 to {MAX_LIMIT}."]
            else:
                size = int(limit)
        after = _single(args, "after")
        position = None
        if sort_key in sorts and after:
            position = keyset.decode(sorts[sort_key], after)
            if position is None:
                errors["after"] = ["Must be the next_after of the previous page."]
        if errors:
            raise ApiError(400, "bad_parameter", "some query parameters are invalid", errors)
        sort = sorts[sort_key]
        count, capped = capped_count(stmt, self.model.id, current_app.config["COUNT_CAP"])
        if position is not None:
            stmt = stmt.where(keyset.after(sort, self.model.id, *position))
        stmt = stmt.order_by(*keyset.order(sort, self.model.id)).limit(size + 1)
        rows = db.session.execute(stmt).all()
        records = [row[0] for row in rows[:size]]
        values = {row[0].id: ext.row_values(fields, row) for row in rows[:size]}
        next_after = keyset.cursor_after(sort, records[-1]) if len(rows) > size else None
        return {
            "data": self.dump_many(records, values),
            "next_after": next_after,
            "count": count,
            "count_capped": capped,
        }

    def list_params(self) -> set[str]:
        names = set(PAGE_PARAMS) | set(self.extra_params())
        if self.searchable:
            names.add("q")
        for name in self.filters:
            names.add(name)
            if _rangeable(self.model, name):
                names |= {f"{name}__min", f"{name}__max"}
        return names

    def _unknown_params(self, args: Mapping[str, list[str]], fields: list[ext.Field]) -> dict:
        known = self.list_params()
        for f in fields:
            known |= {f.key, f"{f.key}__min", f"{f.key}__max"}
        return {k[:60]: ["Unknown parameter."] for k in args if k not in known}

    def _filter_column(
        self, stmt: Select, name: str, args: Mapping[str, list[str]], errors: dict
    ) -> Select:
        column = getattr(self.model, name)
        field = self.declared_fields()[name]
        for suffix in ("", "__min", "__max"):
            raw = [v for v in args.get(name + suffix, []) if v != ""]
            if not raw:
                continue
            try:
                values = [_param(field, v) for v in raw]
            except ma.ValidationError as exc:
                errors[name + suffix] = _messages(exc)
                continue
            if suffix == "__min":
                stmt = stmt.where(column >= values[0])
            elif suffix == "__max":
                stmt = stmt.where(column <= values[0])
            else:
                if name in self.choice_fields:
                    allowed = {v for v, _l in options(self.choice_fields[name])}
                    unknown = [v for v in values if v not in allowed]
                    if unknown:
                        errors[name] = [f"Unknown value {str(unknown[0])[:40]!r}."]
                        continue
                stmt = stmt.where(column.in_(values))
        return stmt

    # -- writing ---------------------------------------------------------------------------

    def require_writer(self, record: Any | None = None, *, transition: bool = False) -> None:
        """Refuse (403) a write by a role that may not write, or of a record it may not.

        A ``read_only`` resource refuses writes with 405, workflow transitions excepted
        (``transition=True``): those are the workflow engine's to allow or refuse."""
        member = g.get("membership")
        role = member.role if member is not None else None
        if self.read_only and not transition:
            raise ApiError(405, "method_not_allowed", f"{self.name} are read-only here")
        allowed = role in self.write_roles if self.write_roles else role not in (None, "viewer")
        if not allowed:
            raise ApiError(403, "forbidden", f"your role ({role}) may not change {self.name}")
        reason = self.may_write(record)
        if reason:
            raise ApiError(403, "forbidden", reason)

    def load(
        self, data: Any, *, record: Any | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Validate a create (``record`` is ``None``) or partial update of ``record``: the core
        values and the extension values; raises :class:`ApiError` 409/422."""
        values, ext_values, errors = self._load(data, record=record)
        if errors:
            raise ApiError(422, "invalid", "some fields are invalid", errors)
        return values, ext_values

    def _load(
        self, data: Any, *, record: Any | None, check_references: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        if not isinstance(data, dict):
            return {}, {}, {"_body": ["A JSON object is required."]}
        partial = record is not None
        fields = self.extension_fields()
        declared = self.declared_fields()
        if partial and "version" in data and "version" in declared:
            sent = data["version"]
            if sent != record.version:
                raise ApiError(
                    409,
                    "stale",
                    f"the record is at version {record.version}, you sent {sent!r}; reload it",
                    {"version": ["Stale."]},
                )
        read_only = {k for k, f in declared.items() if f.dump_only}
        core = {k: v for k, v in data.items() if "__" not in k and k not in read_only}
        errors: dict[str, Any] = {}
        values: dict[str, Any] = {}
        schema = ma.Schema.from_dict(self.input_fields(partial=partial), name="Input")()
        try:
            values = schema.load(core, partial=partial, unknown=ma.RAISE)
        except ma.ValidationError as exc:
            errors.update(exc.messages)  # type: ignore[arg-type]
        ext_data = {k: v for k, v in data.items() if "__" in k}
        known = {f.key for f in fields}
        for key in ext_data:
            if key not in known:
                errors[key[:80]] = ["Unknown field."]
        ext_values: dict[str, Any] = {}
        try:
            ext_values = ext.validate(
                fields, ext_data, partial=partial, check_references=check_references
            )
        except ma.ValidationError as exc:
            errors.update(exc.messages)  # type: ignore[arg-type]
        if partial:
            for key in self.create_only:
                if key in values and values[key] != getattr(record, key):
                    errors[key] = ["Set when the record is created; it cannot change."]
        if not errors:
            errors.update(self.references([values])[0])
        if not errors:
            errors.update(self.check(values, record))
        return values, ext_values, errors

    def references(self, items: Sequence[dict[str, Any]]) -> list[dict[str, list[str]]]:
        """For each item, messages on foreign keys that name no record of the company (one
        query per foreign key, whatever the number of items)."""
        out: list[dict[str, list[str]]] = [{} for _ in items]
        table = self.model.__table__
        for column in table.columns:
            targets = [fk.column.table.name for fk in column.foreign_keys]
            if not targets or column.key == "company_id":
                continue
            wanted = {item[column.key] for item in items if item.get(column.key) is not None}
            if not wanted:
                continue
            found = _existing(targets[0], wanted)
            for item, messages in zip(items, out, strict=True):
                value = item.get(column.key)
                if value is not None and value not in found:
                    messages[column.key] = [f"No {targets[0]} {value} here."]
        return out

    def save(self, data: Any, record: Any | None = None) -> Any:
        """Create (``record`` is ``None``) or update from a request body; the caller commits."""
        self.require_writer(record)
        values, ext_values = self.load(data, record=record)
        fields = self.extension_fields()
        with refusals():
            if record is None:
                record = self.create(values)
                ext_values = {**ext.defaults(fields), **ext_values}
            else:
                self.update(record, values)
            db.session.flush()
        ext.save(fields, record.id, ext_values)
        self.after_write([record], [values])
        return record

    def bulk(self, data: Any) -> dict[str, Any]:
        """Create or update many records from ``{"items": [...]}``, all or none."""
        self.require_writer(None)
        key = self.bulk_key
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list) or not items or len(items) > BULK_MAX:
            raise ApiError(
                422,
                "invalid",
                f"send {{'items': [...]}} with 1 to {BULK_MAX} objects",
                {"items": [f"A list of 1 to {BULK_MAX} objects."]},
            )
        unknown = set(data) - {"items"}
        if unknown:
            raise ApiError(
                422, "invalid", "unknown fields", {k[:60]: ["Unknown field."] for k in unknown}
            )
        keys = [_key(i.get(key)) if isinstance(i, dict) else None for i in items]
        column = getattr(self.model, key)
        wanted = sorted({k for k in keys if isinstance(k, str) and 0 < len(k) <= 200})
        existing: dict[str, list[Any]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for record in db.session.scalars(self.query().where(column.in_(chunk))):
                existing.setdefault(getattr(record, key), []).append(record)
        errors: dict[str, Any] = {}
        plans: list[tuple[Any | None, dict, dict]] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            value = keys[index]
            matches = existing.get(value, []) if isinstance(value, str) else []
            if len(matches) > 1:
                errors[str(index)] = {key: [f"{len(matches)} records have this {key}."]}
                plans.append((None, {}, {}))
                continue
            if isinstance(value, str) and value in seen:
                errors[str(index)] = {key: [f"Same {key} as item {seen[value]}."]}
            elif isinstance(value, str):
                seen[value] = index
            record = matches[0] if matches else None
            if record is not None:
                reason = self.may_write(record)
                if reason:
                    errors[str(index)] = {"_item": [reason]}
                    plans.append((None, {}, {}))
                    continue
            values, ext_values, item_errors = self._load(
                item, record=record, check_references=False
            )
            if item_errors:
                errors.setdefault(str(index), {}).update(item_errors)
            plans.append((record, values, ext_values))
        # customer references of every item at once (one query per field, not per item)
        fields = self.extension_fields()
        checked = ext.check_references(fields, [e for _r, _v, e in plans])
        for index, messages in enumerate(checked):
            if messages:
                errors.setdefault(str(index), {}).update(messages)
        if errors:
            raise ApiError(
                422,
                "invalid",
                f"{len(errors)} of {len(items)} items are invalid; nothing was written",
                {"items": errors},
            )
        fields = self.extension_fields()
        results, records = [], []
        with refusals():
            for record, values, ext_values in plans:
                if record is None:
                    made = self.create(values)
                    records.append((made, {**ext.defaults(fields), **ext_values}))
                    results.append({"id": made.id, "result": "created"})
                else:
                    self.update(record, values)
                    records.append((record, ext_values))
                    results.append({"id": record.id, "result": "updated"})
            db.session.flush()
        ext.save_many(fields, [(r.id, v) for r, v in records])
        self.after_write([r for r, _v in records], [v for _r, v, _e in plans])
        created = sum(1 for r in results if r["result"] == "created")
        return {"created": created, "updated": len(results) - created, "items": results}


@contextmanager
def refusals() -> Iterator[None]:
    """Turn what the database refuses while flushing a write into API errors: a version
    changed meanwhile (409 ``stale``), a unique value taken meanwhile (409 ``conflict``)."""
    try:
        yield
    except StaleDataError as exc:
        db.session.rollback()
        raise stale() from exc
    except IntegrityError as exc:
        raise conflict(exc) from exc


def _key(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def conflict(exc: IntegrityError) -> ApiError:
    """A write that a unique constraint refused (two requests raced for one key)."""
    db.session.rollback()
    return ApiError(409, "conflict", "a record with the same unique value already exists")


def stale() -> ApiError:
    return ApiError(409, "stale", "someone changed the record meanwhile; reload it and try again")


def check_if_match(record: Any) -> None:
    """412 when the request's ``If-Match`` names another version than ``record``'s."""
    header = request.headers.get("If-Match")
    if header is None or not hasattr(record, "version"):
        return
    if request.if_match.star_tag:
        return
    if not request.if_match.contains(str(record.version)) and not request.if_match.contains_weak(
        str(record.version)
    ):
        raise ApiError(
            412,
            "precondition_failed",
            f'the record is at version {record.version} (ETag "{record.version}"), '
            f"not {header[:40]}",
        )


def _existing(table: str, ids: set[Any]) -> set[Any]:
    """Which of ``ids`` exist in ``table`` for the company (users: its members)."""
    ids = {i for i in ids if isinstance(i, int) and 0 < i <= MAX_ID}
    if not ids:
        return set()
    if table == "user":
        stmt = select(Membership.user_id).where(Membership.user_id.in_(ids))
        return set(db.session.scalars(stmt))
    model = _model_of(table)
    if model is None:
        return set()
    return set(db.session.scalars(select(model.id).where(model.id.in_(ids))))


def _model_of(table: str) -> type | None:
    for mapper in db.Model.registry.mappers:
        if mapper.local_table is not None and getattr(mapper.local_table, "name", None) == table:
            return mapper.class_
    return None


def _rangeable(model: type, name: str) -> bool:
    column = getattr(model, name).property.columns[0]
    kind = column.type
    return (
        isinstance(kind, sa.Numeric | sa.DateTime | sa.Date)
        or (isinstance(kind, sa.Integer) and not column.foreign_keys)
        or hasattr(kind, "impl")
        and isinstance(kind.impl, sa.DateTime)
    )


def _param(field: ma.fields.Field, raw: str) -> Any:
    """A query parameter as the column's value (numbers from digits, flags from true/false)."""
    if isinstance(field, schemas.Int):
        if not (raw.lstrip("-").isascii() and raw.lstrip("-").isdigit() and len(raw) < 12):
            raise ma.ValidationError("Not a valid integer.")
        return field.deserialize(int(raw))
    if isinstance(field, schemas.Flag):
        if raw not in ("true", "false"):
            raise ma.ValidationError("true or false.")
        return raw == "true"
    if isinstance(field, schemas.Text):
        if len(raw) > 200:
            raise ma.ValidationError("At most 200 characters.")
        return schemas.Text().deserialize(raw)
    return field.deserialize(raw)


def _messages(exc: ma.ValidationError) -> list[str]:
    messages = exc.messages
    if isinstance(messages, dict):
        return [str(m) for value in messages.values() for m in value]
    return [str(m) for m in messages]


def _single(args: Mapping[str, list[str]], name: str) -> str | None:
    values = args.get(name) or []
    return values[0] if values else None


def _multidict(args: Mapping[str, list[str]]) -> Any:
    from werkzeug.datastructures import MultiDict

    return MultiDict([(k, v) for k, values in args.items() for v in values])


def member_role() -> str | None:
    member = g.get("membership")
    return member.role if member is not None else None


def customer_joined(model: type) -> Select:
    """``select(model)`` joined to its customer, so the record rule of customers applies."""
    return select(model).join(Customer, Customer.id == model.customer_id)


def user() -> Any:
    return current_user._get_current_object()
