"""Minutes of training until the held-out cafe behaviour reaches the target, tunelab against TRL.

The target: asks about exactly the missing detail >= 90% and confirms correctly >= 95% (--asks,
--confirms) on the demo's held-out turns, by the demo's own judge (`tunelab.demos.cafe.behaviour_scores`).
Both sides get the demo's recipe (`tunelab.demos.cafe.demo_config`): --n-train dialogues and their
twins, one dialogue a step in the seeded random order, lr 2e-3, 5% warmup then cosine, LoRA r=16
alpha=32 on every linear layer of the demo's layers (model.lora.layers: the last 15), one epoch.

- tunelab trains as every run does (`tunelab.train.recipes.sft.train`; precision and compile `auto`).
- TRL's SFTTrainer with LoRA gets the very examples tunelab prepared (the same tokens and loss masks),
  the same schedule arguments (`tunelab.train.trainer.schedule_arguments`, which TRL's config shares),
  at its fastest setting on this CPU: no gradient checkpointing, bf16 autocast where the probe finds
  native bf16. Each step's example is fingerprinted on both sides; the run says whether the orders match.

Each side trains in its own process, saves its adapter every --every steps and records when each step
ended (wall time from the start of training, compile and checkpoint saves included). Then the
checkpoints are measured in step order, one side after the other, until both rates reach the target
(--all: every tunelab checkpoint, for the curve of behaviour against minutes). Prints the CPU, threads,
precision and the ratio of the two times to target.

    .venv/bin/python bench/time_to_target.py --out runs/time-to-target [--n-train 480] [--every 160] [--all]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SIDES = ("tunelab", "trl")
sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import counting  # noqa: E402  (each step's examples fingerprinted, as that bench does)


def recipe(out: Path, n_train: int, every: int, n_heldout: int = 130):
    """The demo's config with a checkpoint every `every` steps, all kept, and no validation set
    (TRL evaluates none either, so neither clock holds validation passes)."""
    from tunelab.demos import cafe

    data = cafe.write_data(out, n_train, n_heldout=n_heldout, seed=0)
    config = cafe.demo_config(
        out / "tunelab",
        data["files"]["train"],
        data["files"]["val"],
        save_steps=every,
        eval_steps=every,
        keep_checkpoints=10_000,
    )
    no_val = config.data.model_copy(update={"val": None, "val_fraction": 0.0})
    config = config.model_copy(update={"data": no_val})
    return config, data


def clock_callback(path: Path):
    """Records when training began and when each optimizer step ended; written at the end."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        began = 0.0
        ends: list[float] = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.began = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter() - self.began)

        def on_train_end(self, args, state, control, **kwargs):
            path.write_text(json.dumps({"seconds_at_step": self.ends}))

    return Clock()


def train_tunelab(out: Path, n_train: int, every: int) -> None:
    from tunelab.train import trainer as trainers
    from tunelab.train.recipes import sft

    config, _ = recipe(out, n_train, every)
    # The product's own trainer class, fingerprinted: sft.train builds it by this name.
    sft.MaskedLossTrainer = counting(trainers.MaskedLossTrainer)
    sft.train(config, extra_callbacks=[clock_callback(out / "tunelab" / "clock.json")])
    (out / "tunelab" / "order.json").write_text(json.dumps(sft.MaskedLossTrainer.step_batches))


def train_trl(out: Path, n_train: int, every: int) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTConfig, SFTTrainer

    from tunelab.data.prepare import prepare
    from tunelab.models import hardware
    from tunelab.models.adapters import peft_config
    from tunelab.models.load import load_tokenizer
    from tunelab.models.registry import resolve
    from tunelab.train.precision import resolve as resolve_config
    from tunelab.train.trainer import schedule_arguments

    config, _ = recipe(out, n_train, every)
    config = resolve_config(config)  # the batch size, learning rate and seed tunelab's side uses
    t = config.train
    side = out / "trl"
    tokenizer = load_tokenizer(resolve(config.model.name))
    data = prepare(config.data, tokenizer, side / "prepared", config.model.system_prompt)
    native_bf16 = hardware.cpu_choice()[0] != "fp32"
    args = SFTConfig(
        **schedule_arguments(t, side, has_val=False),
        max_length=config.data.max_length,
        bf16=native_bf16,
        gradient_checkpointing=False,
    )
    set_seed(t.seed)
    model = AutoModelForCausalLM.from_pretrained(resolve(config.model.name), dtype=torch.float32)
    dataset = Dataset.from_list([{"input_ids": e.input_ids, "labels": e.labels} for e in data.train])
    peft = peft_config(config.model, model)  # tunelab's adapter, in the same layers (the demo's model.lora.layers)
    trainer = counting(SFTTrainer)(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[clock_callback(side / "clock.json")],
    )
    print(f"trl: bf16 autocast {native_bf16}, no gradient checkpointing, {len(dataset)} examples", file=sys.stderr)
    trainer.train()
    final = side / "checkpoints" / f"checkpoint-{trainer.state.global_step}"
    if not final.exists():  # the last step, as tunelab's run keeps it in adapter/
        trainer.save_model(str(final))
    (side / "order.json").write_text(json.dumps(trainer.step_batches))


