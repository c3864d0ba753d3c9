"""`tunelab serve | chat | export | judge`: use a fine-tuned model. `register(app)` adds them."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import typer


def _system_text(text: Optional[str], path: Optional[Path]) -> Optional[str]:
    if text and path:
        raise typer.BadParameter("give --system-prompt or --system-prompt-file, not both")
    if path:
        if not path.is_file():
            raise typer.BadParameter(f"system prompt file {path} does not exist")
        return path.read_text(encoding="utf-8").strip()
    return text


def serve(
    model: str = typer.Argument(..., help="Run directory, model directory or registry name (e.g. smollm2-135m)."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; anything but loopback is reachable from other machines."),
    port: int = typer.Option(8000, help="TCP port."),
    name: Optional[str] = typer.Option(None, "--name", help="Model id clients send (default: the directory name)."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="TUNELAB_API_KEY",
                                          help="Require 'Authorization: Bearer KEY' (or set TUNELAB_API_KEY)."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="Used when a request has no system message."),
    system_prompt_file: Optional[Path] = typer.Option(None, "--system-prompt-file", help="The same, read from a file."),
    max_tokens_limit: int = typer.Option(1024, help="Largest max_tokens a request may ask for."),
    batch_window_ms: float = typer.Option(10.0, help="How long to wait for requests to batch with the first."),
    max_batch: int = typer.Option(16, help="Most requests generated together."),
) -> None:
    """Serve a model with an OpenAI-compatible API (/v1/chat/completions, /v1/models).

    Example:  tunelab serve runs/demo/run --port 8000   then   OpenAI(base_url="http://127.0.0.1:8000/v1")
    """
    from tunelab.serve.app import ServeSettings, default_model_name
    from tunelab.serve.app import serve as run

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizing on the loop, generating in a thread
    settings = ServeSettings(model_name=name or default_model_name(model), api_key=api_key,
                             system_prompt=_system_text(system_prompt, system_prompt_file),
                             max_tokens_limit=max_tokens_limit, batch_window=batch_window_ms / 1000, max_batch=max_batch)
    run(model, host=host, port=port, settings=settings)


def chat(
    model: str = typer.Argument(..., help="Run directory, model directory or registry name."),
    message: Optional[str] = typer.Option(None, "--message", "-m", help="Send one message, print the reply, exit."),
    system_prompt: Optional[str] = typer.Option(None, "--system-prompt", help="System prompt for the conversation."),
    system_prompt_file: Optional[Path] = typer.Option(None, "--system-prompt-file", help="The same, read from a file."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest reply, in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy (the same question gets the same answer)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass when temperature > 0."),
) -> None:
    """Chat with a model in the terminal (streaming; /reset, /system TEXT, /exit).

    Example:  tunelab chat runs/demo/run      or, for scripts:  tunelab chat runs/demo/run -m "a latte please"
    """
    from rich.console import Console

    from tunelab.generation.chat import interactive, open_session

    session = open_session(model, system=_system_text(system_prompt, system_prompt_file),
                           max_new_tokens=max_tokens, temperature=temperature, top_p=top_p)
    if message is not None:
        typer.echo(session.reply(message))
        return
    interactive(session, Console(highlight=False))


def export(
    run: str = typer.Argument(..., help="Run directory (with adapter/) or model to export."),
    fmt: str = typer.Option("merged", "--format", help="merged (safetensors for transformers/vLLM) or gguf (llama.cpp)."),
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


def judge(
    predictions: Path = typer.Argument(..., exists=True, dir_okay=False,
                                       help="JSONL rows with 'prediction' (+ 'context'/'messages', 'reference')."),
    base_url: str = typer.Option(..., "--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"),
    model: str = typer.Option(..., "--model", help="Judge model name at that endpoint."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Environment variable holding the API key."),
    cache: Path = typer.Option(Path(".tunelab-judge-cache.sqlite"), "--cache", help="sqlite cache of raw verdicts."),
    out: Optional[Path] = typer.Option(None, "-o", "--out", help="Write one verdict per row here (JSONL)."),
    timeout: float = typer.Option(60.0, help="Seconds per request."),
    retries: int = typer.Option(3, help="Retries on timeouts, connection errors, 429 and 5xx."),
) -> None:
    """Score replies with an LLM judge: correctness, appropriateness, style (1-5 each).

    Example:  tunelab judge runs/demo/predictions.jsonl --base-url https://api.openai.com/v1 --model gpt-4o-mini --api-key-env OPENAI_API_KEY
    """
    import json

    from tunelab import rundir
    from tunelab.eval.rubric import Judge, JudgeSettings, read_items, verdict_rows

    items = read_items(predictions)
    if not any(item["context"] for item in items):
        typer.echo("note: rows carry no 'context'; the judge sees only reply and reference", err=True)
    judge_ = Judge(JudgeSettings(base_url=base_url, model=model, api_key_env=api_key_env, timeout=timeout,
                                 retries=retries, cache_path=cache))
    try:
        report = judge_.judge_many(items)
    finally:
        judge_.close()
    if out:
        rundir.write_jsonl(out, verdict_rows(items, report))
    typer.echo(json.dumps(report.summary(), indent=2))


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(chat)
    app.command()(export)
    app.command()(judge)
