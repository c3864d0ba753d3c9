"""Compare runs: their loss curves overlaid (the report's SVG line chart), the config keys that
differ, and the metric and behaviour scores each run's directory holds, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunelab import rundir
from tunelab.report.svg import line_chart


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else key))
    return out


def _scores(run_dir: Path) -> dict[str, Any]:
    """One row per score, from the run directory's files only:
    summary.json (steps, final validation loss, speed); metrics.jsonl's validation metrics at the
    last evaluation (loss, the behaviour_* rates train.behaviour_eval logs, DPO's reward
    accuracy); scores.json of `tunelab eval RUN_DIR` (eval.*, behaviour included); adherence.json
    of `tunelab adherence RUN_DIR` (a bake's pass rates per condition and rule)."""
    out: dict[str, Any] = {}
    if (run_dir / rundir.SUMMARY).exists():
        summary = rundir.read_json(run_dir / rundir.SUMMARY)
        out.update(
            {
                "steps": summary.get("steps"),
                "final_val_loss": summary.get("final_val_loss"),
                "tokens_per_s": round(summary.get("throughput", {}).get("tokens_per_s", 0), 1),
            }
        )
    val = {
        row["name"]: row for row in rundir.read_metrics(run_dir, split="val")
    }  # step order: the last evaluation wins
    out.update({f"val.{name}": round(row["value"], 4) for name, row in sorted(val.items())})
    if val:
        out["val.step"] = max(row["step"] for row in val.values())
    if (run_dir / rundir.SCORES).exists():
        out.update({f"eval.{k}": v for k, v in _flat(rundir.read_json(run_dir / rundir.SCORES)).items() if _number(v)})
    if (run_dir / rundir.ADHERENCE).exists():
        conditions = rundir.read_json(run_dir / rundir.ADHERENCE).get("conditions", {})
        out.update(
            {
                f"adherence.{k}": v
                for k, v in _flat(conditions).items()
                if _number(v) and k.endswith(("overall", "pass_rate"))
            }
        )
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    series: dict[str, list[tuple[float, float]]] = {}
    configs, scores = {}, {}
    for job in jobs:
        label = job["id"][-8:]
        run_dir = Path(job["run_dir"])
        for split in ("train", "val"):
            points = [(r["step"], r["value"]) for r in rundir.read_metrics(run_dir, name="loss", split=split)]
            if points:
                series[f"{label} {split}"] = points
        configs[job["id"]] = _flat(yaml.safe_load(job["config"]))
        scores[job["id"]] = _scores(run_dir)
    keys = sorted({k for c in configs.values() for k in c})
    # Paths always differ (each job has its own files and run dir); they say nothing about the runs.
    differ = [
        k
        for k in keys
        if len({repr(c.get(k)) for c in configs.values()}) > 1 and k not in ("data.train", "data.val", "output.dir")
    ]
    return {
        "chart": line_chart(series, "loss") if series else "",
        "config_diff": {k: {j: configs[j].get(k) for j in configs} for k in differ},
        "scores": scores,
    }
