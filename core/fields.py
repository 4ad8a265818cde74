"""Extension fields: declared once by a plugin, everywhere in the product.

A plugin returns :class:`Field` declarations from ``guanxi_extension_fields``. From each one the
core derives:

=============  =========================================================================
storage        a column of the plugin's side table ``<plugin>_<model>_ext`` (1:1 with the
               core row, keyed by its id; core tables are never altered)
API / JSON     a marshmallow field under the key ``<plugin>__<name>`` (:func:`schema`)
forms          a WTForms field with the same validation (:func:`form_fields`)
lists          a column joined into list queries (:func:`join`), a filter (:func:`apply_filters`);
               only the fields a company shows as list columns are joined and shown
               (``list_column`` below, :mod:`core.columns`), every field filters
CSV            a column of export and import (:func:`csv_value`, :func:`schema`)
=============  =========================================================================

Type ``customer`` is a reference to another customer of the same company, optionally limited
to customer ``kinds`` (a doctor's hospital: ``kinds=("hospital",)``). It is stored as an
integer column with a foreign key to ``customer.id`` ``ON DELETE SET NULL`` (indexed), so
deleting the referenced customer empties the value and merging customers
(:mod:`core.merge`) re-points it at the survivor like any other foreign key. Values are
checked against the database (:func:`check_references`: same company, allowed kind) in
:func:`validate`, in forms and in imports; loaded values (:func:`load`, :func:`row_values`)
are :class:`CustomerRef` -- the id, carrying the customer's name -- which :func:`display`
shows as a link to the customer and :func:`csv_value` exports as the name.

Only companies that enabled the plugin see its fields; the values of the others stay stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

import marshmallow as ma
import wtforms
from sqlalchemy import Boolean, Column, Date, ForeignKey, Integer, Numeric, String, Table, Text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select
from werkzeug.datastructures import MultiDict
from wtforms import validators as v
from wtforms.fields.choices import SelectChoice

from core import access
from core.db import db
from core.i18n import pick
from core.plugins.manifest import PluginError

TYPES = ("string", "text", "integer", "decimal", "boolean", "date", "choice", "customer")
#: Most customers a ``customer`` field's select offers (by name; the current value is kept).
REFERENCE_OPTIONS = 500
_MAX_ID = 2**31 - 1
MODELS = ("customer", "contact", "channel", "service_ticket", "interaction")
NAME_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True)
class Field:
    """One extension field on a core model.

    ``model`` is a core table name (``customer``, ``contact``, ``channel``, ``service_ticket``,
    ``interaction``); ``type`` one of :data:`TYPES`. ``choices`` (for type ``choice``) are
    ``(value, label, label_zh)`` triples. ``min``/``max`` bound numbers and dates,
    ``max_length`` strings (default 200); ``scale`` is the decimal places of a ``decimal``.
    ``kinds`` (type ``customer`` only) are the ``customer_kind`` values the referenced
    customer may have (empty: any customer of the company).
    ``pii`` marks personal data (an ID number, a home address, a birthday): roles without the
    ``pii`` permission see it masked on pages, in the API and in exports, like phone numbers
    (strings keep their first three and last four characters, ``address`` fields the first
    few; other types show ``****``). ``pii="address"`` masks the value as an address.
    ``list_column`` says the field is a column of its model's list page by default: keep it for
    the one or two fields a user scans a list by (a doctor's hospital, a resident's unit); the
    others stay on the detail page, in forms, filters, exports and the API. A company admin
    changes the choice for their company (:mod:`core.columns`); a field hidden from the list
    costs the list page no join and no cell.
    """

    model: str
    name: str
    type: str
    label: str
    label_zh: str = ""
    required: bool = False
    choices: tuple[tuple[str, str, str], ...] = ()
    default: Any = None
    min: Any = None
    max: Any = None
    max_length: int | None = None
    scale: int = 2
    indexed: bool = False
    help: str = ""
    plugin: str = ""
    kinds: tuple[str, ...] = ()
    pii: bool | str = False
    list_column: bool = False

    @property
    def key(self) -> str:
        """The field's name everywhere outside the database: ``<plugin>__<name>``."""
        return f"{self.plugin}__{self.name}"

    @property
    def table_name(self) -> str:
        return f"{self.plugin}_{self.model}_ext"

    @property
    def text(self) -> str:
        """The label in the current user's language."""
        return pick(self.label, self.label_zh)

    def choice_label(self, value: Any) -> str:
        for val, label, label_zh in self.choices:
            if val == value:
                return pick(label, label_zh)
        return "" if value is None else str(value)


