"""Appropriateness and correctness of predicted replies against reference replies (or the
generator's expectations, see `expected.py`), overall, per act and as a confusion matrix."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunelab.eval.behaviour.acts import ACTS, LABELS, classify
from tunelab.eval.behaviour.expected import judge_expected
from tunelab.eval.behaviour.lexicon import Lexicon


def _loose(arguments: str) -> Any:
    """Arguments with every string value case-folded and whitespace-collapsed ("Latte " == "latte")."""

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return " ".join(value.casefold().split())
        if isinstance(value, list):
            return [norm(v) for v in value]
        if isinstance(value, dict):
            return {k: norm(v) for k, v in value.items()}
        return value

    try:
        return norm(json.loads(arguments))
    except json.JSONDecodeError:
        return arguments


@dataclass
class PairScore:
    reference_act: str
    predicted_act: str
    appropriate: bool
    correct: bool
    detail: dict[str, Any] = field(default_factory=dict)


def score_pair(
    prediction: Any,
    reference: Any,
    missing: Sequence[str] | None = None,
    lexicon: Lexicon | None = None,
    expected: Mapping[str, Any] | None = None,
) -> PairScore:
    """Appropriateness and correctness of one predicted reply against its reference, or, when the
    data's generator recorded what the turn must do (`expected`), by that record: the act it
    names, and the strict verdict of `judge_expected` as correctness."""
    pred, ref = classify(prediction, lexicon), classify(reference, lexicon)
    if expected is not None:
        verdict = judge_expected(prediction, expected, lexicon)
        return PairScore(
            expected["act"], pred.act, pred.act == expected["act"], verdict.right, {"reason": verdict.reason}
        )
    appropriate = pred.act == ref.act
    detail: dict[str, Any] = {}
    correct = appropriate
    if ref.act == "ask":
        wanted = tuple(missing) if missing else ((ref.slot,) if ref.slot else ())
        detail = {"asked": pred.slot, "wanted": list(wanted)}
        correct = appropriate and (not wanted or pred.slot in wanted)
    elif ref.act == "confirm":
        absent = sorted(set(ref.mentions) - set(pred.mentions))
        detail = {"missing_mentions": absent}
        correct = appropriate and not absent
    elif ref.act == "tool_call":
        name_ok = [n for n, _ in pred.tool_calls] == [n for n, _ in ref.tool_calls]
        args_ok = name_ok and pred.tool_calls == ref.tool_calls
        loose_ok = name_ok and [_loose(a) for _, a in pred.tool_calls] == [_loose(a) for _, a in ref.tool_calls]
        detail = {"name_correct": name_ok, "args_correct": args_ok, "args_normalised_correct": loose_ok}
        correct = args_ok
    return PairScore(ref.act, pred.act, appropriate, correct, detail)


def _rate(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def score_pairs(
    predictions: Sequence[Any],
    references: Sequence[Any],
    missing: Sequence[Sequence[str] | None] | None = None,
    lexicon: Lexicon | None = None,
    expected: Sequence[Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """Overall and per-act appropriateness/correctness, tool-call accuracies and a confusion
    matrix (rows: reference act, columns: predicted act, over `LABELS`)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    for name, given in (("missing-slot", missing), ("expected", expected)):
        if given is not None and len(given) != len(references):
            raise ValueError(f"{len(given)} {name} entries but {len(references)} references")
    scores = [
        score_pair(p, r, missing[i] if missing else None, lexicon, expected[i] if expected else None)
        for i, (p, r) in enumerate(zip(predictions, references))
    ]
    per_act = {}
    for act in ACTS:
        rows = [s for s in scores if s.reference_act == act]
        per_act[act] = {
            "n": len(rows),
            "appropriateness": _rate([s.appropriate for s in rows]),
            "correctness": _rate([s.correct for s in rows]),
        }
    calls = [s for s in scores if s.reference_act == "tool_call"]
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = [[0] * len(LABELS) for _ in LABELS]
    for s in scores:
        matrix[index[s.reference_act]][index[s.predicted_act]] += 1
    return {
        "n": len(scores),
        "appropriateness": _rate([s.appropriate for s in scores]),
        "correctness": _rate([s.correct for s in scores]),
        "per_act": per_act,
        "tool_call": {
            "n": len(calls),
            "name_accuracy": _rate([s.detail.get("name_correct", False) for s in calls]),
            "args_exact_accuracy": _rate([s.detail.get("args_correct", False) for s in calls]),
            "args_normalised_accuracy": _rate([s.detail.get("args_normalised_correct", False) for s in calls]),
        },
        "predicted_acts": dict(Counter(s.predicted_act for s in scores)),
        "confusion": {"labels": list(LABELS), "rows": "reference", "columns": "prediction", "matrix": matrix},
    }
