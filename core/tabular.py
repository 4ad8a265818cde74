"""Spreadsheet files for import: CSV in whatever encoding Excel wrote, and XLSX.

:func:`open_table` reads a file's header and then hands out its rows as lists of text, so the
importer sees one shape whatever the format:

CSV
    The encoding is detected, not assumed: a UTF-8 or UTF-16 byte-order mark says it; otherwise
    a file whose first megabyte is valid UTF-8 is UTF-8, and anything else is GB18030 (the
    superset of GBK and GB2312 that Chinese Excel writes when it "saves as CSV"). The
    delimiter is the one of ``,`` ``;`` ``tab`` that the header line holds most of.
XLSX
    The first worksheet, read with openpyxl's read-only mode (rows are streamed, not loaded).
    Cells become text the way a person reads them: whole numbers without ``.0``, dates as
    ``2026-11-25``, moments as ``2026-11-25 09:30:00``, booleans as ``true``/``false``.

Rows are numbered as a spreadsheet numbers them: the header is row 1, the first record row 2.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

#: Bytes looked at to tell UTF-8 from GB18030.
SNIFF = 1 << 20


class TableError(ValueError):
    """The file cannot be read as a table (wrong format, bad encoding, no header)."""


@dataclass
class Table:
    """An open spreadsheet: its header and a one-shot iterator of its rows (lists of text)."""

    format: str
    header: list[str]
    encoding: str | None = None
    #: Roughly how many record rows follow the header (for progress; exact for most files).
    estimated_rows: int | None = None
    _rows: Iterator[list[str]] = field(default_factory=lambda: iter(()))
    _close: Any = None

    def rows(self) -> Iterator[list[str]]:
        """The record rows after the header, each a list of text cells."""
        return self._rows

    def close(self) -> None:
        if self._close is not None:
            self._close()
            self._close = None

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def format_of(filename: str) -> str:
    """``csv`` or ``xlsx`` from a file name; :class:`TableError` for anything else."""
    suffix = Path(filename).suffix.lower().lstrip(".")
    if suffix in ("csv", "txt"):
        return "csv"
    if suffix in ("xlsx", "xlsm"):
        return "xlsx"
    raise TableError(f"not a CSV or XLSX file: {Path(filename).name}")


def detect_encoding(head: bytes) -> str:
    """The encoding of CSV bytes that start with ``head`` (see the module documentation)."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        # A multi-byte character may be cut at the end of the sample: decode incrementally.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def unique_header(cells: Sequence[Any]) -> list[str]:
    """Header cells as text, trimmed; blanks named ``column N``, repeats ``name (2)``."""
    out: list[str] = []
    seen: set[str] = set()
    for n, cell in enumerate(cells, start=1):
        name = cell_text(cell).strip().lstrip("\ufeff") or f"column {n}"
        candidate, k = name, 2
        while candidate in seen:
            candidate, k = f"{name} ({k})", k + 1
        seen.add(candidate)
        out.append(candidate)
    return out


def open_table(path: str | Path, fmt: str | None = None) -> Table:
    """Open ``path`` (format from its suffix unless ``fmt``) and read its header."""
    path = Path(path)
    fmt = fmt or format_of(path.name)
    if fmt == "csv":
        return _open_csv(path)
    if fmt == "xlsx":
        return _open_xlsx(path)
    raise TableError(f"unknown format {fmt!r}")


def _count_lines(path: Path) -> int:
    lines = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk
        if lines == 0 or not last.endswith(b"\n"):
            lines += 1
    return lines


def _open_csv(path: Path) -> Table:
    with path.open("rb") as handle:
        head = handle.read(SNIFF)
    if not head.strip():
        raise TableError("the file is empty")
    encoding = detect_encoding(head)
    handle = path.open("r", encoding=encoding, newline="")
    try:
        first = handle.readline()
    except UnicodeDecodeError as exc:
        handle.close()
        raise TableError(f"the first line is not valid {encoding}") from exc
    delimiter = _delimiter(first)
    handle.seek(0)
    reader = csv.reader(handle, delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        handle.close()
        raise TableError("the file has no header row") from exc
    if not any(cell.strip() for cell in header):
        handle.close()
        raise TableError("the first row must name the columns")
    estimated = None
    if encoding != "utf-16":
        estimated = max(0, _count_lines(path) - 1)
    return Table(
        "csv",
        unique_header(header),
        encoding=encoding,
        estimated_rows=estimated,
        _rows=_csv_rows(reader, encoding),
        _close=handle.close,
    )


def _csv_rows(reader: Any, encoding: str) -> Iterator[list[str]]:
    try:
        yield from reader
    except csv.Error as exc:
        raise TableError(f"line {reader.line_num}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise TableError(
            f"near line {reader.line_num + 1}: not valid {encoding}; save the file as UTF-8 CSV"
        ) from exc


def _open_xlsx(path: Path) -> Table:
    from zipfile import BadZipFile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, KeyError, OSError, ValueError) as exc:
        raise TableError("not a readable XLSX workbook") from exc
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
    except Exception as exc:  # a broken sheet: openpyxl raises many kinds
        workbook.close()
        raise TableError("not a readable XLSX workbook") from exc
    if header is None or not any(cell_text(c).strip() for c in header):
        workbook.close()
        raise TableError("the first row must name the columns")
    estimated = None
    if sheet.max_row:
        estimated = max(0, sheet.max_row - 1)
    return Table(
        "xlsx",
        unique_header(header),
        estimated_rows=estimated,
        _rows=([cell_text(c) for c in row] for row in rows),
        _close=workbook.close,
    )


def cell_text(value: Any) -> str:
    """An XLSX cell value as the text a person sees (``None`` is ``""``)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0, 0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(" ", "seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def preview(path: str | Path, rows: int = 5, fmt: str | None = None) -> tuple[list[str], list]:
    """The header and the first ``rows`` record rows of a file."""
    with open_table(path, fmt) as table:
        out = []
        for row in table.rows():
            if not any(cell.strip() for cell in row):
                continue
            out.append(row)
            if len(out) >= rows:
                break
        return table.header, out


def write_csv(path: str | Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Write a UTF-8 CSV with a BOM (Excel opens it with the Chinese intact)."""
    with Path(path).open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(rows)
