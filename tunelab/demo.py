"""The main job: fine-tune the embedded model into a cafe-ordering assistant and show it works.

Steps: generate seeded cafe dialogues -> measure the base model's behaviour on held-out
contexts -> LoRA fine-tune -> measure again -> a before/after table. Behaviour is judged per
assistant turn from the generator's own record of what the right reply does (ask about the
missing slot, or confirm the whole order), not by word overlap with a reference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tunelab import rundir
from tunelab.config import Config, load
from tunelab.data.synth import cafe
from tunelab.data.split import split
from tunelab.types import Conversation

console = Console(stderr=True)
SCORED_ACTS = ("ask", "confirm")


def demo_config(out: Path, train_file: Path, val_file: Path, **train_overrides: Any) -> Config:
    train = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "eval_steps": 15, "save_steps": 15, "logging_steps": 5, "warmup_ratio": 0.05}
    train.update(train_overrides)
    return load(
        data={
            "model": {"name": "smollm2-135m", "adapter": "lora", "lora": {"r": 16, "alpha": 32}},
            "data": {"train": str(train_file), "val": str(val_file), "max_length": 384},
            "train": train,
            "output": {"dir": str(out / "run")},
        }
    )


def behaviour_scores(model: Any, tokenizer: Any, convs: list[Conversation], label: str) -> dict[str, Any]:
    """Greedy replies to every ask/confirm context of `convs`, judged by the generator's expectations."""
    from tunelab.eval.generate import GenerationSettings, build_contexts, generate_replies, render_prompts

    turns = {c.id: c.meta["turns"] for c in convs}

    def expect(ctx: Any) -> dict[str, Any]:
        return turns[ctx.conversation_id].get(str(ctx.turn_index), {"act": "other"})

    contexts = [c for c in build_contexts(convs) if expect(c)["act"] in SCORED_ACTS]
    prompts = render_prompts(tokenizer, [c.messages for c in contexts])
    replies = generate_replies(model, tokenizer, prompts, GenerationSettings(max_new_tokens=48, batch_size=16), description=f"{label}: generating")
    rows = []
    for ctx, reply in zip(contexts, replies):
        wanted = expect(ctx)
        rows.append({"conversation_id": ctx.conversation_id, "turn": ctx.turn_index, "context": [m.to_openai() for m in ctx.messages], "expected": wanted, "reference": ctx.reference, "reply": reply.text, "right": cafe.judge_reply(reply.text, wanted)})

    def share(act: str) -> float:
        picked = [r["right"] for r in rows if r["expected"]["act"] == act]
        return sum(picked) / len(picked) if picked else float("nan")

    return {
        "ask_when_missing": share("ask"),
        "confirm_when_complete": share("confirm"),
        "overall": sum(r["right"] for r in rows) / max(1, len(rows)),
        "n_ask": sum(r["expected"]["act"] == "ask" for r in rows),
        "n_confirm": sum(r["expected"]["act"] == "confirm" for r in rows),
        "rows": rows,
    }


def write_data(out: Path, n_train: int, n_val: int, seed: int) -> tuple[Path, Path, list[Conversation]]:
    convs = cafe.generate(n_train + n_val, seed=seed)
    train, val = split(convs, n_val / (n_train + n_val), seed)
    train_file, val_file = out / "data" / "train.jsonl", out / "data" / "val.jsonl"
    rundir.write_jsonl(train_file, [c.to_openai() for c in train])
    rundir.write_jsonl(val_file, [c.to_openai() for c in val])
    return train_file, val_file, val


def run_demo(out: Path, n_train: int = 200, n_val: int = 40, seed: int = 0, **train_overrides: Any) -> dict[str, Any]:
    from tunelab.models.load import load_model
    from tunelab.train.sft import train

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    train_file, val_file, val = write_data(out, n_train, n_val, seed)
    console.print(f"[bold]1/4[/] wrote {n_train} training and {n_val} validation dialogues to {train_file.parent}")
    config = demo_config(out, train_file, val_file, **train_overrides)
    console.print("[bold]2/4[/] measuring the base model on held-out contexts")
    model, tokenizer = load_model(config.model.name)
    before = behaviour_scores(model, tokenizer, val, "base")
    del model
    console.print("[bold]3/4[/] LoRA fine-tuning")
    summary = train(config)
    console.print("[bold]4/4[/] measuring the tuned model on the same contexts")
    model, tokenizer = load_model(summary["run_dir"], merge=True)  # merged: same outputs, faster generation
    after = behaviour_scores(model, tokenizer, val, "tuned")
    result = {
        "before": before,
        "after": after,
        "train": summary,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    rundir.write_json(out / "demo_results.json", result)
    write_run_artifacts(Path(summary["run_dir"]), before, after)
    show(result)
    return result


def write_run_artifacts(run_dir: Path, before: dict[str, Any], after: dict[str, Any]) -> None:
    """Side-by-side replies and the behaviour scores in the run directory, then its HTML report."""
    from tunelab.report import write_report

    pairs = [
        {"context": b["context"], "expected": b["expected"], "reference": b["reference"], "base": b["reply"], "tuned": a["reply"], "base_right": b["right"], "tuned_right": a["right"]}
        for b, a in zip(before["rows"], after["rows"])
    ]
    rundir.write_jsonl(run_dir / "before_after.jsonl", pairs)
    keys = ("ask_when_missing", "confirm_when_complete", "overall", "n_ask", "n_confirm")
    rundir.write_json(run_dir / "demo_scores.json", {"base": {k: before[k] for k in keys}, "tuned": {k: after[k] for k in keys}})
    write_report(run_dir)


def show(result: dict[str, Any]) -> None:
    before, after = result["before"], result["after"]
    table = Table(title="Cafe assistant: does the reply do the right thing? (held-out contexts, greedy)")
    table.add_column("behaviour")
    table.add_column("n", justify="right")
    table.add_column("base", justify="right")
    table.add_column("tuned", justify="right")
    for key, label, n in (
        ("ask_when_missing", "asks about the missing detail", before["n_ask"]),
        ("confirm_when_complete", "confirms a complete order", before["n_confirm"]),
        ("overall", "overall", before["n_ask"] + before["n_confirm"]),
    ):
        table.add_row(label, str(n), f"{before[key]:.0%}", f"[bold]{after[key]:.0%}[/]")
    out = Console()
    out.print(table)
    for row_b, row_a in list(zip(before["rows"], after["rows"]))[:3]:
        out.print(f"[dim]expected {row_b['expected']['act']}[/]  base: {row_b['reply'][:90]!r}\n{'':>17}tuned: {row_a['reply'][:90]!r}")
    t = result["train"]
    out.print(f"run directory: [bold]{t['run_dir']}[/]  (final validation loss {t['final_val_loss']:.3f}, {t['steps']} steps)")
    out.print(f"report: {Path(t['run_dir']) / rundir.REPORT}")
    out.print(f"wall time: {result['wall_seconds']:.0f} s")
