"""Report sections for one run directory, each read from the run's own files (absent files are said so)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

import yaml

from tunelab import rundir
from tunelab.report import svg
from tunelab.report.page import fmt, note, section, table

BEFORE_AFTER = "before_after.jsonl"


def read_optional(run_dir: Path, name: str) -> Any:
    path = run_dir / name
    if not path.exists():
        return None
    if name.endswith(".jsonl"):
        return rundir.read_jsonl(path)
    if name.endswith(".yaml"):
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    return rundir.read_json(path)


def overview(run_dir: Path) -> str:
    config = read_optional(run_dir, rundir.CONFIG) or {}
    summary = read_optional(run_dir, rundir.SUMMARY) or {}
    model = config.get("model", {})
    rows = [
        ("base model", model.get("name")),
        ("adapter", model.get("adapter")),
        ("optimizer steps", summary.get("steps")),
        ("final validation loss", summary.get("final_val_loss")),
        ("best checkpoint", summary.get("best_checkpoint")),
        ("train / val examples", f"{summary.get('train_examples', '—')} / {summary.get('val_examples', '—')}"),
    ]
    throughput = summary.get("throughput") or {}
    if throughput:
        rows.append(
            (
                "training speed",
                f"{throughput.get('tokens_per_s', 0):.0f} tokens/s over {throughput.get('seconds', 0):.0f} s",
            )
        )
    parts = [table(["", "value"], rows)]
    if not summary:
        parts.append(note("summary.json is missing: the run has not finished (or was interrupted)."))
    if config:
        parts.append(
            f"<details><summary>resolved config.yaml</summary><pre>{escape(yaml.safe_dump(config, sort_keys=False))}</pre></details>"
        )
    return section("Run", *parts)


def data_section(run_dir: Path) -> str:
    report = read_optional(run_dir, rundir.DATA_REPORT)
    if not report:
        return section("Data", note("No data_report.json in this run directory."))
    files = table(
        ["file", "format", "read", "kept", "rejected"],
        [(f["path"], f["format"], f["read"], f["kept"], f["rejected"]) for f in report.get("files", [])],
    )
    rows = []
    for split in ("train", "val"):
        s = report.get(split) or {}
        if s.get("examples"):
            rows.append(
                (
                    split,
                    s["examples"],
                    s["tokens"]["mean"],
                    s["tokens"]["median"],
                    s["tokens"]["max"],
                    s["target_tokens"]["mean"],
                    s["tokens_per_epoch"],
                    s["target_share"],
                )
            )
        else:
            rows.append((split, 0, None, None, None, None, None, None))
    stats = table(
        ["split", "examples", "mean tokens", "median", "max", "mean target tokens", "tokens / epoch", "target share"],
        rows,
    )
    extra = note(
        f"duplicates removed: {report.get('duplicates_removed', 0)}; dropped as too long: {report.get('too_long_dropped')}; "
        f"history cut to fit {report.get('max_length')} tokens: {report.get('truncated_history')}"
    )
    hist = (report.get("train") or {}).get("histogram_tokens") or []
    chart = (
        svg.bars(
            {f"{b['from']}-{b['to']} tokens": b["count"] for b in hist},
            "training example lengths",
            "examples",
            keep_order=True,
        )
        if hist
        else note("no length histogram")
    )
    return section(
        "Data", files, stats, extra, "<h3>Training example length (tokens)</h3>", f'<div class="card">{chart}</div>'
    )


def curves_section(run_dir: Path) -> str:
    rows = rundir.read_metrics(run_dir)
    if not rows:
        return section("Training curves", note("No metrics.jsonl in this run directory."))
    series = {
        "train loss": [(r["step"], r["value"]) for r in rows if r["split"] == "train" and r["name"] == "loss"],
        "validation loss": [(r["step"], r["value"]) for r in rows if r["split"] == "val" and r["name"] == "loss"],
    }
    series = {k: v for k, v in series.items() if v}
    charts = [f'<div class="card">{svg.line_chart(series, "loss")}</div>'] if series else []
    lr = [(r["step"], r["value"]) for r in rows if r["name"] == "learning_rate"]
    if lr:
        charts.append(
            f'<div class="card">{svg.line_chart({"learning rate": lr}, "learning rate", y_label="learning rate")}</div>'
        )
    parts = [f'<div class="grid">{"".join(charts)}</div>']
    val = series.get("validation loss")
    if val:
        best = min(val, key=lambda p: p[1])
        parts.append(
            note(f"lowest validation loss {best[1]:.4f} at step {best[0]}; last {val[-1][1]:.4f} at step {val[-1][0]}")
        )
    return section("Training curves", *parts)


def _flat_numbers(prefix: str, node: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _flat_numbers(f"{prefix}.{k}" if prefix else k, v, out)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        out.append((prefix, node))


def eval_section(run_dir: Path) -> str:
    scores = read_optional(run_dir, rundir.SCORES)
    if not scores:
        return section(
            "Evaluation", note("No scores.json: run `tunelab eval RUN_DIR DATA` to measure generated replies.")
        )
    parts = [note(f"model {scores.get('model')} on {scores.get('data')} ({scores.get('n')} replies)")]
    metrics = [(k, v) for k, v in (scores.get("metrics") or {}).items()]
    if scores.get("corpus_bleu") is not None:
        metrics.append(("corpus_bleu", scores["corpus_bleu"]))
    if metrics:
        parts.append(table(["metric", "value"], metrics))
    behaviour = scores.get("behaviour")
    if behaviour:
        parts.append("<h3>Behaviour</h3>")
        head = [("appropriateness", behaviour.get("appropriateness")), ("correctness", behaviour.get("correctness"))]
        parts.append(table(["", "share"], head))
        per_act = behaviour.get("per_act") or {}
        if per_act:
            parts.append(
                table(
                    ["reference act", "n", "appropriateness", "correctness"],
                    [(a, v.get("n"), v.get("appropriateness"), v.get("correctness")) for a, v in per_act.items()],
                )
            )
        confusion = behaviour.get("confusion")
        if confusion and confusion.get("matrix"):
            parts.append("<h3>Confusion matrix of dialogue acts</h3>")
            parts.append(
                f'<div class="card">{svg.heatmap(confusion["labels"], confusion["matrix"], "behaviour confusion matrix", confusion.get("rows", "reference"), confusion.get("columns", "prediction"))}</div>'
            )
        else:
            parts.append(note("scores.json has no behaviour confusion matrix."))
    else:
        parts.append(note("scores.json has no behaviour scores."))
    return section("Evaluation", *parts)


def _context_text(context: Any) -> str:
    if isinstance(context, str):
        return context
    lines = []
    for m in (context or [])[-4:]:
        if isinstance(m, dict):
            lines.append(f"{m.get('role', '?')}: {m.get('content') or ''}")
        else:
            lines.append(str(m))
    return "\n".join(lines)


def _verdict(row: dict[str, Any], key: str) -> str:
    right = row.get(f"{key}_right")
    return "" if right is None else (" ok" if right else " bad")


def _reason(row: dict[str, Any], key: str) -> str:
    """The judge's reason for its verdict, when the row has one (the demo writes them)."""
    reason = row.get(f"{key}_reason")
    return f'<div class="note">{escape(str(reason))}</div>' if reason else ""


