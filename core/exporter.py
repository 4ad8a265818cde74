"""Streamed CSV and XLSX downloads of any list of rows (list views, reports).

:func:`download` turns a header and an iterator of rows into a streamed response; rows are
pulled as the client reads, so an export of a million rows holds one batch in memory, not the
million. CSV is UTF-8 with a BOM (Excel opens it with the Chinese intact). XLSX is written with
openpyxl's write-only workbook, which spools rows to a temporary file; the finished file is sent
in chunks.

Callers check the ``export`` permission (:func:`authorize`, or
:func:`core.permissions.abort_without`) and write the audit row before streaming; values they
pass are already what the caller may see (masked phones stay masked).
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from flask import Response, stream_with_context

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
CHUNK = 64 * 1024


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """CSV text in chunks of about :data:`CHUNK` characters (first chunk starts with a BOM)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_text(v) for v in row])
        if buffer.tell() >= CHUNK:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)  # Excel has no time zones: the caller chose the zone
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # never let a cell become a formula
    return value


def xlsx_chunks(
    header: Sequence[str], rows: Iterable[Sequence[Any]], title: str = "Sheet1"
) -> Iterator[bytes]:
    """An XLSX file in chunks; the sheet is written row by row to a temporary file."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "Sheet1")
    sheet.append(list(header))
    for row in rows:
        sheet.append([_cell(v) for v in row])
    with tempfile.TemporaryFile() as handle:
        workbook.save(handle)
        handle.seek(0)
        while chunk := handle.read(CHUNK):
            yield chunk


def authorize(entity_type: str, filters: Any = None) -> None:
    """Refuse (403) an export without the ``export`` permission; else audit it (committed now,
    before the stream starts, so a download that breaks off is still on record)."""
    from flask import request

    from core import audit
    from core.db import db
    from core.permissions import abort_without

    abort_without("export")
    details = filters.to_dict(flat=False) if hasattr(filters, "to_dict") else (filters or {})
    audit.record("export", entity_type, None, {"filters": details, "path": request.path})
    db.session.commit()


def download(
    fmt: str,
    filename: str,
    header: Sequence[str],
    rows: Iterable[Sequence[Any]] | Callable[[], Iterable[Sequence[Any]]],
    *,
    title: str = "Sheet1",
) -> Response:
    """A streamed ``fmt`` (``csv`` or ``xlsx``) download named ``filename`` (without suffix).

    ``rows`` may be a callable returning the iterator, called when streaming starts (inside the
    request context kept by ``stream_with_context``).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")

    def body() -> Iterator[Any]:
        source = rows() if callable(rows) else rows
        if fmt == "csv":
            yield from csv_chunks(header, source)
        else:
            yield from xlsx_chunks(header, source, title)

    name = f"{filename}.{fmt}"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return Response(
        stream_with_context(body()),
        mimetype=FORMATS[fmt],
        headers={
            "Content-Disposition": (
                f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
            ),
            "Cache-Control": "no-store",
        },
    )
