"""The `tunelab` command: parse arguments, load the config, make one call per command.

Nothing imports this module; every command's work lives in the package.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tunelab.models.registry import DEFAULT_MODEL

app = typer.Typer(
    help="Fine-tune small LLMs on dialogues, measure what they do, and ship them.\n\n"
    "Start with:  tunelab demo    (cafe assistant on the embedded SmolLM2-135M, ~10 min on a laptop CPU)",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Check, inspect and convert training data.", no_args_is_help=True)
app.add_typer(data_app, name="data")
console = Console(soft_wrap=True)  # file paths must stay whole, to be copied
err = Console(stderr=True, soft_wrap=True)

EXPECTED_ERRORS = (FileNotFoundError, FileExistsError, ValueError, RuntimeError)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@app.command()
def train(
    config: Path = typer.Argument(..., help="YAML config (sections: model, data, train, output)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.learning_rate=1e-4 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the last complete checkpoint in output.dir."),
    merge: bool = typer.Option(False, "--merge", help="Also write merged/, a full model plain transformers loads."),
) -> None:
    """Fine-tune a model: recipe sft (loss on assistant turns only), bake (a system prompt into the weights), kto or dpo.

    Example:  tunelab train examples/cafe.yaml --set train.epochs=2 --set output.dir=runs/cafe2
    """
    from tunelab.config import load
    from tunelab.train.run import run

    cfg = load(config, [*set_, *(["output.merge=true"] if merge else [])])
    summary = run(cfg, resume=resume)
    val = summary.get("final_val_loss")
    console.print(f"done: {summary['steps']} steps, final validation loss {val:.4f}" if val is not None else f"done: {summary['steps']} steps")
    console.print(f"run directory: [bold]{summary['run_dir']}[/]")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the data and the run go."),
    n_train: int = typer.Option(200, help="cafe: training dialogues to generate (seed --seed), each followed by its complete twin."),
    n_heldout: int = typer.Option(130, help="cafe: held-out dialogues to measure on, from a seed never trained on (~140 ask and ~130 confirm turns)."),
    steps: int = typer.Option(0, help="cafe: optimizer steps of one dialogue each (0: the demo default, one epoch over --n-train and the twins, 399 steps)."),
    seed: int = typer.Option(0, help="Seed for the generator (cafe dialogues, or helpdesk logs and their held-out split)."),
    scenario: str = typer.Option("cafe", "--scenario", help="cafe (dialogue SFT) | helpdesk (labelled logs -> bake a system prompt in -> adherence table)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="helpdesk only: the model to bake into, e.g. gemma3-270m (a registry name or a local directory)."),
) -> None:
    """The main job: teach SmolLM2-135M to ask for missing order details and confirm complete orders.

    Generates cafe dialogues, measures the base model, fine-tunes LoRA, measures again (about 10 min on 2 cores).
    In its 399 one-dialogue steps the model learns to confirm (~90%) but asks right only ~60% of the time; `make demo-long` (250 steps of 8 dialogues, about 30 min of training) asks right 99% of the time (docs/cafe.md).
    --scenario helpdesk bakes a university-helpdesk system prompt into the model from synthetic feedback logs and prints the adherence table (about 25 min).
    Example:  tunelab demo --out runs/demo        or   tunelab demo --scenario helpdesk --out runs/helpdesk
    """
    if any(out.glob("**/metrics.jsonl")):
        fail(f"{out} already holds a demo run; remove it or pass --out elsewhere")
    if scenario == "helpdesk":
        from tunelab.demos.helpdesk import run_helpdesk_demo

        res = run_helpdesk_demo(out, model=model, seed=seed)
        logs, rep = res["logs"], res["adherence"]
        console.print(f"logs: read {logs['read']} = kept {logs['kept']} + rejected {logs['rejected']}; SFT/KTO/DPO sets in {out / 'sets'}")
        console.print(f"adherence on {rep['questions']} held-out questions (pass rate, questions the rule applies to):")
        console.print(res["table"], markup=False, highlight=False)
        bar = rep["bar"]
        console.print(f"bar (all rules >= 80%, no rule below the prompted base): {'met' if bar['met'] else 'not met'}"
                      + (f"; below the prompted base: {', '.join(bar['rules_worse_than_prompted'])}" if bar["rules_worse_than_prompted"] else ""))
        console.print(f"prompt tokens saved per request: {rep['prompt_tokens_saved_per_request']:.0f}; baked run: [bold]{res['bake']['run_dir']}[/]")
    elif scenario == "cafe":
        from tunelab.demos.cafe import run_demo

        if model != DEFAULT_MODEL:
            fail("--model applies to --scenario helpdesk; the cafe demo trains the default model")

        run_demo(out, n_train=n_train, n_heldout=n_heldout, seed=seed, **({"max_steps": steps} if steps else {}))
    else:
        fail(f"unknown scenario {scenario!r}: choose cafe or helpdesk")


@data_app.command("validate")
def data_validate(
    file: Path = typer.Argument(..., help="JSONL (or JSON list) of conversations: OpenAI messages, ShareGPT or Alpaca; or OpenAI preference rows (DPO: input, preferred_output, non_preferred_output)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Whose tokenizer and chat template to count with."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Reject rows that cannot fit in N tokens."),
    fmt: str = typer.Option("auto", "--format", help="auto | openai | sharegpt | alpaca"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check every row; bad rows are listed (file:line: field: reason) and written to FILE.rejected.jsonl.

    Example:  tunelab data validate train.jsonl --max-length 1024
    """
    from tunelab.data.validate import load_tokenizer, validate_file

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
    console.print(f"{report['file']} ({report['format']}): read {report['read']} = kept {report['kept']} + rejected {report['rejected']}")
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
    console.print(f"training tokens per epoch: {stats['tokens_per_epoch']} (targets {stats['target_tokens_per_epoch']}, {stats['target_share']:.0%})")
    if report["truncated"]:
        console.print(f"{report['truncated']} examples lost their oldest turns to fit --max-length")


@data_app.command("inspect")
def data_inspect(
    file: Path = typer.Argument(..., help="A conversations file."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", help="Whose chat template to render with."),
    n: int = typer.Option(3, "-n", help="How many examples to show."),
    max_length: Optional[int] = typer.Option(None, "--max-length"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per example with its target_spans."),
) -> None:
    """Show examples as the model sees them, with the tokens that carry loss highlighted.

    Example:  tunelab data inspect train.jsonl -n 2
    """
    from tunelab.data.validate import inspect_file, load_tokenizer

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


# Commands contributed by the package's areas, each a module with register(app).
from tunelab.cli import bake, choose, evaluate, ship, studio, taskmaster  # noqa: E402

for _module in (evaluate, ship, choose, bake, studio):
    _module.register(app)
taskmaster.register(data_app)


def main() -> None:
    logging.basicConfig(level=os.environ.get("TUNELAB_LOG", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        app()
    except EXPECTED_ERRORS as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
