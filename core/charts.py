"""Charts drawn on the server as SVG: bar, stacked bar, line, pie (or donut) and funnel.

Pure functions: labels and numbers in, an SVG string out (a :class:`markupsafe.Markup`, so
Jinja inserts it as is). No JavaScript, no network, nothing to vendor; the browser draws the
chart, the printout and the exported page alike.

Every chart

* is an ``<svg role="img">`` with an ``aria-label`` and a ``<title>`` naming it;
* escapes every label (and drops characters XML cannot carry), so a customer called
  ``<script>`` is text, not markup;
* gives each mark (bar, slice, point, funnel step) a ``<title>`` that browsers show on hover;
* wraps a mark in ``<a href="…">`` when a link is given for it: this is the drill-down, a click
  on a bar opens the list of the rows behind it. Only relative links and ``http(s)`` URLs are
  kept;
* sets ``font-family`` to a Chinese-capable stack ("WenQuanYi Micro Hei", "Noto Sans CJK SC",
  sans-serif), so 消费客户 renders wherever a CJK font is installed;
* with no data at all draws a friendly empty chart saying so (``empty_text``).

Value axes run over "nice" round numbers (:func:`nice_ticks`) and always include zero; negative
values draw below (or left of) the zero line. Several series get a legend.

Example::

    from core.charts import Series, bar

    svg = bar(
        ["消费客户", "商用客户"],
        [Series("Customers", [12, 5], links=["/customers/?kind=consumer", None])],
        title="Customers by kind",
    )
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

#: Font stack with the Chinese fonts first (Debian: fonts-wqy-microhei, fonts-noto-cjk).
FONT = "'WenQuanYi Micro Hei', 'Noto Sans CJK SC', sans-serif"
#: Series and slice colours (distinguishable, readable on white, colour-blind aware order).
PALETTE = (
    "#2b6cb0",
    "#dd6b20",
    "#2f855a",
    "#b4232a",
    "#6b46c1",
    "#b7791f",
    "#319795",
    "#d53f8c",
    "#4a5568",
    "#975a16",
)
INK, MUTED, GRID = "#1f2933", "#616e7c", "#d9e2ec"
FONT_SIZE = 12
LEGEND_ROW = 18

Number = int | float | Decimal
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_SAFE_LINK = re.compile(r"^(/(?!/)|\?|https?://)", re.IGNORECASE)


@dataclass(frozen=True)
class Series:
    """One named row of values, one value per label (``None``: no value there).

    ``links`` (optional, one per label) makes each mark a link; ``color`` overrides the palette.
    """

    name: str
    values: Sequence[Number | None]
    links: Sequence[str | None] | None = None
    color: str | None = None

    def link(self, i: int) -> str | None:
        return self.links[i] if self.links is not None and i < len(self.links) else None


# -- small helpers ------------------------------------------------------------------------------


def text(value: Any) -> str:
    """``value`` as escaped XML text, with characters XML 1.0 cannot hold removed."""
    return str(escape(_XML_BAD.sub("", str(value))))


def number(value: Number | None) -> str:
    """``1234`` → ``1,234``; ``2.5`` → ``2.5``; ``None`` → ``–``."""
    if value is None:
        return "–"
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}".rstrip("0").rstrip(".")


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering ``low``..``high`` and zero (``0, 5, 10, 15`` not ``0, 3.7…``);
    ``integer`` keeps the step a whole number (counts have no half tickets)."""
    low, high = min(0.0, float(low)), max(0.0, float(high))
    if low == high:
        high = 1.0
    step = _nice((high - low) / max(1, count - 1))
    if integer:
        step = max(step, 1.0)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    ticks, v = [], start
    while v <= stop + step / 2:
        ticks.append(round(v, 10))
        v += step
    return ticks


def _nice(value: float) -> float:
    """``value`` rounded to 1, 2, 5 or 10 times a power of ten."""
    exponent = math.floor(math.log10(value))
    fraction = value / 10**exponent
    nice = 1 if fraction < 1.5 else 2 if fraction < 3 else 5 if fraction < 7 else 10
    return nice * 10**exponent


def _width(label: str) -> float:
    """Rough width in pixels of ``label`` at :data:`FONT_SIZE` (CJK characters are wider)."""
    return sum(FONT_SIZE if ord(ch) > 0x2E80 else FONT_SIZE * 0.6 for ch in label)


