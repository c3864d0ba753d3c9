"""Run directories and the self-contained HTML lab report (plots inlined as base64 PNG).

Layout of one experiment's run directory:
    scores.json     the numbers (and the scale they were measured at)
    metrics.jsonl   every evaluation row behind the curves
    plots/*.png     the figures
    report.html     the page a person reads; opens offline, no CDN
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from knowledge_lab.experiments import Result
from knowledge_lab.plots import png_bytes
from tunelab import rundir
from tunelab.report.page import shell

STYLE = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.note{background:#fff8e1;padding:.5em 1em;border-left:4px solid #f0b000}code{background:#f4f4f4;padding:0 3px}"""

ABOUT = {
    "phases": "Attribute loss falls fast to the no-knowledge baseline (the model learns which values exist), "
    "sits on a plateau there, then drops below it as individual facts emerge.",
    "plateau": "Paper: the plateau lengthens with the number of individuals N, about as N^0.81.",
    "alpha": "Individuals drawn with P(i) ~ i^-alpha. Paper: moderate imbalance (alpha about 0.6-0.8) learns the "
    "most facts at a fixed budget; too much starves the rare individuals.",
    "curriculum": "Warm-up: a small subset of individuals first, then everyone uniformly. Paper: beats both "
    "uniform and the best alpha.",
    "hallucination": "Loss and confidence on individuals never seen in training. Paper: as knowledge emerges the "
    "model grows confident about unseen people too, and its loss on them rises above the baseline.",
    "finetune": "Fine-tuning the pre-trained model on new individuals. Paper: old knowledge is destroyed quickly; "
    "replaying old data only partly protects it.",
    "attention": "Training a fresh model whose attention probabilities are taken from a reference checkpoint. "
    "Paper: patterns from after the plateau shorten it, showing recall circuits form during the plateau.",
}


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return html.escape(json.dumps(v, default=str))
    return html.escape("—" if v is None else str(v))


def numbers_html(numbers: dict) -> str:
    parts, scalars = [], []
    for key, value in numbers.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            cols = list(value[0])
            head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in cols) + "</tr>" for r in value)
            parts.append(f"<h4>{html.escape(key)}</h4><table><tr>{head}</tr>{body}</table>")
        else:
            scalars.append(f"<tr><td>{html.escape(key)}</td><td>{_cell(value)}</td></tr>")
    return (f"<table>{''.join(scalars)}</table>" if scalars else "") + "".join(parts)


def section_html(result: Result, images: dict[str, bytes]) -> str:
    imgs = "".join(
        f'<p><img alt="{html.escape(k)}" src="data:image/png;base64,{base64.b64encode(b).decode()}"></p>'
        for k, b in images.items()
    )
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in result.notes)
    return (
        f"<h2>{html.escape(result.title)}</h2><p>{html.escape(ABOUT.get(result.name, ''))}</p>"
        f"{notes}{imgs}{numbers_html(result.numbers)}"
    )


def page(title: str, body: str, command: str) -> str:
    """The lab's page: heading, how to reproduce it and the paper, then `body`, in the lab's style."""
    return shell(
        title,
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Reproduce with <code>{html.escape(command)}</code>. Reference: Zucchet et al. 2025, "
        f"<i>How do language models learn facts? Dynamics, curricula and hallucinations</i> (arXiv:2503.21676).</p>"
        f"{body}",
        css=STYLE,
    )


def write_result(result: Result, out: Path, command: str, seconds: float) -> str:
    """Write one experiment's run directory; returns its HTML section for an index page."""
    images = {stem: png_bytes(fig) for stem, fig in result.figures.items()}
    for stem, data in images.items():
        rundir.write_bytes(out / "plots" / f"{stem}.png", data)
    rundir.write_json(out / rundir.SCORES, {**result.numbers, "notes": result.notes, "wall_seconds": seconds})
    rundir.write_jsonl(out / rundir.METRICS, result.curves)
    section = section_html(result, images) + f"<p>Wall time: {seconds:.0f} s (shared runs counted once).</p>"
    rundir.write_text(out / rundir.REPORT, page(f"Knowledge lab — {result.name}", section, command))
    return section
