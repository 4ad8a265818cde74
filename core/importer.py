"""Import of customers, contacts, channels, interactions and plugin records from CSV and XLSX.

What can be imported is what the JSON API declares (:mod:`core.api.resources`): every
resource that is not read-only, with the columns its marshmallow schema accepts (types,
lengths, 32-bit ranges, decimal places), the company's choice lists (``choice_fields``), its
foreign keys, its upsert key (``bulk_key``) and the extension fields of the company's enabled
plugins (``<plugin>__<name>``). A plugin's resource imports through the same code as the core's.
Tickets are not imported (opening a ticket starts its SLA clocks: use the form or the API).

The steps, each a function here:

1. :func:`columns` -- what a kind of record can take, with labels and the header names that
   map to each column (field name, English and Chinese labels, common spreadsheet headers;
   a resource may add its own as ``import_aliases = {"field": ("别名", ...)}``);
   :func:`suggest` proposes a mapping from a file's header, the person adjusts it.
2. :func:`import_file` -- reads the file (:mod:`core.tabular`), converts and checks every row,
   finds duplicates and writes, in chunks, with a per-row error report.

Speed. The row loop never calls marshmallow: :func:`compile_plan` builds once per import a
converter per mapped column (:mod:`core.converters`) from the field declarations (type,
``Length``, ``Range``, ``OneOf``, the choice list, required), which returns the value ready for
the database driver, and one generated function converts a whole row. Foreign keys and
duplicates are checked set-based (one query per key column per chunk, sets in Python), and rows
are written with the driver's ``executemany`` on the session's connection, ids allocated in one
statement per chunk, ``company_id`` and column defaults set here. Extension values go to their
side tables the same way. A new customer's classification is computed as its row is built
(:meth:`CustomerRules.computer`); updated customers, and customers of imported interactions,
are classified with :func:`core.classify.classify_customers`, set-based, once per transaction.
A file of :data:`core.bulkload.MIN_ROWS` rows or more is read, converted and checked for
duplicates in a second process while this one writes, and on SQLite an all-or-nothing import
of at least as many rows as the table holds rebuilds the table's indexes once instead of
inserting into them row by row (:mod:`core.bulkload`).

Rules a person sees:

* Every error names its row (spreadsheet numbering: the header is row 1) and its column.
* Blank rows are ignored. A blank cell is "no value": the column's default for a new record,
  and the current value is kept when an existing record is updated.
* Duplicates. A row whose key (``code`` for customers and channels, ``external_id`` for
  interactions, a plugin resource's ``bulk_key``) or, for customers, phone number (compared as
  on the duplicates page, :func:`core.dedupe.phone_key`) matches an existing record is
  skipped, updates that record, or is created anyway (``on_duplicate``). Two rows of one file
  with the same key -- or, unless creating anyway, the same customer phone -- are an error on
  the second.
* Modes. ``atomic`` (all or nothing): any error and nothing is written. ``batched``: every
  ``batch`` rows are committed with the task's checkpoint in the same transaction; rows with
  errors are left out and reported; when writing a batch fails (the database refuses, the
  process dies) the import stops, and running the task again resumes at that batch: rows
  already committed are not read again, so nothing is written twice.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from core import audit, bulkload, converters, dedupe, tabular, tenancy
from core import fields as ext
from core.api import schemas
from core.db import db, utcnow
from core.i18n import pick
from core.models import Contact, Customer, Membership
from core.tenancy import require_company

MODES = ("atomic", "batched")
ON_DUPLICATE = ("skip", "update", "create")
#: Rows converted and written together (also the classification chunk).
CHUNK = 5000
#: Rows converted and written together when a second process reads the file
#: (:func:`core.bulkload.in_child_process`): smaller, so the writer starts sooner and the two
#: processes take turns more evenly (measured in docs/benchmarks.md).
PIPED_CHUNK = 2000
#: Rows per committed batch in ``batched`` mode, unless the import says otherwise.
DEFAULT_BATCH = 10_000
MAX_BATCH = 100_000
#: Errors kept in the task's result for the result page (all of them go to the report).
SHOWN_ERRORS = 200
#: The report's own columns, before the file's.
REPORT_COLUMNS = ("line", "errors")
#: Resources that are not imported: opening a ticket starts its SLA clocks (form or API).
NOT_IMPORTABLE = frozenset({"tickets"})
#: Columns of a resource an import leaves alone (besides read-only ones).
SKIPPED_COLUMNS = {"interactions": ("subject_type", "subject_id")}
#: The duplicate key of resources without a ``bulk_key``: a column, or several that together
#: name one record (a customer's consent answer for a channel and a purpose).
IMPORT_KEYS: dict[str, str | tuple[str, ...]] = {
    "channels": "code",
    "consents": ("customer_id", "channel", "purpose"),
}
#: Records a foreign key may name by something else than the id, tried in this order.
NATURAL_KEYS = {
    "customer": ("code", "name"),
    "channel": ("code", "name"),
    "user": ("email", "name"),
}

#: Header names people use for the core's columns (compared without case, spaces, ``_``).
ALIASES: dict[str, tuple[str, ...]] = {
    "code": ("编号", "编码", "代码", "客户编号", "客户编码", "渠道编号", "渠道编码", "id号"),
    "name": ("名称", "姓名", "名字", "客户名称", "客户姓名", "客户", "单位名称", "公司名称",
             "渠道名称", "联系人", "联系人姓名"),
    "kind": ("类型", "客户类型", "类别", "客户类别", "互动类型", "互动方式", "方式"),
    "is_organization": ("是否机构", "机构", "organization", "组织"),
    "phone": ("电话", "手机", "手机号", "手机号码", "联系电话", "电话号码", "mobile", "tel",
              "telephone", "联系方式"),
    "email": ("邮箱", "电子邮件", "电子邮箱", "e-mail", "mail"),
    "region": ("地区", "区域", "省份", "城市", "所在地区"),
    "address": ("地址", "详细地址", "联系地址"),
    "status": ("状态", "客户状态", "渠道状态"),
    "relationship_level": ("关系级别", "关系等级"),
    "revenue": ("收入", "营收", "年收入", "销售额", "购买金额", "金额", "近12个月销售额"),
    "owner_id": ("owner", "负责人", "所属销售", "销售", "客户经理", "归属人"),
    "channel_id": ("channel", "渠道", "所属渠道", "来源渠道"),
    "notes": ("备注", "说明", "note"),
    "tags": ("标签", "tag"),
    "customer_id": ("customer", "客户", "客户编号", "客户名称", "所属客户"),
    "title": ("职务", "职位", "头衔"),
    "decision_role": ("决策角色", "角色", "采购角色"),
    "type": ("类型", "渠道类型"),
    "parent_id": ("parent", "上级", "上级渠道", "父渠道"),
    "territory": ("区域", "负责区域", "销售区域"),
    "commission_rate": ("佣金率", "佣金比例", "返点"),
    "credit_limit": ("信用额度", "授信额度"),
    "contact_id": ("contact", "联系人"),
    "ticket_id": ("ticket", "工单", "工单号"),
    "occurred_at": ("时间", "日期", "发生时间", "互动时间", "拜访时间", "通话时间"),
    "duration_minutes": ("时长", "时长（分钟）", "分钟", "duration"),
    "purpose": ("目的", "事由", "主题"),
    "result": ("结果", "内容", "记录", "沟通结果"),
    "next_step": ("下一步", "下一步计划", "待办"),
    "next_step_due": ("下一步期限", "下次跟进时间", "跟进时间"),
    "external_id": ("外部编号", "外部id", "来源编号", "原系统编号"),
    "customer_score": ("客户评分", "满意度"),
    "quality_score": ("质检评分", "质检分"),
}  # fmt: skip
#: Core columns' labels (English msgids, translated when shown; the Chinese ones also map).
LABELS: dict[str, tuple[str, str]] = {
    "code": ("Code", "编号"),
    "name": ("Name", "名称"),
    "kind": ("Kind", "类型"),
    "is_organization": ("Organisation", "机构"),
    "phone": ("Phone", "电话"),
    "email": ("E-mail", "邮箱"),
    "region": ("Region", "地区"),
    "address": ("Address", "地址"),
    "status": ("Status", "状态"),
    "relationship_level": ("Relationship level", "关系级别"),
    "revenue": ("Revenue", "收入"),
    "owner_id": ("Owner", "负责人"),
    "channel_id": ("Channel", "渠道"),
    "notes": ("Notes", "备注"),
    "tags": ("Tags", "标签"),
    "customer_id": ("Customer", "客户"),
    "title": ("Title", "职务"),
    "decision_role": ("Decision role", "决策角色"),
    "type": ("Type", "类型"),
    "parent_id": ("Parent channel", "上级渠道"),
    "territory": ("Territory", "区域"),
    "commission_rate": ("Commission rate", "佣金率"),
    "credit_limit": ("Credit limit", "信用额度"),
    "contact_id": ("Contact", "联系人"),
    "ticket_id": ("Ticket", "工单"),
    "occurred_at": ("When", "时间"),
    "duration_minutes": ("Duration (minutes)", "时长（分钟）"),
    "purpose": ("Purpose", "目的"),
    "result": ("Result", "结果"),
    "next_step": ("Next step", "下一步"),
    "next_step_due": ("Next step due", "下一步期限"),
    "external_id": ("External id", "外部编号"),
    "customer_score": ("Customer score", "客户评分"),
    "quality_score": ("Quality score", "质检评分"),
}


class MappingError(ValueError):
    """The import cannot start: unknown kind, unreadable file, a mapping that does not fit."""

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


# -- what can be imported -----------------------------------------------------------------------


def resources() -> dict[str, Any]:
    """Resources the company in scope can import into, by name (its plugins' included)."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    enabled = enabled_plugins() | {"core"}
    return {
        name: resource
        for name, resource in current().registry.api_resources.items()
        if resource.plugin in enabled and not resource.read_only and name not in NOT_IMPORTABLE
    }


def resource_for(name: str) -> Any:
    """The importable resource ``name``; :class:`MappingError` when there is none."""
    found = resources().get(name)
    if found is None:
        raise MappingError(_("Nothing called %(name)s can be imported here.", name=name[:60]))
    return found


def resource_label(resource: Any) -> str:
    return pick(resource.label or resource.name, resource.label_zh)


def key_columns(resource: Any) -> tuple[str, ...]:
    """The columns that together name an existing record of ``resource`` (its duplicate key:
    :data:`IMPORT_KEYS`, else its ``bulk_key``, a column or a tuple of them); ``()`` for none."""
    key = IMPORT_KEYS.get(resource.name) or resource.bulk_key
    return (key,) if isinstance(key, str) else tuple(key or ())


def key_labels(resource: Any) -> list[str]:
    """The labels of :func:`key_columns`, in the person's language."""
    cols = {c.key: c for c in columns(resource)}
    return [cols[k].text if k in cols else k for k in key_columns(resource)]


@dataclass(frozen=True)
class Column:
    """A column a kind of record can take from a file."""

    key: str
    #: ``text``, ``phone``, ``email``, ``integer``, ``decimal``, ``date``, ``datetime``,
    #: ``boolean``, ``choice``, ``reference`` (a foreign key) or ``tags``.
    type: str
    label: str
    label_zh: str = ""
    required: bool = False
    aliases: tuple[str, ...] = ()
    choices: tuple[tuple[str, str], ...] = ()
    #: The extension field behind the column (``None`` for the record's own columns).
    extension: ext.Field | None = None
    #: What a reference points at (table name).
    target: str | None = None
    #: The choice list whose values (and labels) the column takes.
    choice_list: str | None = None

    @property
    def text(self) -> str:
        """The label in the current user's language."""
        if self.extension is not None:
            return self.extension.text
        return pick(self.label, self.label_zh)


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-·:：()（）*]+", "", text.strip().lstrip("\ufeff")).casefold()