def before_after_section(run_dir: Path, limit: int = 12) -> str:
    rows = read_optional(run_dir, BEFORE_AFTER)
    if not rows:
        return section("Base vs tuned replies", note(f"No {BEFORE_AFTER} in this run directory (the demo writes one)."))
    cards = []
    for row in rows[:limit]:
        expected = row.get("expected")
        expected_text = (
            expected
            if isinstance(expected, str)
            else yaml.safe_dump(expected, default_flow_style=True).strip()
            if expected
            else "—"
        )
        cards.append(
            f'<div class="pair"><div class="ctx">{escape(_context_text(row.get("context")))}</div>'
            f'<div><b>expected</b><div class="reply">{escape(expected_text)}</div></div>'
            f'<div><b>base</b><div class="reply{_verdict(row, "base")}">{escape(str(row.get("base", "")))}</div>{_reason(row, "base")}</div>'
            f'<div><b>tuned</b><div class="reply{_verdict(row, "tuned")}">{escape(str(row.get("tuned", "")))}</div>{_reason(row, "tuned")}</div></div>'
        )
    more = note(f"showing {min(limit, len(rows))} of {len(rows)} contexts") if len(rows) > limit else ""
    return section("Base vs tuned replies", *cards, more)


def run_sections(run_dir: Path) -> list[str]:
    return [
        overview(run_dir),
        data_section(run_dir),
        curves_section(run_dir),
        eval_section(run_dir),
        before_after_section(run_dir),
    ]


def run_title(run_dir: Path) -> tuple[str, str]:
    config = read_optional(run_dir, rundir.CONFIG) or {}
    model = config.get("model", {})
    return (
        f"tunelab run: {config.get('run_name') or run_dir.name}",
        f"{run_dir} — {model.get('name', '?')} + {model.get('adapter', '?')}; {fmt(len(rundir.read_metrics(run_dir)))} logged values",
    )