def attach(field: Field, plugin: str) -> Field:
    """Check a declaration of ``plugin``, tag it, and make sure its column exists in metadata."""
    where = f"plugin {plugin!r}, field {field.name!r}"
    if field.model not in MODELS:
        raise PluginError(f"{where}: model {field.model!r} is not one of {', '.join(MODELS)}")
    if field.type not in TYPES:
        raise PluginError(f"{where}: type {field.type!r} is not one of {', '.join(TYPES)}")
    if not NAME_RE.match(field.name) or field.name == "id":
        raise PluginError(f"{where}: name must be lowercase letters, digits and underscores")
    if (field.type == "choice") != bool(field.choices):
        raise PluginError(f"{where}: choices are required for type 'choice' and only for it")
    if field.kinds and field.type != "customer":
        raise PluginError(f"{where}: kinds are only for type 'customer'")
    field = replace(field, plugin=plugin)
    column = _column(field)
    table = side_table(plugin, field.model)
    if field.name not in table.c:
        table.append_column(column)
    return field


def side_table(plugin: str, model: str) -> Table:
    """The side table of ``plugin``'s fields on ``model`` (defined in metadata on first use)."""
    name = f"{plugin}_{model}_ext"
    table = db.metadata.tables.get(name)
    if table is None:
        table = Table(
            name,
            db.metadata,
            Column("id", ForeignKey(f"{model}.id", ondelete="CASCADE"), primary_key=True),
        )
    return table


def _column(field: Field) -> Column:
    if field.type == "customer":
        reference = ForeignKey("customer.id", ondelete="SET NULL")
        return Column(field.name, Integer(), reference, nullable=True, index=True)
    sql_type = {
        "string": String(field.max_length or 200),
        "text": Text(),
        "integer": Integer(),
        "decimal": Numeric(18, field.scale),
        "boolean": Boolean(),
        "date": Date(),
        "choice": String(40),
    }[field.type]
    return Column(field.name, sql_type, nullable=True, index=field.indexed)


# -- marshmallow ------------------------------------------------------------------------------


def marshmallow_field(field: Field, *, for_load: bool = True) -> ma.fields.Field:
    """The marshmallow field for ``field`` (validation for API, CSV import; JSON output)."""
    opts: dict[str, Any] = {
        "required": field.required and for_load,
        "allow_none": not field.required,
        "metadata": {"description": field.label, "x-label-zh": field.label_zh},
    }
    checks: list[Any] = []
    if field.type in ("integer", "decimal", "date") and (
        field.min is not None or field.max is not None
    ):
        checks.append(ma.validate.Range(min=field.min, max=field.max))
    if field.type in ("string", "text") and field.type == "string":
        checks.append(ma.validate.Length(max=field.max_length or 200))
    if field.type == "choice":
        checks.append(ma.validate.OneOf([c[0] for c in field.choices]))
    if field.type in ("string", "text"):
        return ma.fields.String(validate=checks, **opts)
    if field.type == "integer":
        return ma.fields.Integer(strict=False, validate=checks, **opts)
    if field.type == "customer":
        opts["metadata"] = {
            **opts["metadata"],
            "description": f"{field.label}: the id of a customer of the company"
            + (f" of kind {', '.join(field.kinds)}" if field.kinds else ""),
            "x-references": "customer",
            **({"x-customer-kinds": list(field.kinds)} if field.kinds else {}),
        }
        return ma.fields.Integer(strict=False, validate=[ma.validate.Range(1, _MAX_ID)], **opts)
    if field.type == "decimal":
        return ma.fields.Decimal(places=field.scale, as_string=True, validate=checks, **opts)
    if field.type == "boolean":
        return ma.fields.Boolean(**opts)
    if field.type == "date":
        return ma.fields.Date(validate=checks, **opts)
    return ma.fields.String(validate=checks, **opts)