def _column_type(name: str, field: ma.fields.Field, column: sa.Column | None) -> str:
    if isinstance(field, ma.fields.List):
        return "tags"
    if column is not None and any(fk.column.table.name != "company" for fk in column.foreign_keys):
        return "reference"
    if isinstance(field, ma.fields.Boolean):
        return "boolean"
    if isinstance(field, ma.fields.Integer):
        return "integer"
    if isinstance(field, ma.fields.Decimal):
        return "decimal"
    if isinstance(field, ma.fields.DateTime):
        return "datetime"
    if isinstance(field, ma.fields.Date):
        return "date"
    if name == "phone" or name.endswith("converters.phone") or name == "mobile":
        return "phone"
    if any(isinstance(v, ma.validate.Email) for v in field.validators):
        return "email"
    return "text"


def columns(resource: Any) -> list[Column]:
    """The columns ``resource`` takes from a file: its own, then its extension fields."""
    table = resource.model.__table__
    skipped = set(SKIPPED_COLUMNS.get(resource.name, ()))
    own_aliases = getattr(resource, "import_aliases", {}) or {}
    out: list[Column] = []
    for name, declared in resource.declared_fields().items():
        if declared.dump_only or name in skipped or name in ("id", "version"):
            continue
        column = table.c.get(name)
        kind = _column_type(name, declared, column)
        if kind == "tags" and name != "tags":
            continue
        if column is None and kind != "tags":
            continue
        choices: tuple[tuple[str, str], ...] = ()
        choice_list = None
        if name in resource.choice_fields:
            choice_list = resource.choice_fields[name]
            kind = "choice"
            choices = tuple(_choice_options(resource.choice_fields[name]))
        elif one_of := _one_of(declared):
            kind = "choice"
            choices = tuple((v, v) for v in one_of)
        label, label_zh = LABELS.get(name, (name.replace("_", " ").capitalize(), ""))
        target = None
        if kind == "reference" and column is not None:
            target = next(iter(column.foreign_keys)).column.table.name
        out.append(
            Column(
                key=name,
                type=kind,
                label=label,
                label_zh=label_zh,
                required=bool(declared.required),
                aliases=(*ALIASES.get(name, ()), *own_aliases.get(name, ())),
                choices=choices,
                target=target,
                choice_list=choice_list,
            )
        )
    for f in resource.extension_fields():
        out.append(
            Column(
                key=f.key,
                type={"string": "text", "text": "text"}.get(f.type, f.type),
                label=f.label,
                label_zh=f.label_zh,
                required=f.required,
                aliases=(f.name, f.label, f.label_zh),
                choices=tuple((c[0], pick(c[1], c[2])) for c in f.choices),
                extension=f,
            )
        )
    return out


def _one_of(field: ma.fields.Field) -> tuple[str, ...]:
    for validator in field.validators:
        if isinstance(validator, ma.validate.OneOf):
            return tuple(str(c) for c in validator.choices)
    return ()


def _choice_options(list_name: str) -> list[tuple[str, str]]:
    from core.choices import options

    return list(options(list_name))


def _choice_lookup(list_name: str) -> dict[str, str]:
    """Every spelling of the list's values a file may use (value, English and Chinese label),
    folded, to the value."""
    from core.plugins import current
    from core.web.context import enabled_plugins

    out: dict[str, str] = {}
    for choice in current().registry.choices_for(list_name, enabled_plugins()):
        for spelling in (choice.label_zh, choice.label, choice.value):
            if spelling:
                out[spelling.strip().casefold()] = choice.value
    return out


def suggest(header: Sequence[str], resource: Any) -> dict[str, str | None]:
    """A proposed mapping: each header name to a column key, or ``None`` (not imported).

    A header matches a column by its key, field name, English or Chinese label or a common
    spreadsheet header for it (case, spaces and ``_`` ignored); each column is taken once, by
    the first header that matches it. The report's own columns (``line``, ``errors``) map to
    nothing, so a corrected error report imports as it is."""
    names: dict[str, str] = {}
    cols = columns(resource)
    # Exact keys and labels first, aliases after: "客户" is an alias of a contact's customer
    # and of a customer's name, and must not win over a real label.
    for col in cols:
        for spelling in (col.key, col.label, col.label_zh):
            if spelling:
                names.setdefault(_norm(spelling), col.key)
    for col in cols:
        for spelling in col.aliases:
            if spelling:
                names.setdefault(_norm(spelling), col.key)
    taken: set[str] = set()
    out: dict[str, str | None] = {}
    for name in header:
        key = None if name in REPORT_COLUMNS else names.get(_norm(name))
        if key in taken:
            key = None
        if key is not None:
            taken.add(key)
        out[name] = key
    return out


# -- the plan of one import ---------------------------------------------------------------------


@dataclass
class Slot:
    """A mapped column of the file: where it is, what it fills, how its cells convert."""

    index: int
    header: str
    column: Column
    convert: Callable[[str], Any]
    #: The table column it fills (``None`` for extension fields and tags).
    db_column: sa.Column | None = None


@dataclass
class Plan:
    """Everything about one import that is decided before the first row is read."""

    resource: Any
    header: list[str]
    mapping: dict[str, str]
    on_duplicate: str
    slots: list[Slot]
    #: Slots of the record's own columns (first in ``slots``), extension fields, tags.
    core: list[Slot]
    extension: list[Slot]
    tags: Slot | None
    #: Columns not in the file that a new record gets (defaults), ready for the driver.
    fixed: dict[str, Any]
    #: The duplicate key's columns (mapped), ``None`` when the import has none.
    key: tuple[str, ...] | None
    zone: ZoneInfo
    rules: Rules
    user_id: int | None
    company_id: int
    now: datetime
    ext_defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return len(self.header)


