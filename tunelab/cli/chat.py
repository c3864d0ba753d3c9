"""`tunelab chat MODEL`: talk to a run or model in the terminal, or send one message from a script."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.cli.common import system_text


def chat(
    model: str = typer.Argument(..., help="Run directory, model directory or registry name."),
    message: str | None = typer.Option(None, "--message", "-m", help="Send one message, print the reply, exit."),
    system_prompt: str | None = typer.Option(None, "--system-prompt", help="System prompt for the conversation."),
    system_prompt_file: Path | None = typer.Option(None, "--system-prompt-file", help="The same, read from a file."),
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest reply, in tokens."),
    temperature: float = typer.Option(0.0, help="0 = greedy (the same question gets the same answer)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass when temperature > 0."),
) -> None:
    """Chat with a model in the terminal (streaming; /reset, /system TEXT, /exit).

    Example:  tunelab chat runs/demo/run      or, for scripts:  tunelab chat runs/demo/run -m "a latte please"
    """
    from rich.console import Console

    from tunelab.api import chat as open_chat
    from tunelab.generation.chat import interactive

    session = open_chat(
        model,
        system=system_text(system_prompt, system_prompt_file),
        max_new_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
    )
    if message is not None:
        typer.echo(session.reply(message))
        return
    interactive(session, Console(highlight=False))


def register(app: typer.Typer) -> None:
    app.command()(chat)