def _clip(label: str, pixels: float) -> str:
    """``label`` shortened with an ellipsis to fit about ``pixels``."""
    if _width(label) <= pixels:
        return label
    out = ""
    for ch in label:
        if _width(out + ch + "…") > pixels:
            break
        out += ch
    return out + "…"


def _link(url: str | None) -> str | None:
    if not url or not _SAFE_LINK.match(url) or _XML_BAD.search(url):
        return None
    return url


def _mark(shape: str, hover: str, url: str | None) -> str:
    """A mark with its hover ``<title>``, wrapped in a link when ``url`` is safe."""
    inner = f"{shape[:-2]}><title>{text(hover)}</title></{shape[1 : shape.index(' ')]}>"
    url = _link(url)
    if url is None:
        return inner
    return f'<a href="{text(url)}" class="drill">{inner}</a>'


def _color(series: Series, i: int) -> str:
    return series.color or PALETTE[i % len(PALETTE)]


def _svg(kind: str, title: str, width: int, height: int, body: list[str]) -> Markup:
    label = text(title or kind)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" '
        f'aria-label="{label}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'font-family="{FONT}" font-size="{FONT_SIZE}" fill="{INK}">'
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def _values(series: Series) -> list[float | None]:
    return [None if v is None else float(v) for v in series.values]


def _as_series(data: Sequence[Series] | Sequence[Number | None], links: Any = None) -> list[Series]:
    items = list(data)
    if items and all(isinstance(s, Series) for s in items):
        return items  # type: ignore[return-value]
    return [Series("", items, links)]  # type: ignore[arg-type]


def _is_empty(labels: Sequence[str], series: list[Series]) -> bool:
    return not labels or not series or all(v is None for s in series for v in s.values)


def empty(
    title: str = "", empty_text: str = "No data", width: int = 640, height: int = 200
) -> Markup:
    """A chart frame that says there is nothing to draw."""
    body = [
        f'<rect x="0.5" y="0.5" width="{width - 1}" height="{height - 1}" rx="6" fill="#f5f7fa" '
        f'stroke="{GRID}"/>',
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" dominant-baseline="middle" '
        f'fill="{MUTED}" class="empty">{text(empty_text)}</text>',
    ]
    return _svg("empty", title, width, height, body)


def _legend(names: list[tuple[str, str]], width: int, top: float = 6) -> tuple[list[str], float]:
    """Legend items ``(name, colour)`` flowing in rows; returns the SVG and its height."""
    out, x, y = [], 8.0, top
    for name, color in names:
        w = 18 + _width(_clip(name, 160)) + 16
        if x + w > width and x > 8:
            x, y = 8.0, y + LEGEND_ROW
        out.append(
            f'<g class="legend-item"><rect x="{x:.1f}" y="{y:.1f}" width="11" height="11" rx="2" '
            f'fill="{color}"/><text x="{x + 16:.1f}" y="{y + 10:.1f}">{text(_clip(name, 160))}'
            "</text></g>"
        )
        x += w
    return out, (y - top + LEGEND_ROW) if names else 0


# -- axis charts (bar, stacked bar, line) ----------------------------------------------------------


@dataclass
class _Frame:
    """The plot area of an axis chart and its value scale."""

    x0: float
    x1: float
    y0: float
    y1: float
    ticks: list[float]
    horizontal: bool

    def pos(self, v: float) -> float:
        """Pixel position of value ``v`` along the value axis."""
        lo, hi = self.ticks[0], self.ticks[-1]
        share = (v - lo) / (hi - lo)
        if self.horizontal:
            return self.x0 + share * (self.x1 - self.x0)
        return self.y1 - share * (self.y1 - self.y0)

    def band(self, n: int) -> float:
        return ((self.y1 - self.y0) if self.horizontal else (self.x1 - self.x0)) / max(1, n)


