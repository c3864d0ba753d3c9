"""Fine-tune SmolLM2-135M on real Taskmaster-4 dialogues and evaluate base vs tuned on unseen ones.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/taskmaster_sft.py --converted /tmp/tm_run/taskmaster.jsonl \
        --train 600 --val 20 --eval 22 --steps 150 --out /tmp/tm_run/main     # README: 21 min of training on 2 cores

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
import random
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tunelab.data.split import dedupe  # noqa: E402
from tunelab.messages import Conversation  # noqa: E402

log = logging.getLogger("taskmaster_sft")
BASE_MODEL = "smollm2-135m"


@dataclass
class Split:
    train: list[Conversation]
    val: list[Conversation]
    eval: list[Conversation]
    duplicates_dropped: int = 0


def split_by_dialogue(convs: Sequence[Conversation], n_train: int, n_val: int, n_eval: int, seed: int) -> Split:
    """Disjoint eval / val / train dialogues from a seeded shuffle (eval first, then val, then train).

    Exact duplicates (same messages under another id) are dropped before the split, so a copy of
    an eval dialogue cannot reach training.
    """
    # Sorted first, so that which copy of a duplicate survives does not depend on the file order.
    unique, dropped = dedupe(sorted(convs, key=lambda c: c.id))
    if dropped:
        log.info("dropped %d exact duplicate dialogues before the split", dropped)
    wanted = n_train + n_val + n_eval
    if min(n_train, n_eval) < 1 or n_val < 0:
        raise ValueError(f"need --train >= 1, --eval >= 1, --val >= 0; got {n_train}, {n_eval}, {n_val}")
    if wanted > len(unique):
        raise ValueError(f"asked for {wanted} dialogues ({n_train} train + {n_val} val + {n_eval} eval) "
                         f"but only {len(unique)} distinct ones exist")
    order = list(unique)
    random.Random(seed).shuffle(order)
    return Split(train=order[n_eval + n_val:wanted], val=order[n_eval:n_eval + n_val], eval=order[:n_eval],
                 duplicates_dropped=dropped)


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


def subset_stats(convs: Sequence[Conversation], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Dialogues, assistant turns (text / tool call) and tokens as training would see them."""
    from tunelab.data.prepare import tokenize_all

    turns = [m for c in convs for m in c.messages if m.is_target]
    tokenized = tokenize_all(tokenizer, list(convs), max_length)
    return {
        "dialogues": len(convs),
        "assistant_turns": len(turns),
        "tool_call_turns": sum(1 for m in turns if m.tool_calls),
        "text_turns": sum(1 for m in turns if not m.tool_calls),
        "tokens": sum(len(e.input_ids) for e in tokenized.examples),
        "target_tokens": sum(e.n_targets for e in tokenized.examples),
        "truncated_dialogues": tokenized.truncated,
        "dropped_too_long": len(tokenized.too_long),
    }


