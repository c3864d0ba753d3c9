"""What the compiled layers' guards cost a training step: tunelab's default LoRA step with dynamo's
guard evaluation on and skipped (`torch.compiler.set_stance(skip_guard_eval_unsafe=True)`), in
alternating windows of steps within one process, for docs/performance.md.

One process, so both sides share the compiled layers, the examples and the minute's machine; the
first `--warmup` steps (the compiles) are left out. Skipping is only safe once every shape has been
compiled, which is why it is a measurement here and not a setting.

    .venv/bin/python bench/guard_overhead.py --batch 1 [--windows 8] [--window 6]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=1, help="dialogues a step")
    parser.add_argument("--warmup", type=int, default=8, help="steps left out first (compiles)")
    parser.add_argument("--window", type=int, default=6, help="steps a window")
    parser.add_argument("--windows", type=int, default=8, help="windows in all, guards on and skipped by turns")
    args = parser.parse_args()
    # a window is timed from the end of the step before it, and the ratio needs both sides
    if args.warmup < 1 or args.window < 1 or args.windows < 2:
        parser.error("--warmup and --window need at least 1, --windows at least 2")

    import torch
    import train_throughput as bench
    from transformers import TrainerCallback, set_seed

    from tunelab.models.hardware import cpu_model

    bench.BATCH = args.batch
    tokenizer, train, _ = bench.examples(256, 8)
    set_seed(bench.SEED)
    clock = bench.step_clock()
    steps = args.warmup + args.window * args.windows
    out = tempfile.TemporaryDirectory(prefix="guard_overhead-")  # nothing of the run is kept
    trainer, _ = bench.build_tunelab({}, train, tokenizer, out.name, steps, clock)

    def skipped(window: int) -> bool:
        return window % 2 == 1

    class Turns(TrainerCallback):
        # on_step_begin runs outside the compiled layers, where set_stance may be called
        def on_step_begin(self, a, state, control, **kw):
            done = state.global_step - args.warmup
            if done >= 0 and done % args.window == 0:
                torch.compiler.set_stance("default", skip_guard_eval_unsafe=skipped(done // args.window))

    trainer.add_callback(Turns())
    trainer.train()
    torch.compiler.set_stance("default")
    out.cleanup()

    ends, tokens = clock.ends, [t[0] for t in trainer.step_tokens]
    totals = {False: [0.0, 0], True: [0.0, 0]}
    print(f"{cpu_model()}, {torch.get_num_threads()} threads, batch {args.batch}, {time.strftime('%Y-%m-%d %H:%M')}")
    for w in range(args.windows):
        first = args.warmup + w * args.window  # the window's steps end at ends[first .. first+window-1]
        seconds, n = ends[first + args.window - 1] - ends[first - 1], sum(tokens[first : first + args.window])
        totals[skipped(w)][0] += seconds
        totals[skipped(w)][1] += n
        print(f"  window {w + 1}: guards {'skipped' if skipped(w) else 'on     '} {n / seconds:7.1f} tokens/s")
    rate = {k: n / s for k, (s, n) in totals.items()}
    print(
        f"guards on {rate[False]:.1f}, skipped {rate[True]:.1f} tokens/s: skipped / on x{rate[True] / rate[False]:.2f}"
    )


if __name__ == "__main__":
    main()
