"""`tunelab demo`: the cafe scenario (dialogue SFT) or the helpdesk one (bake a system prompt in)."""

from __future__ import annotations

from pathlib import Path

import typer

from tunelab.cli.common import console, fail
from tunelab.demos.cafe import N_TRAIN
from tunelab.models.registry import DEFAULT_MODEL


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Where the data and the run go."),
    n_train: int = typer.Option(
        N_TRAIN, help="cafe: training dialogues to generate (seed --seed), each followed by its complete twin."
    ),
    n_heldout: int = typer.Option(130, help="cafe: held-out dialogues to measure on, from a seed never trained on."),
    steps: int = typer.Option(
        0,
        help="cafe: optimizer steps of one dialogue each (0: the demo default, one epoch over --n-train and the twins).",
    ),
    seed: int = typer.Option(
        0, help="Seed for the generator (cafe dialogues, or helpdesk logs and their held-out split)."
    ),
    scenario: str = typer.Option(
        "cafe",
        "--scenario",
        help="cafe (dialogue SFT) | helpdesk (labelled logs -> bake a system prompt in -> adherence table).",
    ),
    model: str = typer.Option(
        DEFAULT_MODEL,
        "--model",
        help="helpdesk only: the model to bake into, e.g. gemma3-270m (a registry name or a local directory).",
    ),
) -> None:
    """The main job: teach SmolLM2-135M to ask for missing order details and confirm complete orders.

    Generates cafe dialogues, measures the base model, fine-tunes LoRA and measures again; docs/cafe.md has the figures.
    --scenario helpdesk bakes a university-helpdesk system prompt into the model from synthetic feedback logs and prints the adherence table (docs/bake.md).
    Example:  tunelab demo --out runs/demo        or   tunelab demo --scenario helpdesk --out runs/helpdesk
    """
    if any(out.glob("**/metrics.jsonl")):
        fail(f"{out} already holds a demo run; remove it or pass --out elsewhere")
    if scenario == "helpdesk":
        _helpdesk(out, model, seed)
    elif scenario == "cafe":
        from tunelab.demos.cafe import run_demo

        if model != DEFAULT_MODEL:
            fail("--model applies to --scenario helpdesk; the cafe demo trains the default model")

        run_demo(out, n_train=n_train, n_heldout=n_heldout, seed=seed, **({"max_steps": steps} if steps else {}))
    else:
        fail(f"unknown scenario {scenario!r}: choose cafe or helpdesk")


def _helpdesk(out: Path, model: str, seed: int) -> None:
    from tunelab.demos.helpdesk import run_helpdesk_demo

    res = run_helpdesk_demo(out, model=model, seed=seed)
    logs, rep = res["logs"], res["adherence"]
    console.print(
        f"logs: read {logs['read']} = kept {logs['kept']} + rejected {logs['rejected']}; SFT/KTO/DPO sets in {out / 'sets'}"
    )
    console.print(f"adherence on {rep['questions']} held-out questions (pass rate, questions the rule applies to):")
    console.print(res["table"], markup=False, highlight=False)
    bar = rep["bar"]
    console.print(
        f"bar (all rules >= 80%, no rule below the prompted base): {'met' if bar['met'] else 'not met'}"
        + (
            f"; below the prompted base: {', '.join(bar['rules_worse_than_prompted'])}"
            if bar["rules_worse_than_prompted"]
            else ""
        )
    )
    console.print(
        f"prompt tokens saved per request: {rep['prompt_tokens_saved_per_request']:.0f}; baked run: [bold]{res['bake']['run_dir']}[/]"
    )


def register(app: typer.Typer) -> None:
    app.command()(demo)
