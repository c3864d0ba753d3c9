"""A Markdown model card (README.md) beside a kept model, written from the run directory's files.

It says what a user deciding whether to use the model needs: the base model, the data and
its statistics, the recipe and parameters, the metrics measured, the known limits, and how
to load it. Missing files are stated as missing, never filled in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tunelab import rundir
from tunelab.models.adapters import LORA_FAMILY, UNMERGEABLE


def _read(run_dir: Path, name: str) -> Any:
    path = run_dir / name
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8")) if name.endswith(".yaml") else rundir.read_json(path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def _data_section(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return ["No data report (data_report.json) in the run directory."]
    lines = ["| file | format | read | kept | rejected |", "|---|---|---|---|---|"]
    lines += [
        f"| `{f['path']}` | {f['format']} | {f['read']} | {f['kept']} | {f['rejected']} |"
        for f in report.get("files", [])
    ]
    lines.append("")
    lines += [
        "| split | examples | mean tokens | max tokens | target tokens / epoch | target share |",
        "|---|---|---|---|---|---|",
    ]
    for split in ("train", "val"):
        s = report.get(split) or {}
        if s.get("examples"):
            lines.append(
                f"| {split} | {s['examples']} | {s['tokens']['mean']} | {s['tokens']['max']} | {s['target_tokens_per_epoch']} | {s['target_share']:.0%} |"
            )
        else:
            lines.append(f"| {split} | 0 | — | — | — | — |")
    lines.append("")
    lines.append(
        f"Duplicates removed: {report.get('duplicates_removed', 0)}; too long and dropped: {report.get('too_long_dropped')}; "
        f"oldest turns cut to fit {report.get('max_length')} tokens: {report.get('truncated_history')}."
    )
    return lines


def _recipe_section(config: dict[str, Any]) -> list[str]:
    model, train = config.get("model", {}), config.get("train", {})
    adapter = model.get("adapter")
    rows = [("adapter", adapter)]
    if adapter in LORA_FAMILY:
        rows += [(f"lora.{k}", v) for k, v in model.get("lora", {}).items()]
    elif adapter in UNMERGEABLE:
        rows += [(f"prompt.{k}", v) for k, v in model.get("prompt", {}).items()]
    elif adapter == "ia3":
        rows += [(f"ia3.{k}", v) for k, v in model.get("ia3", {}).items()]
    rows += [(f"train.{k}", v) for k, v in train.items()]
    return ["| parameter | value |", "|---|---|", *[f"| {k} | {_fmt(v)} |" for k, v in rows]]


def _metrics_section(run_dir: Path, summary: dict[str, Any] | None, scores: dict[str, Any] | None) -> list[str]:
    lines = []
    train_loss = rundir.read_metrics(run_dir, "loss", "train")
    val_loss = rundir.read_metrics(run_dir, "loss", "val")
    if train_loss:
        lines.append(
            f"- training loss: {train_loss[0]['value']:.4f} at step {train_loss[0]['step']} -> {train_loss[-1]['value']:.4f} at step {train_loss[-1]['step']}"
        )
    if val_loss:
        best = min(val_loss, key=lambda r: r["value"])
        lines.append(
            f"- validation loss: best {best['value']:.4f} at step {best['step']} ({len(val_loss)} evaluations)"
        )
    if summary:
        lines.append(
            f"- final validation loss (the kept model): {_fmt(summary.get('final_val_loss'))}; {summary.get('steps')} optimizer steps"
        )
    if scores:
        for name, value in (scores.get("metrics") or {}).items():
            lines.append(f"- {name}: {_fmt(value)} (on `{scores.get('data')}`, n={scores.get('n')})")
        behaviour = scores.get("behaviour") or {}
        for name in ("appropriateness", "correctness"):
            if behaviour.get(name) is not None:
                lines.append(f"- behaviour {name}: {behaviour[name]:.1%}")
    else:
        lines.append("- no evaluation scores (scores.json) yet: run `tunelab eval` on held-out conversations")
    return lines or ["No metrics recorded."]


def _limits(config: dict[str, Any], report: dict[str, Any] | None, scores: dict[str, Any] | None) -> list[str]:
    limits = []
    n_train = ((report or {}).get("train") or {}).get("examples", 0)
    n_val = ((report or {}).get("val") or {}).get("examples", 0)
    limits.append(
        f"- Trained on {n_train} conversations and validated on {n_val}; it knows only what they show and may answer confidently outside them."
    )
    if n_val < 50:
        limits.append(
            f"- The validation set is small ({n_val}): loss differences of a few percent between runs may be noise."
        )
    limits.append(
        f"- Conversations longer than {config.get('data', {}).get('max_length')} tokens were cut or dropped in training; long histories are out of distribution."
    )
    if config.get("model", {}).get("adapter") in UNMERGEABLE:
        limits.append(
            "- A prompt-learning adapter cannot be merged into the weights: serve it with the adapter (tunelab loads it from the run directory)."
        )
    if not scores:
        limits.append(
            "- Not evaluated on generated replies yet; validation loss alone does not show whether replies behave as intended."
        )
    limits.append("- No safety, bias or factuality evaluation was run.")
    return limits


def _load_section(run_dir: Path, config: dict[str, Any]) -> list[str]:
    adapter = config.get("model", {}).get("adapter")
    lines = [
        "```python",
        "from tunelab.models.load import load_model",
        "",
        f'model, tokenizer = load_model("{run_dir}")  # base + adapter, ready for generate()',
        "```",
    ]
    if adapter and adapter != "full":
        lines += [
            "",
            "With peft directly:",
            "",
            "```python",
            "from peft import AutoPeftModelForCausalLM",
            "from transformers import AutoTokenizer",
            "",
            f'model = AutoPeftModelForCausalLM.from_pretrained("{run_dir / rundir.ADAPTER}")',
            f'tokenizer = AutoTokenizer.from_pretrained("{run_dir / rundir.ADAPTER}")',
            "```",
        ]
    lines += ["", f"Serve it: `tunelab serve {run_dir}`"]
    return lines


def _sweep_section(sweep: dict[str, Any]) -> list[str]:
    best = sweep["best"]
    objective = sweep["objective"]
    finished = [t for t in sweep["trials"] if t["state"] in ("COMPLETE", "PRUNED")]
    lines = [
        f"Chosen by a {sweep['sampler']} sweep of {len(finished)} trials ({sum(t['state'] == 'PRUNED' for t in finished)} pruned): "
        f"trial {best['number']} had the best {objective['metric']} ({objective['direction']}) = {best['value']:.4f}.",
        "",
        "| parameter | chosen | importance |",
        "|---|---|---|",
    ]
    for key, value in best["params"].items():
        lines.append(f"| {key} | {_fmt(value)} | {_fmt(sweep.get('importances', {}).get(key))} |")
    return lines


def model_card(run_dir: str | Path, sweep: dict[str, Any] | None = None) -> str:
    run_dir = Path(run_dir)
    config = _read(run_dir, rundir.CONFIG) or {}
    report = _read(run_dir, rundir.DATA_REPORT)
    summary = _read(run_dir, rundir.SUMMARY)
    scores = _read(run_dir, rundir.SCORES)
    model = config.get("model", {})
    title = config.get("run_name") or run_dir.name
    parts = [
        f"# {title}",
        "",
        f"Fine-tuned from **{model.get('name', 'unknown')}** with **{model.get('adapter', 'unknown')}** "
        f"({config.get('train', {}).get('recipe', 'sft')} recipe: supervised, loss on assistant turns only) by tunelab.",
        "",
    ]
    if model.get("system_prompt"):
        parts += [f"System prompt used in training: `{model['system_prompt']}`", ""]
    sections = [
        ("Data", _data_section(report)),
        ("Recipe and parameters", _recipe_section(config)),
        ("Metrics", _metrics_section(run_dir, summary, scores)),
    ]
    if sweep and sweep.get("best"):
        sections.append(("How the parameters were chosen", _sweep_section(sweep)))
    sections += [("Known limits", _limits(config, report, scores)), ("How to load it", _load_section(run_dir, config))]
    for heading, lines in sections:
        parts += [f"## {heading}", "", *lines, ""]
    return "\n".join(parts)


def write_model_card(run_dir: str | Path, sweep: dict[str, Any] | None = None) -> Path:
    """Write README.md into `run_dir` (next to adapter/ or model/)."""
    return rundir.write_text(Path(run_dir) / rundir.MODEL_CARD, model_card(run_dir, sweep))