def company_zone() -> ZoneInfo:
    """The company's time zone: dates and times without one in a file are in it."""
    return tenancy.company_zone()


def _processor(column: sa.Column | None, dialect: Any) -> Callable | None:
    if column is None:
        return None
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _ext_column(f: ext.Field) -> sa.Column:
    return db.metadata.tables[f.table_name].c[f.name]


def _default(column: sa.Column) -> tuple[bool, Any]:
    default = column.default
    if default is None:
        return False, None
    if getattr(default, "is_scalar", False):
        return True, default.arg
    if getattr(default, "is_callable", False):
        return True, default.arg(None)
    return False, None


def compile_plan(
    resource: Any,
    header: Sequence[str],
    mapping: dict[str, str | None] | None,
    *,
    on_duplicate: str = "skip",
    user_id: int | None = None,
) -> Plan:
    """Check ``mapping`` (header name → column key; ``None`` or absent: not imported) against
    ``resource`` and compile the converters; :class:`MappingError` lists every problem."""
    if on_duplicate not in ON_DUPLICATE:
        raise MappingError(_("Duplicates are skipped, updated or created."))
    header = list(header)
    if mapping is None:
        mapping = suggest(header, resource)
    cols = {c.key: c for c in columns(resource)}
    problems: list[str] = []
    chosen: dict[str, str] = {}
    used: dict[str, str] = {}
    for name, key in mapping.items():
        if not key:
            continue
        if name not in header:
            problems.append(_("The file has no column %(name)s.", name=str(name)[:60]))
            continue
        if key not in cols:
            problems.append(
                _("%(name)s: %(key)s cannot be imported here.", name=name[:60], key=str(key)[:60])
            )
            continue
        if key in used:
            problems.append(
                _(
                    "%(a)s and %(b)s both go to %(label)s.",
                    a=used[key][:60],
                    b=name[:60],
                    label=cols[key].text,
                )
            )
            continue
        used[key] = name
        chosen[name] = key
    rules = rules_for(resource)
    if on_duplicate == "create" and not rules.creates_duplicates:
        problems.append(
            _(
                "A row matching an existing %(label)s replaces it or is skipped.",
                label=resource_label(resource),
            )
        )
    for col in cols.values():
        needed = col.required or col.key in rules.required
        if needed and col.key not in used and col.key not in rules.provided:
            problems.append(_("Choose the column that holds %(label)s.", label=col.text))
    if not chosen and not problems:
        problems.append(_("Choose at least one column to import."))
    if problems:
        raise MappingError(problems)

    dialect = db.session.get_bind().dialect
    table = resource.model.__table__
    declared = resource.declared_fields()
    zone = company_zone()
    now = utcnow()
    plan_slots: list[Slot] = []
    for index, name in enumerate(header):
        key = chosen.get(name)
        if key is None:
            continue
        col = cols[key]
        db_column = table.c.get(key) if col.extension is None and col.type != "tags" else None
        if col.extension is not None:
            convert = _extension_converter(col.extension, dialect, zone)
        elif col.type == "tags":
            convert = converters.tags
        else:
            convert = _core_converter(
                col, declared[key], db_column, dialect, zone, rules.checks.get(key)
            )
        plan_slots.append(Slot(index, name, col, convert, db_column))
    core = [s for s in plan_slots if s.db_column is not None]
    extension = [s for s in plan_slots if s.column.extension is not None]
    tags = next((s for s in plan_slots if s.column.type == "tags"), None)
    fixed: dict[str, Any] = {}
    mapped = {s.column.key for s in core}
    for column in table.columns:
        if column.key in mapped or column.key in ("id", "company_id"):
            continue
        has, value = _default(column)
        if column.key in rules.provided:
            has, value = True, rules.provided[column.key](user_id, now)
        elif column.key in ("created_at", "updated_at") and has:
            value = now
        if has:
            process = _processor(column, dialect)
            fixed[column.key] = process(value) if process and value is not None else value
    keys = key_columns(resource)
    fields = [s.column.extension for s in extension]
    ext_defaults = {
        f.key: _ext_processed(f, f.default, dialect) for f in fields if f.default is not None
    }
    return Plan(
        resource=resource,
        header=header,
        mapping=chosen,
        on_duplicate=on_duplicate,
        slots=[*core, *extension, *([tags] if tags else [])],
        core=core,
        extension=extension,
        tags=tags,
        fixed=fixed,
        key=keys if keys and all(k in mapped for k in keys) else None,
        zone=zone,
        rules=rules,
        user_id=user_id,
        company_id=require_company(),
        now=now,
        ext_defaults=ext_defaults,
    )


def _ext_processed(f: ext.Field, value: Any, dialect: Any) -> Any:
    process = _processor(_ext_column(f), dialect)
    return process(value) if process and value is not None else value


def _bound(field: ma.fields.Field) -> tuple[Any, Any, bool, bool]:
    low = high = None
    low_in = high_in = True
    for validator in field.validators:
        if isinstance(validator, ma.validate.Range):
            if validator.min is not None and (low is None or validator.min > low):
                low, low_in = validator.min, validator.min_inclusive
            if validator.max is not None and (high is None or validator.max < high):
                high, high_in = validator.max, validator.max_inclusive
    return low, high, low_in, high_in


def _length(field: ma.fields.Field, column: sa.Column | None) -> int | None:
    longest = None
    for validator in field.validators:
        if isinstance(validator, ma.validate.Length) and validator.max is not None:
            longest = validator.max if longest is None else min(longest, validator.max)
    length = getattr(column.type, "length", None) if column is not None else None
    if length and (longest is None or length < longest):
        longest = length
    return longest


def _core_converter(
    col: Column,
    field: ma.fields.Field,
    column: sa.Column | None,
    dialect: Any,
    zone: ZoneInfo,
    check: Callable | None,
) -> Callable[[str], Any]:
    convert = _core_converter_of(col, field, column, dialect, zone, check)
    extra = [v for v in field.validators if not isinstance(v, _COMPILED) and v is not _NOT_BLANK]
    if not extra:
        return convert

    def checked(raw: str) -> Any:
        value = convert(raw)
        if value is not None:
            for validator in extra:
                try:
                    validator(value)
                except ma.ValidationError as exc:
                    raise converters.Bad(" ".join(str(m) for m in _messages(exc))) from None
        return value

    return checked


#: Validators the converters compile in; others are called on each converted value.
_COMPILED = (ma.validate.Length, ma.validate.Range, ma.validate.OneOf, ma.validate.Email)
_NOT_BLANK = schemas.not_blank


def _messages(exc: ma.ValidationError) -> list[Any]:
    messages = exc.messages
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in value]
    return list(messages) if isinstance(messages, list) else [messages]


def _core_converter_of(
    col: Column,
    field: ma.fields.Field,
    column: sa.Column | None,
    dialect: Any,
    zone: ZoneInfo,
    check: Callable | None,
) -> Callable[[str], Any]:
    process = _processor(column, dialect)
    has_default, default = _default(column) if column is not None else (False, None)
    blank = (process(default) if process else default) if has_default else None
    required = bool(field.required) and not has_default
    if column is not None and not column.nullable and blank is None:
        required = True  # the database would refuse the row
    kind = col.type
    if kind == "choice":
        lookup = {v.casefold(): v for v, _label in col.choices}
        if col.choice_list:
            lookup.update(_choice_lookup(col.choice_list))
        lookup.update({v: v for v, _label in col.choices})
        if blank is not None and default not in {v for v, _l in col.choices}:
            blank = None  # the default is not a choice of this company's
            required = required or (column is not None and not column.nullable)
        return converters.choice(lookup, blank, required, process)
    if kind == "reference":
        return converters.reference(required)
    if kind == "phone":
        return converters.phone(_length(field, column), required)
    if kind == "email":
        return converters.email(_length(field, column), required)
    if kind == "integer":
        return converters.integer(_bound(field), blank, required)
    if kind == "decimal":
        places = getattr(column.type, "scale", None) if column is not None else None
        return converters.number(places, _bound(field), blank, required, process)
    if kind == "boolean":
        return converters.boolean(blank, required, process)
    if kind == "datetime":
        return converters.moment(zone, _bound(field), blank, required, process, check)
    if kind == "date":
        return converters.day(_bound(field), blank, required, process)
    return converters.text(_length(field, column), blank, required)


