"""`tunelab judge PREDICTIONS`: score replies with an LLM rubric judge at an OpenAI-compatible endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def judge(
    predictions: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="JSONL rows with 'prediction' (+ 'context'/'messages', 'reference')."
    ),
    base_url: str = typer.Option(..., "--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"),
    model: str = typer.Option(..., "--model", help="Judge model name at that endpoint."),
    api_key_env: str | None = typer.Option(None, "--api-key-env", help="Environment variable holding the API key."),
    cache: Path = typer.Option(Path(".tunelab-judge-cache.sqlite"), "--cache", help="sqlite cache of raw verdicts."),
    out: Path | None = typer.Option(None, "-o", "--out", help="Write one verdict per row here (JSONL)."),
    timeout: float = typer.Option(60.0, help="Seconds per request."),
    retries: int = typer.Option(3, help="Retries on timeouts, connection errors, 429 and 5xx."),
) -> None:
    """Score replies with an LLM judge: correctness, appropriateness, style (1-5 each).

    Example:  tunelab judge runs/demo/predictions.jsonl --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
    """
    from tunelab.api import judge as run_judge
    from tunelab.eval.rubric import read_items

    items = read_items(predictions)
    if not any(item["context"] for item in items):
        typer.echo("note: rows carry no 'context'; the judge sees only reply and reference", err=True)
    report = run_judge(
        items,
        base_url=base_url,
        model=model,
        api_key_env=api_key_env,
        cache=cache,
        out=out,
        timeout=timeout,
        retries=retries,
    )
    typer.echo(json.dumps(report.summary(), indent=2))


def register(app: typer.Typer) -> None:
    app.command()(judge)
