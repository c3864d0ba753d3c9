"""Report sections for a sweep directory (sweep.json): trials, parameter plots, importances, and why
the chosen parameters were chosen (best objective, how its neighbours did, sensitivity per parameter)."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from tunelab.report import svg
from tunelab.report.page import fmt, note, section, table

NEAR = 0.25  # a trial is "near" the chosen value when within this share of the searched range


def _position(value: Any, spec: dict[str, Any]) -> float | None:
    """A numeric value's place in its searched range, 0..1 (log-scaled when the search was)."""
    if spec["type"] == "categorical" or value is None:
        return None
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log") and low > 0:
        low, high, value = math.log10(low), math.log10(high), math.log10(float(value))
    return 0.0 if high == low else (float(value) - low) / (high - low)


def _distance(a: dict[str, Any], b: dict[str, Any], space: dict[str, Any]) -> float:
    parts = []
    for key, spec in space.items():
        pa, pb = _position(a.get(key), spec), _position(b.get(key), spec)
        parts.append(float(a.get(key) != b.get(key)) if pa is None or pb is None else pa - pb)
    return math.sqrt(sum(p * p for p in parts) / max(1, len(parts)))


def _worse(delta: float, direction: str) -> float:
    """How much worse than the best a value is (positive = worse), whatever the direction."""
    return delta if direction == "minimize" else -delta


def explain(sweep: dict[str, Any]) -> dict[str, Any]:
    """Why the best trial's parameters: its neighbours' results and a sensitivity per parameter."""
    best, direction, space = sweep["best"], sweep["objective"]["direction"], sweep["space"]
    done = [t for t in sweep["trials"] if t["state"] == "COMPLETE" and t["value"] is not None]
    others = [t for t in done if t["number"] != best["number"]]
    neighbours = sorted(others, key=lambda t: _distance(t["params"], best["params"], space))[:3]
    sensitivity = []
    for key, spec in space.items():
        chosen = best["params"].get(key)
        if spec["type"] == "categorical":
            away = [t for t in others if t["params"].get(key) != chosen]
            what = "trials with another choice"
        else:
            here = _position(chosen, spec)
            away = [t for t in others if abs((_position(t["params"].get(key), spec) or 0) - (here or 0)) > NEAR]
            what = f"trials more than {NEAR:.0%} of the range away"
        best_away = min(away, key=lambda t: _worse(t["value"] - best["value"], direction)) if away else None
        cost = _worse(best_away["value"] - best["value"], direction) if best_away else None
        sensitivity.append(
            {
                "param": key,
                "chosen": chosen,
                "importance": sweep.get("importances", {}).get(key),
                "n_away": len(away),
                "best_away": best_away["value"] if best_away else None,
                "cost": cost,
                "what": what,
            }
        )
    return {"best": best, "n_complete": len(done), "neighbours": neighbours, "sensitivity": sensitivity}


def _reason_text(row: dict[str, Any], metric: str) -> str:
    if row["cost"] is None:
        return f"no {row['what']} were run, so the objective's sensitivity to it is unknown"
    if row["cost"] <= 0:
        return f"{row['what']} did as well ({metric} {fmt(row['best_away'])}): the objective is flat in this parameter here"
    return (
        f"the best of {row['n_away']} {row['what']} reached {metric} {fmt(row['best_away'])}, {row['cost']:.4g} worse"
    )


def chosen_section(sweep: dict[str, Any]) -> str:
    if not sweep.get("best"):
        return section("Chosen parameters", note("No complete trial yet."))
    why = explain(sweep)
    metric, direction = sweep["objective"]["metric"], sweep["objective"]["direction"]
    best = why["best"]
    head = note(
        f"Trial {best['number']} has the best {metric} ({direction}) of {why['n_complete']} complete trials: {best['value']:.4f}."
    )
    rows = [(s["param"], s["chosen"], s["importance"], _reason_text(s, metric)) for s in why["sensitivity"]]
    params = table(["parameter", "chosen", "importance", "why (sensitivity)"], rows)
    if why["neighbours"]:
        nb_rows = [
            (
                t["number"],
                ", ".join(f"{k}={fmt(v)}" for k, v in t["params"].items()),
                t["value"],
                _worse(t["value"] - best["value"], direction),
            )
            for t in why["neighbours"]
        ]
        neighbours = "<h3>Nearest trials in parameter space</h3>" + table(
            ["trial", "parameters", metric, "worse than best by"], nb_rows
        )
    else:
        neighbours = note("No other complete trial to compare with.")
    return section("Chosen parameters and why", head, params, neighbours)