def _extension_converter(f: ext.Field, dialect: Any, zone: ZoneInfo) -> Callable[[str], Any]:
    process = _processor(_ext_column(f), dialect)
    bounds = (f.min, f.max, True, True)
    if f.type in ("string", "text"):
        return converters.text(
            f.max_length or 200 if f.type == "string" else None, None, f.required
        )
    if f.type == "integer":
        return converters.integer(bounds, None, f.required)
    if f.type == "decimal":
        return converters.number(f.scale, bounds, None, f.required, process)
    if f.type == "boolean":
        return converters.boolean(None, f.required, process)
    if f.type == "date":
        return converters.day(bounds, None, f.required, process)
    if f.type == "customer":
        return _customer_converter(f)
    lookup: dict[str, str] = {}
    for value, label, label_zh in f.choices:
        for spelling in (label_zh, label, value):
            if spelling:
                lookup[spelling.casefold()] = value
                lookup[spelling] = value
    return converters.choice(lookup, None, f.required, process)


def _customer_converter(f: ext.Field) -> Callable[[str], Any]:
    """A ``customer`` extension cell: the code or exact name of a customer of the company of an
    allowed kind (the spellings are read once per import, :func:`core.fields.reference_lookup`)."""
    lookup = ext.reference_lookup(f)

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if f.required:
                raise converters.Bad(_("Required."))
            return None
        if raw not in lookup:
            raise converters.Bad(ext.reference_message(f, raw))
        found = lookup[raw]
        if found is None:
            raise converters.Bad(
                _("Several customers are named %(value)s; give the code.", value=raw[:40])
            )
        return found

    return convert


# -- rules of each kind of record ---------------------------------------------------------------


class Rules:
    """What importing one kind of record needs beyond its declaration. The default fits any
    plugin resource: its ``check`` (if it has one) per created row, its ``after_write`` with
    the records loaded in chunks."""

    #: Columns a new record gets from the import itself: key → ``f(user_id, now)``.
    provided: dict[str, Callable[[int | None, datetime], Any]] = {}
    #: Extra checks of converted values, by column key (raise :class:`converters.Bad`).
    checks: dict[str, Callable[[Any], None]] = {}
    #: Columns a file must map for this kind of record (besides the declared required ones).
    required: tuple[str, ...] = ()
    #: Whether customer phone numbers find duplicates.
    dedupe_phone = False
    #: Columns of :attr:`provided` that an update sets again (when the record was last
    #: answered, and by whom); the others are a new record's only.
    refreshed: tuple[str, ...] = ()
    #: Whether a row matching an existing record may be created anyway (``False`` where the
    #: key is unique in the database).
    creates_duplicates = True

    def __init__(self, resource: Any) -> None:
        self.resource = resource

    def check_rows(self, job: Job, rows: list[Row]) -> None:
        """Set-based checks of a chunk's converted rows (add errors with ``row.fail``)."""
        from core.api.resources import Resource

        if type(self.resource).check is Resource.check:
            return
        for row in rows:
            if row.errors or row.action != "create":
                continue
            values = job.core_values(row)
            for key, messages in self.resource.check(values, None).items():
                row.fail(job.header_of(key), " ".join(str(m) for m in messages))

    def after(self, job: Job, created: list[int], updated: list[int], rows: list[Row]) -> None:
        """After a chunk is written (inside its transaction); ``rows`` are those created or
        updated."""
        from core.api.resources import Resource

        if type(self.resource).after_write is Resource.after_write:
            return
        ids = created + updated
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            records = list(
                db.session.scalars(
                    select(self.resource.model).where(self.resource.model.id.in_(chunk))
                )
            )
            self.resource.after_write(records, [{} for _r in records])

    def finish(self, job: Job, created: list[int], updated: list[int]) -> None:
        """Once per transaction (the whole atomic import, each batch) with the ids of every
        record it created and updated."""

    #: Columns of a new record computed from its other values (appended to the INSERT).
    computed: tuple[str, ...] = ()

    def computer(self, job: Job) -> Callable[[list[Any]], tuple[Any, ...]] | None:
        """The function of a row's converted values giving :attr:`computed` (``None``: none)."""
        return None


def classify(ids: list[int], now: datetime) -> None:
    """Classify the customers ``ids`` (:func:`core.classify.classify_customers`): in one pass
    over the company when they are most of its customers (a first import), else by chunks of
    ids. Either way one ``UPDATE`` per attribute and chunk, whatever the number of rows."""
    from core import access
    from core import classify as engine

    if not ids:
        return
    with access.all_customers():
        everyone = db.session.scalar(select(sa.func.count()).select_from(Customer)) or 0
        if len(ids) * 2 >= everyone:
            engine.classify_customers(now=now)
            return
        for start in range(0, len(ids), 10_000):
            engine.classify_customers(ids[start : start + 10_000], now=now)


class CustomerRules(Rules):
    """Customers: owner defaults to the importer, phones find duplicates, tags, classification."""

    provided = {"owner_id": lambda user_id, now: user_id}
    dedupe_phone = True

    computed = ("value_tier", "loyalty", "lifecycle_stage")

    def after(self, job: Job, created: list[int], updated: list[int], rows: list[Row]) -> None:
        if job.plan.tags is not None:
            _save_tags(job, rows)

    def computer(self, job: Job) -> Callable[[list[Any]], tuple[Any, ...]]:
        """A new customer's classification, as :func:`core.classify.classify_customers` gives
        it for a customer created now with no interactions and no last contact: the value
        tier from revenue; loyalty ``new`` (none for prospects); lifecycle ``acquisition``
        (``dissolution`` for lost and inactive customers). Computed while the row is built
        instead of three UPDATEs over the new rows afterwards (a quarter of a large import's
        time); tests/test_import.py checks that ``classify_customers`` then changes nothing."""
        from core import classify as engine

        rules = engine.load_rules()
        a, b, c = rules.tier_a_min, rules.tier_b_min, rules.tier_c_min
        prospect, lost = set(engine.PROSPECT_STATUSES), set(engine.LOST_STATUSES)
        revenue_at = job.positions.get("revenue")
        status_at = job.positions.get("status")
        fixed_status = job.plan.fixed.get("status")

        def compute(values: list[Any]) -> tuple[Any, ...]:
            revenue = (values[revenue_at] if revenue_at is not None else None) or 0
            status = values[status_at] if status_at is not None else fixed_status
            tier = "A" if revenue >= a else "B" if revenue >= b else "C" if revenue >= c else "D"
            loyalty = None if status in prospect else "new"
            stage = "dissolution" if status in lost else "acquisition"
            return tier, loyalty, stage

        return compute

    def finish(self, job: Job, created: list[int], updated: list[int]) -> None:
        classify(updated, job.plan.now)


def _save_tags(job: Job, rows: list[Row]) -> None:
    from core.models import CustomerTag, Tag

    slot = job.plan.tags
    assert slot is not None
    position = job.plan.slots.index(slot)
    wanted = {
        row.record_id: row.values[position]
        for row in rows
        if row.record_id is not None and row.values[position]
    }
    if not wanted:
        return
    names = {n for tags in wanted.values() for n in tags}
    existing = dict(db.session.execute(select(Tag.name, Tag.id).where(Tag.name.in_(names))).all())
    folded = {n.casefold(): i for n, i in existing.items()}
    missing = sorted({n for n in names if n.casefold() not in folded})
    for name in missing:
        tag = Tag(name=name)
        db.session.add(tag)
        db.session.flush()
        folded[name.casefold()] = tag.id
    ids = list(wanted)
    have = set(
        db.session.execute(
            select(CustomerTag.customer_id, CustomerTag.tag_id).where(
                CustomerTag.customer_id.in_(ids)
            )
        ).all()
    )
    links = []
    for customer_id, tags in wanted.items():
        for name in tags:
            pair = (customer_id, folded[name.casefold()])
            if pair not in have:
                have.add(pair)
                links.append(
                    {"customer_id": pair[0], "tag_id": pair[1], "company_id": job.plan.company_id}
                )
    if links:
        db.session.execute(sa.insert(CustomerTag.__table__), links)


