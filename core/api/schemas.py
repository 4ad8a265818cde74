"""marshmallow schemas of the API, derived from the models.

:func:`model_schema` makes a schema of a model's columns through marshmallow-sqlalchemy with
:class:`Converter`, which maps every column type to a field that refuses what the database
would refuse, so a value that passes the schema can always be stored, on SQLite and PostgreSQL
alike:

==============  ================================================================================
column          API field
==============  ================================================================================
String(n), Text :class:`Text` -- no NUL, no unpaired surrogates; at most n (Text: 20,000) chars
Integer         :class:`Int` -- a JSON integer (not ``true``, not ``1.5``, not ``"1"``), 32-bit
Numeric(p, s)   :class:`Money` -- a decimal string (``"12.50"``; numbers accepted on input),
                rounded to s places, below 10^(p-s)
UTCDateTime     :class:`Moment` -- RFC 3339 with an offset, years 1900-2199, stored in UTC
Date            :class:`Day` -- ``YYYY-MM-DD``, years 1900-2199
Boolean         :class:`Flag` -- ``true`` or ``false`` only
==============  ================================================================================

Decimals travel as strings so no client rounds money through a binary float.
"""

from __future__ import annotations

import copy
import datetime as dt
import numbers
from decimal import Decimal
from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from marshmallow_sqlalchemy import ModelConverter, SQLAlchemyAutoSchema

from core.db import UTCDateTime
from core.keyset import MAX_ID

TEXT_MAX = 20_000
YEARS = (1900, 2199)


class Text(ma.fields.String):
    """A string the database can store: no NUL character, no unpaired surrogate."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ma.ValidationError("Must not contain the NUL character.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ma.ValidationError("Must be valid Unicode text.") from exc
        return text


class Int(ma.fields.Integer):
    """A JSON integer (booleans, fractions and strings refused)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Money(ma.fields.Decimal):
    """A decimal, written as a string; accepts a JSON number or a decimal string."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("as_string", True)
        super().__init__(allow_nan=False, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self.make_error("invalid")
        if isinstance(value, str) and (len(value) > 40 or not value.strip()):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class Moment(ma.fields.AwareDateTime):
    """A moment with its UTC offset (``2026-11-25T09:30:00+08:00``), returned in UTC."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        moment = super()._deserialize(value, attr, data, **kwargs)
        if not YEARS[0] <= moment.year <= YEARS[1]:
            raise ma.ValidationError(f"Must be between the years {YEARS[0]} and {YEARS[1]}.")
        return moment.astimezone(dt.UTC)


class Day(ma.fields.Date):
    """A calendar date ``YYYY-MM-DD``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or len(value) > 20:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        day = super()._deserialize(value, attr, data, **kwargs)
        if not YEARS[0] <= day.year <= YEARS[1]:
            raise ma.ValidationError(f"Must be between the years {YEARS[0]} and {YEARS[1]}.")
        return day


class Flag(ma.fields.Boolean):
    """``true`` or ``false`` (not ``"yes"``, not ``1``)."""

    truthy = {True}
    falsy = {False}


class Converter(ModelConverter):
    """marshmallow-sqlalchemy's converter with the API's field types and database limits."""

    def _get_field_class_for_data_type(self, data_type: Any) -> type[ma.fields.Field]:
        if isinstance(data_type, UTCDateTime | sa.DateTime):
            return Moment
        if isinstance(data_type, sa.Date):
            return Day
        if isinstance(data_type, sa.Boolean):
            return Flag
        if isinstance(data_type, sa.Numeric) and not isinstance(data_type, sa.Float):
            return Money
        if isinstance(data_type, sa.Integer):
            return Int
        if isinstance(data_type, sa.String):  # Text is a String
            return Text
        return super()._get_field_class_for_data_type(data_type)

    def _add_column_kwargs(self, kwargs: dict[str, Any], column: sa.Column) -> None:
        super()._add_column_kwargs(kwargs, column)
        checks = kwargs.setdefault("validate", [])
        kind = column.type
        if isinstance(kind, sa.Integer) and not isinstance(kind, sa.Boolean):
            low = 1 if column.foreign_keys or column.primary_key else -MAX_ID - 1
            checks.append(ma.validate.Range(min=low, max=MAX_ID))
        elif isinstance(kind, sa.Numeric) and kind.precision is not None:
            bound = Decimal(10) ** (kind.precision - (kind.scale or 0))
            checks.append(
                ma.validate.Range(min=-bound, max=bound, min_inclusive=False, max_inclusive=False)
            )
        elif isinstance(kind, sa.String) and getattr(kind, "length", None) is None:
            checks.append(ma.validate.Length(max=TEXT_MAX))


def model_schema(
    model: type,
    *,
    exclude: tuple[str, ...] = (),
    dump_only: tuple[str, ...] = (),
    fields: dict[str, ma.fields.Field] | None = None,
) -> type[ma.Schema]:
    """A schema class of ``model``'s columns (foreign keys included, ``company_id`` never).

    ``dump_only`` columns are returned but not accepted (``id``, ``version`` and
    ``created_at`` always are); ``fields`` replaces or adds declared fields.
    """
    read_only = tuple(
        sorted(
            {"id", "version", "created_at", "updated_at", *dump_only}
            & {c.key for c in sa.inspect(model).column_attrs}
        )
    )
    meta = type(
        "Meta",
        (),
        {
            "model": model,
            "include_fk": True,
            "load_instance": False,
            "model_converter": Converter,
            "exclude": tuple(
                {"company_id", *exclude} & {c.key for c in sa.inspect(model).column_attrs}
            ),
            "dump_only": read_only,
        },
    )
    return type(
        f"{model.__name__}Schema", (SQLAlchemyAutoSchema,), {"Meta": meta, **(fields or {})}
    )


def without_checks(field: ma.fields.Field) -> ma.fields.Field:
    """A copy of ``field`` that documents only its type (for responses: stored rows need not
    satisfy today's input rules, e.g. a choice of a plugin since disabled)."""
    out = copy.copy(field)
    out.validators = []
    out.required = False
    return out


def optional(field: ma.fields.Field) -> ma.fields.Field:
    """A copy of ``field`` that may be left out (for partial updates)."""
    out = copy.copy(field)
    out.required = False
    return out


def with_choices(field: ma.fields.Field, values: list[str]) -> ma.fields.Field:
    """A copy of ``field`` that accepts only ``values``."""
    out = copy.copy(field)
    out.validators = [*field.validators, ma.validate.OneOf(values)]
    return out


def not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("Must not be blank.")


def name_field(max_length: int) -> Text:
    """A required name: non-blank text of at most ``max_length`` characters."""
    return Text(required=True, validate=[ma.validate.Length(max=max_length), not_blank])


def email_field() -> Text:
    """An optional e-mail address."""
    return Text(
        allow_none=True,
        validate=[ma.validate.Length(max=254), ma.validate.Email()],
        metadata={"format": "email"},
    )
