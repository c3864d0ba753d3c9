"""The HTML shell: inline CSS and a small inline script (sortable tables); nothing is fetched."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:24px;margin:8px 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}
.meta{color:#555}.note{color:#666;font-style:italic}
table{border-collapse:collapse;background:#fff;margin:6px 0 12px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;cursor:pointer;user-select:none}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.best td{background:#fff4d6}tr.PRUNED td{color:#888}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
svg.chart{font:11px system-ui,sans-serif;max-width:100%;height:auto}svg .axis{font-weight:600}
.pair{display:grid;grid-template-columns:1fr 1fr 1fr;gap:8px;margin:8px 0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px}
.pair .ctx{grid-column:1/4;color:#444;white-space:pre-wrap;font-size:13px}
.reply{white-space:pre-wrap;border-left:3px solid #ccc;padding-left:6px}.reply.ok{border-color:#2ca02c}.reply.bad{border-color:#d62728}
pre{background:#fff;border:1px solid #ddd;padding:8px;overflow:auto;font-size:12px}
"""

# Click a header to sort its table (numbers numerically); the page works without it.
JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.sort !== 'asc';
    rows.sort(function (a, b) {
      var x = a.cells[th.cellIndex].textContent, y = b.cells[th.cellIndex].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? cmp : -cmp;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    th.dataset.sort = asc ? 'asc' : 'desc';
  });
});
"""


def fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    row_classes: Sequence[str] | None = None,
    sortable: bool = False,
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{escape(row_classes[i])}"' if row_classes and row_classes[i] else ""
        cells = "".join(
            f'<td class="num">{escape(fmt(v))}</td>'
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{escape(fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table{' class=sortable' if sortable else ''}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def note(text: str) -> str:
    return f'<p class="note">{escape(text)}</p>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>{''.join(parts)}</section>"


def shell(title: str, body: str, *, css: str = "", script: str = "", head: str = "") -> str:
    """The one HTML document every page of ours is built in: `body` (HTML) under `title`, with
    inline `css` and `script` (nothing is fetched) and any extra `head` markup."""
    style = f"<style>{css}</style>" if css else ""
    js = f"<script>{script}</script>" if script else ""
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<meta name=viewport content='width=device-width, initial-scale=1'><title>{escape(title)}</title>"
        f"{head}{style}</head><body>{body}{js}</body></html>\n"
    )


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    """A report page: heading, subtitle and sections in the report's style, with sortable tables."""
    body = f"<main><h1>{escape(title)}</h1><p class=meta>{escape(subtitle)}</p>{''.join(sections)}</main>"
    return shell(title, body, css=CSS, script=JS)
