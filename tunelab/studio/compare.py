"""Compare runs: their loss curves overlaid (the report's SVG line chart), the config keys that
differ, and the scores each run wrote (summary.json, scores.json), side by side."""

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
    out: dict[str, Any] = {}
    if (run_dir / rundir.SUMMARY).exists():
        summary = rundir.read_json(run_dir / rundir.SUMMARY)
        out.update({"steps": summary.get("steps"), "final_val_loss": summary.get("final_val_loss"),
                    "tokens_per_s": round(summary.get("throughput", {}).get("tokens_per_s", 0), 1)})
    if (run_dir / rundir.SCORES).exists():
        out.update({k: v for k, v in _flat(rundir.read_json(run_dir / rundir.SCORES)).items() if isinstance(v, (int, float))})
    return out


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
    differ = [k for k in keys if len({repr(c.get(k)) for c in configs.values()}) > 1 and k not in ("data.train", "data.val", "output.dir")]
    return {"chart": line_chart(series, "loss") if series else "",
            "config_diff": {k: {j: configs[j].get(k) for j in configs} for k in differ},
            "scores": scores}
