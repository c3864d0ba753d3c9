"""`tunelab sweep SWEEP.yaml`: search hyperparameters with Optuna, keep the best trial."""

from __future__ import annotations

from pathlib import Path

import typer


def sweep(
    sweep_file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="Sweep YAML: base, space, objective, trials, sampler, pruner."
    ),
    trials: int | None = typer.Option(
        None, "--trials", help="Finished trials the study should reach (overrides the file)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Sweep directory (default: the file's 'dir', else next to the file)."
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write SWEEP_DIR/report.html at the end."),
) -> None:
    """Search hyperparameters with Optuna; rerun the same command to resume, or run it in several processes at once.

    Example:  tunelab sweep examples/sweep.yaml --trials 12
    """
    from tunelab.report import write_report
    from tunelab.train.sweep import BEST, run_sweep

    summary = run_sweep(sweep_file, trials=trials, out=out)
    sweep_dir = Path(summary["sweep_dir"])
    states = {}
    for t in summary["trials"]:
        states[t["state"]] = states.get(t["state"], 0) + 1
    typer.echo(f"trials: {', '.join(f'{n} {s.lower()}' for s, n in states.items())}")
    best = summary["best"]
    if best is None:
        typer.echo("no complete trial: nothing to keep", err=True)
        raise typer.Exit(1)
    objective = summary["objective"]
    typer.echo(
        f"best: trial {best['number']} {objective['metric']}={best['value']:.4f} with "
        + ", ".join(f"{k}={v}" for k, v in best["params"].items())
    )
    typer.echo(f"kept: {sweep_dir / BEST} (config.yaml, model card README.md)")
    if report:
        typer.echo(f"report: {write_report(sweep_dir)}")


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