def checkpoints(out: Path, side: str, steps: int) -> list[tuple[int, Path]]:
    """(step, adapter directory) of every kept checkpoint and of the trained model, in step order."""
    side_dir = out / "tunelab" / "run" if side == "tunelab" else out / "trl"
    found = {int(p.name.split("-")[1]): p for p in (side_dir / "checkpoints").glob("checkpoint-*")}
    if side == "tunelab":
        found.setdefault(steps, side_dir / "adapter")
    return sorted((step, p) for step, p in found.items() if (p / "adapter_config.json").exists())


def measure(out: Path, args: argparse.Namespace) -> dict:
    from tunelab.demos import cafe

    _, data = recipe(out, args.n_train, args.every, args.n_heldout)
    results: dict[str, list[dict]] = {}
    for side in SIDES:
        seconds = json.loads((out / side / "clock.json").read_text())["seconds_at_step"]
        results[side] = []
        for step, path in checkpoints(out, side, len(seconds)):
            scores = cafe.behaviour_scores(str(path), data["heldout"], f"{side} step {step}")
            rates = scores["rates"]
            row = {
                "step": step,
                "training_s": round(seconds[step - 1], 1),
                "asks": rates["ask"],
                "confirms": rates["confirm"],
                "reached": rates["ask"]["rate"] >= args.asks and rates["confirm"]["rate"] >= args.confirms,
            }
            results[side].append(row)
            print(
                f"{side:8} step {step:5}  {row['training_s'] / 60:5.1f} min  asks {rates['ask']['right']}/"
                f"{rates['ask']['n']}  confirms {rates['confirm']['right']}/{rates['confirm']['n']}"
                + ("  <- target" if row["reached"] else ""),
                flush=True,
            )
            if row["reached"] and not (args.all and side == "tunelab"):
                break
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/time-to-target"))
    parser.add_argument("--n-train", type=int, default=480, help="training dialogues (each beside its twin)")
    parser.add_argument("--every", type=int, default=160, help="steps between the measured checkpoints")
    parser.add_argument(
        "--n-heldout", type=int, default=130, help="held-out dialogues (the demo's 130: 147 asks, 130 confirms)"
    )
    parser.add_argument("--asks", type=float, default=0.90)
    parser.add_argument("--confirms", type=float, default=0.95)
    parser.add_argument(
        "--all",
        action="store_true",
        help="every checkpoint of tunelab's side (the curve in docs/cafe.md); TRL's stop at the target",
    )
    parser.add_argument("--sides", default=",".join(SIDES), help="which sides to train (the others reuse --out)")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        (train_tunelab if args.child == "tunelab" else train_trl)(args.out, args.n_train, args.every)
        return

    import torch

    from tunelab.models import hardware

    args.out.mkdir(parents=True, exist_ok=True)
    for side in args.sides.split(","):
        began = time.perf_counter()
        cmd = [sys.executable, __file__, "--child", side, "--out", str(args.out)]
        subprocess.run([*cmd, "--n-train", str(args.n_train), "--every", str(args.every)], check=True)
        print(f"{side}: trained in {time.perf_counter() - began:.0f} s (process wall time)", flush=True)
    orders = {side: json.loads((args.out / side / "order.json").read_text()) for side in SIDES}
    same = orders["tunelab"] == orders["trl"]
    results = measure(args.out, args)
    precision, probe = hardware.cpu_choice()
    print(
        f"\n{probe.device}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}; {probe.why}; "
        f"{args.n_train} dialogues + twins, checkpoints every {args.every} steps; "
        f"same examples in the same order on both sides: {'yes' if same else 'NO'} ({len(orders['tunelab'])} steps)"
    )
    reached = {side: next((r for r in rows if r["reached"]), None) for side, rows in results.items()}
    for side, row in reached.items():
        when = f"{row['training_s'] / 60:.1f} min (step {row['step']})" if row else "not reached"
        print(f"time to {args.asks:.0%} asks and {args.confirms:.0%} confirmations, {side}: {when}")
    if all(reached.values()):
        ratio = reached["trl"]["training_s"] / reached["tunelab"]["training_s"]
        print(f"tunelab reaches the target {ratio:.2f}x sooner than TRL's fastest setting")
    (args.out / "time_to_target.json").write_text(
        json.dumps(
            {"results": results, "same_order": same, "cpu": probe.model_dump(), "precision": precision}, indent=1
        )
    )


if __name__ == "__main__":
    main()
