"""`tunelab data validate | inspect | logs | import taskmaster`: check, inspect and convert training data."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from tunelab.cli.common import console, err
from tunelab.models.registry import DEFAULT_MODEL

if TYPE_CHECKING:
    from tunelab.data.taskmaster import ConvertResult

app = typer.Typer(help="Check, inspect and convert training data.", no_args_is_help=True)
# Importers of external datasets are sibling commands under `data import`.
import_app = typer.Typer(help="Convert external datasets into tunelab's formats.", no_args_is_help=True)


@app.command("validate")
def validate(
    file: Path = typer.Argument(
        ...,
        help="JSONL (or JSON list) of conversations: OpenAI messages, ShareGPT or Alpaca; or OpenAI preference rows (DPO: input, preferred_output, non_preferred_output).",
    ),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Whose tokenizer and chat template to count with."),
    max_length: int | None = typer.Option(None, "--max-length", help="Reject rows that cannot fit in N tokens."),
    fmt: str = typer.Option("auto", "--format", help="auto | openai | sharegpt | alpaca"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check every row; bad rows are listed (file:line: field: reason) and written to FILE.rejected.jsonl.

    Example:  tunelab data validate train.jsonl --max-length 1024
    """
    from tunelab.data.validate import validate_file
    from tunelab.models.load import load_tokenizer

    report = validate_file(file, load_tokenizer(model), max_length, fmt)
    if as_json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for line in report["errors"]:
            err.print(line, markup=False, highlight=False)
        _print_validation(report)
    if report["kept"] == 0:
        raise typer.Exit(1)


def _print_validation(report: dict) -> None:
    console.print(
        f"{report['file']} ({report['format']}): read {report['read']} = kept {report['kept']} + rejected {report['rejected']}"
    )
    if report["rejected_file"]:
        console.print(f"rejected rows written to {report['rejected_file']}")
    stats = report["stats"]
    if not stats.get("examples"):
        return
    table = Table(title="tokens per example")
    for column in ("", "mean", "median", "min", "max"):
        table.add_column(column, justify="right")
    for key in ("tokens", "target_tokens"):
        s = stats[key]
        table.add_row(key.replace("_", " "), str(s["mean"]), str(s["median"]), str(s["min"]), str(s["max"]))
    console.print(table)
    peak = max(b["count"] for b in stats["histogram_tokens"])
    for b in stats["histogram_tokens"]:
        console.print(f"{b['from']:>6}-{b['to']:<6} {'#' * max(1, round(40 * b['count'] / peak))} {b['count']}")
    console.print(
        f"training tokens per epoch: {stats['tokens_per_epoch']} (targets {stats['target_tokens_per_epoch']}, {stats['target_share']:.0%})"
    )
    if report["truncated"]:
        console.print(f"{report['truncated']} examples lost their oldest turns to fit --max-length")


