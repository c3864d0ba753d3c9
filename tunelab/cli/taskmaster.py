"""`tunelab data import taskmaster DIR -o FILE [--reward-out FILE]`.

`register(data_app)` adds an `import` sub-group to the `data` command group, so further
importers (other datasets) can join it as sibling commands.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from tunelab.data.taskmaster import ConvertResult, convert_dialogs, convert_rewards, write_result


def _report(kind: str, result: ConvertResult, out: Path, rejected_path: Path | None) -> None:
    summary = result.summary()
    typer.echo(f"{kind}: read {summary.pop('read')}, kept {summary.pop('kept')}, rejected "
               f"{summary.pop('rejected')} -> {out}")
    if rejected_path:
        typer.echo(f"  rejected rows with reasons: {rejected_path}")
        for row in result.rejected[:3]:
            typer.echo(f"    {row.source}: {row.field}: {row.reason[:120]}", err=True)
    if summary.get("json_repaired"):
        typer.echo(f"  note: repaired {summary['json_repaired']} JSON values with doubled quotes "
                   f'(""id"" -> "id") in the source data', err=True)
    for key, value in sorted(summary.items()):
        typer.echo(f"  {key}: {value}")
    if not result.rows:
        typer.echo(f"error: no {kind} could be converted", err=True)
        raise typer.Exit(1)


def import_taskmaster(
    directory: Path = typer.Argument(..., exists=True, file_okay=False,
                                     help="Taskmaster-4 folder (with dialogs/ and reward/) or its dialogs/ folder"),
    out: Path = typer.Option(..., "-o", "--out", help="OpenAI chat JSONL to write the dialogues to"),
    reward_out: Path | None = typer.Option(None, "--reward-out",
                                           help="also convert reward/*.json into this judgement JSONL"),
    reward_dir: Path | None = typer.Option(None, "--reward-dir", exists=True, file_okay=False,
                                           help="reward folder, if not DIR/reward"),
) -> None:
    """Convert Taskmaster-4 coffee dialogues (API calls as tool calls) and reward judgements."""
    logging.basicConfig(level=logging.WARNING)
    dialogs = convert_dialogs(directory)
    _report("dialogues", dialogs, out, write_result(dialogs, out))
    if reward_out is None:
        return
    source = reward_dir or (directory / "reward" if (directory / "reward").is_dir() else directory.parent / "reward")
    if not source.is_dir():
        raise typer.BadParameter(f"no reward folder at {source}; pass --reward-dir", param_hint="--reward-dir")
    rewards = convert_rewards(source)
    _report("judgements", rewards, reward_out, write_result(rewards, reward_out))


def register(data_app: typer.Typer) -> None:
    """Add `import taskmaster` under the given `data` group."""
    import_app = typer.Typer(help="Convert external datasets into tunelab's formats.", no_args_is_help=True)
    import_app.command("taskmaster")(import_taskmaster)
    data_app.add_typer(import_app, name="import")
