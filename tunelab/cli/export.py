"""`tunelab export RUN`: a merged model directory, or a verified GGUF file."""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def export(
    run: str = typer.Argument(..., help="Run directory (with adapter/) or model to export."),
    fmt: str = typer.Option(
        "merged", "--format", help="merged (safetensors for transformers/vLLM) or gguf (llama.cpp)."
    ),
    out: Path = typer.Option(..., "-o", "--out", help="Directory to write."),
    gguf_type: str = typer.Option("f16", "--gguf-type", help="GGUF tensor type: f32, f16 or q8_0."),
    force: bool = typer.Option(False, "--force", help="Overwrite a non-empty output directory."),
) -> None:
    """Merge the adapter into the base weights, or write a verified GGUF file (Llama architecture only).

    Example:  tunelab export runs/demo/run --format gguf -o runs/demo/gguf --gguf-type q8_0
    """
    from tunelab.models.export import ExportError
    from tunelab.models.export import export as run_export

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        written = run_export(run, out, fmt, dtype=gguf_type, force=force)
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"wrote {written}")


def register(app: typer.Typer) -> None:
    app.command()(export)
