"""Which precision pays on this machine, measured: the CPU probe behind every `auto` precision.

Training (`train/precision.py`) and inference (`load.load_model(dtype="auto")`: eval, the demos,
serve, chat) ask the same question, so it is answered here, once per process. A bf16 matmul
runs about 5x fp32 with AMX, 2x with AVX512-BF16, and ~190x slower where bf16 is emulated
(docs/performance.md), so the answer is measured, never assumed from the CPU's name.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

import torch

from tunelab.config import SpeedProbe

# Pins what `auto` resolves to on a CPU instead of measuring ("fp32" or "bf16_base"): for machines
# where the answer is known and the probe's second is not wanted, e.g. the test suite.
AUTO_ENV = "TUNELAB_AUTO_PRECISION"


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


def measure_cpu() -> dict[str, Any]:
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
        "why": f"bf16 matmul {bf16:.0f} vs fp32 {fp32:.0f} GFLOP/s on one thread: "
        + ("native bf16" if native else "no native bf16"),
    }


@functools.cache
def describe_cpu() -> dict[str, Any]:
    """`measure_cpu`, once per process: every run of a sweep or a demo then agrees, and pays once."""
    return measure_cpu()


def cpu_choice() -> tuple[str, SpeedProbe]:
    """This CPU's precision (bf16_base or fp32), by the probe or as `AUTO_ENV` pins it, and the record."""
    pinned = os.environ.get(AUTO_ENV)
    if pinned:
        if pinned not in ("fp32", "bf16_base"):
            raise ValueError(f"environment variable {AUTO_ENV}={pinned!r}: expected fp32 or bf16_base")
        why = f"{AUTO_ENV}={pinned} (not measured)"
        return pinned, SpeedProbe(device=cpu_model(), threads=torch.get_num_threads(), why=why)
    cpu = describe_cpu()
    probe = SpeedProbe(
        device=cpu["model"],
        threads=torch.get_num_threads(),
        fp32_gflops_1thread=cpu["fp32_gflops_1thread"],
        bf16_gflops_1thread=cpu["bf16_gflops_1thread"],
        why=cpu["why"],
    )
    return cpu["precision"], probe


def inference_dtype() -> tuple[torch.dtype, str]:
    """The dtype that generates fastest here, and why: bf16 on CUDA with bf16 and on a CPU where the
    probe (or `AUTO_ENV`) finds native bf16, else fp32. On the AMX Xeon the demo's 277 replies took
    35 s in bf16 against 82 s in fp32 (docs/performance.md#generation)."""
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, f"{torch.cuda.get_device_name()}: bf16"
        return torch.float32, f"{torch.cuda.get_device_name()} without bf16: fp32"
    precision, probe = cpu_choice()
    if precision == "fp32":
        return torch.float32, f"{probe.device}: fp32 ({probe.why})"
    return torch.bfloat16, f"{probe.device}: bf16 ({probe.why})"
