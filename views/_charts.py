"""Small server-side SVG charts: vertical (stacked) bars, ranked horizontal bars, lines.

Charts are plain SVG strings drawn here, so they render without JavaScript or internet
access and print like the rest of the page. Every text (labels, titles, series names) is
escaped. Each bar or point carries a ``<title>`` (shown on hover) with its exact value;
the page's table next to the chart holds the same figures for reading and copying.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

#: Colours of the appointment statuses, distinct in hue and in lightness (for grey print).
STATUS_COLOURS = {
    "pending": "#f59f00",
    "confirmed": "#4c6ef5",
    "checked_in": "#ae3ec9",
    "completed": "#2b8a3e",
    "cancelled": "#adb5bd",
    "no_show": "#c92a2a",
}
PRIMARY = "#1c7ed6"
SECONDARY = "#e8590c"
_FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans','Noto Sans CJK SC',sans-serif"


@dataclass(frozen=True)
class Series:
    """One named row of values drawn in one colour.

    Attributes:
        name (str): shown in the legend and the hover titles.
        values (Sequence[float]): one value per category (>= 0).
        colour (str): CSS colour.
    """

    name: str
    values: Sequence[float]
    colour: str


def compact(value: float) -> str:
    """Short axis text: ``950``, ``1.2k``, ``3.4M`` (input in display units)."""
    v = abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if v >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least ``top`` (1, 2, 2.5 or 5 times a power of ten).

    Args:
        top (float): largest value to show (> 0).
        count (int): about how many intervals.

    Returns:
        list[float]: ascending ticks starting at 0.
    """
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    if power >= 1 and step < 1:
        step = 1.0
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 10) for i in range(n + 1)]


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="report-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}" style="max-width:{round(width * 1.25)}px;{_FONT}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    out, cursor = [], x
    for s in series:
        out.append(f'<rect x="{cursor:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{escape(s.colour)}"/>')
        out.append(f'<text x="{cursor + 14:.1f}" y="{y:.1f}" font-size="11" fill="#333">{escape(s.name)}</text>')
        cursor += 24 + 6.5 * len(s.name)
    return out


def _y_axis(ticks: list[float], left: float, right: float, top: float, bottom: float,
            axis_format: Callable[[float], str]) -> list[str]:
    out, span = [], ticks[-1] or 1
    for t in ticks:
        y = bottom - (bottom - top) * t / span
        out.append(f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="#dee2e6" stroke-width="1"/>')
        out.append(f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#555">'
                   f"{escape(axis_format(t))}</text>")
    return out


def _x_labels(labels: Sequence[str], x_of: Callable[[int], float], y: float, room: float) -> list[str]:
    widest = max((len(label) for label in labels), default=1) * 6.2 + 8
    every = max(1, math.ceil(widest / max(room, 1)))
    return [
        f'<text x="{x_of(i):.1f}" y="{y:.1f}" font-size="11" text-anchor="middle" fill="#555">{escape(label)}</text>'
        for i, label in enumerate(labels) if i % every == 0
    ]


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    short_labels: Sequence[str] | None = None,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    axis_format: Callable[[float], str] = compact,
    width: int = 880,
    height: int = 280,
    highlight: int | None = None,
    highlight_label: str = "today",
) -> Markup:
    """Vertical bars, one per label; several series are stacked in the given order.

    Args:
        labels (Sequence[str]): category names (full, used in hover titles).
        series (Sequence[Series]): values per category; stacked bottom to top.
        title (str): accessible name of the chart.
        short_labels (Sequence[str] | None): texts under the bars (default ``labels``);
            thinned out when they would overlap.
        value_format (Callable[[float], str]): formats a value for hover titles.
        axis_format (Callable[[float], str]): formats the y-axis ticks.
        width (int), height (int): size in px (the SVG scales to its container).
        highlight (int | None): index of a category to mark with a shaded band.
        highlight_label (str): text written above the marked category.

    Returns:
        Markup: the ``<svg>`` element.
    """
    left, right, top, bottom = 56.0, width - 12.0, 30.0, height - 28.0
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    ticks = nice_ticks(max(totals, default=0))
    span = ticks[-1] or 1
    n = max(len(labels), 1)
    slot = (right - left) / n
    bar = max(min(slot * 0.72, 48), 1.0)
    body = _y_axis(ticks, left, right, top, bottom, axis_format)
    if highlight is not None and 0 <= highlight < len(labels):
        hx = left + slot * highlight
        body.append(f'<rect x="{hx:.1f}" y="{top - 4:.1f}" width="{slot:.1f}" height="{bottom - top + 4:.1f}" fill="#fff3bf"/>')
        body.append(f'<text x="{hx + slot / 2:.1f}" y="{top - 6:.1f}" font-size="11" text-anchor="middle" '
                    f'font-weight="600" fill="#5c3c00">{escape(highlight_label)}</text>')
    if len(series) > 1:
        body += _legend(series, left, 14)
    for i, label in enumerate(labels):
        x, y = left + slot * i + (slot - bar) / 2, bottom
        parts = [f"{s.name}: {value_format(s.values[i])}" for s in series if s.values[i]]
        tip = escape(f"{label} \u2014 total {value_format(totals[i])}" + (f" ({'; '.join(parts)})" if len(series) > 1 and parts else ""))
        body.append(f"<g><title>{tip}</title>")
        for s in series:
            h = (bottom - top) * s.values[i] / span
            if h <= 0:
                continue
            y -= h
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{escape(s.colour)}"/>')
        body.append("</g>")
    body.append(f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}" stroke="#868e96"/>')
    body += _x_labels(short_labels or labels, lambda i: left + slot * i + slot / 2, bottom + 16, slot)
    return _svg(width, height, title, body)


