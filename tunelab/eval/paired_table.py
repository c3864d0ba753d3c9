"""Base vs tuned, per behaviour metric and reference act, paired by context: each side's rate with
its 95% Wilson interval and the delta with its 95% paired-bootstrap interval; and the same table
rebuilt from a finished run's saved replies (after a change to the scoring or the table)."""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tunelab.eval.behaviour import ACTS, reply_form
from tunelab.eval.metrics import paired_bootstrap, wilson
from tunelab.rundir import PREDICTIONS, read_json, write_json
from tunelab.textio import InputFileError, RowError, iter_lines, loads_row


class SavedRunError(ValueError):
    """A saved run cannot be retabled; the message names the file (and line and field)."""


Flag = str | Callable[[dict], bool]  # a key of the row's `behaviour`, or a test of the row


def _paired(rows_a: list[dict], rows_b: list[dict], flag: Flag, keep: Any = None) -> tuple[list[float], list[float]]:
    by_key = {(r["conversation_id"], r["turn_index"]): r for r in rows_b}

    def value(row: dict) -> float:
        return float(bool(flag(row) if callable(flag) else row["behaviour"].get(flag, False)))

    a, b = [], []
    for ra in rows_a:
        rb = by_key[(ra["conversation_id"], ra["turn_index"])]
        if keep is None or keep(ra):
            a.append(value(ra))
            b.append(value(rb))
    return a, b


@functools.cache
def _form(text: str) -> str:
    return reply_form(text)


def _same_form(row: dict) -> bool:
    return _form(row["prediction"]) == _form(row["reference"])


def _text_turn(form: str) -> Callable[[dict], bool]:
    return lambda r: _form(r["reference"]) == form


def _specs() -> list[tuple[str, str, Callable[[dict], bool] | None]]:
    """(metric, behaviour flag, which rows count): overall, per reference act, and the tool-call details."""

    def ref(act: str) -> Callable[[dict], bool]:
        return lambda r: r["behaviour"]["reference_act"] == act

    specs: list[tuple[str, str, Any]] = [("appropriateness", "appropriate", None), ("correctness", "correct", None)]
    for act in ACTS:
        specs += [(f"{act}: appropriateness", "appropriate", ref(act)), (f"{act}: correctness", "correct", ref(act))]
    return specs + [
        ("tool_call: name accuracy", "name_correct", ref("tool_call")),
        ("tool_call: args accuracy (exact)", "args_correct", ref("tool_call")),
        ("tool_call: args accuracy (normalised)", "args_normalised_correct", ref("tool_call")),
        # Text turns, question or statement (`reply_form`): does the reply take the reference's form?
        ("text: question recall", _same_form, _text_turn("question")),
        ("text: statement recall", _same_form, _text_turn("statement")),
    ]


def balanced_accuracy_row(base: list[dict], tuned: list[dict], n_resamples: int, seed: int) -> dict[str, Any]:
    """The mean of question recall and statement recall over text turns, each side with a 95%
    bootstrap interval (text turns resampled with replacement), and the paired delta's."""
    by_key = {_context(r): r for r in tuned}
    pairs = [(r, by_key[_context(r)]) for r in base if _form(r["reference"]) in ("question", "statement")]

    def balanced(chosen: list[tuple[dict, dict]], side: int) -> float:
        recalls = []
        for form in ("question", "statement"):
            kept = [p[side] for p in chosen if _form(p[side]["reference"]) == form]
            if kept:
                recalls.append(sum(_same_form(r) for r in kept) / len(kept))
        return sum(recalls) / len(recalls) if recalls else float("nan")

    if not pairs:
        return {"metric": "text: balanced accuracy", "n": 0, "base": None, "tuned": None, "delta": None, "ci95": None}
    rng = random.Random(seed)
    draws = []
    for _ in range(n_resamples):
        chosen = rng.choices(pairs, k=len(pairs))
        draws.append((balanced(chosen, 0), balanced(chosen, 1)))

    def interval(values: list[float]) -> list[float]:
        values = sorted(values)
        return [round(values[int(0.025 * len(values))], 3), round(values[int(0.975 * len(values)) - 1], 3)]

    a, b = balanced(pairs, 0), balanced(pairs, 1)
    return {
        "metric": "text: balanced accuracy",
        "n": len(pairs),
        "base": round(a, 3),
        "tuned": round(b, 3),
        "base_ci95": interval([x for x, _ in draws]),
        "tuned_ci95": interval([y for _, y in draws]),
        "delta": round(b - a, 3),
        "ci95": interval([y - x for x, y in draws]),
    }


