"""`tunelab train CONFIG`: fine-tune with the config's recipe."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.cli.common import console


def train(
    config: Path = typer.Argument(..., help="YAML config (sections: model, data, train, output)."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a key, e.g. --set train.learning_rate=1e-4 (repeatable)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint in output.dir."),
    merge: bool = typer.Option(False, "--merge", help="Also write merged/, a full model plain transformers loads."),
) -> None:
    """Fine-tune a model: recipe sft (loss on assistant turns only), bake (a system prompt into the weights), kto or dpo.

    Example:  tunelab train examples/cafe.yaml --set train.epochs=2 --set output.dir=runs/cafe2
    """
    from tunelab.api import fine_tune

    summary = fine_tune(config, resume=resume, overrides=[*set_, *(["output.merge=true"] if merge else [])])
    val = summary.get("final_val_loss")
    console.print(
        f"done: {summary['steps']} steps, final validation loss {val:.4f}"
        if val is not None
        else f"done: {summary['steps']} steps"
    )
    console.print(f"run directory: [bold]{summary['run_dir']}[/]")


def register(app: typer.Typer) -> None:
    app.command()(train)