def strip_chart(series: Sequence[Series], *, title: str, width: int = 880) -> Markup:
    """One horizontal bar split into parts (e.g. the day's appointments by status), with a
    legend giving each part's count.

    Args:
        series (Sequence[Series]): one value each (``values[0]``), drawn left to right.
        title (str): accessible name of the chart.
        width (int): size in px.

    Returns:
        Markup: the ``<svg>`` element.
    """
    total = sum(s.values[0] for s in series) or 1
    left, right, y, h = 0.0, float(width), 4.0, 22.0
    body, x = [], left
    for s in series:
        w = (right - left) * s.values[0] / total
        if w > 0:
            body.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{h}" fill="{escape(s.colour)}">'
                        f"<title>{escape(s.name)}: {s.values[0]:,.0f}</title></rect>")
            x += w
    legend = [Series(f"{s.name} {s.values[0]:,.0f}", s.values, s.colour) for s in series]
    body += _legend(legend, left, y + h + 18)
    return _svg(width, int(y + h + 26), title, body)


def hbar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    colour: str = PRIMARY,
    width: int = 880,
    label_width: int = 260,
) -> Markup:
    """Horizontal bars for a ranked list (top medicines, doctors), value at each bar's end.

    Args:
        labels (Sequence[str]): row names, top row first (long names are shortened; the
            hover title keeps them whole).
        values (Sequence[float]): one value per row (>= 0).
        title (str): accessible name of the chart.
        value_format (Callable[[float], str]): formats the value written after each bar.
        colour (str): bar colour.
        width (int): size in px; the height follows from the number of rows.
        label_width (int): room for the row names, px.

    Returns:
        Markup: the ``<svg>`` element.
    """
    row, top = 22, 8
    height = top + row * len(labels) + 8
    left, right = float(label_width), width - 90.0
    span = max(values, default=0) or 1
    body = []
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + row * i
        short = label if len(label) <= 38 else label[:36] + "\u2026"
        w = (right - left) * value / span
        body.append(f"<g><title>{escape(label)}: {escape(value_format(value))}</title>")
        body.append(f'<text x="{left - 8:.1f}" y="{y + 15:.1f}" font-size="12" text-anchor="end" fill="#333">{escape(short)}</text>')
        body.append(f'<rect x="{left:.1f}" y="{y + 4:.1f}" width="{max(w, 0.5):.1f}" height="{row - 8}" fill="{escape(colour)}"/>')
        body.append(f'<text x="{left + w + 6:.1f}" y="{y + 15:.1f}" font-size="12" fill="#333">{escape(value_format(value))}</text>')
        body.append("</g>")
    body.append(f'<line x1="{left:.1f}" x2="{left:.1f}" y1="{top:.1f}" y2="{height - 8:.1f}" stroke="#868e96"/>')
    return _svg(width, height, title, body)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    short_labels: Sequence[str] | None = None,
    value_format: Callable[[float], str] = lambda v: f"{v:,.0f}",
    axis_format: Callable[[float], str] = compact,
    width: int = 880,
    height: int = 260,
) -> Markup:
    """Lines over ordered labels (e.g. days), one per series, with a dot per value.

    Args:
        labels (Sequence[str]): x positions in order (full, used in hover titles).
        series (Sequence[Series]): values per label.
        title (str): accessible name of the chart.
        short_labels (Sequence[str] | None): texts under the axis (default ``labels``).
        value_format (Callable[[float], str]): formats a value for hover titles.
        axis_format (Callable[[float], str]): formats the y-axis ticks.
        width (int), height (int): size in px.

    Returns:
        Markup: the ``<svg>`` element.
    """
    left, right, top, bottom = 64.0, width - 16.0, 30.0, height - 28.0
    ticks = nice_ticks(max((max(s.values, default=0) for s in series), default=0))
    span = ticks[-1] or 1
    n = len(labels)
    step = (right - left) / max(n - 1, 1)

    def x_of(i: int) -> float:
        return left + step * i if n > 1 else (left + right) / 2

    body = _y_axis(ticks, left, right, top, bottom, axis_format)
    if len(series) > 1:
        body += _legend(series, left, 14)
    for s in series:
        points = [(x_of(i), bottom - (bottom - top) * v / span) for i, v in enumerate(s.values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{escape(s.colour)}" stroke-width="2"/>')
        radius = 3 if n <= 62 else 1.5
        for (x, y), label, v in zip(points, labels, s.values):
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{escape(s.colour)}">'
                        f"<title>{escape(label)} \u2014 {escape(s.name)}: {escape(value_format(v))}</title></circle>")
    body.append(f'<line x1="{left:.1f}" x2="{right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}" stroke="#868e96"/>')
    body += _x_labels(short_labels or labels, x_of, bottom + 16, step if n > 1 else right - left)
    return _svg(width, height, title, body)
