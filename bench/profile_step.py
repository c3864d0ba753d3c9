"""Where a training step's time goes: tunelab's LoRA SFT step profiled by torch.profiler, its
self CPU time summed into kinds of work (matmul, attention, compiled elementwise kernels,
optimizer, loss, the rest), for docs/performance.md.

The step is the one `tunelab train` runs (bench/train_throughput.py builds it), on the cafe
dialogues; steps after `--warmup` are profiled, so the compile and first-call costs are left out.

    .venv/bin/python bench/profile_step.py --batch 1 [--precision auto] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

# Profiler op names -> kind of work, first match wins (self time, so nothing is counted twice).
KINDS = [
    ("attention", ("scaled_dot_product", "flash_attention")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul")),
    ("optimizer", ("adamw", "optimizer", "_foreach", "clip_grad", "linalg_vector_norm")),
    ("loss and head", ("log_softmax", "nll_loss", "cross_entropy")),
    ("compiled elementwise", ("compiledfxgraph",)),
    ("compile guards and glue", ("dynamo", "pregraph", "compiled region", "compiledfunction")),
]


def kind_of(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KINDS if any(k in low for k in keys)), "other (framework, copies)")


def products_by_owner(mms, rank: int, vocab: int) -> dict[str, tuple[float, int, float]]:
    """The profiled products summed by whose they are: (ms, calls, FLOPs). A product with a side as
    narrow as the LoRA rank is the adapter's, one as wide as the vocabulary the output head's."""
    owners: dict[str, tuple[float, int, float]] = {}
    for e in mms:
        (m, k), (_, n) = e.input_shapes[0], e.input_shapes[1]
        whose = (
            "adapter (a side of the rank)"
            if min(m, k, n) <= rank
            else "output head"
            if vocab in (m, k, n)
            else "frozen body"
        )
        ms, calls, flops = owners.get(whose, (0.0, 0, 0.0))
        owners[whose] = (ms + e.self_cpu_time_total / 1e3, calls + e.count, flops + 2 * m * k * n * e.count)
    return owners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--precision", default="auto", help="auto | fp32 | bf16_base (compile follows auto)")
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="runs/profile_step")
    parser.add_argument("--shapes", action="store_true", help="also the slowest matmul shapes and their GFLOP/s")
    args = parser.parse_args()

    import torch
    import train_throughput as bench
    from torch.profiler import ProfilerActivity, profile
    from transformers import TrainerCallback, set_seed

    from tunelab.models.hardware import cpu_model

    bench.BATCH = args.batch
    tokenizer, train, _ = bench.examples(256, 8)
    set_seed(bench.SEED)
    clock = bench.step_clock()
    settings = {} if args.precision == "auto" else {"precision": args.precision, "compile": "auto"}
    trainer, model = bench.build_tunelab(settings, train, tokenizer, args.out, args.warmup + args.steps, clock)

    class Window(TrainerCallback):
        prof = None

        def on_step_begin(self, a, state, control, **kw):
            if state.global_step == args.warmup:
                self.prof = profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes)
                self.prof.__enter__()

        def on_step_end(self, a, state, control, **kw):
            if state.global_step == args.warmup + args.steps and self.prof:
                self.prof.__exit__(None, None, None)

    window = Window()
    trainer.add_callback(window)
    trainer.train()
    ends = clock.ends
    # wall time of unprofiled steps (the profiler itself slows the window a little)
    plain = (ends[args.warmup - 1] - ends[1]) / (args.warmup - 2)
    tokens = [t[0] for t in trainer.step_tokens[args.warmup : args.warmup + args.steps]]
    totals: dict[str, float] = {}
    for event in window.prof.key_averages():
        totals[kind_of(event.key)] = totals.get(kind_of(event.key), 0.0) + event.self_cpu_time_total / 1e3
    whole = sum(totals.values())
    print(
        f"{cpu_model()}, {torch.get_num_threads()} threads, batch {args.batch}, precision {args.precision}: "
        f"{plain * 1000:.0f} ms a step unprofiled ({sum(tokens) / len(tokens):.0f} tokens a step)"
    )
    print(f"{'kind of work':28} {'ms a step':>9} {'share':>6}")
    for kind, ms in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{kind:28} {ms / args.steps:9.1f} {ms / whole:6.1%}")
    print(f"{'profiled total':28} {whole / args.steps:9.1f}   (measured {time.strftime('%Y-%m-%d')})")
    if args.shapes:
        mms = [e for e in window.prof.key_averages(group_by_input_shape=True) if e.key == "aten::mm"]
        print("slowest matmul shapes: [rows x inner], [inner x cols]: ms in all, calls, GFLOP/s")
        for e in sorted(mms, key=lambda e: -e.self_cpu_time_total)[:10]:
            (m, k), (_, n) = e.input_shapes[0], e.input_shapes[1]
            rate = 2 * m * k * n * e.count / (e.self_cpu_time_total / 1e6) / 1e9
            print(f"  {e.input_shapes[:2]}: {e.self_cpu_time_total / 1e3:.1f} ms, {e.count} calls, {rate:.0f} GFLOP/s")
        rank, vocab = model.peft_config["default"].r, model.config.vocab_size
        print("matmul by whose product: ms a step, calls a step, GFLOP/s")
        for whose, (ms, calls, flops) in products_by_owner(mms, rank, vocab).items():
            print(f"  {whose:32} {ms / args.steps:8.1f} {calls / args.steps:7.0f} {flops / (ms / 1e3) / 1e9:6.0f}")


if __name__ == "__main__":
    main()