class InteractionRules(Rules):
    """Interactions: logged by the importer, a moment that is not in the future, next steps
    with their due date, contacts and tickets of the row's customer; customers' last contact
    and classification follow."""

    provided = {"user_id": lambda user_id, now: user_id}
    required = ("occurred_at",)

    def __init__(self, resource: Any) -> None:
        super().__init__(resource)
        limit = utcnow() + timedelta(minutes=10)

        def not_future(moment: datetime) -> None:
            if moment > limit:
                raise converters.Bad(_("Cannot be in the future; plan it as a next step instead."))

        self.checks = {"occurred_at": not_future}

    def check_rows(self, job: Job, rows: list[Row]) -> None:
        get = job.getter
        maximum = 7 * 24 * 60
        for row in rows:
            duration = get(row, "duration_minutes")
            if duration is not None and not 0 <= duration <= maximum:
                row.fail(job.header_of("duration_minutes"), _("At most %(n)s minutes.", n=maximum))
            step, due = get(row, "next_step"), get(row, "next_step_due")
            if due is not None and not step:
                row.fail(job.header_of("next_step"), _("Say what the next step is."))
            if step and due is None:
                row.fail(job.header_of("next_step_due"), _("Give the next step's due date."))
        for key, model in (("contact_id", Contact), ("ticket_id", None)):
            if key not in job.plan.mapping.values():
                continue
            from core.models import ServiceTicket

            model = model or ServiceTicket
            ids = sorted({get(r, key) for r in rows if get(r, key) is not None})
            owners: dict[int, int] = {}
            for start in range(0, len(ids), 500):
                stmt = select(model.id, model.customer_id).where(
                    model.id.in_(ids[start : start + 500])
                )
                owners.update(db.session.execute(stmt).tuples().all())
            for row in rows:
                value = get(row, key)
                if value is not None and owners.get(value) != get(row, "customer_id"):
                    row.fail(
                        job.header_of(key),
                        _("This contact is not one of this customer's.")
                        if key == "contact_id"
                        else _("This ticket is not one of this customer's."),
                    )

    def after(self, job: Job, created: list[int], updated: list[int], rows: list[Row]) -> None:
        latest: dict[int, Any] = {}
        get = job.getter
        for row in rows:
            if row.record_id is None:
                continue
            customer_id, moment = get(row, "customer_id"), get(row, "occurred_at")
            if (
                customer_id is not None
                and moment is not None
                and (customer_id not in latest or moment > latest[customer_id])
            ):
                latest[customer_id] = moment
        if not latest:
            return
        job.executemany(
            f"UPDATE customer SET last_contact_at = {job.mark} WHERE id = {job.mark} "
            f"AND company_id = {job.mark} AND (last_contact_at IS NULL OR last_contact_at < "
            f"{job.mark})",
            [(m, cid, job.plan.company_id, m) for cid, m in latest.items()],
        )
        job.touched.update(latest)

    def finish(self, job: Job, created: list[int], updated: list[int]) -> None:
        classify(sorted(job.touched), job.plan.now)
        job.touched.clear()


class ChannelRules(Rules):
    """Channels: an updated channel may not sit below itself."""

    def check_rows(self, job: Job, rows: list[Row]) -> None:
        from core.channels import parent_error

        if "parent_id" not in job.plan.mapping.values():
            return
        for row in rows:
            parent = job.getter(row, "parent_id")
            if (
                row.action == "update"
                and parent is not None
                and parent_error(row.record_id, parent) == "cycle"
            ):
                row.fail(
                    job.header_of("parent_id"),
                    _("A channel cannot sit below itself or its own sub-channels."),
                )


class ConsentRules(Rules):
    """Consent answers (:mod:`core.consent`): a row names the customer, the channel, the
    purpose, the answer and where it comes from. It replaces that customer's current answer
    for the channel and purpose (``update``; ``skip`` keeps the current one; a second answer
    is never created: the three columns are unique). The answer counts from the import and
    is recorded by the person importing. Every answer written is an audit row ``consent``
    with the answer it replaced, as the customer page and the API write it."""

    provided = {
        "recorded_at": lambda user_id, now: now,
        "recorded_by": lambda user_id, now: user_id,
    }
    refreshed = ("recorded_at", "recorded_by")
    creates_duplicates = False

    def __init__(self, resource: Any) -> None:
        super().__init__(resource)
        #: The answer each updated consent row held before this import (id → granted).
        self.before: dict[int, bool] = {}

    def check_rows(self, job: Job, rows: list[Row]) -> None:
        from core import consent
        from core.models import Consent

        names = {p.name for p in consent.purposes()}
        header = job.header_of("purpose")
        for row in rows:
            purpose = job.getter(row, "purpose")
            if purpose not in names:
                row.fail(
                    header,
                    _(
                        "Not a purpose of this company: %(value)s (%(names)s).",
                        value=str(purpose)[:40],
                        names=", ".join(sorted(names)) or "-",
                    ),
                )
        ids = [r.record_id for r in rows if not r.errors and r.action == "update"]
        for start in range(0, len(ids), 500):
            stmt = select(Consent.id, Consent.granted).where(
                Consent.id.in_(ids[start : start + 500])
            )
            self.before.update((i, bool(g)) for i, g in db.session.execute(stmt))

    def after(self, job: Job, created: list[int], updated: list[int], rows: list[Row]) -> None:
        from core.models import AuditLog

        if not rows:
            return
        get, plan = job.getter, job.plan
        table = AuditLog.__table__
        db.session.execute(
            sa.insert(table),
            [
                {
                    "company_id": plan.company_id,
                    "user_id": plan.user_id,
                    "action": "consent",
                    "entity_type": "customer",
                    "entity_id": get(row, "customer_id"),
                    "data": {
                        "channel": get(row, "channel"),
                        "purpose": get(row, "purpose"),
                        "granted": bool(get(row, "granted")),
                        "before": self.before.get(row.record_id)  # type: ignore[arg-type]
                        if row.action == "update"
                        else None,
                        "source": get(row, "source"),
                    },
                    "created_at": plan.now,
                }
                for row in rows
            ],
        )


RULES: dict[str, type[Rules]] = {
    "customers": CustomerRules,
    "interactions": InteractionRules,
    "channels": ChannelRules,
    "consents": ConsentRules,
}


def rules_for(resource: Any) -> Rules:
    return RULES.get(resource.name, Rules)(resource)


# -- running an import --------------------------------------------------------------------------


@dataclass
class RowError:
    line: int
    column: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "message": self.message}


class Row:
    """One record row of the file on its way in."""

    __slots__ = ("line", "cells", "values", "errors", "action", "record_id")

    def __init__(self, line: int, cells: list[str], values: list[Any] | None) -> None:
        self.line = line
        self.cells = cells
        self.values = values
        #: ``(column, message)`` pairs (an empty tuple until the first).
        self.errors: list[tuple[str, str]] | tuple[()] = ()
        #: ``create``, ``update`` (``record_id`` is the existing record) or ``skip``.
        self.action = "create"
        self.record_id: int | None = None

    def fail(self, column: str, message: str) -> None:
        if not self.errors:
            self.errors = []
        self.errors.append((column, message))  # type: ignore[union-attr]


@dataclass
class Counts:
    rows: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "failed": self.failed,
        }


