"""`tunelab studio`: the local OpenAI-compatible fine-tuning service and its web UI."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.models.registry import DEFAULT_MODEL


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind; anything but loopback prints a warning."),
    port: int = typer.Option(8000, "--port"),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="TUNELAB_API_KEY",
        show_default=False,
        help="Require this key on every route, the web UI included.",
    ),
    folder: Path | None = typer.Option(None, "--dir", help="State folder (default: $TUNELAB_HOME/studio)."),
    base_model: list[str] = typer.Option(
        [DEFAULT_MODEL], "--base-model", help="Base models listed and served (repeatable)."
    ),
    max_upload_mb: int = typer.Option(512, "--max-upload-mb", help="Largest file accepted by POST /v1/files."),
) -> None:
    """Upload data, run fine-tuning jobs and chat with the results: OpenAI's Files and Fine-tuning
    API (the official `openai` client works with base_url http://HOST:PORT/v1) plus a web UI at /.

    Example:  tunelab studio --port 8000     then open http://127.0.0.1:8000/
    """
    from tunelab.studio.app import run

    run(folder, host, port, api_key, base_model, max_upload_mb)


def register(app: typer.Typer) -> None:
    app.command()(studio)
