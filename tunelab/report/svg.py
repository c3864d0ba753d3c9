"""Small inline-SVG charts (line, scatter, bars, heatmap) so the report needs no script or CDN.

Every mark carries a <title> so hovering shows its exact value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
W, H = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 20, 44


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1000 or abs(v) < 0.01:
        return f"{v:.2g}"
    return f"{v:.3g}"


def _ticks(low: float, high: float, n: int = 5) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / (n - 1) for i in range(n)]


class Axes:
    """Maps data to pixels; x may be logarithmic or categorical (positions 0..k-1)."""

    def __init__(
        self, xs: Sequence[float], ys: Sequence[float], log_x: bool = False, categories: Sequence[str] | None = None
    ):
        self.log_x, self.categories = log_x, categories
        tx = [self._tx(x) for x in xs]
        self.x0, self.x1 = (min(tx), max(tx)) if tx else (0.0, 1.0)
        if categories is not None:
            self.x0, self.x1 = -0.5, len(categories) - 0.5
        if self.x1 == self.x0:
            self.x0, self.x1 = self.x0 - 1, self.x1 + 1
        y0, y1 = (min(ys), max(ys)) if ys else (0.0, 1.0)
        pad = (y1 - y0) * 0.08 or abs(y0) * 0.1 or 1.0
        # Non-negative data (losses, rates) keeps a zero floor instead of padding below it.
        self.y0, self.y1 = (max(0.0, y0 - pad) if y0 >= 0 else y0 - pad), y1 + pad

    def _tx(self, x: float) -> float:
        return math.log10(x) if self.log_x and x > 0 else x

    def px(self, x: float) -> float:
        return LEFT + (self._tx(x) - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def py(self, y: float) -> float:
        return H - BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (H - TOP - BOTTOM)

    def frame(self, x_label: str, y_label: str) -> list[str]:
        out = [
            f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" fill="#fff" stroke="#999"/>'
        ]
        for y in _ticks(self.y0, self.y1):
            out.append(
                f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{self.py(y):.1f}" y2="{self.py(y):.1f}" stroke="#eee"/>'
            )
            out.append(f'<text x="{LEFT - 6}" y="{self.py(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
        if self.categories is not None:
            xticks = [(float(i), str(c)) for i, c in enumerate(self.categories)]
            out += [
                f'<text x="{LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{escape(c)}</text>'
                for x, c in xticks
            ]
        else:
            for t in _ticks(self.x0, self.x1):
                x = 10**t if self.log_x else t
                out.append(
                    f'<text x="{LEFT + (t - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle">{_fmt(x)}</text>'
                )
        out.append(
            f'<text x="{(LEFT + W - RIGHT) / 2}" y="{H - 8}" text-anchor="middle" class="axis">{escape(x_label)}{" (log)" if self.log_x else ""}</text>'
        )
        out.append(
            f'<text x="14" y="{(TOP + H - BOTTOM) / 2}" text-anchor="middle" class="axis" transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2})">{escape(y_label)}</text>'
        )
        return out


def _svg(body: list[str], title: str, height: int = H, width: int = W) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="{escape(title)}">'
        + "".join(body)
        + "</svg>"
    )


def _legend(labels: Sequence[str]) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        x = LEFT + 8 + (i % 4) * 120
        y = TOP + 12 + (i // 4) * 14
        out.append(
            f'<rect x="{x}" y="{y - 8}" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/><text x="{x + 14}" y="{y + 1}">{escape(label)}</text>'
        )
    return out


def line_chart(
    series: dict[str, list[tuple[float, float]]], title: str, x_label: str = "step", y_label: str = "loss"
) -> str:
    """One polyline (with point markers) per named series."""
    points = [p for s in series.values() for p in s]
    axes = Axes([p[0] for p in points], [p[1] for p in points])
    body = axes.frame(x_label, y_label)
    for i, (label, pts) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        if len(pts) > 1:
            path = " ".join(f"{axes.px(x):.1f},{axes.py(y):.1f}" for x, y in pts)
            body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.8" points="{path}"/>')
        body += [
            f'<circle cx="{axes.px(x):.1f}" cy="{axes.py(y):.1f}" r="2.5" fill="{color}"><title>{escape(label)} step {_fmt(x)}: {y:.4f}</title></circle>'
            for x, y in pts
        ]
    return _svg(body + _legend(list(series)), title)


def scatter(
    points: list[dict[str, Any]],
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    categories: Sequence[Any] | None = None,
) -> str:
    """points: {x, y, label, highlight?}; a highlighted point (the chosen trial) is drawn larger in red."""
    cats = [str(c) for c in categories] if categories is not None else None
    xs = [cats.index(str(p["x"])) if cats else float(p["x"]) for p in points]
    axes = Axes(xs, [p["y"] for p in points], log_x=log_x and not cats, categories=cats)
    body = axes.frame(x_label, y_label)
    for x, p in zip(xs, points):
        color, r = ("#d62728", 6) if p.get("highlight") else ("#1f77b4", 4)
        body.append(
            f'<circle cx="{axes.px(x):.1f}" cy="{axes.py(p["y"]):.1f}" r="{r}" fill="{color}" fill-opacity="0.8"><title>{escape(p["label"])}</title></circle>'
        )
    return _svg(body, title)


def bars(values: dict[str, float], title: str, value_label: str = "", keep_order: bool = False) -> str:
    """Horizontal bars, one per key: longest first, or in the given order (histograms)."""
    items = list(values.items()) if keep_order else sorted(values.items(), key=lambda kv: -kv[1])
    height = TOP + 24 * len(items) + 20
    peak = max([v for _, v in items] + [1e-12])
    label_w = 170
    body = []
    for i, (name, v) in enumerate(items):
        y = TOP + 24 * i
        width = (W - label_w - 80) * max(0.0, v) / peak
        body.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{escape(name)}</text>')
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{width:.1f}" height="16" fill="#1f77b4"><title>{escape(name)}: {v:.4f}</title></rect>'
        )
        body.append(f'<text x="{label_w + width + 4:.1f}" y="{y + 15}">{_fmt(v)} {escape(value_label)}</text>')
    return _svg(body, title, height=height)


def heatmap(
    labels: Sequence[str],
    matrix: Sequence[Sequence[float]],
    title: str,
    row_label: str = "reference",
    col_label: str = "prediction",
) -> str:
    """A square matrix as coloured cells with their counts (the behaviour confusion matrix)."""
    n = len(labels)
    cell, left, top = 56, 110, 100
    size_w, size_h = left + cell * n + 20, top + cell * n + 20
    peak = max([v for row in matrix for v in row] + [1])
    body = [
        f'<text x="{left + cell * n / 2}" y="14" text-anchor="middle" class="axis">{escape(col_label)}</text>',
        f'<text x="12" y="{top + cell * n / 2}" class="axis" transform="rotate(-90 12 {top + cell * n / 2})" text-anchor="middle">{escape(row_label)}</text>',
    ]
    for j, lab in enumerate(labels):
        x = left + cell * j + cell / 2
        body.append(
            f'<text x="{x}" y="{top - 8}" text-anchor="start" transform="rotate(-45 {x} {top - 8})">{escape(lab)}</text>'
        )
    for i, row in enumerate(matrix):
        body.append(
            f'<text x="{left - 6}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end">{escape(labels[i])}</text>'
        )
        for j, v in enumerate(row):
            shade = int(245 - 190 * (v / peak))
            fill = f"rgb({shade},{shade + 5 if shade < 250 else 250},255)"
            body.append(
                f'<rect x="{left + cell * j}" y="{top + cell * i}" width="{cell - 2}" height="{cell - 2}" fill="{fill}" stroke="{"#2ca02c" if i == j else "#ccc"}">'
                f"<title>{escape(labels[i])} -> {escape(labels[j])}: {v}</title></rect>"
            )
            body.append(
                f'<text x="{left + cell * j + cell / 2 - 1}" y="{top + cell * i + cell / 2 + 4}" text-anchor="middle">{_fmt(v)}</text>'
            )
    return _svg(body, title, height=size_h, width=size_w)