class Job:
    """One run of an import: the plan, the open file, the duplicate indexes, the counters."""

    def __init__(self, plan: Plan, *, reporter: _Report | None) -> None:
        self.plan = plan
        self.counts = Counts()
        self.errors: list[RowError] = []
        self.reporter = reporter
        self.dialect = db.session.get_bind().dialect
        self.mark = "?" if self.dialect.paramstyle == "qmark" else "%s"
        self.positions = {s.column.key: i for i, s in enumerate(plan.slots)}
        self.convert_row = converters.compile_row([(s.index, s.convert) for s in plan.slots])
        self._reference_cache: dict[str, dict[str, int | None]] = {}
        self.seen_keys: dict[Any, int] = {}
        self.seen_phones: dict[str, int] = {}
        self.existing_keys: dict[Any, list[int]] = {}
        self.existing_phones: dict[str, list[int]] = {}
        #: Ids created and updated in the open transaction (for :meth:`Rules.finish`).
        self.created: list[int] = []
        self.updated: list[int] = []
        #: Other records the open transaction changed (customers of imported interactions).
        self.touched: set[int] = set()

    # -- helpers ---------------------------------------------------------------------------

    def header_of(self, key: str) -> str:
        for slot in self.plan.slots:
            if slot.column.key == key:
                return slot.header
        cols = {c.key: c for c in columns(self.plan.resource)}
        return cols[key].text if key in cols else key

    def getter(self, row: Row, key: str) -> Any:
        position = self.positions.get(key)
        if position is None or row.values is None:
            return self.plan.fixed.get(key)
        return row.values[position]

    def core_values(self, row: Row) -> dict[str, Any]:
        assert row.values is not None
        return {s.column.key: row.values[i] for i, s in enumerate(self.plan.core)}

    def executemany(self, sql: str, params: Sequence[Sequence[Any]]) -> None:
        """The driver's own ``executemany`` on the session's connection (its transaction)."""
        if not params:
            return
        cursor = db.session.connection().connection.driver_connection.cursor()
        try:
            cursor.executemany(sql, params)
        finally:
            cursor.close()

    def allocate_ids(self, count: int) -> list[int]:
        """``count`` new ids of the resource's table (a sequence on PostgreSQL; after the
        largest id on SQLite, where the import's write transaction holds the lock)."""
        table = self.plan.resource.model.__table__
        if self.dialect.name == "postgresql":
            rows = db.session.execute(
                sa.text(
                    "SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"
                ),
                {"t": table.name, "n": count},
            )
            return [r[0] for r in rows]
        top = db.session.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
        return list(range(top + 1, top + count + 1))

    # -- duplicates ------------------------------------------------------------------------

    def load_existing(self) -> None:
        """The company's existing keys (and customer phones): one query each."""
        plan = self.plan
        table = plan.resource.model.__table__
        company = table.c.company_id == plan.company_id
        if plan.key is not None:
            columns = [table.c[k] for k in plan.key]
            stmt = select(table.c.id, *columns).where(company, *[c.is_not(None) for c in columns])
            single = len(columns) == 1
            for record_id, *value in db.session.execute(stmt):
                found = value[0] if single else tuple(value)
                self.existing_keys.setdefault(found, []).append(record_id)
        if plan.rules.dedupe_phone and "phone" in self.positions and plan.on_duplicate != "create":
            stmt = select(table.c.id, table.c.phone).where(company, table.c.phone.is_not(None))
            key = dedupe.phone_key
            for record_id, phone in db.session.execute(stmt):
                found = key(phone)
                if found is not None:
                    self.existing_phones.setdefault(found, []).append(record_id)

    def match(self, rows: list[Row]) -> None:
        """Duplicates inside the file (an error on the later row) and against existing
        records (skip, update or create, as the import says)."""
        plan = self.plan
        key_at = [self.positions[k] for k in plan.key] if plan.key else []
        key_pos = key_at[0] if len(key_at) == 1 else None  # one column: the fast path
        phone_pos = (
            self.positions.get("phone")
            if plan.rules.dedupe_phone and plan.on_duplicate != "create"
            else None
        )
        phone_key = dedupe.phone_key
        key_header = self.header_of(plan.key[0]) if plan.key else ""
        phone_header = self.header_of("phone") if phone_pos is not None else ""
        seen_keys, existing_keys = self.seen_keys, self.existing_keys
        seen_phones, existing_phones = self.seen_phones, self.existing_phones
        creating = plan.on_duplicate == "create"
        none: list[int] = []
        for row in rows:
            if row.errors:
                continue
            values = row.values
            assert values is not None
            matches = none
            if key_at:
                if key_pos is not None:
                    value = values[key_pos]
                else:
                    value = tuple([values[p] for p in key_at])
                    if None in value:
                        value = None
                if value is not None:
                    first = seen_keys.get(value)
                    if first is not None:
                        row.fail(key_header, _("Same as row %(line)d.", line=first))
                        continue
                    seen_keys[value] = row.line
                    matches = existing_keys.get(value, none)
            if phone_pos is not None:
                found = values[phone_pos]
                # A mainland mobile number (the usual cell) is its own key.
                if found is not None and not (
                    len(found) == 11 and found[0] == "1" and found.isdigit() and found.isascii()
                ):
                    found = phone_key(found)
                if found is not None:
                    first = seen_phones.get(found)
                    if first is not None:
                        row.fail(phone_header, _("Same phone as row %(line)d.", line=first))
                        continue
                    seen_phones[found] = row.line
                    if not matches:
                        matches = existing_phones.get(found, none)
            if not matches or creating:
                continue
            if plan.on_duplicate == "skip":
                row.action = "skip"
                row.record_id = matches[0]
            elif len(matches) > 1:
                row.fail(
                    key_header or phone_header,
                    _("%(n)d existing records match; update them one by one.", n=len(matches)),
                )
            else:
                row.action = "update"
                row.record_id = matches[0]

    # -- references ------------------------------------------------------------------------

    def resolve(self, rows: list[Row]) -> None:
        """Foreign keys named by id, code, name or e-mail → ids: one query per key column
        for the values not seen before."""
        for position, slot in enumerate(self.plan.slots):
            if slot.column.type != "reference":
                continue
            target = slot.column.target or ""
            cache = self._reference_cache.setdefault(slot.column.key, {})
            wanted = {
                r.values[position]
                for r in rows
                if r.values is not None and r.values[position] is not None
            } - cache.keys()
            if wanted:
                cache.update(_lookup(target, wanted))
            for row in rows:
                if row.values is None:
                    continue
                raw = row.values[position]
                if raw is None:
                    continue
                found = cache.get(raw)
                if found is None:
                    row.fail(slot.header, _("No such record: %(value)s", value=raw[:40]))
                elif found < 0:
                    row.fail(
                        slot.header,
                        _("%(value)s names several records; use the code or id.", value=raw[:40]),
                    )
                else:
                    row.values[position] = found

    # -- converting ------------------------------------------------------------------------

    def convert(self, source: Iterable[list[str]], size: int, skip: int) -> Iterator[list[Row]]:
        """The rows of ``source`` (text cells, after the header) as :class:`Row` with converted
        values or errors, ``size`` at a time. Blank rows are left out; so are the first ``skip``
        rows that are not blank (a resume)."""
        width = self.plan.width
        convert_row = self.convert_row
        slow_row = self._slow_row
        out: list[Row] = []
        append = out.append
        room = size
        line = 1
        for cells in source:
            line += 1
            if not (cells and cells[0] and not cells[0].isspace()) and not "".join(cells).strip():
                continue  # a blank row
            if skip:
                skip -= 1
                continue
            try:
                append(Row(line, cells, convert_row(cells)))
            except (converters.Bad, IndexError):
                append(slow_row(line, cells, width))
            room -= 1
            if not room:
                yield out
                out, room = [], size
                append = out.append
        if out:
            yield out

    def read(
        self, source: Iterable[list[str]], size: int, skip: int, *, process: bool = False
    ) -> Iterator[list[Row]]:
        """:meth:`convert`, then :meth:`match` unless the plan names records by reference
        (:attr:`matches_late`): the rows of ``source``, ``size`` at a time. With ``process``,
        in a second process (:func:`core.bulkload.in_child_process`) while this one writes
        what it has: the child sends each row's values, action and errors, and its cells only
        where this process may need them (a row with errors, an update, a plan that checks
        rows after reading)."""
        early = not self.matches_late
        if not process:
            for rows in self.convert(source, size, skip):
                if early:
                    self.match(rows)
                yield rows
            return
        late = self.fails_late
        new = Row.__new__

        def produce() -> Iterator[list[tuple[Any, ...]]]:
            for rows in self.convert(source, size, skip):
                if early:
                    self.match(rows)
                yield [
                    (
                        r.line,
                        r.cells if late or r.errors or r.action == "update" else None,
                        r.values,
                        r.errors,
                        r.action,
                        r.record_id,
                    )
                    for r in rows
                ]

        for packed in bulkload.in_child_process(produce):
            rows = []
            for line, cells, values, errors, action, record_id in packed:
                row = new(Row)
                row.line, row.cells, row.values, row.errors = line, cells, values, errors
                row.action, row.record_id = action, record_id
                rows.append(row)
            yield rows

    @property
    def matches_late(self) -> bool:
        """Whether duplicates are looked for after references are resolved (a plan with a
        reference column: a key may be one), in this process, instead of while reading."""
        return any(s.column.type == "reference" for s in self.plan.slots)

    @property
    def fails_late(self) -> bool:
        """Whether rows may fail after :meth:`read` (references, the rules' checks): their
        cells are then kept for the error report."""
        from core.api.resources import Resource

        rules = self.plan.rules
        return (
            self.matches_late
            or type(rules).check_rows is not Rules.check_rows
            or type(rules.resource).check is not Resource.check
        )

    @property
    def tables(self) -> list[str]:
        """The tables an import writes rows into: the resource's, then its side tables."""
        names = [self.plan.resource.model.__table__.name]
        for slot in self.plan.extension:
            f = slot.column.extension
            if f is not None and f.table_name not in names:
                names.append(f.table_name)
        return names

    def _slow_row(self, line: int, cells: list[str], width: int) -> Row:
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        row = Row(line, cells, [])
        assert row.values is not None
        for slot in self.plan.slots:
            try:
                row.values.append(slot.convert(cells[slot.index]))
            except converters.Bad as exc:
                row.values.append(None)
                row.fail(slot.header, str(exc))
        return row

    # -- writing ---------------------------------------------------------------------------

    def write(self, rows: list[Row]) -> tuple[list[int], list[int]]:
        """Insert the rows to create, update the rows to update (rows without errors);
        returns both id lists."""
        creating = [r for r in rows if r.action == "create"]
        updating = [r for r in rows if r.action == "update"]
        created = self._insert(creating) if creating else []
        updated = self._update(updating) if updating else []
        return created, updated

    def _insert(self, rows: list[Row]) -> list[int]:
        plan = self.plan
        table = plan.resource.model.__table__
        core_n = len(plan.core)
        compute = plan.rules.computer(self)
        computed = plan.rules.computed if compute is not None else ()
        names = ["id", "company_id", *[s.column.key for s in plan.core], *plan.fixed, *computed]
        marks = ", ".join([self.mark] * len(names))
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
        ids = self.allocate_ids(len(rows))
        company = plan.company_id
        fixed = tuple(plan.fixed.values())
        params = []
        add = params.append
        for new_id, row in zip(ids, rows, strict=True):
            row.record_id = new_id
            values = row.values
            assert values is not None
            if compute is None:
                add((new_id, company, *values[:core_n], *fixed))
            else:
                add((new_id, company, *values[:core_n], *fixed, *compute(values)))
        self.executemany(sql, params)
        self._insert_extension(rows)
        return ids

    def _insert_extension(self, rows: list[Row]) -> None:
        plan = self.plan
        if not plan.extension and not plan.ext_defaults:
            return
        start = len(plan.core)
        by_table: dict[str, list[tuple[int, ext.Field]]] = {}
        for offset, slot in enumerate(plan.extension):
            f = slot.column.extension
            assert f is not None
            by_table.setdefault(f.table_name, []).append((start + offset, f))
        for name, group in by_table.items():
            defaults = tuple(plan.ext_defaults.get(f.key) for _p, f in group)
            pick = operator.itemgetter(*[p for p, _f in group])
            columns_sql = ", ".join(["id", *[f.name for _p, f in group]])
            marks = ", ".join([self.mark] * (len(group) + 1))
            blank = (None,) * len(group)
            single = len(group) == 1
            filled = defaults != blank
            params = []
            add = params.append
            for row in rows:
                values = (pick(row.values),) if single else pick(row.values)
                if filled:
                    values = tuple(
                        d if v is None else v for v, d in zip(values, defaults, strict=True)
                    )
                if values != blank:
                    add((row.record_id, *values))
            self.executemany(f"INSERT INTO {name} ({columns_sql}) VALUES ({marks})", params)

    def _update(self, rows: list[Row]) -> list[int]:
        """Existing records: each non-blank cell replaces the value; blank cells keep it."""
        plan = self.plan
        table = plan.resource.model.__table__
        m = self.mark
        sets = [f"{s.column.key} = COALESCE({m}, {s.column.key})" for s in plan.core]
        if "version" in table.c:
            sets.append("version = version + 1")
        extra: list[Any] = []
        if "updated_at" in table.c:
            sets.append(f"updated_at = {m}")
            extra.append(plan.fixed.get("updated_at", plan.now))
        for key in plan.rules.refreshed:
            sets.append(f"{key} = {m}")
            extra.append(plan.fixed.get(key))
        params = []
        for row in rows:
            cells, values = row.cells, row.values
            assert values is not None
            kept = [
                None if not cells[s.index].strip() else values[i] for i, s in enumerate(plan.core)
            ]
            params.append((*kept, *extra, row.record_id, plan.company_id))
        if sets:
            self.executemany(
                f"UPDATE {table.name} SET {', '.join(sets)} WHERE id = {m} AND company_id = {m}",
                params,
            )
        if plan.extension:
            self._upsert_extension(rows)
        return [r.record_id for r in rows]  # type: ignore[misc]

    def _upsert_extension(self, rows: list[Row]) -> None:
        plan = self.plan
        start = len(plan.core)
        by_table: dict[str, list[tuple[int, ext.Field]]] = {}
        for offset, slot in enumerate(plan.extension):
            f = slot.column.extension
            assert f is not None
            by_table.setdefault(f.table_name, []).append((start + offset, f))
        m = self.mark
        for name, group in by_table.items():
            cols = [f.name for _p, f in group]
            sql = (
                f"INSERT INTO {name} (id, {', '.join(cols)}) VALUES "
                f"({', '.join([m] * (len(cols) + 1))}) ON CONFLICT (id) DO UPDATE SET "
                + ", ".join(f"{c} = COALESCE(excluded.{c}, {name}.{c})" for c in cols)
            )
            params = [
                (row.record_id, *[row.values[p] for p, _f in group])  # type: ignore[index]
                for row in rows
            ]
            self.executemany(sql, params)

    # -- errors ----------------------------------------------------------------------------

    def report(self, rows: list[Row]) -> None:
        for row in rows:
            if not row.errors:
                continue
            self.counts.failed += 1
            for column, message in row.errors:
                if len(self.errors) < SHOWN_ERRORS:
                    self.errors.append(RowError(row.line, column, message))
            if self.reporter is not None:
                text = "; ".join(f"{c}: {m}" for c, m in row.errors)
                self.reporter.writerow([row.line, text, *row.cells])