def behaviour_table(base: Any, tuned: Any, n_resamples: int, seed: int) -> list[dict[str, Any]]:
    """Rows: metric, n, base and tuned with their 95% Wilson intervals, delta with its 95%
    paired-bootstrap interval over contexts. `base` and `tuned` have `.rows` (eval predictions)."""
    table = []
    for name, flag, keep in _specs():
        a, b = _paired(base.rows, tuned.rows, flag, keep)
        if not a:
            table.append({"metric": name, "n": 0, "base": None, "tuned": None, "delta": None, "ci95": None})
            continue
        d = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
        table.append(
            {
                "metric": name,
                "n": d.n,
                "base": round(d.a, 3),
                "tuned": round(d.b, 3),
                "base_ci95": [round(x, 3) for x in wilson(int(sum(a)), len(a))],
                "tuned_ci95": [round(x, 3) for x in wilson(int(sum(b)), len(b))],
                "delta": round(d.delta, 3),
                "ci95": [round(d.low, 3), round(d.high, 3)],
            }
        )
    return table + [balanced_accuracy_row(base.rows, tuned.rows, n_resamples, seed)]


def format_table(table: list[dict[str, Any]]) -> str:
    """The table as Markdown."""

    def rate(row: dict[str, Any], side: str) -> str:
        low, high = row.get(f"{side}_ci95") or (float("nan"), float("nan"))
        return f"{row[side]:.3f} [{low:.2f}, {high:.2f}]"

    lines = [
        f"| {'metric':<38} | {'n':>4} | {'base [95% CI]':>19} | {'tuned [95% CI]':>19} | {'delta':>7} "
        f"| 95% CI of delta |",
        f"|{'-' * 40}|{'-' * 6}|{'-' * 21}|{'-' * 21}|{'-' * 9}|{'-' * 17}|",
    ]
    for row in table:
        if row["n"] == 0:
            lines.append(f"| {row['metric']:<38} | {0:>4} | {'-':>19} | {'-':>19} | {'-':>7} | {'-':>15} |")
            continue
        ci = f"[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]"
        lines.append(
            f"| {row['metric']:<38} | {row['n']:>4} | {rate(row, 'base'):>19} | {rate(row, 'tuned'):>19} | "
            f"{row['delta']:>+7.3f} | {ci:>15} |"
        )
    return "\n".join(lines)


def retable(out: Path, n_resamples: int, seed: int) -> dict[str, Any]:
    """Rebuild the table in `out`/results.json from the saved replies in `out`/eval_base and
    `out`/eval_tuned, keeping everything else in it; the run's own seed wins over `seed`."""
    try:
        results = read_json(out / "results.json")
    except (OSError, ValueError) as exc:
        raise SavedRunError(f"{out / 'results.json'}: cannot be read as a finished run's results ({exc})") from None
    base, tuned = (read_saved_replies(out / side / PREDICTIONS) for side in ("eval_base", "eval_tuned"))
    missing = {_context(r) for r in base} - {_context(r) for r in tuned}
    if missing:
        raise SavedRunError(
            f"{out / 'eval_tuned' / PREDICTIONS}: no reply for {len(missing)} context(s) the base side has, "
            f"e.g. {sorted(missing)[0]}"
        )
    results["table"] = behaviour_table(
        SimpleNamespace(rows=base), SimpleNamespace(rows=tuned), n_resamples, results.get("seed", seed)
    )
    write_json(out / "results.json", results)
    return results


def _context(row: dict[str, Any]) -> tuple[str, int]:
    return row["conversation_id"], row["turn_index"]


def read_saved_replies(path: Path) -> list[dict[str, Any]]:
    """One side's saved replies. Any bad line stops it with file:line: field: reason, since a table
    over only some of the contexts would not be the run's table."""
    rows = []
    try:
        for number, raw in iter_lines(path):
            if not raw.strip():
                continue
            try:
                row = loads_row(raw)
                for name, kind in (("conversation_id", str), ("turn_index", int), ("behaviour", dict)):
                    if not isinstance(row, dict) or not isinstance(row.get(name), kind):
                        raise RowError(name, f"missing, or not of type {kind.__name__}")
            except RowError as exc:
                raise SavedRunError(f"{path}:{number}: {exc}") from None
            rows.append(row)
    except InputFileError as exc:
        raise SavedRunError(str(exc)) from None
    return rows
