"""The studio's evaluation worker: `python -m tunelab.studio.evaluate EVAL_DIR`, one subprocess per
evaluation (its own process group, as a training job), started by studio/evaluations.py.

It reads EVAL_DIR/request.json (the held-out file, one or two models, the generation settings),
runs `tunelab eval`'s own function (`tunelab.eval.runner.run_eval`, so the one behaviour judge
decides every verdict) once per model into EVAL_DIR/side-<i>/, and writes EVAL_DIR/evaluation.json:
per model the overall and per-act rates with 95% Wilson intervals and the confusion matrix of
acts, then every context's verdicts, model beside model. Nothing here judges a reply.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from tunelab import rundir

REQUEST, STATE, RESULT, LOG = "request.json", "state.json", "evaluation.json", "evaluate.log"
RATES = ("appropriateness", "correctness")
VERDICT_KEYS = ("act", "reference_act", "appropriate", "correct")  # the rest of `behaviour` is the reason


def side_dir(folder: Path, index: int) -> Path:
    return folder / f"side-{index}"


def rate(value: float | None, n: int) -> dict[str, Any]:
    """A rate of n contexts with its 95% Wilson interval; `k` is the count the judge's rate stands for."""
    from tunelab.eval.metrics import wilson

    if value is None or n == 0:
        return {"rate": None, "k": 0, "n": n, "ci95": None}
    k = round(value * n)
    low, high = wilson(k, n)
    return {"rate": value, "k": k, "n": n, "ci95": [low, high] if not math.isnan(low) else None}


def side_summary(name: str, label: str, scores: dict[str, Any]) -> dict[str, Any]:
    """One model's behaviour as scores.json of `tunelab eval` holds it, with intervals added."""
    behaviour = scores["behaviour"]
    n = behaviour["n"]
    return {
        "model": name,
        "label": label,
        "n": n,
        **{what: rate(behaviour[what], n) for what in RATES},
        "per_act": {
            act: {"n": per["n"], **{what: rate(per[what], per["n"]) for what in RATES}}
            for act, per in behaviour["per_act"].items()
            if per["n"]
        },
        "predicted_acts": behaviour["predicted_acts"],
        "confusion": behaviour["confusion"],
        "tool_call": behaviour["tool_call"],
        "metrics": scores["metrics"],
    }


def _last_user(context: list[dict[str, Any]]) -> str:
    for message in reversed(context):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def verdicts(sides: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Every context's verdicts, one entry per model: the reply, its act, and the judge's reason
    (for generator data its `reason`; otherwise what it compared: the slot asked, missing mentions,
    the tool call's name and arguments)."""
    out = []
    for i, first in enumerate(sides[0]):
        out.append(
            {
                "index": i,
                "conversation_id": first["conversation_id"],
                "turn_index": first["turn_index"],
                "user": _last_user(first["context"]),
                "reference": first["reference"],
                "reference_act": first["behaviour"]["reference_act"],
                "replies": [
                    {
                        "prediction": rows[i]["prediction"],
                        "act": rows[i]["behaviour"]["act"],
                        "appropriate": rows[i]["behaviour"]["appropriate"],
                        "correct": rows[i]["behaviour"]["correct"],
                        "reason": {k: v for k, v in rows[i]["behaviour"].items() if k not in VERDICT_KEYS},
                    }
                    for rows in sides
                ],
            }
        )
    return out


def run(folder: Path) -> dict[str, Any]:
    from tunelab.eval.runner import run_eval
    from tunelab.generation.replies import GenerationSettings

    request = rundir.read_json(folder / REQUEST)
    settings = GenerationSettings(**request["settings"])
    summaries, rows = [], []
    for i, side in enumerate(request["sides"]):
        out = side_dir(folder, i)
        # A side finished before a server restart is not generated again.
        if not (out / rundir.SCORES).exists():
            rundir.write_json(folder / STATE, {"side": i + 1, "of": len(request["sides"]), "model": side["model"]})
            run_eval(
                side["spec"],
                request["data"],
                out_dir=out,
                turns=request["turns"],
                settings=settings,
                limit=request["limit"],
                semantic=False,
                progress=False,
            )
        summary = side_summary(side["model"], side["label"], rundir.read_json(out / rundir.SCORES))
        summary["scores_file"] = f"{out.name}/{rundir.SCORES}"
        summaries.append(summary)
        rows.append(rundir.read_jsonl(out / rundir.PREDICTIONS))
    result = {
        "object": "tunelab.evaluation.result",
        "evaluation_id": request["id"],
        "fine_tuning_job_id": request["fine_tuning_job_id"],
        "file": request["file"],
        "turns": request["turns"],
        "limit": request["limit"],
        "settings": settings.to_dict(),
        "judge": "tunelab.eval.behaviour (the judge of `tunelab eval`); intervals: 95% Wilson",
        "models": summaries,
        "verdicts": verdicts(rows),
    }
    rundir.write_json(folder / RESULT, result)
    return result


def main(argv: list[str]) -> int:
    from tunelab.eval.runner import EvalError

    if len(argv) != 1:
        print("usage: python -m tunelab.studio.evaluate EVAL_DIR", file=sys.stderr)
        return 2
    try:
        run(Path(argv[0]))
    except EvalError as exc:  # bad held-out data or a context too long: the user's to fix
        print(f"error: {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