@cache
def _schema_cached(fields: tuple[Field, ...]) -> ma.Schema:
    schema_class = ma.Schema.from_dict(
        {f.key: marshmallow_field(f) for f in fields}, name="Extension"
    )
    return schema_class(unknown=ma.EXCLUDE)


def schema(fields: Sequence[Field]) -> ma.Schema:
    """A marshmallow schema of ``fields`` (unknown keys are ignored, not refused).

    One instance per set of fields, shared: building one deep-copies every declared field, and
    an API list dumps each of its rows with it (``load``/``dump`` keep no state on it)."""
    return _schema_cached(tuple(fields))


def validate(
    fields: Sequence[Field],
    data: Mapping[str, Any],
    *,
    partial: bool = False,
    check_references: bool = True,
) -> dict[str, Any]:
    """Values of ``fields`` found in ``data``, converted; raises ``marshmallow.ValidationError``
    whose ``messages`` are keyed by field key (a ``customer`` value naming no customer of the
    company of an allowed kind included: one query per such field; ``check_references=False``
    leaves that to the caller, who checks many items at once with :func:`check_references`)."""
    values = schema(fields).load(dict(data), partial=partial)
    if not check_references:
        return values
    errors = _check_references(fields, [values])[0]
    if errors:
        raise ma.ValidationError(errors)  # type: ignore[arg-type]
    return values


# -- customer references ----------------------------------------------------------------------


class CustomerRef(int):
    """The id of a referenced customer (an ``int``) that also carries its ``name``."""

    name: str

    def __new__(cls, customer_id: int, name: str | None) -> CustomerRef:
        ref = super().__new__(cls, customer_id)
        ref.name = name or ""
        return ref


def _kind_text(field: Field) -> str:
    from core.choices import label

    return " / ".join(label("customer_kind", k) for k in field.kinds)


def reference_message(field: Field, value: Any) -> str:
    """Why ``value`` is refused for ``field``, in the current user's language."""
    if field.kinds:
        kinds = _kind_text(field)
        return pick(
            f"No customer {str(value)[:40]} of kind {kinds} in this company.",
            f"本公司没有类型为{kinds}的客户 {str(value)[:40]}。",
        )
    return pick(
        f"No customer {str(value)[:40]} in this company.",
        f"本公司没有客户 {str(value)[:40]}。",
    )


def _allowed(field: Field) -> Select:
    from core.models import Customer

    stmt = db.select(Customer.id)
    if field.kinds:
        stmt = stmt.where(Customer.kind.in_(field.kinds))
    return stmt


def check_references(
    fields: Sequence[Field], items: Sequence[Mapping[str, Any]]
) -> list[dict[str, list[str]]]:
    """For each of ``items`` (values keyed by field key), messages on ``customer`` values that
    name no customer of the current company of an allowed kind: one query per field, whatever
    the number of items."""
    return _check_references(fields, items)


def _check_references(
    fields: Sequence[Field], items: Sequence[Mapping[str, Any]]
) -> list[dict[str, list[str]]]:
    out: list[dict[str, list[str]]] = [{} for _ in items]
    for f in fields:
        if f.type != "customer":
            continue
        wanted = {item.get(f.key) for item in items} - {None}
        if not wanted:
            continue
        ids = {i for i in wanted if isinstance(i, int) and 0 < i <= _MAX_ID}
        found: set[int] = set()
        if ids:
            found = set(db.session.scalars(_allowed(f).where(_customer_id().in_(ids))))
        for item, messages in zip(items, out, strict=True):
            value = item.get(f.key)
            if value is not None and value not in found:
                messages[f.key] = [reference_message(f, value)]
    return out


