"""The embedded model's one-off conversion (GGUF -> plain safetensors), as a fresh machine's first
demo pays it: tunelab's conversion (the GGUF read once) against transformers' own reading of it
(the file read for the tokenizer, the config and the weights), in the same run, printing the ratio.

Each run is its own process converting into an empty $TUNELAB_HOME, the two alternating A B A B;
the conversion call alone is timed (imports are not), wall and CPU seconds, with the CPU model and
the thread count. The converted weights of the two must be the same tensor for tensor.

    .venv/bin/python bench/convert_model.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VARIANTS = ("tunelab", "library")


def cpu_seconds() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def one(variant: str) -> dict:
    """Convert once in this process (TUNELAB_HOME set by the caller) and say how long it took."""
    import torch
    from safetensors.torch import load_file

    from tunelab.models import registry

    if variant == "library":
        registry._gguf_read_once = contextlib.nullcontext  # transformers reads the file as it does
    wall, cpu = time.perf_counter(), cpu_seconds()
    path = registry.resolve("smollm2-135m")
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    weights = load_file(os.path.join(path, "model.safetensors"))
    digest = float(sum(t.double().abs().sum() for t in weights.values()))
    return {"wall": wall, "cpu": cpu, "threads": torch.get_num_threads(), "weights_sum": digest}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="A B pairs")
    p.add_argument("--one", choices=VARIANTS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.one)))
        return
    from tunelab.models.hardware import cpu_model

    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for _ in range(args.rounds):
        for variant in VARIANTS:
            with tempfile.TemporaryDirectory() as home:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", variant],
                    env={**os.environ, "TUNELAB_HOME": home},
                    capture_output=True,
                    text=True,
                    check=True,
                )
            runs[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(variant, {k: round(v, 2) for k, v in runs[variant][-1].items()}, flush=True)
    sums = {run["weights_sum"] for rows in runs.values() for run in rows}
    print(f"CPU: {cpu_model()}, {runs['tunelab'][0]['threads']} threads; {args.rounds} runs each")
    for variant in VARIANTS:
        wall = statistics.median(r["wall"] for r in runs[variant])
        cpu = statistics.median(r["cpu"] for r in runs[variant])
        print(f"{variant:8s} conversion: median {wall:.1f} s wall, {cpu:.1f} s CPU")
    ratio = [b["wall"] / a["wall"] for a, b in zip(runs["tunelab"], runs["library"])]
    print(f"tunelab is {statistics.median(ratio):.2f}x faster than transformers' own reading (wall, median of pairs)")
    print("the same weights" if len(sums) == 1 else f"DIFFERENT weights: {sorted(sums)}")


if __name__ == "__main__":
    main()
