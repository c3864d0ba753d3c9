"""`tunelab data logs FILE` (statistics, hygiene, SFT/KTO/DPO sets) and `tunelab adherence RUN_DIR`.

`register(app)` adds `adherence` to the root command and `logs` to its `data` group.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger(__name__)


def logs(
    file: Path = typer.Argument(..., help="Feedback log: .csv, .jsonl or .parquet."),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML config whose `logs` section maps the columns."),
    set_: list[str] = typer.Option([], "--set", help="Override, e.g. --set logs.columns.question=query (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write sft.jsonl, kto.jsonl, dpo.jsonl, stats.json, clean.jsonl here."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Read a feedback log, clean it, show statistics; with --out, write the training sets.

    Example:  tunelab data logs examples/helpdesk/logs.csv --set logs.columns.tags='[role,campus,level]' -o runs/helpdesk-sets
    """
    from tunelab import rundir
    from tunelab.config import load
    from tunelab.data.hygiene import clean
    from tunelab.data.logs import read_logs
    from tunelab.data.log_sets import statistics, write_sets

    cfg = load(config, [f"data.train={file}", *set_]) if config else load(None, set_, data={"data": {"train": str(file)}})
    read = read_logs(file, cfg.logs)
    records, hygiene = clean(read.records, cfg.logs.hygiene)
    report = {"file": str(file), "read": read.n_read, "kept": len(read.records), "rejected": len(read.rejected),
              "hygiene": hygiene.to_dict(), "after_hygiene": len(records)}
    if out:
        if read.rejected:
            report["rejected_file"] = str(rundir.write_jsonl(out / "rejected.jsonl", [r.to_row() for r in read.rejected]))
        rundir.write_jsonl(out / "clean.jsonl", [r.to_row() for r in records])
        sets = write_sets(records, out, cfg.logs.template)
        report |= {"sets": {k: v for k, v in sets.items() if k != "stats"}, "stats": sets["stats"]}
    else:
        report["stats"] = statistics(records)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    typer.echo(f"{file}: read {report['read']}, kept {report['kept']}, rejected {report['rejected']}; after hygiene {len(records)}")
    for r in read.rejected[:5]:
        typer.echo(f"  {r.message()}", err=True)
    typer.echo(f"hygiene: {json.dumps(report['hygiene'], ensure_ascii=False)}")
    stats = report["stats"]
    typer.echo(f"labels: {stats['by_label']}")
    for tag, values in stats["by_tag"].items():
        typer.echo(f"  {tag}: " + ", ".join(f"{v} {c}" for v, c in values.items()))
    typer.echo("frequent comments: " + "; ".join(f"{t['comment']} ({t['count']})" for t in stats["comment_themes"][:5]))
    if out:
        typer.echo(f"sets: {report['sets']} -> {out}")


def adherence(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory of recipe bake."),
    prompt: Optional[Path] = typer.Option(None, "--prompt", help="Prompt YAML; default: RUN_DIR/prompt.yaml."),
    heldout: Optional[Path] = typer.Option(None, "--heldout", help="Held-out log rows (JSONL); default: RUN_DIR/heldout.jsonl."),
    base: Optional[str] = typer.Option(None, "--base", help="Base model; default: model.name of RUN_DIR/config.yaml."),
    max_questions: int = typer.Option(48, "--max-questions", help="Evaluate at most this many distinct held-out questions."),
    max_new_tokens: int = typer.Option(96, "--max-new-tokens"),
) -> None:
    """Per-rule pass rates of the base model without and with the prompt and the baked model without it.

    Example:  tunelab adherence runs/helpdesk/bake
    """
    from tunelab.config import load
    from tunelab.data.logs import read_logs
    from tunelab.eval import adherence as adh
    from tunelab.prompts.rules import load_prompt
    from tunelab.train.recipes.bake import HELDOUT, PROMPT

    cfg = load(run_dir / "config.yaml")
    spec = load_prompt(prompt or run_dir / PROMPT)
    rows = read_logs(heldout or run_dir / HELDOUT, cfg.logs, questions_only=True)  # only the questions are asked again
    if rows.rejected:
        raise typer.BadParameter(f"{rows.rejected[0].message()} ({len(rows.rejected)} rejected held-out rows)")
    report = adh.evaluate(spec, rows.records, adh.default_conditions(base or cfg.model.name, str(run_dir)), out_dir=run_dir,
                          template=cfg.logs.template, max_questions=max_questions, max_new_tokens=max_new_tokens)
    report["bar"] = adh.meets_bar(report)
    typer.echo(adh.table(report))
    typer.echo(f"prompt tokens saved per request: {report.get('prompt_tokens_saved_per_request', 0):.0f}; bar met: {report['bar']['met']}")


def register(app: typer.Typer) -> None:
    app.command("adherence")(adherence)
    data = next((g.typer_instance for g in app.registered_groups if g.name == "data"), None)
    if data is None:
        log.warning("no `data` command group; registering `logs` at the top level")
        app.command("logs")(logs)
    else:
        data.command("logs")(logs)