def _lookup(target: str, wanted: set[str]) -> dict[str, int | None]:
    """``wanted`` texts naming records of table ``target`` → id (``-1`` when several records
    match, ``None`` when none does): the table's natural keys first (:data:`NATURAL_KEYS`,
    e-mail without case), then the id when the text is a number. Members only, for users."""
    from core.api.resources import _model_of

    out: dict[str, int | None] = dict.fromkeys(wanted)
    model = _model_of(target)
    if model is None:
        return out
    members = select(Membership.user_id) if target == "user" else None
    remaining = set(wanted)
    for key in NATURAL_KEYS.get(target, ()):
        if not remaining:
            break
        column = getattr(model, key)
        fold = key == "email"
        probes: dict[str, list[str]] = {}
        for text in remaining:
            probes.setdefault(text.lower() if fold else text, []).append(text)
        hits: dict[str, set[int]] = {}
        values = list(probes)
        for start in range(0, len(values), 500):
            stmt = select(model.id, column).where(column.in_(values[start : start + 500]))
            if members is not None:
                stmt = stmt.where(model.id.in_(members))
            for record_id, value in db.session.execute(stmt):
                hits.setdefault(value, set()).add(record_id)
        for probe, texts in probes.items():
            ids = hits.get(probe)
            if ids:
                for text in texts:
                    out[text] = next(iter(ids)) if len(ids) == 1 else -1
                    remaining.discard(text)
    numbers = {t: int(t) for t in remaining if t.isascii() and t.isdigit() and len(t) < 11}
    numbers = {t: n for t, n in numbers.items() if 0 < n < 2**31}
    if numbers:
        stmt = select(model.id).where(model.id.in_(set(numbers.values())))
        if members is not None:
            stmt = stmt.where(model.id.in_(members))
        present = set(db.session.scalars(stmt))
        for text, number in numbers.items():
            if number in present:
                out[text] = number
    return out


def prune(days: int = 7) -> int:
    """Delete uploaded files and error reports older than ``days`` from :func:`folder` (a
    stopped import can be resumed until then); returns how many went."""
    import time as clock

    limit = clock.time() - days * 86400
    gone = 0
    for path in folder().iterdir():
        if path.is_file() and path.stat().st_mtime < limit:
            path.unlink(missing_ok=True)
            gone += 1
    return gone


