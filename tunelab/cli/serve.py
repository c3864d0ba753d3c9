"""`tunelab serve MODEL`: an OpenAI-compatible endpoint for a run or model."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

from tunelab.cli.common import system_text


def serve(
    model: str = typer.Argument(..., help="Run directory, model directory or registry name (e.g. smollm2-135m)."),
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind; anything but loopback is reachable from other machines."
    ),
    port: int = typer.Option(8000, help="TCP port."),
    name: str | None = typer.Option(None, "--name", help="Model id clients send (default: the directory name)."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="TUNELAB_API_KEY",
        help="Require 'Authorization: Bearer KEY' (or set TUNELAB_API_KEY).",
    ),
    system_prompt: str | None = typer.Option(
        None, "--system-prompt", help="Used when a request has no system message."
    ),
    system_prompt_file: Path | None = typer.Option(None, "--system-prompt-file", help="The same, read from a file."),
    max_tokens_limit: int = typer.Option(1024, help="Largest max_tokens a request may ask for."),
    batch_window_ms: float = typer.Option(10.0, help="How long to wait for requests to batch with the first."),
    max_batch: int = typer.Option(16, help="Most requests generated together."),
) -> None:
    """Serve a model with an OpenAI-compatible API (/v1/chat/completions, /v1/models).

    Example:  tunelab serve runs/demo/run --port 8000   then   OpenAI(base_url="http://127.0.0.1:8000/v1")
    """
    from tunelab.api import serve_model

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizing on the loop, generating in a thread
    serve_model(
        model,
        host=host,
        port=port,
        name=name,
        api_key=api_key,
        system_prompt=system_text(system_prompt, system_prompt_file),
        max_tokens_limit=max_tokens_limit,
        batch_window=batch_window_ms / 1000,
        max_batch=max_batch,
    )


def register(app: typer.Typer) -> None:
    app.command()(serve)