def _axis_chart(
    kind: str,
    labels: Sequence[str],
    series: list[Series],
    *,
    title: str,
    width: int,
    height: int,
    horizontal: bool,
    fmt: Callable[[Number | None], str],
    low: float | None = None,
    high: float | None = None,
) -> tuple[_Frame, list[str]]:
    """Frame, legend, grid, tick labels and category labels of an axis chart; the value axis
    spans ``low`` to ``high`` (default: the smallest and largest value of ``series``)."""
    if low is None or high is None:
        values = [v for s in series for v in _values(s) if v is not None]
        low = min(values) if low is None else low
        high = max(values) if high is None else high
    labels = [str(label) for label in labels]
    body: list[str] = []
    named = [(s.name, _color(s, i)) for i, s in enumerate(series) if s.name]
    legend, legend_h = _legend(named, width) if len(series) > 1 else ([], 0)
    body += legend
    whole = all(float(v).is_integer() for s in series for v in s.values if v is not None)
    ticks = nice_ticks(low, high, integer=whole)
    tick_w = max(_width(fmt(t)) for t in ticks) + 10
    top = 14 + legend_h
    n = max(1, len(labels))
    if horizontal:
        left = min(max(_width(label) for label in labels) + 12, width * 0.4)
        frame = _Frame(left, width - 18, top, height - 24, ticks, True)
    else:
        band = (width - tick_w - 12) / n
        longest = max(_width(label) for label in labels)
        rotate = longest > band - 4
        bottom = 26 if not rotate else min(26 + longest * 0.64, height * 0.4)
        frame = _Frame(tick_w, width - 12, top, height - bottom, ticks, False)
    for t in ticks:
        p = frame.pos(t)
        stroke = MUTED if t == 0 else GRID
        if horizontal:
            body.append(
                f'<line x1="{p:.1f}" y1="{frame.y0:.1f}" x2="{p:.1f}" y2="{frame.y1:.1f}" '
                f'stroke="{stroke}"/><text x="{p:.1f}" y="{frame.y1 + 16:.1f}" '
                f'text-anchor="middle" fill="{MUTED}" class="tick">{text(fmt(t))}</text>'
            )
        else:
            body.append(
                f'<line x1="{frame.x0:.1f}" y1="{p:.1f}" x2="{frame.x1:.1f}" y2="{p:.1f}" '
                f'stroke="{stroke}"/><text x="{frame.x0 - 6:.1f}" y="{p + 4:.1f}" '
                f'text-anchor="end" fill="{MUTED}" class="tick">{text(fmt(t))}</text>'
            )
    band = frame.band(n)
    for i, label in enumerate(labels):
        if horizontal:
            y = frame.y0 + band * (i + 0.5)
            body.append(
                f'<text x="{frame.x0 - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" class="label">'
                f"{text(_clip(label, frame.x0 - 10))}<title>{text(label)}</title></text>"
            )
        else:
            x = frame.x0 + band * (i + 0.5)
            y = frame.y1 + 16
            if _width(label) > band - 4:
                body.append(
                    f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="end" class="label" '
                    f'transform="rotate(-40 {x:.1f} {y:.1f})">'
                    f"{text(_clip(label, (height - frame.y1) * 1.4))}"
                    f"<title>{text(label)}</title></text>"
                )
            else:
                body.append(
                    f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" class="label">'
                    f"{text(label)}</text>"
                )
    return frame, body


def _rect(frame: _Frame, start: float, thickness: float, a: float, b: float) -> str:
    """A bar's ``<rect …/>`` from value ``a`` to ``b``, ``start`` pixels along the category
    axis and ``thickness`` across."""
    pa, pb = frame.pos(a), frame.pos(b)
    lo, size = min(pa, pb), abs(pb - pa)
    if frame.horizontal:
        return f'<rect x="{lo:.1f}" y="{start:.1f}" width="{size:.1f}" height="{thickness:.1f}"/>'
    return f'<rect x="{start:.1f}" y="{lo:.1f}" width="{thickness:.1f}" height="{size:.1f}"/>'


def _hover(label: str, series: Series, value: Number | None, fmt: Callable[..., str]) -> str:
    return f"{label} · {series.name}: {fmt(value)}" if series.name else f"{label}: {fmt(value)}"


