"""`tunelab compare`: two models (or one model with and without a system prompt) on the same contexts.

Each side is evaluated as by `tunelab eval` into <out>/a and <out>/b. The sides are paired by
context, so the uncertainty of a difference comes from a paired bootstrap over contexts: a
delta whose 95% interval excludes zero is unlikely to be an accident of which contexts were
drawn. Writes <out>/compare.json; the contexts where the two replies' dialogue acts differ are
listed there too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.eval.contexts import Turns
from tunelab.eval.metrics import Delta, paired_bootstrap
from tunelab.eval.runner import EvalError, EvalResult, run_eval
from tunelab.generation.replies import GenerationSettings

COMPARE = "compare.json"
# Behaviour outcomes compared like the text metrics: 1 when the reply's act (and content) is right.
BEHAVIOUR_METRICS = ("appropriate", "correct")


@dataclass(frozen=True)
class Side:
    model: str
    system_prompt_file: str | None = None

    @property
    def label(self) -> str:
        prompt = f" + {Path(self.system_prompt_file).name}" if self.system_prompt_file else ""
        return f"{self.model}{prompt}"

    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label.replace(" + ", "+")).strip("_")[-60:]


@dataclass
class CompareResult:
    out_dir: Path
    a: EvalResult
    b: EvalResult
    deltas: dict[str, Delta]
    act_differences: list[dict[str, Any]]
    summary: dict[str, Any]


def paired_values(
    rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per metric, the A and B values of each context, matched by (conversation_id, turn_index)."""
    key = lambda r: (r["conversation_id"], r["turn_index"])  # noqa: E731
    by_key = {key(r): r for r in rows_b}
    if len(by_key) != len(rows_b) or {key(r) for r in rows_a} != set(by_key):
        raise EvalError("the two sides were not evaluated on the same contexts; cannot pair them")
    names = [n for n in rows_a[0]["scores"] if all(n in r["scores"] for r in (*rows_a, *rows_b))]
    out: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in names}
    if all("behaviour" in r for r in (*rows_a, *rows_b)):
        out.update({n: ([], []) for n in BEHAVIOUR_METRICS})
    for ra in rows_a:
        rb = by_key[key(ra)]
        for name, (va, vb) in out.items():
            if name in BEHAVIOUR_METRICS:
                va.append(float(ra["behaviour"][name]))
                vb.append(float(rb["behaviour"][name]))
            else:
                va.append(ra["scores"][name])
                vb.append(rb["scores"][name])
    return out


def _last_user(context: Sequence[dict[str, Any]]) -> str:
    return next((m.get("content", "") for m in reversed(context) if m.get("role") == "user"), "")


def act_differences(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contexts where A's and B's replies perform different dialogue acts (see tunelab.eval.behaviour)."""
    by_key = {(r["conversation_id"], r["turn_index"]): r for r in rows_b}
    out = []
    for ra in rows_a:
        rb = by_key[(ra["conversation_id"], ra["turn_index"])]
        act_a, act_b = ra["behaviour"]["act"], rb["behaviour"]["act"]
        if act_a != act_b:
            out.append(
                {
                    "conversation_id": ra["conversation_id"],
                    "turn_index": ra["turn_index"],
                    "last_user": _last_user(ra["context"]),
                    "reference": ra["reference"],
                    "reference_act": ra["behaviour"]["reference_act"],
                    "a_act": act_a,
                    "a_prediction": ra["prediction"],
                    "b_act": act_b,
                    "b_prediction": rb["prediction"],
                }
            )
    return out


def run_compare(
    a: Side,
    b: Side,
    data: str | Path,
    *,
    out_dir: str | Path | None = None,
    turns: Turns = "all",
    settings: GenerationSettings = GenerationSettings(),
    limit: int | None = None,
    semantic: bool = True,
    n_resamples: int = 2000,
    seed: int = 0,
    progress: bool = True,
) -> CompareResult:
    if a == b:
        raise EvalError(f"A and B are the same ({a.label}); give a different model or system prompt")
    out = Path(out_dir) if out_dir is not None else Path("compare") / f"{a.slug()}__vs__{b.slug()}"
    common = dict(turns=turns, settings=settings, limit=limit, semantic=semantic, progress=progress)
    result_a = run_eval(
        a.model, data, out_dir=out / "a", system_prompt_file=a.system_prompt_file, description="A: generating", **common
    )
    result_b = run_eval(
        b.model, data, out_dir=out / "b", system_prompt_file=b.system_prompt_file, description="B: generating", **common
    )
    values = paired_values(result_a.rows, result_b.rows)
    deltas = {name: paired_bootstrap(va, vb, n_resamples=n_resamples, seed=seed) for name, (va, vb) in values.items()}
    differences = act_differences(result_a.rows, result_b.rows)
    summary = {
        "a": {"label": a.label, **asdict(a)},
        "b": {"label": b.label, **asdict(b)},
        "data": str(data),
        "n": len(result_a.rows),
        "turns": turns,
        "settings": settings.to_dict(),
        "meteor_variant": result_a.scores["meteor_variant"],
        "bootstrap": {
            "resamples": n_resamples,
            "confidence": 0.95,
            "seed": seed,
            "method": "paired percentile",
            "unit": "context",
        },
        "deltas": {name: {**asdict(d), "significant": d.significant} for name, d in deltas.items()},
        "act_differences": differences,
    }
    rundir.write_json(out / COMPARE, summary)
    return CompareResult(out, result_a, result_b, deltas, differences, summary)


def render_table(result: CompareResult) -> Any:
    """A rich table: metric, A, B, delta and its 95% CI (bold when the CI excludes zero)."""
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(
            f"A = {result.summary['a']['label']}   B = {result.summary['b']['label']}   "
            f"(n = {result.summary['n']} contexts)"
        )
    )
    for column in ("metric", "A", "B", "B - A", "95% CI"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for name, d in result.deltas.items():
        style = "bold" if d.significant else ""
        table.add_row(
            name, f"{d.a:.3f}", f"{d.b:.3f}", f"{d.delta:+.3f}", f"[{d.low:+.3f}, {d.high:+.3f}]", style=style
        )
    return table


def render_act_differences(result: CompareResult, limit: int = 10) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"Contexts where the acts differ: {len(result.act_differences)} of {result.summary['n']}"
        + (f" (first {limit})" if len(result.act_differences) > limit else "")
    )
    for column in ("conversation:turn", "customer said", "reference", "A", "B"):
        table.add_column(column, overflow="fold")
    for row in result.act_differences[:limit]:
        # Text cells: replies and "[act]" labels must not be read as rich markup.
        cells = (
            f"{row['conversation_id']}:{row['turn_index']}",
            row["last_user"][:80],
            f"[{row['reference_act']}] {row['reference'][:60]}",
            f"[{row['a_act']}] {row['a_prediction'][:60]}",
            f"[{row['b_act']}] {row['b_prediction'][:60]}",
        )
        table.add_row(*(Text(c) for c in cells))
    return table
