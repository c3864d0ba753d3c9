"""`tunelab studio`: the local OpenAI-compatible fine-tuning service and its web UI."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.models.registry import DEFAULT_MODEL


def studio(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port"),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar="TUNELAB_API_KEY",
        show_default=False,
        help="Require this key on every route, the web UI included (default: a key made on first start "
        "and kept in the state folder).",
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="No key at all: every route open. Refused with a non-loopback --host."
    ),
    allow_host: list[str] = typer.Option(
        [],
        "--allow-host",
        help="Another name clients reach the studio by (a proxy's, a DNS name); repeatable. Requests "
        "naming any other Host are refused (DNS rebinding).",
    ),
    folder: Path | None = typer.Option(None, "--dir", help="State folder (default: $TUNELAB_HOME/studio)."),
    base_model: list[str] = typer.Option(
        [DEFAULT_MODEL], "--base-model", help="Base models listed and served (repeatable)."
    ),
    models_dir: Path | None = typer.Option(
        None,
        "--models-dir",
        help="A folder of model directories jobs may name as their model (by their name in the folder).",
    ),
    max_upload_mb: int = typer.Option(512, "--max-upload-mb", help="Largest file accepted by POST /v1/files."),
) -> None:
    """Upload data, run fine-tuning jobs and chat with the results: OpenAI's Files and Fine-tuning
    API (the official `openai` client works with base_url http://HOST:PORT/v1) plus a web UI at /.

    It prints a login URL carrying its key on start; open it in the browser.

    Example:  tunelab studio --port 8000
    """
    from tunelab.studio.security import SecurityError, check_no_auth

    if no_auth:
        if api_key:
            raise typer.BadParameter("give --api-key or --no-auth, not both", param_hint="--no-auth")
        try:
            check_no_auth(host)
        except SecurityError as exc:
            raise typer.BadParameter(str(exc), param_hint="--no-auth") from None
    from tunelab.studio.app import run  # after the checks: importing the studio takes seconds

    run(
        folder,
        host,
        port,
        api_key,
        base_model,
        max_upload_mb,
        no_auth=no_auth,
        allow_hosts=allow_host,
        models_dir=models_dir,
    )


def register(app: typer.Typer) -> None:
    app.command()(studio)
