"""The `tunelab` command: one module per command group, assembled here.

Each module holds its commands and `register(app)`; the work lives in the package (mostly
through tunelab.api). `main` sets up logging and turns expected errors into a one-line message.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from tunelab.cli import (
    adherence,
    chat,
    common,
    data,
    demo,
    evaluate,
    export,
    judge,
    report,
    serve,
    studio,
    sweep,
    train,
)

app = typer.Typer(
    help="Fine-tune small LLMs on dialogues, measure what they do, and ship them.\n\n"
    "Start with:  tunelab demo    (a cafe assistant on the embedded SmolLM2-135M; docs/cafe.md)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
for _module in (train, demo, data, evaluate, serve, chat, export, judge, sweep, report, adherence, studio):
    _module.register(app)

# Errors whose message says what to fix: printed as one line, without a traceback.
EXPECTED_ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError)


def main() -> None:
    logging.basicConfig(level=os.environ.get("TUNELAB_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except EXPECTED_ERRORS as exc:
        common.err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
