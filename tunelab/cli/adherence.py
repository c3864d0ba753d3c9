"""`tunelab adherence RUN_DIR`: per-rule pass rates of a baked run against its base, with and without the prompt."""

from __future__ import annotations

from pathlib import Path

import typer


def adherence(
    run_dir: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory of recipe bake."),
    prompt: Path | None = typer.Option(None, "--prompt", help="Prompt YAML; default: RUN_DIR/prompt.yaml."),
    heldout: Path | None = typer.Option(
        None, "--heldout", help="Held-out log rows (JSONL); default: RUN_DIR/heldout.jsonl."
    ),
    base: str | None = typer.Option(None, "--base", help="Base model; default: model.name of RUN_DIR/config.yaml."),
    max_questions: int = typer.Option(
        48, "--max-questions", help="Evaluate at most this many distinct held-out questions."
    ),
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
    report = adh.evaluate(
        spec,
        rows.records,
        adh.default_conditions(base or cfg.model.name, str(run_dir)),
        out_dir=run_dir,
        template=cfg.logs.template,
        max_questions=max_questions,
        max_new_tokens=max_new_tokens,
    )
    report["bar"] = adh.meets_bar(report)
    typer.echo(adh.table(report))
    typer.echo(
        f"prompt tokens saved per request: {report.get('prompt_tokens_saved_per_request', 0):.0f}; bar met: {report['bar']['met']}"
    )


def register(app: typer.Typer) -> None:
    app.command("adherence")(adherence)
