"""Training-speed levers: numeric precision, and a measured matrix-multiply peak to judge against.

Precision. `train.precision: auto` picks bf16 autocast only where it was measured faster: on a
CUDA GPU that supports bf16. On CPU it picks fp32, even with AMX. On the 2-core AMX Xeon that
bench/train_throughput.py ran on, bf16 autocast was not faster for SmolLM2-135M LoRA steps
(docs/performance.md): at hidden size 576 the matmuls are small, and autocast re-casts every
frozen fp32 weight to bf16 on every forward, which eats the gain; the validation loss was also
2% worse. Users who measure bf16 faster on their machine set `precision: bf16`.

`precision: bf16_base` stores the frozen base weights in bf16 once, so there is nothing to
re-cast: the big matmuls run on AMX in bf16, while the adapter weights, their gradients and
the optimizer state stay fp32 (peft keeps adapter weights fp32 on a bf16 base). Only adapters
can use it: a fully fine-tuned model would be updated in bf16. Measured on the cafe benchmark:
about 3% more tokens/s than fp32 and a 1.6% higher validation loss (docs/performance.md), so
`auto` does not pick it on its own.

`train.compile` (tunelab.train.recipes.sft.compile_decoder_layers) compiles each decoder layer with
torch.compile. Alone it gives about 1.2x; with `bf16_base` it changes the picture: inductor
fuses the casts and elementwise work around the bf16 matmuls, and the two together ran 1.9x
tunelab's fp32 defaults (4.5x TRL) on the cafe benchmark. The compile costs about 25 s in the
first step and needs a C/C++ compiler, so it stays opt-in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

log = logging.getLogger(__name__)


def resolve_precision(precision: str) -> str:
    """"fp32" or "bf16" for the configured `train.precision`; says why when it was "auto"."""
    if precision == "bf16_base":
        return "fp32"  # no autocast: the base already is bf16 and the adapter computes in fp32
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        log.info("train.precision=auto: bf16 autocast (CUDA with bf16 support)")
        return "bf16"
    log.info("train.precision=auto: fp32 (on CPU, bf16 autocast was measured no faster; see docs/performance.md)")
    return "fp32"


def base_dtype(config: Any) -> torch.dtype:
    """The dtype the base model is loaded in for training."""
    # config.load refuses bf16_base with a full fine-tune (every weight would train in bf16)
    return torch.bfloat16 if config.train.precision == "bf16_base" else torch.float32


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 2.0) -> float:
    """Measured GFLOP/s of square n x n matrix multiplies in `dtype` on this machine's CPU threads.

    The best of several timed repetitions, since other processes on a shared machine only ever
    make a repetition slower.
    """
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)  # warm-up: oneDNN picks and JITs its kernel on the first call
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = min(best, (time.perf_counter() - started) / 4)
    return 2 * n**3 / best / 1e9


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (platform's answer elsewhere)."""
    import platform

    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


PROBE_SIZE = 256  # near the model's own matmul sizes (hidden 576), small enough to be quick without native bf16


def describe_cpu() -> dict[str, Any]:
    """This machine's CPU and the training precision that pays on it, chosen by measuring.

    bf16 pays only where the CPU multiplies bf16 natively (AMX, AVX512-BF16): on an AVX2-only
    EPYC a bf16 matmul ran ~190x slower than fp32, so training in bf16_base there would take
    100x longer. 256x256 multiplies in each dtype on one thread decide (0.6 s on the Zen 4 below; on
    the AVX2-only EPYC, whose bf16 ran at 0.3-3 GFLOP/s, an estimated 0.2-2 s, not measured there):
    bf16_base + compile when bf16 is at least 1.5x
    fp32, fp32 without compile otherwise (compile gave +4% for 60 s of first step on the AVX2 EPYC).
    Measured behind the bar (docs/performance.md): an AMX Xeon trained 1.9x faster with both; a
    Zen 4 EPYC with AVX512-BF16, 2.0x at 256x256, trained 1.52x faster. 128x128 was too small a
    probe: on that Zen 4 it gave 1.34x, while the model's own sizes (576, 1536) run bf16 2.1x faster.
    """
    # On one thread (a multi-threaded small matmul stalls whenever another process holds a core),
    # best of alternating short runs: other processes only ever slow a run down.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fp32 = bf16 = 0.0
        for _ in range(3):
            fp32 = max(fp32, matmul_peak(torch.float32, n=PROBE_SIZE, seconds=0.1))
            bf16 = max(bf16, matmul_peak(torch.bfloat16, n=PROBE_SIZE, seconds=0.1))
    finally:
        torch.set_num_threads(threads)
    native = bf16 >= 1.5 * fp32
    return {
        "model": cpu_model(), "threads": threads,
        "fp32_gflops_1thread": round(fp32, 1), "bf16_gflops_1thread": round(bf16, 1),
        "precision": "bf16_base" if native else "fp32", "compile": native,
        "why": f"bf16 matmul {bf16:.0f} vs fp32 {fp32:.0f} GFLOP/s: "
               + ("native bf16, so bf16 base weights + compiled layers" if native else "no native bf16, so fp32"),
    }


def chosen_settings(cpu: dict[str, Any], generates_during_training: bool) -> dict[str, Any]:
    """`train.precision` and `train.compile` as `describe_cpu` chose them for this CPU, minus compile
    when the run generates replies during training (`train.behaviour_eval`): the config refuses that
    pair, as generation under compiled layers is not tested."""
    return {"precision": cpu["precision"], "compile": cpu["compile"] and not generates_during_training}
