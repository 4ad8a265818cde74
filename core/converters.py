"""Converters: a spreadsheet cell's text to the value the database driver takes.

Each factory here (:func:`text`, :func:`phone`, :func:`integer`, :func:`number`, :func:`day`,
:func:`moment`, :func:`choice` …) returns a function of one cell, compiled once per import from a
field's declaration (length, range, choices, required, the column's default and the driver's
bind processor), that returns the value or raises :class:`Bad` with a message for the person
who typed it. :func:`compile_row` then generates one function per import that converts a whole
row, doing the usual case of each cell inline. :mod:`core.importer` builds them from the API's
field declarations; nothing here knows about models or marshmallow schemas.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from flask_babel import gettext as _

from core import dedupe
from core.api import schemas

_TRUE = frozenset({"1", "true", "yes", "y", "t", "是", "对", "√", "✓", "有"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "否", "不", "错", "×", "✗", "无"})
_MOMENT = re.compile(
    r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:[ T]+(\d{1,2})[:：](\d{2})(?:[:：](\d{2})(?:\.(\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?$"
)
_PHONE_TABLE = str.maketrans(dedupe._PHONE_MAP)
_EXTENSION = re.compile(r"(转|分机|ext\.?|x|#)\s*\d{1,6}$", re.IGNORECASE)


class Bad(Exception):
    """A cell's value is refused; the message says why (in the user's language)."""


def _range_message(low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return _("Must be from %(low)s to %(high)s.", low=low, high=high)
    if low is not None:
        return _("Must be at least %(low)s.", low=low)
    return _("Must be at most %(high)s.", high=high)


def _in_range(value: Any, low: Any, high: Any, low_in: bool, high_in: bool) -> bool:
    if low is not None and (value < low if low_in else value <= low):
        return False
    return not (high is not None and (value > high if high_in else value >= high))


def text(maxlen: int | None, blank: Any, required: bool) -> Callable[[str], Any]:
    """Trimmed text of at most ``maxlen`` characters (no NUL); blank: ``blank``."""
    longest = maxlen or schemas.TEXT_MAX

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return blank
        if len(raw) > longest:
            raise Bad(_("At most %(n)d characters.", n=longest))
        if "\x00" in raw:
            raise Bad(_("Contains a character that cannot be stored."))
        return raw

    convert.fast = ("text", longest)  # type: ignore[attr-defined]
    return convert


def phone(maxlen: int | None, required: bool) -> Callable[[str], Any]:
    """A phone number as typed: digits and the separators people use (full-width too), 5-20
    digits, an extension after 转/分机/ext/#; at most ``maxlen`` characters."""
    longest = maxlen or 40
    table = _PHONE_TABLE

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return None
        if raw.isdigit() and raw.isascii() and 5 <= len(raw) <= 20:
            return raw  # the usual cell: digits only
        digits = raw.translate(table)
        if not (digits.isdigit() and digits.isascii() and 5 <= len(digits) <= 20):
            digits = _EXTENSION.sub("", raw).translate(table)
            if not (digits.isdigit() and digits.isascii() and 5 <= len(digits) <= 20):
                raise Bad(_("Not a phone number: %(value)s", value=raw[:40]))
        if len(raw) > longest:
            raise Bad(_("At most %(n)d characters.", n=longest))
        return raw

    convert.fast = ("digits", min(longest, 20))  # type: ignore[attr-defined]
    return convert


def email(maxlen: int | None, required: bool) -> Callable[[str], Any]:
    """An e-mail address (marshmallow's check) of at most ``maxlen`` characters."""
    check = ma.validate.Email()
    longest = maxlen or 254

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return None
        if len(raw) > longest:
            raise Bad(_("At most %(n)d characters.", n=longest))
        try:
            check(raw)
        except ma.ValidationError:
            raise Bad(_("Not an e-mail address: %(value)s", value=raw[:60])) from None
        return raw

    return convert


def integer(bounds: tuple[Any, Any, bool, bool], blank: Any, required: bool) -> Callable:
    """A whole number (``12``, ``1,200``, ``12.0``) within ``bounds`` (32-bit when unbounded)."""
    low, high, low_in, high_in = bounds
    if low is None:
        low, low_in = -(2**31), True
    if high is None:
        high, high_in = 2**31 - 1, True

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return blank
        try:
            value = int(raw)
        except ValueError:
            value = _whole(raw)
        if not _in_range(value, low, high, low_in, high_in):
            raise Bad(_range_message(low, high))
        return value

    if low_in and high_in:
        convert.fast = ("int", low, high)  # type: ignore[attr-defined]
    return convert