def folder() -> Path:
    """Where uploaded files and error reports are kept (``IMPORT_FOLDER``, by default
    ``<instance>/imports``)."""
    path = Path(
        current_app.config.get("IMPORT_FOLDER") or Path(current_app.instance_path) / "imports"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def import_file(
    path: str | Path,
    kind: str,
    *,
    mapping: dict[str, str | None] | None = None,
    on_duplicate: str = "skip",
    mode: str = "atomic",
    batch: int = DEFAULT_BATCH,
    user_id: int | None = None,
    errors_path: str | Path | None = None,
    progress: Any = None,
    filename: str | None = None,
) -> dict[str, Any]:
    """Import the file at ``path`` into ``kind`` (a resource name) for the company in scope.

    ``mapping`` is header name → column key (default: :func:`suggest`). ``mode`` is
    ``atomic`` or ``batched`` (commit every ``batch`` rows). ``errors_path`` receives the error
    report (a CSV of the rows with errors: ``line``, ``errors``, then the file's own columns).
    ``progress`` is a :class:`core.tasks.Progress` (or anything with ``advance(done, total)``,
    ``checkpoint(**state)`` and ``previous``); with ``batched`` its checkpoint holds
    ``rows_committed``, and a run whose ``progress.previous`` has one resumes after it.

    Returns the outcome: ``status`` (``done``; ``failed`` when an atomic import was refused),
    the counts (``rows``, ``created``, ``updated``, ``skipped``, ``failed``), the first
    errors and the report's path. Raises :class:`MappingError` when the import cannot start,
    and whatever the database raised when a write failed (a batched import has committed its
    checkpoint then)."""
    if mode not in MODES:
        raise MappingError(_("The mode is all or nothing, or batches."))
    if not 1 <= batch <= MAX_BATCH:
        raise MappingError(_("A batch is 1 to %(n)d rows.", n=MAX_BATCH))
    path = Path(path)
    resource = resource_for(kind)
    previous = dict(getattr(progress, "previous", None) or {})
    skip = int(previous.get("rows_committed") or 0) if mode == "batched" else 0
    try:
        table = tabular.open_table(path, tabular.format_of(filename or path.name))
    except tabular.TableError as exc:
        raise MappingError(str(exc)) from exc
    with table, bulkload.paused_gc():
        plan = compile_plan(
            resource, table.header, mapping, on_duplicate=on_duplicate, user_id=user_id
        )
        return _run(
            plan,
            table,
            mode=mode,
            batch=batch,
            skip=skip,
            previous=previous,
            errors_path=Path(errors_path) if errors_path else None,
            progress=progress,
            filename=filename or path.name,
        )


def _run(
    plan: Plan,
    table: tabular.Table,
    *,
    mode: str,
    batch: int,
    skip: int,
    previous: dict[str, Any],
    errors_path: Path | None,
    progress: Any,
    filename: str,
) -> dict[str, Any]:
    reporter = _Report(errors_path, plan.header, keep_before=skip) if errors_path else None
    job = Job(plan, reporter=reporter)
    counts = job.counts
    if skip:
        for name in ("rows", "created", "updated", "skipped", "failed"):
            setattr(counts, name, int(previous.get(name) or 0))
    total = table.estimated_rows
    process = (total or 0) >= bulkload.MIN_ROWS and bulkload.can_fork()
    size = batch if mode == "batched" else PIPED_CHUNK if process else CHUNK
    writing = True
    try:
        with bulkload.cache_settings(db.session):
            job.load_existing()
            rebuild = (
                bulkload.IndexRebuild.start(db.session.connection(), job.tables, total)
                if mode == "atomic"
                else None
            )
            for rows in job.read(table.rows(), size, skip, process=process):
                before = counts.as_dict()
                job.resolve(rows)
                if job.matches_late:
                    job.match(rows)
                plan.rules.check_rows(job, [r for r in rows if not r.errors])
                counts.rows += len(rows)
                job.report(rows)
                if mode == "atomic":
                    writing = writing and counts.failed == 0
                    if writing:
                        _write_chunk(job, rows)
                else:
                    _write_batch(job, rows, progress, before)
                if progress is not None:
                    progress.advance(counts.rows, max(total or 0, counts.rows))
            outcome = "done"
            if mode == "atomic" and counts.failed:
                db.session.rollback()
                counts.created = counts.updated = counts.skipped = 0
                outcome = "failed"
            elif mode == "atomic":
                assert rebuild is not None
                rebuild.restore()
                _finish(job)
                db.session.commit()
    except Exception as exc:
        if mode == "atomic":
            db.session.rollback()
            counts.created = counts.updated = counts.skipped = 0
        first = str(exc).splitlines()[0] if str(exc) else ""
        _audit(plan, filename, mode, counts, "interrupted", f"{type(exc).__name__}: {first}"[:300])
        db.session.commit()
        raise
    finally:
        if reporter is not None:
            reporter.close()
    result: dict[str, Any] = {
        "status": outcome,
        "resource": plan.resource.name,
        "file": filename,
        "mode": mode,
        "on_duplicate": plan.on_duplicate,
        **counts.as_dict(),
        "errors": [e.as_dict() for e in job.errors],
        "error_file": str(errors_path) if errors_path is not None and counts.failed else None,
    }
    if mode == "batched":
        result["rows_committed"] = counts.rows
    if outcome == "failed":
        result["error"] = _(
            "%(n)d rows have errors; nothing was imported. Correct them and import the file again.",
            n=counts.failed,
        )
    _audit(plan, filename, mode, counts, outcome)
    db.session.commit()
    return result


def _write_batch(job: Job, rows: list[Row], progress: Any, before: dict[str, int]) -> None:
    """Write and commit one batch with its checkpoint; on failure roll it back, record the
    checkpoint of the batches before it and re-raise."""
    counts = job.counts
    try:
        for start in range(0, len(rows), CHUNK):
            _write_chunk(job, rows[start : start + CHUNK])
        _finish(job)
        _checkpoint_in_transaction(progress, {**counts.as_dict(), "rows_committed": counts.rows})
        db.session.commit()
    except Exception:
        db.session.rollback()
        for name, value in before.items():  # the batch will be read again
            setattr(counts, name, value)
        job.created, job.updated, job.touched = [], [], set()
        if job.reporter is not None:
            job.reporter.forget(rows[0].line)
        if progress is not None:
            progress.checkpoint(**counts.as_dict(), rows_committed=counts.rows)
        raise


class _Report:
    """The error report being written: a UTF-8 CSV (with a BOM, for Excel) of the rows with
    errors, ``line`` and ``errors`` first, then the file's own cells. A resume keeps the rows
    of the batches committed before it."""

    def __init__(self, path: Path, header: list[str], *, keep_before: int) -> None:
        import csv

        kept: list[list[str]] = []
        if keep_before and path.exists():
            with path.open(encoding="utf-8-sig", newline="") as old:
                reader = csv.reader(old)
                next(reader, None)
                kept = [r for r in reader if r and r[0].isdigit()]
        self.path = path
        self.rows = kept
        self.header = [*REPORT_COLUMNS, *header]

    def writerow(self, row: list[Any]) -> None:
        self.rows.append(row)

    def forget(self, from_line: int) -> None:
        """Drop the rows of a batch that will be read again (its write failed)."""
        self.rows = [r for r in self.rows if int(r[0]) < from_line]

    def close(self) -> None:
        tabular.write_csv(self.path, self.header, self.rows)


def _audit(
    plan: Plan, filename: str, mode: str, counts: Counts, status: str, error: str | None = None
) -> None:
    data: dict[str, Any] = {
        "status": status,
        "file": filename,
        "mode": mode,
        "on_duplicate": plan.on_duplicate,
        **counts.as_dict(),
    }
    if error:
        data["error"] = error
    audit.record("import", plan.resource.model.__tablename__, None, data, user_id=plan.user_id)


def _write_chunk(job: Job, rows: list[Row]) -> None:
    good = [r for r in rows if not r.errors]
    created, updated = job.write(good)
    job.counts.created += len(created)
    job.counts.updated += len(updated)
    job.counts.skipped += len(good) - len(created) - len(updated)
    job.plan.rules.after(job, created, updated, [r for r in good if r.action != "skip"])
    job.created.extend(created)
    job.updated.extend(updated)


def _finish(job: Job) -> None:
    """End of a transaction's writes: the rules' set-based follow-up over all of them."""
    job.plan.rules.finish(job, job.created, job.updated)
    job.created, job.updated = [], []


def _checkpoint_in_transaction(progress: Any, state: dict[str, Any]) -> None:
    """Write a batched import's checkpoint into the task row in the batch's own transaction,
    so the batch and the record of it commit together."""
    if progress is None or not hasattr(progress, "task_id"):
        return
    from core.models import BackgroundTask

    merged = {**progress.state, **state}
    table = BackgroundTask.__table__
    db.session.execute(
        sa.update(table)
        .where(table.c.id == progress.task_id)
        .values(result=merged, done=state["rows"])
    )
    progress._state.update(state)


# -- as a background task -------------------------------------------------------------------------


def run(progress: Any, **params: Any) -> dict[str, Any]:
    """The background task ``import`` (:mod:`core.tasks`): :func:`import_file` with the task's
    params (``path``, ``resource``, ``mapping``, ``on_duplicate``, ``mode``, ``batch``,
    ``filename``); the error report goes next to the uploaded file."""
    errors_path = folder() / f"task-{progress.task_id}-errors.csv"
    return import_file(
        params["path"],
        params["resource"],
        mapping=params.get("mapping"),
        on_duplicate=params.get("on_duplicate", "skip"),
        mode=params.get("mode", "atomic"),
        batch=int(params.get("batch") or DEFAULT_BATCH),
        user_id=progress.user_id,
        errors_path=errors_path,
        progress=progress,
        filename=params.get("filename"),
    )


def start(
    path: str | Path,
    kind: str,
    *,
    mapping: dict[str, str | None] | None,
    on_duplicate: str,
    mode: str,
    batch: int,
    filename: str,
    user_id: int | None = None,
) -> Any:
    """Start an import as a background task; returns the task row."""
    from core import tasks

    return tasks.submit(
        "import",
        run,
        user_id=user_id,
        path=str(path),
        resource=kind,
        mapping=mapping,
        on_duplicate=on_duplicate,
        mode=mode,
        batch=batch,
        filename=filename,
    )
