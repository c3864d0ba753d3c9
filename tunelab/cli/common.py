"""What several commands share: the consoles, the error exit, the system-prompt options."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

console = Console(soft_wrap=True)  # file paths must stay whole, to be copied
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def system_text(text: str | None, path: Path | None) -> str | None:
    """The system prompt of --system-prompt or --system-prompt-file (at most one of them)."""
    if text and path:
        raise typer.BadParameter("give --system-prompt or --system-prompt-file, not both")
    if path:
        if not path.is_file():
            raise typer.BadParameter(f"system prompt file {path} does not exist")
        return path.read_text(encoding="utf-8").strip()
    return text