def _whole(raw: str) -> int:
    cleaned = raw.replace(",", "").replace("，", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise Bad(_("Not a whole number: %(value)s", value=raw[:40])) from None
    if not value.is_finite() or value != value.to_integral_value() or not cleaned.isascii():
        raise Bad(_("Not a whole number: %(value)s", value=raw[:40]))
    return int(value)


def number(
    places: int | None,
    bounds: tuple[Any, Any, bool, bool],
    blank: Any,
    required: bool,
    process: Callable | None,
) -> Callable:
    """A decimal (``1,250.5``, ``¥200``, ``200元``) rounded to ``places``, within ``bounds``,
    passed through the driver's ``process`` (SQLite takes floats)."""
    low, high, low_in, high_in = bounds
    step = Decimal(1).scaleb(-places) if places is not None else None
    # A plain number with no more decimals than the column keeps needs no rounding.
    digits = "" if places == 0 else f"(?:\\.\\d{{1,{places}}})?" if places else r"(?:\.\d+)?"
    plain = re.compile(rf"-?\d{{1,18}}{digits}").fullmatch

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return blank
        if plain(raw) is not None:
            value = Decimal(raw)
            if (low is not None and (value < low if low_in else value <= low)) or (
                high is not None and (value > high if high_in else value >= high)
            ):
                raise Bad(_range_message(low, high))
            return process(value) if process else value
        text = raw.replace(",", "").replace("，", "").lstrip("¥￥").removesuffix("元").strip()
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise Bad(_("Not a number: %(value)s", value=raw[:40])) from None
        if not value.is_finite() or not text.isascii():
            raise Bad(_("Not a number: %(value)s", value=raw[:40]))
        if step is not None:
            value = value.quantize(step, rounding=ROUND_HALF_UP)
        if not _in_range(value, low, high, low_in, high_in):
            raise Bad(_range_message(low, high))
        return process(value) if process else value

    # The common case inline (see compile_row): a plain number, made straight into what the
    # driver takes (a float on SQLite, where the processor turns decimals into floats).
    make = float if process is not None and type(process(Decimal("1.5"))) is float else None
    if make is not None or process is None:
        bounds = (
            None if low is None else (make or Decimal)(low),
            None if high is None else (make or Decimal)(high),
            low_in,
            high_in,
        )
        convert.fast = ("number", plain, make or Decimal, *bounds)  # type: ignore[attr-defined]
    return convert


def boolean(blank: Any, required: bool, process: Callable | None) -> Callable:
    """Yes or no: true/false, 1/0, yes/no, 是/否, √/×."""

    def convert(raw: str) -> Any:
        word = raw.strip().casefold()
        if not word:
            if required:
                raise Bad(_("Required."))
            return blank
        if word in _TRUE:
            value = True
        elif word in _FALSE:
            value = False
        else:
            raise Bad(_("Not yes or no: %(value)s", value=raw[:40]))
        return process(value) if process else value

    return convert


def parse_moment(raw: str, zone: ZoneInfo) -> datetime | None:
    """``2026-11-25``, ``2026/11/25 9:30``, ``2026年11月25日``, ISO with an offset… as an aware
    moment (no offset: the company's time zone); ``None`` when it is none of those."""
    match = _MOMENT.match(raw.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
        )
    except ValueError:
        return None
    if offset:
        return datetime.fromisoformat(
            moment.isoformat() + ("+00:00" if offset == "Z" else offset)
        ).astimezone(UTC)
    return moment.replace(tzinfo=zone).astimezone(UTC)


def moment(
    zone: ZoneInfo,
    bounds: tuple[Any, Any, bool, bool],
    blank: Any,
    required: bool,
    process: Callable | None,
    check: Callable[[datetime], None] | None,
) -> Callable:
    """A date and time (:func:`parse_moment`) in the years 1900-2199, checked by ``check``."""

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return blank
        moment = parse_moment(raw, zone)
        if moment is None:
            raise Bad(_("Not a date and time like 2026-11-25 09:30: %(value)s", value=raw[:40]))
        if not schemas.YEARS[0] <= moment.year <= schemas.YEARS[1]:
            raise Bad(_("Must be between the years %(a)s and %(b)s.", a=1900, b=2199))
        if check is not None:
            check(moment)
        return process(moment) if process else moment

    return convert


def day(
    bounds: tuple[Any, Any, bool, bool], blank: Any, required: bool, process: Callable | None
) -> Callable:
    """A calendar date (``2026-11-25``, ``2026/11/25``, ``2026年11月25日``) within ``bounds``."""
    low, high, low_in, high_in = bounds
    zone = ZoneInfo("UTC")

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return blank
        moment = parse_moment(raw, zone)
        if moment is None or moment.time() != datetime.min.time():
            raise Bad(_("Not a date like 2026-11-25: %(value)s", value=raw[:40]))
        day = moment.date()
        if not schemas.YEARS[0] <= day.year <= schemas.YEARS[1]:
            raise Bad(_("Must be between the years %(a)s and %(b)s.", a=1900, b=2199))
        if not _in_range(day, low, high, low_in, high_in):
            raise Bad(_range_message(low, high))
        return process(day) if process else day

    return convert


def choice(
    lookup: dict[str, str], blank: Any, required: bool, process: Callable | None
) -> Callable:
    """A value of a choice list, found by any spelling in ``lookup`` (value or label, as
    given or case-folded)."""

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return blank
        value = lookup.get(raw)
        if value is None:
            value = lookup.get(raw.casefold())
            if value is None:
                raise Bad(_("Unknown value: %(value)s", value=raw[:40]))
        return process(value) if process else value

    if process is None:
        convert.fast = ("lookup", {k: v for k, v in lookup.items() if k})  # type: ignore[attr-defined]
    return convert


def reference(required: bool) -> Callable:
    """Keeps the text: references are resolved set-based per chunk."""

    def convert(raw: str) -> Any:
        raw = raw.strip()
        if not raw:
            if required:
                raise Bad(_("Required."))
            return None
        if len(raw) > 254 or "\x00" in raw:
            raise Bad(_("No such record: %(value)s", value=raw[:40]))
        return raw

    return convert


def tags(raw: str) -> Any:
    from core.customers import split_tags

    names = split_tags(raw)
    if any(len(n) > 60 for n in names) or len(names) > 30:
        raise Bad(_("At most 30 tags of at most 60 characters each."))
    return names or None


def compile_row(
    slots: Sequence[tuple[int, Callable[[str], Any]]],
) -> Callable[[list[str]], list[Any]]:
    """One function converting a row's cells to values, generated for ``slots``: ``(index of the
    cell, converter)`` pairs, one per value.

    It inlines the common case of each converter (a text within its length, a choice spelled as
    in the list, a phone of digits, a whole number in range) and calls the converter itself for
    anything else; a refused cell raises :class:`Bad` (the caller then converts the row cell
    by cell to collect every error with its column). Same results as calling the converters,
    without a Python call per cell."""
    lines = ["def convert_row(r):"]
    names: dict[str, Any] = {}
    for n, (index, convert) in enumerate(slots):
        names[f"c{n}"] = convert
        fast = getattr(convert, "fast", None)
        cell = f"r[{index}]"
        kind = fast[0] if fast else None
        if kind == "text":
            names[f"m{n}"] = fast[1]
            lines += [
                f"    v{n} = {cell}.strip()",
                f"    if not v{n} or len(v{n}) > m{n} or '\\x00' in v{n}:",
                f"        v{n} = c{n}({cell})",
            ]
        elif kind == "lookup":
            names[f"l{n}"] = fast[1]
            lines += [
                f"    v{n} = l{n}.get({cell})",
                f"    if v{n} is None:",
                f"        v{n} = c{n}({cell})",
            ]
        elif kind == "digits":
            names[f"m{n}"] = fast[1]
            lines += [
                f"    v{n} = {cell}",
                f"    if not (v{n}.isdigit() and v{n}.isascii() and 5 <= len(v{n}) <= m{n}):",
                f"        v{n} = c{n}(v{n})",
            ]
        elif kind == "int":
            names[f"lo{n}"], names[f"hi{n}"] = fast[1], fast[2]
            lines += [
                f"    v{n} = {cell}",
                f"    if v{n}.isdigit() and v{n}.isascii() and len(v{n}) < 10:",
                f"        v{n} = int(v{n})",
                f"        if not lo{n} <= v{n} <= hi{n}:",
                f"            v{n} = c{n}({cell})",
                "    else:",
                f"        v{n} = c{n}(v{n})",
            ]
        elif kind == "number":
            _kind, plain, make, low, high, low_in, high_in = fast
            names[f"p{n}"], names[f"k{n}"], names[f"lo{n}"], names[f"hi{n}"] = (
                plain,
                make,
                low,
                high,
            )
            checks = []
            if low is not None:
                checks.append(f"v{n} {'<' if low_in else '<='} lo{n}")
            if high is not None:
                checks.append(f"v{n} {'>' if high_in else '>='} hi{n}")
            lines += [
                f"    v{n} = {cell}",
                f"    if p{n}(v{n}) is not None:",
                f"        v{n} = k{n}(v{n})",
                f"        if {' or '.join(checks) or 'False'}:",
                f"            v{n} = c{n}({cell})",
                "    else:",
                f"        v{n} = c{n}(v{n})",
            ]
        else:
            lines.append(f"    v{n} = c{n}({cell})")
    lines.append(f"    return [{', '.join(f'v{n}' for n in range(len(slots)))}]")
    exec(compile("\n".join(lines), "<import row>", "exec"), names)  # noqa: S102 - our own code
    return names["convert_row"]