def trials_section(sweep: dict[str, Any]) -> str:
    keys = list(sweep["space"])
    best_no = sweep["best"]["number"] if sweep.get("best") else None
    rows, classes = [], []
    for t in sweep["trials"]:
        rows.append(
            [
                t["number"],
                t["state"],
                *[t["params"].get(k) for k in keys],
                t["value"],
                t.get("val_loss"),
                len(t.get("intermediate") or {}),
                t.get("duration_s"),
            ]
        )
        classes.append("best" if t["number"] == best_no else t["state"])
    counts = {}
    for t in sweep["trials"]:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    summary = note(
        "; ".join(f"{n} {s.lower()}" for s, n in counts.items()) + f" (target {sweep.get('target_trials')} finished)"
    )
    return section(
        "Trials",
        summary,
        table(
            ["trial", "state", *keys, sweep["objective"]["metric"], "val loss", "evaluations", "seconds"],
            rows,
            classes,
            sortable=True,
        ),
    )


def params_section(sweep: dict[str, Any]) -> str:
    done = [t for t in sweep["trials"] if t["state"] == "COMPLETE" and t["value"] is not None]
    if not done:
        return section("Each parameter against the objective", note("No complete trial yet."))
    best_no = sweep["best"]["number"] if sweep.get("best") else None
    metric = sweep["objective"]["metric"]
    charts = []
    for key, spec in sweep["space"].items():
        points = [
            {
                "x": t["params"][key],
                "y": t["value"],
                "highlight": t["number"] == best_no,
                "label": f"trial {t['number']}: {key}={fmt(t['params'][key])}, {metric}={t['value']:.4f}",
            }
            for t in done
            if key in t["params"]
        ]
        if not points:
            continue
        chart = svg.scatter(
            points,
            f"{key} vs {metric}",
            key,
            metric,
            log_x=bool(spec.get("log")),
            categories=spec.get("choices") if spec["type"] == "categorical" else None,
        )
        charts.append(f'<div class="card"><h3>{escape(key)}</h3>{chart}</div>')
    return section(
        "Each parameter against the objective",
        note("red: the chosen trial; hover a point for its values"),
        f'<div class="grid">{"".join(charts)}</div>',
    )


def importance_section(sweep: dict[str, Any]) -> str:
    values = sweep.get("importances") or {}
    if not values:
        return section(
            "Parameter importances", note(f"Not available: {sweep.get('importances_note') or 'not computed'}.")
        )
    chart = svg.bars(values, "parameter importances")
    return section(
        "Parameter importances",
        note(
            "Optuna's fANOVA importances: the share of the objective's variance each parameter explains across complete trials."
        ),
        f'<div class="card">{chart}</div>',
    )


def curves_section(sweep: dict[str, Any]) -> str:
    series = {
        f"trial {t['number']}{' (pruned)' if t['state'] == 'PRUNED' else ''}": [
            (float(s), v) for s, v in t["intermediate"].items()
        ]
        for t in sweep["trials"]
        if t.get("intermediate")
    }
    if not series:
        return section(
            "Validation loss of every trial",
            note("No intermediate validation losses were reported (pruning is off, or the objective is not val_loss)."),
        )
    return section(
        "Validation loss of every trial",
        note("the values the pruner judged trials on"),
        f'<div class="card">{svg.line_chart(series, "validation loss per trial", y_label="validation loss")}</div>',
    )


def sweep_sections(sweep: dict[str, Any]) -> list[str]:
    return [
        chosen_section(sweep),
        importance_section(sweep),
        params_section(sweep),
        curves_section(sweep),
        trials_section(sweep),
    ]
