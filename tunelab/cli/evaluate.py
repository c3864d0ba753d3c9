"""`tunelab eval | compare`: measure what a model does on held-out dialogues, or two models side by side."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tunelab.config import GENERATION_BATCH

TURNS_HELP = "Evaluate every assistant turn ('all') or only each conversation's last one ('last')."


def _settings(max_new_tokens: int, sample: bool, temperature: float, top_p: float, batch_size: int, seed: int):
    from tunelab.generation.replies import GenerationSettings

    try:
        return GenerationSettings(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature,
            top_p=top_p,
            batch_size=batch_size,
            seed=seed,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _turns(value: str) -> str:
    if value not in ("all", "last"):
        raise typer.BadParameter(f"--turns must be 'all' or 'last', got {value!r}")
    return value


def _print_scores(scores: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{scores['model']} on {scores['data']} (n = {scores['n']} contexts)")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    behaviour = scores.get("behaviour") or {}
    for name in ("appropriateness", "correctness"):
        if behaviour.get(name) is not None:
            table.add_row(f"behaviour: {name}", f"{behaviour[name]:.3f}")
    for name, value in scores["metrics"].items():
        label = f"meteor ({scores['meteor_variant']})" if name == "meteor" else name
        table.add_row(label, f"{value:.3f}")
    console.print(table)
    console.print(f"Wrote {out / 'predictions.jsonl'} and {out / 'scores.json'}")


def evaluate(
    model: str = typer.Option(
        ..., "--model", help="Run directory, model directory or registry name (e.g. smollm2-135m)."
    ),
    data: Path = typer.Option(..., "--data", help="Conversations (OpenAI messages JSONL, ShareGPT or Alpaca)."),
    system_prompt: Path | None = typer.Option(
        None, "--system-prompt", help="File whose text replaces (or adds) the system message."
    ),
    turns: str = typer.Option("all", "--turns", help=TURNS_HELP, callback=_turns),
    out: Path | None = typer.Option(
        None, "--out", help="Output dir (default: the run dir itself, else evals/<model>__<data>)."
    ),
    max_new_tokens: int = typer.Option(128, help="Longest reply, in tokens."),
    sample: bool = typer.Option(False, "--sample/--greedy", help="Sample instead of greedy decoding."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (with --sample)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass (with --sample)."),
    batch_size: int = typer.Option(GENERATION_BATCH, help="Contexts generated together."),
    seed: int = typer.Option(0, help="Seed for sampling."),
    limit: int | None = typer.Option(None, help="Evaluate only the first N contexts."),
    semantic: bool = typer.Option(
        True, "--semantic/--no-semantic", help="Compute embedding similarity (all-MiniLM-L6-v2)."
    ),
) -> None:
    """Generate a reply for each assistant turn of held-out conversations and score it.

    Writes predictions.jsonl and scores.json (behaviour, BLEU, chrF, ROUGE, METEOR, semantic, match).

    Example:  tunelab eval --model runs/cafe --data data/cafe_test.jsonl --turns all
    """
    from tunelab.api import evaluate as run_eval

    result = run_eval(
        model,
        data,
        out_dir=out,
        system_prompt_file=system_prompt,
        turns=turns,  # type: ignore[arg-type]
        settings=_settings(max_new_tokens, sample, temperature, top_p, batch_size, seed),
        limit=limit,
        semantic=semantic,
    )
    _print_scores(result.scores, result.out_dir)


def compare(
    a: str = typer.Option(..., "--a", help="Model A: run dir, model dir or registry name."),
    b: str = typer.Option(..., "--b", help="Model B (may be the same as A with a different system prompt)."),
    data: Path = typer.Option(..., "--data", help="Conversations both are evaluated on."),
    system_prompt_a: Path | None = typer.Option(None, "--system-prompt-a", help="System prompt file for A."),
    system_prompt_b: Path | None = typer.Option(None, "--system-prompt-b", help="System prompt file for B."),
    turns: str = typer.Option("all", "--turns", help=TURNS_HELP, callback=_turns),
    out: Path | None = typer.Option(None, "--out", help="Output dir (default: compare/<A>__vs__<B>)."),
    max_new_tokens: int = typer.Option(128, help="Longest reply, in tokens."),
    sample: bool = typer.Option(False, "--sample/--greedy", help="Sample instead of greedy decoding."),
    temperature: float = typer.Option(1.0, help="Sampling temperature (with --sample)."),
    top_p: float = typer.Option(1.0, help="Nucleus sampling mass (with --sample)."),
    batch_size: int = typer.Option(GENERATION_BATCH, help="Contexts generated together."),
    seed: int = typer.Option(0, help="Seed for sampling and the bootstrap."),
    limit: int | None = typer.Option(None, help="Compare on the first N contexts only."),
    resamples: int = typer.Option(2000, help="Bootstrap resamples for the confidence intervals."),
    semantic: bool = typer.Option(True, "--semantic/--no-semantic", help="Compute embedding similarity."),
) -> None:
    """Compare two models, or one model with and without a system prompt, on the same contexts.

    Prints every metric for A and B, the delta B - A and its paired bootstrap 95% CI (bold when
    it excludes 0), and the contexts where their dialogue acts differ; writes compare.json.

    Example:  tunelab compare --a smollm2-135m --b smollm2-135m --system-prompt-b prompt.txt --data test.jsonl
    """
    from rich.console import Console

    from tunelab.api import compare as run_compare
    from tunelab.eval.compare import render_act_differences, render_table

    result = run_compare(
        a,
        b,
        data,
        system_prompt_a=system_prompt_a,
        system_prompt_b=system_prompt_b,
        out_dir=out,
        turns=turns,  # type: ignore[arg-type]
        settings=_settings(max_new_tokens, sample, temperature, top_p, batch_size, seed),
        limit=limit,
        semantic=semantic,
        n_resamples=resamples,
        seed=seed,
    )
    console = Console()
    console.print(render_table(result))
    if result.act_differences:
        console.print(render_act_differences(result))
    else:
        console.print(f"The two sides' dialogue acts differ in none of the {result.summary['n']} contexts.")
    console.print(f"Wrote {result.out_dir / 'compare.json'} (each side's predictions in a/ and b/)")


def register(app: typer.Typer) -> None:
    app.command(name="eval")(evaluate)
    app.command()(compare)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
