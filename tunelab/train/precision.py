"""Training-speed levers: numeric precision, the base weights' dtype and compiled layers.

`train.precision: auto` picks bf16 autocast only on a CUDA GPU with bf16; on CPU it stays fp32,
because autocast re-casts every frozen weight each step, which costs what the small matmuls gain.
`bf16_base` instead stores the frozen base in bf16 once (adapters only; they and the optimizer
stay fp32), and `train.compile` compiles each decoder layer; both are opt-in, as they trade a
little validation loss and a slow first step for speed only where the CPU multiplies bf16
natively. `describe_cpu` measures that. The figures are in docs/performance.md.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch

from tunelab.models.load import decoder_and_head

log = logging.getLogger(__name__)


def resolve_precision(precision: str) -> str:
    """ "fp32" or "bf16" for the configured `train.precision`; says why when it was "auto"."""
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


def compile_decoder_layers(model: Any) -> int:
    """torch.compile each decoder layer in place (regional compilation: one small graph per
    layer, the same code for all, so the compile is short; state-dict names do not change, so
    checkpoints and adapters save as usual). Returns how many layers were compiled."""
    import torch._dynamo

    base = decoder_and_head(model)
    layers = getattr(base[0], "layers", None) if base else None
    if not layers:
        log.warning("train.compile: no decoder layers found in %s; training uncompiled", type(model).__name__)
        return 0
    # Each layer instance is guarded separately, and dynamic shapes add variants: room for all of them.
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 4 * len(layers))
    torch._dynamo.config.accumulated_recompile_limit = max(
        torch._dynamo.config.accumulated_recompile_limit, 32 * len(layers)
    )
    for layer in layers:
        layer.compile(dynamic=True)
    log.info("train.compile: %d decoder layers compiled (the first step pays for it)", len(layers))
    return len(layers)


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


PROBE_SIZE = 256  # near the model's own matmul sizes (hidden 576); smaller probes understate native bf16


def describe_cpu() -> dict[str, Any]:
    """This machine's CPU and the training precision that pays on it, chosen by measuring: bf16
    base weights + compiled layers where a bf16 matmul runs at least 1.5x fp32 (native bf16: AMX,
    AVX512-BF16), else fp32 uncompiled, since emulated bf16 is orders of magnitude slower.
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
        "model": cpu_model(),
        "threads": threads,
        "fp32_gflops_1thread": round(fp32, 1),
        "bf16_gflops_1thread": round(bf16, 1),
        "precision": "bf16_base" if native else "fp32",
        "compile": native,
        "why": f"bf16 matmul {bf16:.0f} vs fp32 {fp32:.0f} GFLOP/s: "
        + ("native bf16, so bf16 base weights + compiled layers" if native else "no native bf16, so fp32"),
    }


def chosen_settings(cpu: dict[str, Any], generates_during_training: bool) -> dict[str, Any]:
    """`train.precision` and `train.compile` as `describe_cpu` chose them for this CPU, minus compile
    when the run generates replies during training (`train.behaviour_eval`): the config refuses that
    pair, as generation under compiled layers is not tested."""
    return {"precision": cpu["precision"], "compile": cpu["compile"] and not generates_during_training}