def bar(
    labels: Sequence[str],
    series: Sequence[Series] | Sequence[Number | None],
    *,
    links: Sequence[str | None] | None = None,
    title: str = "",
    horizontal: bool = False,
    width: int = 640,
    height: int = 320,
    fmt: Callable[[Number | None], str] = number,
    empty_text: str = "No data",
    show_values: bool = True,
) -> Markup:
    """Bars, one per label; several series stand side by side within each label's band.

    ``series`` is a list of :class:`Series`, or plain numbers (one series, ``links`` beside).
    ``horizontal`` lays the bars along the x axis (long labels read better).
    """
    data = _as_series(series, links)
    if _is_empty(labels, data):
        return empty(title, empty_text, width, min(height, 200))
    frame, body = _axis_chart(
        "bar",
        labels,
        data,
        title=title,
        width=width,
        height=height,
        horizontal=horizontal,
        fmt=fmt,
    )
    band = frame.band(len(labels))
    group = band * 0.72
    thickness = group / len(data)
    origin = frame.y0 if horizontal else frame.x0
    for i, label in enumerate(labels):
        for j, s in enumerate(data):
            v = _values(s)[i] if i < len(s.values) else None
            if v is None:
                continue
            start = origin + band * i + (band - group) / 2 + thickness * j
            rect = _rect(frame, start, thickness, 0.0, v)
            rect = rect.replace("<rect ", f'<rect class="mark" fill="{_color(s, j)}" ', 1)
            body.append(_mark(rect, _hover(str(label), s, v, fmt), s.link(i)))
            if show_values and len(labels) * len(data) <= 24:
                body.append(_value_label(frame, start + thickness / 2, v, fmt))
    return _svg("bar", title, width, height, body)


def _value_label(frame: _Frame, middle: float, v: float, fmt: Callable[..., str]) -> str:
    p = frame.pos(v)
    if frame.horizontal:
        x = p + 4 if v >= 0 else p - 4
        anchor = "start" if v >= 0 else "end"
        return (
            f'<text x="{x:.1f}" y="{middle + 4:.1f}" text-anchor="{anchor}" class="value" '
            f'font-size="11" fill="{MUTED}">{text(fmt(v))}</text>'
        )
    y = p - 4 if v >= 0 else p + 13
    return (
        f'<text x="{middle:.1f}" y="{y:.1f}" text-anchor="middle" class="value" font-size="11" '
        f'fill="{MUTED}">{text(fmt(v))}</text>'
    )


def stacked_bar(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str = "",
    horizontal: bool = False,
    width: int = 640,
    height: int = 320,
    fmt: Callable[[Number | None], str] = number,
    empty_text: str = "No data",
    show_totals: bool = True,
) -> Markup:
    """Bars whose segments are the series, stacked; positive values stack up from zero and
    negative ones down, and each bar's total is written at its end."""
    data = list(series)
    if _is_empty(labels, data):
        return empty(title, empty_text, width, min(height, 200))
    ups, downs = [], []
    for i in range(len(labels)):
        column = [_values(s)[i] if i < len(s.values) else None for s in data]
        ups.append(sum(v for v in column if v is not None and v > 0))
        downs.append(sum(v for v in column if v is not None and v < 0))
    frame, body = _axis_chart(
        "stacked",
        labels,
        data,
        title=title,
        width=width,
        height=height,
        horizontal=horizontal,
        low=min(downs),
        high=max(ups),
        fmt=fmt,
    )
    band = frame.band(len(labels))
    thickness = band * 0.62
    origin = frame.y0 if horizontal else frame.x0
    for i, label in enumerate(labels):
        up = down = 0.0
        start = origin + band * i + (band - thickness) / 2
        for j, s in enumerate(data):
            v = _values(s)[i] if i < len(s.values) else None
            if not v:
                continue
            if v > 0:
                a, b, up = up, up + v, up + v
            else:
                a, b, down = down, down + v, down + v
            rect = _rect(frame, start, thickness, a, b)
            rect = rect.replace("<rect ", f'<rect class="mark" fill="{_color(s, j)}" ', 1)
            body.append(_mark(rect, _hover(str(label), s, v, fmt), s.link(i)))
        if show_totals and len(labels) <= 31 and (up or down):
            total = up + down
            edge = up if total >= 0 else down
            body.append(
                _value_label(frame, start + thickness / 2, edge, lambda _v, t=total: fmt(t))
            )
    return _svg("stacked", title, width, height, body)


