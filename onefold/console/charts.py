"""Small SVG charts rendered on the server (pure): no chart library, readable without scripts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDE = 1100  # the width of a chart that spans the page, so its text keeps the size of the others
PALETTE = ("#4f46e5", "#0891b2", "#d97706", "#db2777", "#059669", "#64748b", "#dc2626", "#65a30d")


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    values: Sequence[float]


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _short(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def line_chart(
    title: str, labels: Sequence[str], series: Sequence[Series], *, width: int = 640, height: int = 200
) -> str:
    """A line chart of one or more series over shared x labels, with a legend; an empty note when no data."""
    if not labels or not series:
        return f'<p class="empty-chart">No data yet for {escape(title.lower())}.</p>'
    left, right, top, bottom = 44, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = _nice_max(max((max(s.values, default=0) for s in series), default=0))
    step = plot_w / max(1, len(labels) - 1)

    def point(i: int, v: float) -> str:
        return f"{left + i * step:.1f},{top + plot_h - (v / top_value) * plot_h:.1f}"

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = top + plot_h - fraction * plot_h
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">')
        parts.append(f"{_short(top_value * fraction)}</text>")
    for i in sorted({0, len(labels) // 2, len(labels) - 1}):
        anchor = "start" if i == 0 else "end" if i == len(labels) - 1 else "middle"
        parts.append(f'<text x="{left + i * step:.1f}" y="{height - 6}" class="axis" text-anchor="{anchor}">')
        parts.append(f"{escape(labels[i])}</text>")
    for index, s in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(point(i, v) for i, v in enumerate(s.values))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">')
        parts.append(f"<title>{escape(s.label)}: {_short(sum(s.values))} in all</title></polyline>")
        if len(s.values) == 1:  # a line of one point draws nothing: a dot shows the first day's value
            cx, cy = point(0, s.values[0]).split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="4" fill="{colour}"><title>{escape(s.label)}: ')
            parts.append(f"{_short(s.values[0])}</title></circle>")
    parts.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{escape(s.label)}</span>'
        for i, s in enumerate(series)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, width: int = 640) -> str:
    """Horizontal bars, one per item, labelled with their value."""
    if not items:
        return f'<p class="empty-chart">No data yet for {escape(title.lower())}.</p>'
    row, label_w = 26, 200
    height = row * len(items) + 4
    top_value = _nice_max(max(v for _, v in items))
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        bar = (width - label_w - 70) * value / top_value
        parts.append(f'<text x="{label_w - 8}" y="{y + 16}" class="axis" text-anchor="end">{escape(label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{bar:.1f}" height="{row - 8}" rx="3" fill="{PALETTE[0]}"/>'
        )
        parts.append(f'<text x="{label_w + bar + 6:.1f}" y="{y + 16}" class="axis">{value:,.0f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 28) -> str:
    """A tiny trend line (for tables); a flat line when there is one value or none."""
    if len(values) < 2:
        values = [values[0] if values else 0.0] * 2
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    points = " ".join(
        f"{i * step:.1f},{height - 2 - (v - low) / span * (height - 4):.1f}" for i, v in enumerate(values)
    )
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-hidden="true">'
        f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="1.5" points="{points}"/></svg>'
    )