def val_loss(model_spec: str, convs: Sequence[Conversation], max_length: int) -> float | None:
    """Mean cross-entropy per target token over `convs`, one dialogue at a time (no padding)."""
    import torch

    from tunelab.data.prepare import tokenize_all
    from tunelab.data.tokenize import IGNORE
    from tunelab.models.load import load_model

    if not convs:
        return None
    model, tokenizer = load_model(model_spec, merge=True)
    total, count = 0.0, 0
    with torch.inference_mode():
        for example in tokenize_all(tokenizer, list(convs), max_length).examples:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor(example.labels[1:])
            logits = model(input_ids=ids).logits[0, :-1]
            keep = labels != IGNORE
            total += float(torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum"))
            count += int(keep.sum())
    return total / count if count else None


def write_subsets(split: Split, folder: Path) -> dict[str, Path]:
    from tunelab.rundir import write_jsonl

    paths = {}
    for name in ("train", "val", "eval"):
        paths[name] = folder / f"{name}.jsonl"
        write_jsonl(paths[name], [c.to_openai() for c in getattr(split, name)])
    return paths


def training_config(args: argparse.Namespace, paths: dict[str, Path], run_dir: Path, n_train: int,
                    cpu: dict[str, Any] | None = None) -> Any:
    """examples/taskmaster.yaml with this run's data, output, seed, length of training, the precision
    that pays on this CPU (`describe_cpu`, measured unless given) and --set."""
    from tunelab.config import load
    from tunelab.train.precision import chosen_settings, describe_cpu

    overrides = [f"data.train={paths['train']}", f"output.dir={run_dir}", f"train.seed={args.seed}",
                 f"data.seed={args.seed}"]  # threads: torch's default (all cores); --set train.threads=N to change
    overrides.append(f"data.val={paths['val']}" if args.val else "data.val=null")  # never the example file's val set
    base = load(args.config)
    per_epoch = -(-n_train // (base.train.batch_size * base.train.grad_accum))
    total = args.steps or max(1, round(per_epoch * (args.epochs or base.train.epochs)))
    overrides.append(f"train.max_steps={total}" if args.steps else f"train.epochs={args.epochs or base.train.epochs}")
    # Validation loss (and a checkpoint) about four times per run, whatever its length.
    every = max(1, total // 4)
    overrides += [f"train.eval_steps={every}", f"train.save_steps={every}"]
    # Precision and compile as the demo chooses them, from this CPU's measured bf16 and fp32 rates,
    # unless --set names them.
    if not any(s.startswith(("train.precision=", "train.compile=")) for s in args.set):
        plain = load(args.config, [*overrides, *args.set])
        speed = chosen_settings(cpu or describe_cpu(), plain.train.behaviour_eval.enabled)
        overrides += [f"train.precision={speed['precision']}", f"train.compile={str(speed['compile']).lower()}"]
    return load(args.config, [*overrides, *args.set])


def evaluate(model: str, data: Path, out: Path, args: argparse.Namespace, description: str) -> Any:
    from tunelab.generation.replies import GenerationSettings
    from tunelab.eval.runner import run_eval

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, batch_size=args.gen_batch)
    return run_eval(model, data, out_dir=out, turns=args.turns, settings=settings, semantic=args.semantic,
                    progress=not args.quiet, description=description)


def _paired(rows_a: list[dict], rows_b: list[dict], flag: str, keep: Any = None) -> tuple[list[float], list[float]]:
    by_key = {(r["conversation_id"], r["turn_index"]): r for r in rows_b}
    a, b = [], []
    for ra in rows_a:
        rb = by_key[(ra["conversation_id"], ra["turn_index"])]
        if keep is None or keep(ra):
            a.append(float(bool(ra["behaviour"].get(flag, False))))
            b.append(float(bool(rb["behaviour"].get(flag, False))))
    return a, b


def behaviour_table(base: Any, tuned: Any, n_resamples: int, seed: int) -> list[dict[str, Any]]:
    """Rows: metric, n, base and tuned with their 95% Wilson intervals, delta with its 95%
    paired-bootstrap interval over contexts."""
    from tunelab.eval.behaviour import ACTS
    from tunelab.eval.metrics import paired_bootstrap, wilson

    def ref(act: str) -> Any:
        return lambda r: r["behaviour"]["reference_act"] == act

    specs: list[tuple[str, str, Any]] = [("appropriateness", "appropriate", None), ("correctness", "correct", None)]
    for act in ACTS:
        specs += [(f"{act}: appropriateness", "appropriate", ref(act)), (f"{act}: correctness", "correct", ref(act))]
    specs += [("tool_call: name accuracy", "name_correct", ref("tool_call")),
              ("tool_call: args accuracy (exact)", "args_correct", ref("tool_call")),
              ("tool_call: args accuracy (normalised)", "args_normalised_correct", ref("tool_call"))]
    table = []
    for name, flag, keep in specs:
        a, b = _paired(base.rows, tuned.rows, flag, keep)
        if not a:
            table.append({"metric": name, "n": 0, "base": None, "tuned": None, "delta": None, "ci95": None})
            continue
        d = paired_bootstrap(a, b, n_resamples=n_resamples, seed=seed)
        table.append({"metric": name, "n": d.n, "base": round(d.a, 3), "tuned": round(d.b, 3),
                      "base_ci95": [round(x, 3) for x in wilson(int(sum(a)), len(a))],
                      "tuned_ci95": [round(x, 3) for x in wilson(int(sum(b)), len(b))],
                      "delta": round(d.delta, 3), "ci95": [round(d.low, 3), round(d.high, 3)]})
    return table


def format_table(table: list[dict[str, Any]]) -> str:
    def rate(row: dict[str, Any], side: str) -> str:
        low, high = row.get(f"{side}_ci95") or (float("nan"), float("nan"))
        return f"{row[side]:.3f} [{low:.2f}, {high:.2f}]"

    lines = [f"| {'metric':<38} | {'n':>4} | {'base [95% CI]':>19} | {'tuned [95% CI]':>19} | {'delta':>7} "
             f"| 95% CI of delta |",
             f"|{'-' * 40}|{'-' * 6}|{'-' * 21}|{'-' * 21}|{'-' * 9}|{'-' * 17}|"]
    for row in table:
        if row["n"] == 0:
            lines.append(f"| {row['metric']:<38} | {0:>4} | {'-':>19} | {'-':>19} | {'-':>7} | {'-':>15} |")
            continue
        ci = f"[{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]"
        lines.append(f"| {row['metric']:<38} | {row['n']:>4} | {rate(row, 'base'):>19} | {rate(row, 'tuned'):>19} | "
                     f"{row['delta']:>+7.3f} | {ci:>15} |")
    return "\n".join(lines)


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
    return {"contexts": len(rows), "prompt_tokens": sum(r["context_tokens"] for r in rows),
            "max_prompt_tokens": max(r["context_tokens"] for r in rows),
            "generated_tokens": sum(r["new_tokens"] for r in rows),
            "references_longer_than_max_new_tokens": long_refs,
            "behaviour": result.scores["behaviour"], "text_metrics": result.scores["metrics"]}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.retable:
        return retable(Path(args.out), args)
    from transformers import AutoTokenizer

    from tunelab.data.tokenize import ensure_template
    from tunelab.models.registry import resolve
    from tunelab.train.run import run
    from tunelab.train.precision import describe_cpu

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    split = split_by_dialogue(load_dialogues(args, clock), args.train, args.val, args.eval, args.seed)
    paths = write_subsets(split, out / "data")
    cpu = describe_cpu()
    log.info("CPU: %s, %d threads; %s", cpu["model"], cpu["threads"], cpu["why"])
    config = training_config(args, paths, out / "run", len(split.train), cpu)
    tokenizer = ensure_template(AutoTokenizer.from_pretrained(resolve(BASE_MODEL)))
    sizes = {name: subset_stats(getattr(split, name), tokenizer, config.data.max_length)
             for name in ("train", "val", "eval")}
    log.info("sizes: %s", json.dumps(sizes))
    with clock.step("eval_base"):
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
        "machine": {"cpus": os.cpu_count(), "torch_threads": int(os.environ.get("OMP_NUM_THREADS", "0")) or None,
                    "cpu": cpu, "precision": config.train.precision, "compile": config.train.compile},
        "seed": args.seed, "split": "by dialogue (eval, then val, then train from one seeded shuffle)",
        "duplicates_dropped": split.duplicates_dropped, "sizes": sizes,
        "eval_contexts": {"base": eval_extra(base, args.max_new_tokens, tokenizer),
                          "tuned": eval_extra(tuned, args.max_new_tokens, tokenizer)},
        "generation": {"max_new_tokens": args.max_new_tokens, "batch_size": args.gen_batch, "greedy": True,
                       "turns": args.turns},
        "training": {"steps": summary["steps"], "train_examples": summary["train_examples"],
                     "final_val_loss_trainer": summary["final_val_loss"], "throughput": summary.get("throughput"),
                     "config": config.model_dump(mode="json")},
        "val_loss": {"base": loss_base, "tuned": loss_tuned, "unit": "mean CE per target token"},
        "timing": clock.steps, "table": table,
    }
    from tunelab.rundir import write_json

    write_json(out / "results.json", results)
    print(format_table(table))
    print(f"val loss (per target token): base {loss_base}, tuned {loss_tuned}")
    print("timing:", json.dumps(clock.steps))
    print(f"written: {out / 'results.json'}")
    return results


def retable(out: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Rebuild the table of a finished run from its saved predictions (after a change to the scoring
    or the table), keeping everything else in its results.json."""
    from types import SimpleNamespace

    from tunelab.rundir import PREDICTIONS, read_json, write_json

    try:
        results = read_json(out / "results.json")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{out / 'results.json'}: cannot be read as this bench's results ({exc})") from None
    base, tuned = (read_saved_replies(out / side / PREDICTIONS) for side in ("eval_base", "eval_tuned"))
    missing = {_context(r) for r in base} - {_context(r) for r in tuned}
    if missing:
        raise SystemExit(f"{out / 'eval_tuned' / PREDICTIONS}: no reply for {len(missing)} context(s) the base side has, "
                         f"e.g. {sorted(missing)[0]}")
    results["table"] = behaviour_table(SimpleNamespace(rows=base), SimpleNamespace(rows=tuned), args.resamples,
                                       results.get("seed", args.seed))
    write_json(out / "results.json", results)
    print(format_table(results["table"]))
    print(f"rewritten: {out / 'results.json'}")
    return results


def _context(row: dict[str, Any]) -> tuple[str, int]:
    return row["conversation_id"], row["turn_index"]


def read_saved_replies(path: Path) -> list[dict[str, Any]]:
    """One side's saved replies, for --retable. Any bad line stops it with file:line: field: reason,
    since a table over only some of the contexts would not be the run's table."""
    from tunelab.textio import InputFileError, RowError, iter_lines, loads_row

    rows = []
    try:
        for number, raw in iter_lines(path):
            if not raw.strip():
                continue
            try:
                row = loads_row(raw)
                for name, kind in (("conversation_id", str), ("turn_index", int), ("behaviour", dict)):
                    if not isinstance(row, dict) or not isinstance(row.get(name), kind):
                        raise RowError(name, f"missing, or not of type {kind.__name__}")
            except RowError as exc:
                raise SystemExit(f"{path}:{number}: {exc}") from None
            rows.append(row)
    except InputFileError as exc:
        raise SystemExit(str(exc)) from None
    return rows


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
    p.add_argument("--gen-batch", type=int, default=16)
    p.add_argument("--semantic", action="store_true", help="also embedding similarity (slower)")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    p.add_argument("--set", action="append", default=[], help="config override key=value (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/tm_run/main")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--retable", action="store_true",
                   help="only rebuild the table of the finished run in --out from its saved predictions")
    return p.parse_args(argv)


if __name__ == "__main__":
    main()