def line(
    labels: Sequence[str],
    series: Sequence[Series] | Sequence[Number | None],
    *,
    links: Sequence[str | None] | None = None,
    title: str = "",
    width: int = 640,
    height: int = 320,
    fmt: Callable[[Number | None], str] = number,
    empty_text: str = "No data",
) -> Markup:
    """One line per series over the labels (e.g. months); a ``None`` value breaks the line."""
    data = _as_series(series, links)
    if _is_empty(labels, data):
        return empty(title, empty_text, width, min(height, 200))
    frame, body = _axis_chart(
        "line",
        labels,
        data,
        title=title,
        width=width,
        height=height,
        horizontal=False,
        fmt=fmt,
    )
    band = frame.band(len(labels))
    for j, s in enumerate(data):
        color = _color(s, j)
        points: list[tuple[int, float, float]] = []
        for i, v in enumerate(_values(s)[: len(labels)]):
            if v is not None:
                points.append((i, frame.x0 + band * (i + 0.5), frame.pos(v)))
        segments: list[list[tuple[float, float]]] = []
        last = None
        for i, x, y in points:
            if last is None or i != last + 1:
                segments.append([])
            segments[-1].append((x, y))
            last = i
        for segment in segments:
            if len(segment) > 1:
                path = " ".join(f"{x:.1f},{y:.1f}" for x, y in segment)
                body.append(
                    f'<polyline class="series" points="{path}" fill="none" stroke="{color}" '
                    'stroke-width="2" stroke-linejoin="round"/>'
                )
        for i, x, y in points:
            circle = (
                f'<circle class="mark" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#fff" '
                f'stroke="{color}" stroke-width="2"/>'
            )
            body.append(_mark(circle, _hover(str(labels[i]), s, s.values[i], fmt), s.link(i)))
    return _svg("line", title, width, height, body)


# -- pie and funnel -----------------------------------------------------------------------------


def pie(
    labels: Sequence[str],
    values: Sequence[Number | None],
    *,
    links: Sequence[str | None] | None = None,
    title: str = "",
    donut: bool = False,
    width: int = 640,
    height: int = 320,
    fmt: Callable[[Number | None], str] = number,
    empty_text: str = "No data",
) -> Markup:
    """Slices of a whole (``donut``: with a hole and the total in it). Zero, negative and
    missing values cannot be a slice: they are listed in the legend but not drawn."""
    pairs = [
        (str(label), None if v is None else float(v))
        for label, v in zip(labels, values, strict=False)
    ]
    total = sum(v for _label, v in pairs if v is not None and v > 0)
    if not pairs or total <= 0:
        return empty(title, empty_text, width, min(height, 200))
    r = min(height - 24, width * 0.5) / 2
    cx, cy = 12 + r, height / 2
    inner = r * 0.56 if donut else 0.0
    body: list[str] = []
    angle = -math.pi / 2
    legend_x = cx + r + 24
    for i, (label, v) in enumerate(pairs):
        color = PALETTE[i % len(PALETTE)]
        url = links[i] if links is not None and i < len(links) else None
        share = (v / total) if v is not None and v > 0 else 0.0
        hover = f"{label}: {fmt(v)} ({share:.0%})"
        if share > 0:
            end = angle + share * 2 * math.pi
            shape = _slice(cx, cy, r, inner, angle, end, color)
            body.append(_mark(shape, hover, url))
            angle = end
        y = 16 + i * LEGEND_ROW
        if y < height - 8:
            name = _clip(label, width - legend_x - 90)
            entry = (
                f'<rect x="{legend_x:.1f}" y="{y - 10:.1f}" width="11" height="11" rx="2" '
                f'fill="{color}"/><text x="{legend_x + 16:.1f}" y="{y:.1f}">{text(name)}'
                f'<tspan fill="{MUTED}"> {text(fmt(v))} · {share:.0%}</tspan></text>'
            )
            safe = _link(url)
            body.append(f'<a href="{text(safe)}">{entry}</a>' if safe else entry)
    if donut:
        body.append(
            f'<text x="{cx:.1f}" y="{cy + 6:.1f}" text-anchor="middle" font-size="18" '
            f'class="total">{text(fmt(total))}</text>'
        )
    return _svg("donut" if donut else "pie", title, width, height, body)