def _customer_id() -> Any:
    from core.models import Customer

    return Customer.id


def reference_options(field: Field, current: Any = None) -> list[tuple[int, str]]:
    """``(id, name)`` of the customers ``field`` may refer to, by name (at most
    :data:`REFERENCE_OPTIONS`), with ``current`` added when it is not among them."""
    from core.models import Customer

    stmt = db.select(Customer.id, Customer.name)
    if field.kinds:
        stmt = stmt.where(Customer.kind.in_(field.kinds))
    rows = [
        (r.id, r.name)
        for r in db.session.execute(
            stmt.order_by(Customer.name, Customer.id).limit(REFERENCE_OPTIONS)
        )
    ]
    if isinstance(current, int) and current not in {i for i, _n in rows}:
        name = getattr(current, "name", None) or db.session.scalar(
            db.select(Customer.name).where(Customer.id == int(current))
        )
        if name is not None:
            rows.append((int(current), name))
    return rows


def reference_lookup(field: Field) -> dict[str, int | None]:
    """Spellings of the customers ``field`` may refer to → id, for imports: each code, and
    each exact name (``None`` where several customers share it). One query."""
    from core.models import Customer

    stmt = db.select(Customer.id, Customer.code, Customer.name)
    if field.kinds:
        stmt = stmt.where(Customer.kind.in_(field.kinds))
    by_name: dict[str, int | None] = {}
    by_code: dict[str, int] = {}
    for row in db.session.execute(stmt):
        if row.code:
            by_code[row.code.strip()] = row.id
        name = row.name.strip()
        by_name[name] = None if name in by_name else row.id
    return {**by_name, **by_code}


