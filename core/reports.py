"""The report engine: declared aggregates, drawn as a chart and a table, drilled into, exported.

A :class:`Report` is a declaration, made once by the core (:mod:`core.builtin_reports`) or a
plugin (hook ``guanxi_reports``)::

    Report(
        name="tickets",                        # URL /reports/tickets, unique in the product
        label="Tickets", label_zh="服务工单",
        params=(*date_range(), Param("dimension", "By", "维度", choices=DIMENSIONS)),
        query=lambda p: select(...).group_by(...),   # ONE set-based GROUP BY for the parameters
        columns=(Column("label", ...), Column("tickets", ...)),
        category="label", series=("tickets",), chart="bar",
        drill=lambda row, p, series: f"/tickets/?type={row['value']}",
        roles=(),                              # empty: every member of the company
    )

Running a report (:func:`run`) is one query, whatever the number of groups: ``query(params)``
builds a SQLAlchemy ``select`` that the engine executes through the ORM session, so the
company scope (:mod:`core.tenancy`) and the record rules (:mod:`core.access`: a sales rep
counts only the customers they see) apply without a word in the report. The rows (mappings)
then pass through ``shape(rows, params)`` when the report has one -- the place to pivot,
zero-fill the months of a range or add shares -- and become a :class:`Result`: a table of
:class:`Column` s and an SVG chart (:mod:`core.charts`).

**Parameters** (:class:`Param`) come from the query string of the report's page (a GET form):
``date`` (``YYYY-MM-DD``; :func:`date_range` gives the usual ``start``/``end`` pair, the end
day included), ``choice`` (a value of a fixed or computed list), ``channel`` (a channel of the
company) and ``member`` (a member of the company). :func:`parse` validates them and answers
messages keyed by parameter name for the form, never an exception.

**Drill-down.** ``drill(row, params, series)`` gives the URL of the list behind a row (``series``
``None``) or behind one series of it (a segment of a stacked bar); ``None`` for no link. The
chart wraps each mark in that link and the table links its cells, so a click on the bar
"Consumer" of *Customers by kind* opens ``/customers/?kind=consumer``.

**Visibility.** A report of a plugin is visible only to companies that enabled the plugin
(:func:`get` answers ``None``: the page is a 404); ``roles`` restricts it further to members of
those roles (:func:`allowed`). Downloading a report as CSV/XLSX needs the ``export``
permission (:func:`core.access.has_permission`).

**SQL helpers** shared by report queries, the same on SQLite and PostgreSQL:
:func:`month` (``YYYY-MM`` of a timestamp in the company's time zone), :func:`minutes_between`,
:func:`period` (the UTC moments of the chosen dates) and :func:`months` (every month of a range,
for zero-filling).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from core import charts
from core.db import db, utcnow
from core.i18n import pick

#: Parameter types a report may declare.
PARAM_TYPES = ("date", "choice", "channel", "member")
#: Cell formats of a column.
FORMATS = ("text", "int", "number", "money", "percent")
#: Earliest and latest dates a date parameter accepts.
MIN_DATE, MAX_DATE = date(1970, 1, 1), date(2999, 12, 31)
#: Longest range of months a monthly report fills (ten years).
MAX_MONTHS = 120
#: Names a parameter may not take (they are the URL's own: ``/reports/<name>/export.<fmt>``).
RESERVED = frozenset({"name", "fmt"})

Choices = Sequence[tuple[str, str, str]] | Callable[[], list[tuple[Any, str]]]


def _resolve(value: Any, params: Mapping[str, Any]) -> Any:
    return value(params) if callable(value) else value


@dataclass(frozen=True)
class Param:
    """A parameter of a report, shown as one input of its form.

    ``type`` is one of :data:`PARAM_TYPES`. ``choices`` (type ``choice``) is a sequence of
    ``(value, label, label_zh)`` or a callable giving ``(value, label)`` pairs for the current
    company; ``channel`` and ``member`` parameters list the company's channels and members.
    ``default`` is a value or a callable returning one (evaluated for each request);
    ``required`` refuses an empty value. Parsed values are ``date`` objects for dates, strings
    for choices and ``int`` ids for channels and members; an empty optional value is ``None``.
    """

    name: str
    label: str
    label_zh: str = ""
    type: str = "choice"
    choices: Choices = ()
    default: Any = None
    required: bool = False

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)

    def options(self) -> list[tuple[Any, str]]:
        """``(value, label)`` pairs to choose from (empty for dates)."""
        if self.type == "channel":
            from core.customers import channel_options

            return channel_options()
        if self.type == "member":
            from core.customers import members

            return members()
        if callable(self.choices):
            return list(self.choices())
        return [(value, pick(label, label_zh)) for value, label, label_zh in self.choices]

    def initial(self) -> Any:
        return self.default() if callable(self.default) else self.default


@dataclass(frozen=True)
class Column:
    """A column of the report's table (and of its export).

    ``key`` names the value in each row; ``format`` is one of :data:`FORMATS` (``percent``
    takes a fraction, 0.5 → 50.0%); ``color`` is the colour of the column's series on charts.
    ``table=False`` makes a column for the chart only (e.g. a count drawn below the axis as a
    negative), left out of the table and the download.
    """

    key: str
    label: str
    label_zh: str = ""
    format: str = "int"
    color: str | None = None
    table: bool = True

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)

    def display(self, value: Any) -> str:
        """The value as the table shows it."""
        if self.format == "text":
            return "" if value is None else str(value)
        if value is None:
            return "–"
        if self.format == "percent":
            return f"{float(value) * 100:.1f}%"
        if self.format == "money":
            return f"{Decimal(str(value)):,.2f}"
        if self.format == "number":
            return f"{float(value):,.2f}"
        return charts.number(value)

    def export(self, value: Any) -> Any:
        """The value as a CSV/XLSX cell: numbers stay numbers (percent: 50.0 for 50 %)."""
        if value is None:
            return None
        if self.format == "text":
            return str(value)
        if self.format == "percent":
            return round(float(value) * 100, 1)
        if self.format == "money":
            return Decimal(str(value)).quantize(Decimal("0.01"))
        if self.format == "number":
            return round(float(value), 2)
        return int(value) if float(value) == int(value) else float(value)


Row = dict[str, Any]
Drill = Callable[[Mapping[str, Any], Mapping[str, Any], str | None], str | None]


@dataclass(frozen=True, kw_only=True)
class Report:
    """A declared report. See the module documentation for the whole story.

    ``query(params)`` returns a SQLAlchemy ``select`` (one GROUP BY); ``shape(rows, params)``
    (optional) turns its row mappings into the table's rows (dicts). ``columns``, ``series``
    (keys of the columns drawn) and ``chart`` (one of :data:`core.charts.KINDS`) may be callables
    of the parameters, for reports whose dimension is a parameter. ``category`` is the key of
    the column along the chart's axis (its slices, its funnel steps). ``roles`` restricts the
    report to members of these roles (empty: everyone). ``group`` sorts it into a section of the
    reports page.
    """

    name: str
    label: str
    label_zh: str = ""
    description: str = ""
    description_zh: str = ""
    query: Callable[[Mapping[str, Any]], Any]
    columns: Sequence[Column] | Callable[[Mapping[str, Any]], Sequence[Column]]
    category: str = "label"
    series: Sequence[str] | Callable[[Mapping[str, Any]], Sequence[str]] = ()
    chart: str | Callable[[Mapping[str, Any]], str] = "bar"
    params: tuple[Param, ...] = ()
    shape: Callable[[list[Mapping[str, Any]], Mapping[str, Any]], list[Row]] | None = None
    drill: Drill | None = None
    roles: tuple[str, ...] = ()
    group: str = ""
    order: int = 100
    plugin: str = ""

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names) or RESERVED & set(names):
            raise ValueError(
                f"report {self.name!r}: parameter names must be unique and not "
                f"{', '.join(sorted(RESERVED))}"
            )
        if isinstance(self.chart, str) and self.chart not in charts.KINDS:
            raise ValueError(f"report {self.name!r}: unknown chart {self.chart!r}")
        if any(p.type not in PARAM_TYPES for p in self.params):
            raise ValueError(f"report {self.name!r}: parameter types are {', '.join(PARAM_TYPES)}")

    @property
    def text(self) -> str:
        return pick(self.label, self.label_zh)

    @property
    def about(self) -> str:
        return pick(self.description, self.description_zh)


# -- finding reports ------------------------------------------------------------------------------


def installed() -> dict[str, Report]:
    """Every report of every installed plugin (and the core), by name."""
    from core.plugins import current

    return current().registry.reports


def available(role: str | None) -> list[Report]:
    """Reports the current company has (its enabled plugins') that ``role`` may open, in order."""
    from core.web.context import enabled_plugins

    on = enabled_plugins()
    found = [r for r in installed().values() if r.plugin in on and allowed(r, role)]
    return sorted(found, key=lambda r: (r.order, r.name))


def get(name: str) -> Report | None:
    """The report ``name`` if the current company has it (``None``: unknown or plugin off)."""
    from core.web.context import enabled_plugins

    report = installed().get(name)
    if report is None or report.plugin not in enabled_plugins():
        return None
    return report


def allowed(report: Report, role: str | None) -> bool:
    """Whether a member of ``role`` may open ``report``."""
    return not report.roles or role in report.roles


# -- parameters -----------------------------------------------------------------------------------


def parse(report: Report, args: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The report's parameter values from request ``args`` (defaults where absent) and the
    errors by parameter name (a form message each; the values of erroneous ones are ``None``)."""
    from flask_babel import gettext as _

    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for param in report.params:
        raw = args.get(param.name)
        if raw is None:
            value = param.initial()
            values[param.name] = value
            if value is None and param.required:
                errors[param.name] = _("Choose a value.")
            continue
        raw = raw.strip()
        if not raw:
            values[param.name] = None
            if param.required:
                errors[param.name] = _("Choose a value.")
            continue
        value, message = _parse_one(param, raw)
        values[param.name] = value
        if message:
            errors[param.name] = message
    start, end = values.get("start"), values.get("end")
    if isinstance(start, date) and isinstance(end, date) and start > end:
        errors["end"] = _("The end date must not be before the start date.")
    return values, errors


def _parse_one(param: Param, raw: str) -> tuple[Any, str | None]:
    from flask_babel import gettext as _

    if len(raw) > 100 or "\x00" in raw:
        return None, _("This value is too long.")
    if param.type == "date":
        try:
            value = date.fromisoformat(raw)
        except ValueError:
            return None, _("Enter a date as YYYY-MM-DD.")
        if not MIN_DATE <= value <= MAX_DATE:
            return None, _("Enter a date between 1970 and 2999.")
        return value, None
    if param.type in ("channel", "member"):
        if not (raw.isascii() and raw.isdigit()) or int(raw) > 2**31 - 1:
            return None, _("Choose one of the listed values.")
        number = int(raw)
        if number not in {value for value, _label in param.options()}:
            return None, _("Choose one of the listed values.")
        return number, None
    if raw not in {str(value) for value, _label in param.options()}:
        return None, _("Choose one of the listed values.")
    return raw, None


def date_range(
    days: int | None = None, label: str = "Date", label_zh: str = "日期"
) -> tuple[Param, Param]:
    """``start`` and ``end`` date parameters (end day included); with ``days`` the range
    defaults to the last ``days`` days up to today, else it is open (all time)."""

    def start() -> date | None:
        return None if days is None else today() - timedelta(days=days - 1)

    return (
        Param("start", f"{label} from", f"{label_zh}起", "date", default=start),
        Param("end", f"{label} to", f"{label_zh}止", "date", default=today if days else None),
    )


# -- time helpers ---------------------------------------------------------------------------------


def zone() -> ZoneInfo:
    """The current company's time zone (read once per request)."""
    from core.tenancy import company_zone

    return company_zone()


def today() -> date:
    """Today in the company's time zone."""
    return utcnow().astimezone(zone()).date()


def period(params: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """UTC moments ``[from, to)`` of the ``start``/``end`` dates (local midnights; the end day
    is included). ``None`` where the date is not set."""
    tz = zone()
    start, end = params.get("start"), params.get("end")
    low = datetime.combine(start, time(), tz).astimezone(UTC) if start else None
    high = datetime.combine(end + timedelta(days=1), time(), tz).astimezone(UTC) if end else None
    return low, high


def within(column: Any, params: Mapping[str, Any]) -> list[Any]:
    """SQL conditions keeping ``column`` inside the chosen dates (none when no date is set)."""
    low, high = period(params)
    out = []
    if low is not None:
        out.append(column >= low)
    if high is not None:
        out.append(column < high)
    return out


def months(params: Mapping[str, Any]) -> list[str]:
    """``YYYY-MM`` of every month from ``start`` to ``end`` (at most :data:`MAX_MONTHS`, the
    latest kept); empty without both dates."""
    start, end = params.get("start"), params.get("end")
    if not start or not end:
        return []
    out = []
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out[-MAX_MONTHS:]


class _Month(FunctionElement):
    """``YYYY-MM`` of a UTC timestamp column shifted by a number of minutes."""

    type = String()
    inherit_cache = True
    name = "guanxi_month"


@compiles(_Month)
def _month_default(element: _Month, compiler: Any, **kw: Any) -> str:
    column, minutes = list(element.clauses)
    return (
        f"to_char({compiler.process(column, **kw)} + "
        f"({compiler.process(minutes, **kw)} * interval '1 minute'), 'YYYY-MM')"
    )


@compiles(_Month, "sqlite")
def _month_sqlite(element: _Month, compiler: Any, **kw: Any) -> str:
    column, minutes = list(element.clauses)
    return (
        f"strftime('%Y-%m', {compiler.process(column, **kw)}, "
        f"({compiler.process(minutes, **kw)} || ' minutes'))"
    )


def month(column: Any, later: timedelta = timedelta(0)) -> Any:
    """SQL: the ``YYYY-MM`` month of UTC timestamp ``column`` (plus ``later``) in the company's
    time zone (at its current offset from UTC, so a month boundary may be off by the hour of a
    DST change)."""
    from sqlalchemy import literal

    offset = (utcnow().astimezone(zone()).utcoffset() or timedelta(0)) + later
    return _Month(column, literal(int(offset.total_seconds() // 60)))


class _Minutes(FunctionElement):
    """Minutes from the second timestamp to the first."""

    type = Float()
    inherit_cache = True
    name = "guanxi_minutes"


@compiles(_Minutes)
def _minutes_default(element: _Minutes, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 60.0)"


@compiles(_Minutes, "sqlite")
def _minutes_sqlite(element: _Minutes, compiler: Any, **kw: Any) -> str:
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({later}) - julianday({earlier})) * 1440.0)"


def minutes_between(later: Any, earlier: Any) -> Any:
    """SQL: the minutes from timestamp ``earlier`` to ``later`` (wall-clock time)."""
    return _Minutes(later, earlier)


# -- running --------------------------------------------------------------------------------------


@dataclass
class Result:
    """A report run: its parameters, columns and rows, with the chart and table drawn from
    them."""

    report: Report
    params: dict[str, Any]
    columns: list[Column]
    rows: list[Row]
    series: list[str]
    chart_kind: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def category(self) -> Column:
        return next(c for c in self.columns if c.key == self.report.category)

    def link(self, row: Mapping[str, Any], series: str | None = None) -> str | None:
        """The drill-down URL of ``row`` (or of one of its series), if the report has one."""
        if self.report.drill is None:
            return None
        return self.report.drill(row, self.params, series)

    @property
    def shown(self) -> list[Column]:
        """The columns of the table and the download (those not for the chart only)."""
        return [c for c in self.columns if c.table]

    def table(self) -> list[list[tuple[str, str | None]]]:
        """The table's cells: ``(text, link)`` per shown column per row."""
        out = []
        for row in self.rows:
            cells = []
            for column in self.shown:
                key = None if column.key == self.report.category else column.key
                link = self.link(row, key) if column.format != "text" or key is None else None
                cells.append((column.display(row.get(column.key)), link))
            out.append(cells)
        return out

    def export_rows(self) -> Iterable[list[Any]]:
        """Rows for a CSV/XLSX download (numbers as numbers)."""
        for row in self.rows:
            yield [c.export(row.get(c.key)) for c in self.shown]

    def header(self) -> list[str]:
        return [c.text + (" (%)" if c.format == "percent" else "") for c in self.shown]

    def svg(
        self,
        *,
        width: int = 960,
        height: int = 360,
        series: Sequence[str] | None = None,
        title: str | None = None,
        links: bool = True,
    ) -> Markup:
        """The chart of the result (``series``: only these columns)."""
        from flask_babel import gettext as _

        by_key = {c.key: c for c in self.columns}
        category = self.category
        labels = [category.display(row.get(category.key)) for row in self.rows]
        drawn = [
            charts.Series(
                by_key[key].text,
                [_number(row.get(key)) for row in self.rows],
                [self.link(row, key) for row in self.rows] if links else None,
                by_key[key].color,
            )
            for key in (series or self.series)
            if key in by_key
        ]
        fmt = charts.number
        if drawn and all(
            by_key[k].format == "percent" for k in series or self.series if k in by_key
        ):

            def fmt(v: Any) -> str:
                return "–" if v is None else f"{float(v) * 100:.0f}%"

        return charts.draw(
            self.chart_kind,
            labels,
            drawn,
            title=self.report.text if title is None else title,
            width=width,
            height=height,
            fmt=fmt,
            empty_text=_("No data for these choices."),
        )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    return float(value)


def narrows() -> bool:
    """Whether the member's record rule narrows the customers they see (and so the rows of
    every report that belong to a customer)."""
    from core import access

    return access.visible_owner_ids() is not None


def through_customers(stmt: Any, onclause: Any) -> Any:
    """``stmt`` joined to ``Customer`` on ``onclause`` when the member's record rule narrows
    the customers they see (the join is what carries the rule to rows that belong to a
    customer), ``stmt`` itself otherwise: joining every ticket to its customer only to apply
    no rule costs a lookup per row, seconds over a million tickets (bench/reports_clocks.py)."""
    from core.models import Customer

    return stmt.join(Customer, onclause) if narrows() else stmt


def run(report: Report, params: Mapping[str, Any]) -> Result:
    """Run ``report`` with parsed ``params``: one query, then the shaping in Python."""
    stmt = report.query(params)
    rows: list[Mapping[str, Any]] = list(db.session.execute(stmt).mappings())
    shaped = report.shape(rows, params) if report.shape else [dict(r) for r in rows]
    columns = list(_resolve(report.columns, params))
    series = (
        list(_resolve(report.series, params))
        or [c.key for c in columns if c.key != report.category and c.format != "text"][:1]
    )
    return Result(
        report=report,
        params=dict(params),
        columns=columns,
        rows=shaped,
        series=series,
        chart_kind=_resolve(report.chart, params),
    )


def query_string(params: Mapping[str, Any], **changes: Any) -> dict[str, str]:
    """``params`` (with ``changes``) as query-string values: dates ISO, ``None`` left out."""
    out = {}
    for key, value in {**params, **changes}.items():
        if value is None:
            continue
        out[key] = value.isoformat() if isinstance(value, date) else str(value)
    return out