def _slice(cx: float, cy: float, r: float, inner: float, a: float, b: float, color: str) -> str:
    if b - a >= 2 * math.pi - 1e-9:  # one slice is the whole: two half arcs
        if inner:
            d = (
                f"M{cx + r:.2f},{cy:.2f} A{r:.2f},{r:.2f} 0 1 1 {cx - r:.2f},{cy:.2f} "
                f"A{r:.2f},{r:.2f} 0 1 1 {cx + r:.2f},{cy:.2f} Z "
                f"M{cx + inner:.2f},{cy:.2f} A{inner:.2f},{inner:.2f} 0 1 0 {cx - inner:.2f},"
                f"{cy:.2f} A{inner:.2f},{inner:.2f} 0 1 0 {cx + inner:.2f},{cy:.2f} Z"
            )
            return f'<path class="mark" d="{d}" fill="{color}" fill-rule="evenodd"/>'
        return f'<circle class="mark" cx="{cx:.2f}" cy="{cy:.2f}" r="{r:.2f}" fill="{color}"/>'
    large = 1 if b - a > math.pi else 0

    def at(radius: float, angle: float) -> str:
        return f"{cx + radius * math.cos(angle):.2f},{cy + radius * math.sin(angle):.2f}"

    if inner:
        d = (
            f"M{at(r, a)} A{r:.2f},{r:.2f} 0 {large} 1 {at(r, b)} L{at(inner, b)} "
            f"A{inner:.2f},{inner:.2f} 0 {large} 0 {at(inner, a)} Z"
        )
    else:
        d = f"M{cx:.2f},{cy:.2f} L{at(r, a)} A{r:.2f},{r:.2f} 0 {large} 1 {at(r, b)} Z"
    return f'<path class="mark" d="{d}" fill="{color}" stroke="#fff" stroke-width="1"/>'


def funnel(
    labels: Sequence[str],
    values: Sequence[Number | None],
    *,
    links: Sequence[str | None] | None = None,
    title: str = "",
    width: int = 640,
    height: int = 320,
    fmt: Callable[[Number | None], str] = number,
    empty_text: str = "No data",
) -> Markup:
    """Steps of a process, widest first: each step a centred bar as wide as its value, with
    its share of the first step (conversion) beside it."""
    pairs = [
        (str(label), max(0.0, float(v or 0))) for label, v in zip(labels, values, strict=False)
    ]
    top = max((v for _label, v in pairs), default=0.0)
    if not pairs or top <= 0:
        return empty(title, empty_text, width, min(height, 200))
    first = pairs[0][1] or top
    label_w = min(max(_width(label) for label, _v in pairs) + 16, width * 0.3)
    x0, x1 = label_w, width - 110
    step = (height - 16) / len(pairs)
    body: list[str] = []
    for i, (label, v) in enumerate(pairs):
        w = max((x1 - x0) * v / top, 2.0)
        x = x0 + ((x1 - x0) - w) / 2
        y = 8 + step * i
        share = v / first if first else 0.0
        color = PALETTE[0] if i == 0 else PALETTE[i % len(PALETTE)]
        rect = (
            f'<rect class="mark" x="{x:.1f}" y="{y + 2:.1f}" width="{w:.1f}" '
            f'height="{step - 6:.1f}" rx="3" fill="{color}"/>'
        )
        url = links[i] if links is not None and i < len(links) else None
        body.append(_mark(rect, f"{label}: {fmt(v)} ({share:.0%})", url))
        middle = y + step / 2 + 2
        body.append(
            f'<text x="{x0 - 8:.1f}" y="{middle:.1f}" text-anchor="end" class="label">'
            f"{text(_clip(label, x0 - 12))}<title>{text(label)}</title></text>"
            f'<text x="{x1 + 8:.1f}" y="{middle:.1f}" class="value">{text(fmt(v))}'
            f'<tspan fill="{MUTED}"> · {share:.0%}</tspan></text>'
        )
    return _svg("funnel", title, width, height, body)


#: The chart functions by the names reports use (``Report.chart``).
KINDS = ("bar", "hbar", "stacked", "hstacked", "line", "pie", "donut", "funnel")


def draw(
    kind: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str = "",
    width: int = 640,
    height: int = 320,
    fmt: Callable[[Number | None], str] = number,
    empty_text: str = "No data",
) -> Markup:
    """The chart ``kind`` (one of :data:`KINDS`) of ``series`` over ``labels``; pie, donut and
    funnel draw the first series only."""
    common: dict[str, Any] = {
        "title": title,
        "width": width,
        "height": height,
        "fmt": fmt,
        "empty_text": empty_text,
    }
    if kind in ("bar", "hbar"):
        return bar(labels, series, horizontal=kind == "hbar", **common)
    if kind in ("stacked", "hstacked"):
        return stacked_bar(labels, series, horizontal=kind == "hstacked", **common)
    if kind == "line":
        return line(labels, series, **common)
    first = series[0] if series else Series("", [])
    if kind in ("pie", "donut"):
        return pie(labels, first.values, links=first.links, donut=kind == "donut", **common)
    if kind == "funnel":
        return funnel(labels, first.values, links=first.links, **common)
    raise ValueError(f"unknown chart kind {kind!r}; one of {', '.join(KINDS)}")
