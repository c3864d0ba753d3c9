"""`tunelab report RUN_DIR|SWEEP_DIR`: one self-contained HTML report of a run or a sweep."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    path: Path = typer.Argument(..., exists=True, file_okay=False, help="A run directory or a sweep directory."),
    out: Path | None = typer.Option(None, "-o", "--out", help="HTML file to write (default: PATH/report.html)."),
) -> None:
    """Write one self-contained HTML report (works offline): data, curves, metrics, sweep choices, replies.

    Example:  tunelab report runs/sweep -o sweep.html
    """
    from tunelab.report import write_report

    typer.echo(str(write_report(path, out)))


def register(app: typer.Typer) -> None:
    app.command("report")(report)