@app.command("inspect")
def inspect(
    file: Path = typer.Argument(..., help="A conversations file."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Whose chat template to render with."),
    n: int = typer.Option(3, "-n", help="How many examples to show."),
    max_length: int | None = typer.Option(None, "--max-length"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per example with its target_spans."),
) -> None:
    """Show examples as the model sees them, with the tokens that carry loss highlighted.

    Example:  tunelab data inspect train.jsonl -n 2
    """
    from tunelab.data.validate import inspect_file
    from tunelab.models.load import load_tokenizer

    for ex in inspect_file(file, load_tokenizer(model), n, max_length):
        pieces = ex.pop("pieces")
        if as_json:
            print(json.dumps(ex, ensure_ascii=False))
            continue
        console.rule(f"{ex['id']}  {ex['tokens']} tokens, {ex['target_tokens']} targets")
        text = Text()
        for piece, is_target in pieces:
            text.append(piece, style="bold green on grey15" if is_target else "dim")
        console.print(text)
    if not as_json:
        console.print("[bold green on grey15]highlighted[/] tokens carry loss; [dim]dim[/] ones are context only")


@app.command("logs")
def logs(
    file: Path = typer.Argument(..., help="Feedback log: .csv, .jsonl or .parquet."),
    config: Path | None = typer.Option(None, "--config", help="YAML config whose `logs` section maps the columns."),
    set_: list[str] = typer.Option([], "--set", help="Override, e.g. --set logs.columns.question=query (repeatable)."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Write sft.jsonl, kto.jsonl, dpo.jsonl, stats.json, clean.jsonl here."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Read a feedback log, clean it, show statistics; with --out, write the training sets.

    Example:  tunelab data logs examples/helpdesk/logs.csv --set logs.columns.tags='[role,campus,level]' -o runs/helpdesk-sets
    """
    from tunelab import rundir
    from tunelab.config import load
    from tunelab.data.hygiene import clean
    from tunelab.data.log_sets import statistics, write_sets
    from tunelab.data.logs import read_logs

    cfg = (
        load(config, [f"data.train={file}", *set_]) if config else load(None, set_, data={"data": {"train": str(file)}})
    )
    read = read_logs(file, cfg.logs)
    records, hygiene = clean(read.records, cfg.logs.hygiene)
    report = {
        "file": str(file),
        "read": read.n_read,
        "kept": len(read.records),
        "rejected": len(read.rejected),
        "hygiene": hygiene.to_dict(),
        "after_hygiene": len(records),
    }
    if out:
        if read.rejected:
            report["rejected_file"] = str(
                rundir.write_jsonl(out / "rejected.jsonl", [r.to_row() for r in read.rejected])
            )
        rundir.write_jsonl(out / "clean.jsonl", [r.to_row() for r in records])
        sets = write_sets(records, out, cfg.logs.template)
        report |= {"sets": {k: v for k, v in sets.items() if k != "stats"}, "stats": sets["stats"]}
    else:
        report["stats"] = statistics(records)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return
    typer.echo(
        f"{file}: read {report['read']}, kept {report['kept']}, rejected {report['rejected']}; after hygiene {len(records)}"
    )
    for r in read.rejected[:5]:
        typer.echo(f"  {r.message()}", err=True)
    typer.echo(f"hygiene: {json.dumps(report['hygiene'], ensure_ascii=False)}")
    stats = report["stats"]
    typer.echo(f"labels: {stats['by_label']}")
    for tag, values in stats["by_tag"].items():
        typer.echo(f"  {tag}: " + ", ".join(f"{v} {c}" for v, c in values.items()))
    typer.echo("frequent comments: " + "; ".join(f"{t['comment']} ({t['count']})" for t in stats["comment_themes"][:5]))
    if out:
        typer.echo(f"sets: {report['sets']} -> {out}")


def _import_report(kind: str, result: ConvertResult, out: Path, rejected_path: Path | None) -> None:
    summary = result.summary()
    typer.echo(
        f"{kind}: read {summary.pop('read')}, kept {summary.pop('kept')}, rejected {summary.pop('rejected')} -> {out}"
    )
    if rejected_path:
        typer.echo(f"  rejected rows with reasons: {rejected_path}")
        for row in result.rejected[:3]:
            typer.echo(f"    {row.source}: {row.field}: {row.reason[:120]}", err=True)
    if summary.get("json_repaired"):
        typer.echo(
            f"  note: repaired {summary['json_repaired']} JSON values with doubled quotes "
            f'(""id"" -> "id") in the source data',
            err=True,
        )
    for key, value in sorted(summary.items()):
        typer.echo(f"  {key}: {value}")
    if not result.rows:
        typer.echo(f"error: no {kind} could be converted", err=True)
        raise typer.Exit(1)


@import_app.command("taskmaster")
def import_taskmaster(
    directory: Path = typer.Argument(
        ..., exists=True, file_okay=False, help="Taskmaster-4 folder (with dialogs/ and reward/) or its dialogs/ folder"
    ),
    out: Path = typer.Option(..., "-o", "--out", help="OpenAI chat JSONL to write the dialogues to"),
    reward_out: Path | None = typer.Option(
        None, "--reward-out", help="also convert reward/*.json into this judgement JSONL"
    ),
    reward_dir: Path | None = typer.Option(
        None, "--reward-dir", exists=True, file_okay=False, help="reward folder, if not DIR/reward"
    ),
) -> None:
    """Convert Taskmaster-4 coffee dialogues (API calls as tool calls) and reward judgements."""
    from tunelab.data.taskmaster import convert_dialogs, convert_rewards, write_result

    logging.basicConfig(level=logging.WARNING)
    dialogs = convert_dialogs(directory)
    _import_report("dialogues", dialogs, out, write_result(dialogs, out))
    if reward_out is None:
        return
    source = reward_dir or (directory / "reward" if (directory / "reward").is_dir() else directory.parent / "reward")
    if not source.is_dir():
        raise typer.BadParameter(f"no reward folder at {source}; pass --reward-dir", param_hint="--reward-dir")
    rewards = convert_rewards(source)
    _import_report("judgements", rewards, reward_out, write_result(rewards, reward_out))


app.add_typer(import_app, name="import")


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="data")
