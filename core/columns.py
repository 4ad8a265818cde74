"""Which extension fields are columns of a list page, per company.

A field's declaration says whether it is a column of its model's list by default
(:attr:`core.fields.Field.list_column`); a company admin changes that for the company on the
page ``/settings/columns`` (:mod:`core.web.columns`). The company's choice is its
``CompanySetting`` ``list_columns``: ``{model: {field key: shown}}``, holding only the fields
whose choice differs from their declaration -- so a field a plugin adds later, or a default
changed by an upgrade, reaches every company that did not choose otherwise, and the choices
about the fields of a disabled plugin wait, untouched, for the day it is enabled again.

Only list pages read it. The detail page, forms, filters, exports, imports and the API keep
every field. A field hidden from the list costs the list page no join and no cell (a filter on
it still joins its side table: :func:`core.fields.filtered_by`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from flask import g, has_request_context
from sqlalchemy import select

from core import audit
from core.db import db
from core.fields import Field
from core.models import CompanySetting
from core.tenancy import current_company_id

log = logging.getLogger(__name__)

SETTING_KEY = "list_columns"
#: Models whose list page shows the columns chosen here.
MODELS = ("customer",)
_CACHE = "_guanxi_list_columns"


def _stored() -> dict[str, dict[str, bool]]:
    """The current company's stored choices, every model (read once per request)."""
    company_id = current_company_id()
    if has_request_context():
        cached = g.get(_CACHE)
        if cached is not None and cached[0] == company_id:
            return cached[1]
    value = db.session.scalar(select(CompanySetting.value).where(CompanySetting.key == SETTING_KEY))
    choices = _valid(value)
    if has_request_context():
        setattr(g, _CACHE, (company_id, choices))
    return choices


def _valid(value: Any) -> dict[str, dict[str, bool]]:
    """``value`` as ``{model: {key: bool}}``; anything else stored (by hand) is ignored."""
    if value is None:
        return {}
    ok = isinstance(value, dict) and all(
        isinstance(model, str)
        and isinstance(keys, dict)
        and all(isinstance(k, str) and isinstance(v, bool) for k, v in keys.items())
        for model, keys in value.items()
    )
    if not ok:
        log.warning("company setting %s is invalid; using the fields' defaults", SETTING_KEY)
        return {}
    return value


def choices(model: str) -> dict[str, bool]:
    """The current company's own choices on ``model``'s list: field key → shown (only the
    fields whose choice differs from their declaration)."""
    return dict(_stored().get(model, {}))


def shown(fields: Sequence[Field], model: str) -> list[Field]:
    """Those of ``fields`` (one model's) that the current company's list of ``model`` shows,
    in their order: the declaration's ``list_column`` unless the company chose otherwise.
    One query per request, none when there are no fields."""
    if not fields:
        return []
    chosen = _stored().get(model, {})
    return [f for f in fields if chosen.get(f.key, f.list_column)]


class ColumnsError(ValueError):
    """A refused choice of columns (a key naming no field of the company)."""


def save(
    model: str, fields: Sequence[Field], keys: Iterable[str], *, user_id: int | None = None
) -> list[Field]:
    """Make the fields ``keys`` (of ``fields``, the company's fields on ``model``) the columns
    of ``model``'s list and the other ``fields`` not; audited, the caller commits. Returns the
    fields shown. Only choices that differ from the declarations are stored; those about fields
    not among ``fields`` (a disabled plugin's) are kept. Raises :class:`ColumnsError` on a key
    that is not one of ``fields``."""
    if model not in MODELS:
        raise ColumnsError(f"no list of {model!r} has columns to choose")
    wanted = set(keys)
    unknown = wanted - {f.key for f in fields}
    if unknown:
        raise ColumnsError(f"no field {sorted(unknown)[0][:80]!r} on this list")
    stored = _valid(
        db.session.scalar(select(CompanySetting.value).where(CompanySetting.key == SETTING_KEY))
    )
    mine = {k: v for k, v in stored.get(model, {}).items() if k not in {f.key for f in fields}}
    for f in fields:
        if (f.key in wanted) != f.list_column:
            mine[f.key] = f.key in wanted
    value = {m: v for m, v in stored.items() if m != model}
    if mine:
        value[model] = dict(sorted(mine.items()))
    row = CompanySetting.put(SETTING_KEY, value)
    visible = [f for f in fields if f.key in wanted]
    audit.record(
        "update",
        "company_setting",
        row.id,
        {"key": SETTING_KEY, "model": model, "shown": [f.key for f in visible]},
        user_id=user_id,
    )
    if has_request_context():
        g.pop(_CACHE, None)
    return visible
