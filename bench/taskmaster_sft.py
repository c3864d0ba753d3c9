"""Fine-tune SmolLM2-135M on real Taskmaster-4 dialogues and evaluate base vs tuned on unseen ones.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/taskmaster_sft.py --converted runs/taskmaster_sft/taskmaster.jsonl \
        --train 600 --val 20 --eval 22 --steps 150 --out runs/taskmaster_sft/main     # README: 21 min of training on 2 cores

Steps, each timed (CPU time of this process and its children, and wall time):
1. convert `dialogs/` with tunelab's importer (or reuse --converted FILE);
2. drop exact duplicate dialogues, then a seeded split *by dialogue* into eval / val / train:
   the eval dialogues are taken first from the shuffled order, so they depend only on --seed
   and --eval, and no eval dialogue (nor an identical copy) is ever trained on;
3. evaluate the base model on every assistant turn of the eval dialogues (tunelab's eval API);
4. train with examples/taskmaster.yaml through `tunelab.train.run.run`, the `tunelab train` path, in
   bf16_base + compile where this CPU's bf16 matmul measured at least 1.5x fp32 (as the demo);
5. evaluate the tuned run directory on the same contexts;
6. validation loss of base and tuned on the val dialogues; each rate with its Wilson 95% interval,
   and paired bootstrap CIs of tuned - base (`--retable` rebuilds that table from saved replies).

Writes <out>/results.json (sizes, timings, the table) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tunelab.config import GENERATION_BATCH  # noqa: E402
from tunelab.data.split import split_by_dialogue, write_subsets  # noqa: E402
from tunelab.demos.taskmaster import subset_stats, training_config, val_loss  # noqa: E402
from tunelab.eval.paired_table import SavedRunError, behaviour_table, format_table, retable  # noqa: E402
from tunelab.messages import Conversation  # noqa: E402

log = logging.getLogger("taskmaster_sft")
BASE_MODEL = "smollm2-135m"


@dataclass
class Clock:
    """CPU seconds (this process + reaped children) and wall seconds of each named step."""

    steps: dict[str, dict[str, float]] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        def cpu() -> float:
            t = os.times()
            return time.process_time() + t.children_user + t.children_system

        cpu0, wall0 = cpu(), time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = {"cpu_s": round(cpu() - cpu0, 1), "wall_s": round(time.perf_counter() - wall0, 1)}
            log.info("%s: %.1f s CPU, %.1f s wall", name, self.steps[name]["cpu_s"], self.steps[name]["wall_s"])


def evaluate(model: str, data: Path, out: Path, args: argparse.Namespace, description: str) -> Any:
    from tunelab.eval.runner import run_eval
    from tunelab.generation.replies import GenerationSettings

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.gen_batch)
    return run_eval(
        model,
        data,
        out_dir=out,
        turns=args.turns,
        settings=settings,
        semantic=args.semantic,
        progress=not args.quiet,
        description=description,
    )


def saved_base(earlier: Path, eval_file: Path, out: Path) -> Any:
    """The base model's replies from an earlier run of this bench (its eval_base/), reused when that run
    evaluated exactly these dialogues (its data/eval.jsonl byte for byte): greedy replies of the same
    base model do not change between runs of one machine, and saving them saves their minutes."""
    import shutil

    from tunelab.eval.paired_table import read_saved_replies
    from tunelab.eval.runner import EvalResult
    from tunelab.rundir import PREDICTIONS, read_json

    earlier_eval = earlier / "data" / eval_file.name
    if not earlier_eval.exists() or earlier_eval.read_bytes() != eval_file.read_bytes():
        raise SystemExit(f"--base-from {earlier}: {earlier_eval} is not this run's {eval_file.name} (other dialogues)")
    shutil.copytree(earlier / "eval_base", out, dirs_exist_ok=True)
    log.info("base replies reused from %s", earlier / "eval_base")
    return EvalResult(out, read_saved_replies(out / PREDICTIONS), read_json(out / "scores.json"))


def load_dialogues(args: argparse.Namespace, clock: Clock) -> list[Conversation]:
    from tunelab.data.formats import read_conversations
    from tunelab.data.taskmaster import convert_dialogs, write_result

    converted = Path(args.converted) if args.converted else Path(args.out) / "taskmaster.jsonl"
    if not converted.exists():
        with clock.step("convert"):
            result = convert_dialogs(args.data_dir)
            write_result(result, converted)
            log.info("converted %s -> %s", result.summary(), converted)
    read = read_conversations(converted)
    if read.rejected:
        raise SystemExit(f"{converted}: {len(read.rejected)} rows are invalid, first: {read.rejected[0].message()}")
    return read.conversations


def eval_extra(result: Any, max_new_tokens: int, tokenizer: Any) -> dict[str, Any]:
    """Context sizes, and how many references could not fit in max_new_tokens at all."""
    rows = result.rows
    long_refs = sum(1 for r in rows if len(tokenizer(r["reference"])["input_ids"]) + 1 > max_new_tokens)
    return {
        "contexts": len(rows),
        "prompt_tokens": sum(r["context_tokens"] for r in rows),
        "max_prompt_tokens": max(r["context_tokens"] for r in rows),
        "generated_tokens": sum(r["new_tokens"] for r in rows),
        "references_longer_than_max_new_tokens": long_refs,
        "behaviour": result.scores["behaviour"],
        "text_metrics": result.scores["metrics"],
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.retable:
        try:
            results = retable(Path(args.out), args.resamples, args.seed)
        except SavedRunError as exc:
            raise SystemExit(str(exc)) from None
        print(format_table(results["table"]))
        print(f"rewritten: {Path(args.out) / 'results.json'}")
        return results
    from tunelab.models.load import load_tokenizer
    from tunelab.train.precision import choice_line, resolve
    from tunelab.train.run import run

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    split = split_by_dialogue(load_dialogues(args, clock), args.train, args.val, args.eval, args.seed)
    paths = write_subsets(split, out / "data")
    config = training_config(
        args.config,
        paths,
        out / "run",
        len(split.train),
        seed=args.seed,
        n_val=args.val,
        steps=args.steps,
        epochs=args.epochs,
        sets=args.set,
    )
    # `auto` as every run resolves it (the probe runs once per process, so the run agrees)
    configured, config = config, resolve(config)
    log.info("CPU and precision: %s", choice_line(configured, config))
    tokenizer = load_tokenizer(BASE_MODEL)
    sizes = {
        name: subset_stats(getattr(split, name), tokenizer, config.data.max_length) for name in ("train", "val", "eval")
    }
    log.info("sizes: %s", json.dumps(sizes))
    with clock.step("eval_base"):
        if args.base_from:
            base = saved_base(Path(args.base_from), paths["eval"], out / "eval_base")
        else:
            base = evaluate(BASE_MODEL, paths["eval"], out / "eval_base", args, "base: generating")
    with clock.step("val_loss_base"):
        loss_base = val_loss(BASE_MODEL, split.val, config.data.max_length)
    with clock.step("train"):
        summary = run(config)
    with clock.step("val_loss_tuned"):
        loss_tuned = val_loss(str(out / "run"), split.val, config.data.max_length)
    with clock.step("eval_tuned"):
        tuned = evaluate(str(out / "run"), paths["eval"], out / "eval_tuned", args, "tuned: generating")
    table = behaviour_table(base, tuned, args.resamples, args.seed)
    results = {
        "command": " ".join(["bench/taskmaster_sft.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
            "cpu": config.train.probe.model_dump() if config.train.probe else None,
            "precision": config.train.precision,
            "compile": config.train.compile,
        },
        "seed": args.seed,
        "split": "by dialogue (eval, then val, then train from one seeded shuffle)",
        "duplicates_dropped": split.duplicates_dropped,
        "sizes": sizes,
        "eval_contexts": {
            "base": eval_extra(base, args.max_new_tokens, tokenizer),
            "tuned": eval_extra(tuned, args.max_new_tokens, tokenizer),
        },
        "generation": {
            "max_new_tokens": args.max_new_tokens,
            "batch_size": args.gen_batch,
            "greedy": True,
            "turns": args.turns,
        },
        "training": {
            "steps": summary["steps"],
            "train_examples": summary["train_examples"],
            "final_val_loss_trainer": summary["final_val_loss"],
            "throughput": summary.get("throughput"),
            "config": config.model_dump(mode="json"),
        },
        "val_loss": {"base": loss_base, "tuned": loss_tuned, "unit": "mean CE per target token"},
        "timing": clock.steps,
        "table": table,
    }
    from tunelab.rundir import write_json

    write_json(out / "results.json", results)
    print(format_table(table))
    print(f"val loss (per target token): base {loss_base}, tuned {loss_tuned}")
    print("timing:", json.dumps(clock.steps))
    print(f"written: {out / 'results.json'}")
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(REPO.parent / "shared/data/taskmaster4"), help="Taskmaster-4 folder")
    p.add_argument("--converted", help="reuse this converted JSONL (tunelab data import taskmaster)")
    p.add_argument("--config", default=str(REPO / "examples/taskmaster.yaml"))
    p.add_argument("--train", type=int, default=200, help="training dialogues")
    p.add_argument("--val", type=int, default=20, help="validation dialogues (loss only)")
    p.add_argument("--eval", type=int, default=30, help="unseen evaluation dialogues")
    p.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    p.add_argument("--epochs", type=float, help="epochs (default: the config's)")
    p.add_argument("--turns", choices=("all", "last"), default="all")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--gen-batch", type=int, default=GENERATION_BATCH)
    p.add_argument("--base-from", help="reuse the base replies of this earlier --out (the same eval dialogues)")
    p.add_argument("--semantic", action="store_true", help="also embedding similarity (slower)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/taskmaster_sft/main")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--retable",
        action="store_true",
        help="only rebuild the table of the finished run in --out from its saved predictions",
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