def dump(fields: Sequence[Field], values: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready values of ``fields`` (missing values as ``None``; ``pii`` fields masked for
    a request without the ``pii`` permission)."""
    out = schema(fields).dump({f.key: values.get(f.key) for f in fields})
    if any(f.pii for f in fields) and not access.has_permission("pii"):
        for f in fields:
            if f.pii:
                out[f.key] = masked(f, out[f.key])
    return out


def masked(field: Field, value: Any) -> Any:
    """``value`` of ``field`` masked as personal data (see :class:`Field`'s ``pii``)."""
    return access.mask(value, "address" if field.pii == "address" else "id")


# -- WTForms ----------------------------------------------------------------------------------


def form_fields(fields: Sequence[Field]) -> dict[str, Any]:
    """Unbound WTForms fields keyed by field key, labelled in the current language."""
    out: dict[str, Any] = {}
    for f in fields:
        checks: list[Any] = [v.InputRequired() if f.required else v.Optional()]
        kwargs: dict[str, Any] = {"label": f.text, "description": f.help, "default": f.default}
        if f.type in ("integer", "decimal") and (f.min is not None or f.max is not None):
            checks.append(v.NumberRange(min=f.min, max=f.max))
        if f.type == "string":
            checks.append(v.Length(max=f.max_length or 200))
        if f.type == "string":
            out[f.key] = wtforms.StringField(validators=checks, **kwargs)
        elif f.type == "text":
            out[f.key] = wtforms.TextAreaField(validators=checks, **kwargs)
        elif f.type == "integer":
            out[f.key] = wtforms.IntegerField(validators=checks, **kwargs)
        elif f.type == "decimal":
            out[f.key] = wtforms.DecimalField(places=f.scale, validators=checks, **kwargs)
        elif f.type == "boolean":
            out[f.key] = wtforms.BooleanField(validators=[v.Optional()], **kwargs)
        elif f.type == "date":
            if f.min is not None or f.max is not None:
                checks.append(_DateRange(f.min, f.max))
            out[f.key] = wtforms.DateField(validators=checks, **kwargs)
        elif f.type == "customer":
            out[f.key] = CustomerField(f, validators=[*checks, _Reference(f)], **kwargs)
        else:
            opts = [SelectChoice("", "—")] + [
                SelectChoice(c[0], pick(c[1], c[2])) for c in f.choices
            ]
            out[f.key] = wtforms.SelectField(choices=opts, validators=checks, **kwargs)
    return out


def _int_or_none(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(pick("Choose a customer from the list.", "请从列表中选择客户。")) from None


class CustomerField(wtforms.SelectField):
    """A select of the customers a ``customer`` field may refer to (by name, at most
    :data:`REFERENCE_OPTIONS`; the current value always offered); checked against the
    database, not the list."""

    def __init__(self, declared: Field, **kwargs: Any) -> None:
        super().__init__(
            choices=self._options, coerce=_int_or_none, validate_choice=False, **kwargs
        )
        self.declared = declared

    def _options(self) -> list[Any]:
        rows = reference_options(self.declared, self.data)
        return [SelectChoice("", "—")] + [SelectChoice(i, n) for i, n in rows]


class _Reference:
    def __init__(self, declared: Field) -> None:
        self.declared = declared

    def __call__(self, form: Any, field: Any) -> None:
        value = field.data
        if value in (None, ""):
            return
        errors = check_references([self.declared], [{self.declared.key: value}])[0]
        if errors:
            raise v.StopValidation(errors[self.declared.key][0])


class _DateRange:
    def __init__(self, low: date | None, high: date | None) -> None:
        self.low, self.high = low, high

    def __call__(self, form: Any, field: Any) -> None:
        value = field.data
        if value is None:
            return
        if (self.low and value < self.low) or (self.high and value > self.high):
            raise v.ValidationError(f"{self.low or ''} – {self.high or ''}")


# -- storage ----------------------------------------------------------------------------------


def _by_table(fields: Iterable[Field]) -> dict[str, list[Field]]:
    groups: dict[str, list[Field]] = {}
    for f in fields:
        groups.setdefault(f.table_name, []).append(f)
    return groups


def load(fields: Sequence[Field], ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Values of ``fields`` for the core rows ``ids``: one query per side table (``customer``
    values as :class:`CustomerRef`, their names joined into the same query)."""
    out: dict[int, dict[str, Any]] = {i: {f.key: None for f in fields} for i in ids}
    if not ids:
        return out
    for name, group in _by_table(fields).items():
        table = db.metadata.tables[name]
        stmt = db.select(table.c.id).where(table.c.id.in_(ids))
        stmt = _add_columns(stmt, table, group)
        for row in db.session.execute(stmt):
            out[row.id].update(row_values(group, row))
    return out


def _add_columns(stmt: Select, table: Table, group: Sequence[Field]) -> Select:
    """Add each field's column labelled by key; a ``customer`` field also gets the referenced
    customer's name (``<key>__ref_name``, an outer join scoped to the company)."""
    from sqlalchemy.orm import aliased

    from core.models import Customer

    for f in group:
        stmt = stmt.add_columns(table.c[f.name].label(f.key))
        if f.type == "customer":
            target = aliased(Customer)
            stmt = stmt.outerjoin(target, target.id == table.c[f.name])
            stmt = stmt.add_columns(target.name.label(f.key + REF_NAME))
    return stmt


#: Suffix of the column holding a referenced customer's name in joined queries.
REF_NAME = "__ref_name"


def row_values(fields: Sequence[Field], row: Any) -> dict[str, Any]:
    """The values of ``fields`` in a result row of :func:`join` (or :func:`load`), by key;
    ``customer`` values become :class:`CustomerRef` (``None`` when the customer is gone or is
    not visible in the current company)."""
    mapping = row._mapping
    out: dict[str, Any] = {}
    for f in fields:
        value = mapping[f.key]
        if f.type == "customer" and value is not None:
            name = mapping[f.key + REF_NAME]
            value = CustomerRef(value, name) if name is not None else None
        out[f.key] = value
    return out


def form_values(fields: Sequence[Field], form: Any) -> dict[str, Any]:
    """The extension values a submitted form (made with :func:`form_fields`) holds; a blank
    entry is ``None``."""
    return {f.key: None if form[f.key].data == "" else form[f.key].data for f in fields}


def save(fields: Sequence[Field], row_id: int, values: Mapping[str, Any]) -> None:
    """Write the given ``values`` (keyed by field key) of ``row_id``; absent keys are untouched.

    The values they replace are read first (one query per side table), and what changed goes
    to the audit row of the record in this transaction as ``changes`` (:func:`core.audit.
    note_changes`), as the ORM's own columns do."""
    from core import audit

    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for name, group in _by_table(fields).items():
        given = [f for f in group if f.key in values]
        if not given:
            continue
        data = {f.name: values[f.key] for f in given}
        table = db.metadata.tables[name]
        before = db.session.execute(
            table.select()
            .with_only_columns(*(table.c[n] for n in data))
            .where(table.c.id == row_id)
        ).first()
        old = dict(before._mapping) if before is not None else {}
        stmt = insert(table).values(id=row_id, **data)
        db.session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=data))
        audit.note_changes(
            given[0].model,
            row_id,
            {
                f.key: [old.get(f.name), data[f.name]]
                for f in given
                if old.get(f.name) != data[f.name]
            },
        )


def save_many(fields: Sequence[Field], rows: Sequence[tuple[int, Mapping[str, Any]]]) -> None:
    """:func:`save` for many ``(row id, values)`` at once: one batched upsert per side table
    and set of keys given (bulk imports), not one statement per row."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for name, group in _by_table(fields).items():
        batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row_id, values in rows:
            data = {f.name: values[f.key] for f in group if f.key in values}
            if data:
                batches.setdefault(tuple(sorted(data)), []).append({"id": row_id, **data})
        table = db.metadata.tables[name]
        for columns, params in batches.items():
            stmt = insert(table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["id"], set_={c: stmt.excluded[c] for c in columns}
            )
            db.session.execute(stmt, params)


def defaults(fields: Sequence[Field]) -> dict[str, Any]:
    """Declared defaults of ``fields`` that have one."""
    return {f.key: f.default for f in fields if f.default is not None}


# -- list queries -----------------------------------------------------------------------------


def join(
    stmt: Select, model: Any, fields: Sequence[Field], *, filtered: Sequence[Field] = ()
) -> Select:
    """Outer-join the side tables of ``fields`` and add each value as a column named by key
    (read them with :func:`row_values`: ``customer`` fields add their customer's name).

    ``filtered`` are further fields the query only filters on (:func:`apply_filters`; see
    :func:`filtered_by`): their side tables are joined too, once, with no column added."""
    groups = _by_table(fields)
    for name, group in groups.items():
        table = db.metadata.tables[name]
        stmt = stmt.outerjoin(table, table.c.id == model.id)
        stmt = _add_columns(stmt, table, group)
    for name in _by_table(filtered):
        if name not in groups:
            table = db.metadata.tables[name]
            stmt = stmt.outerjoin(table, table.c.id == model.id)
    return stmt


def filtered_by(fields: Sequence[Field], args: MultiDict) -> list[Field]:
    """Those of ``fields`` that the request ``args`` filter on (a non-blank ``<key>``,
    ``<key>__min`` or ``<key>__max``): the side tables a query must join for
    :func:`apply_filters` even when it shows none of their values."""
    return [
        f
        for f in fields
        if any(x != "" for suffix in ("", "__min", "__max") for x in args.getlist(f.key + suffix))
    ]


def apply_filters(
    stmt: Select, fields: Sequence[Field], args: MultiDict
) -> tuple[Select, dict[str, str]]:
    """Narrow a :func:`join`-ed query by the request's filter parameters.

    ``<key>=value`` filters every type (text: contains; choice: any of several values;
    customer: ids, or text the referenced customer's name contains);
    ``<key>__min`` / ``<key>__max`` bound numbers and dates. Returns the query and, for each bad
    parameter, a message keyed by the parameter.
    """
    errors: dict[str, str] = {}
    for f in fields:
        column = db.metadata.tables[f.table_name].c[f.name]
        loader = marshmallow_field(f)
        for suffix in ("", "__min", "__max"):
            param = f.key + suffix
            raw = [x for x in args.getlist(param) if x != ""]
            if not raw or (suffix and f.type not in ("integer", "decimal", "date")):
                continue
            if f.type in ("string", "text"):
                stmt = stmt.where(column.contains(raw[0], autoescape=True))
                continue
            if f.type == "customer":
                stmt, message = _reference_filter(stmt, column, raw)
                if message:
                    errors[param] = message
                continue
            try:
                values = [_parse(f, loader, x) for x in raw]
            except ma.ValidationError as exc:
                errors[param] = "; ".join(_flat(exc.messages))
                continue
            if suffix == "__min":
                stmt = stmt.where(column >= values[0])
            elif suffix == "__max":
                stmt = stmt.where(column <= values[0])
            elif f.type == "choice":
                stmt = stmt.where(column.in_(values))
            elif f.type == "boolean":
                stmt = stmt.where(column.is_(values[0]))
            else:
                stmt = stmt.where(column == values[0])
    return stmt, errors


def _reference_filter(stmt: Select, column: Any, raw: list[str]) -> tuple[Select, str]:
    from core.models import Customer

    if all(x.isascii() and x.isdigit() for x in raw):
        ids = [int(x) for x in raw if 0 < int(x) <= _MAX_ID]
        return stmt.where(column.in_(ids)), ""
    text = raw[0].strip()
    if len(text) > 200 or "\x00" in text:
        return stmt, "must be a customer id or at most 200 characters of a name"
    named = db.select(Customer.id).where(Customer.name.contains(text, autoescape=True))
    return stmt.where(column.in_(named)), ""


def _parse(f: Field, loader: ma.fields.Field, raw: str) -> Any:
    if f.type == "choice":
        if raw not in {c[0] for c in f.choices}:
            raise ma.ValidationError(f"must be one of {', '.join(c[0] for c in f.choices)}")
        return raw
    return loader.deserialize(raw)


def _flat(messages: Any) -> list[str]:
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in _flat(value)]
    if isinstance(messages, list):
        return [str(m) for m in messages]
    return [str(messages)]


# -- CSV and display --------------------------------------------------------------------------


def csv_value(field: Field, value: Any, pii: bool | None = None) -> str:
    """The CSV text of a value (dates ISO, booleans ``true``/``false``, choices as codes,
    customers by name). A ``pii`` field's value is masked unless ``pii`` is true (default:
    whether the request holds the ``pii`` permission)."""
    if value is None:
        return ""
    if field.pii and not (access.has_permission("pii") if pii is None else pii):
        return str(masked(field, _plain(value)))
    if isinstance(value, CustomerRef):
        return value.name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def display(field: Field, value: Any) -> str:
    """The value as a person reads it (choice labels in their language; a customer's name,
    linked to the customer's page in a request)."""
    if field.pii and value is not None and not access.has_permission("pii"):
        return str(masked(field, _plain(value)))
    if field.type == "choice":
        return field.choice_label(value)
    if field.type == "customer" and value is not None:
        return _customer_link(value)
    if field.type == "boolean" and value is not None:
        return pick("yes", "是") if value else pick("no", "否")
    return csv_value(field, value)


def _plain(value: Any) -> Any:
    """A value as text before masking (a referenced customer by name)."""
    return value.name if isinstance(value, CustomerRef) else value


def _customer_link(value: Any) -> Any:
    from flask import has_request_context, url_for
    from markupsafe import Markup, escape

    name = value.name if isinstance(value, CustomerRef) else f"#{int(value)}"
    if not has_request_context():
        return name
    try:
        href = url_for("customers.detail", customer_id=int(value))
    except Exception:  # noqa: BLE001 - an app without the customer pages: the name alone
        return name
    return Markup('<a href="{}" data-customer-ref="{}">{}</a>').format(
        href, int(value), escape(name)
    )
