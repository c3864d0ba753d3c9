"""Trainer callbacks shared by every recipe: metrics.jsonl and a progress bar with tokens/s."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm
from transformers import TrainerCallback

from tunelab import rundir

# Trainer log keys -> (split, metric name) in metrics.jsonl.
LOG_KEYS = {
    "loss": ("train", "loss"),
    "learning_rate": ("train", "learning_rate"),
    "grad_norm": ("train", "grad_norm"),
    "eval_loss": ("val", "loss"),
}


class MetricsFileCallback(TrainerCallback):
    """Append one row per logged value to metrics.jsonl: step, epoch, split, name, value."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / rundir.METRICS

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        for key, value in logs.items():
            if not isinstance(value, (int, float)):
                continue
            split, name = LOG_KEYS.get(key, ("val", key[5:]) if key.startswith("eval_") else ("train", key))
            if name in (
                "runtime",
                "samples_per_second",
                "steps_per_second",
                "total_flos",
                "epoch",
                "model_preparation_time",
            ):
                continue
            rundir.append_jsonl(
                self.path,
                {
                    "step": state.global_step,
                    "epoch": round(state.epoch or 0.0, 4),
                    "split": split,
                    "name": name,
                    "value": float(value),
                },
            )


class TokenProgressCallback(TrainerCallback):
    """A progress bar over optimizer steps that shows tokens/s (all and target) and the ETA.

    The trainer tells us how many tokens each step saw through `count_tokens`.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.tokens = 0
        self.targets = 0
        self.started = 0.0
        self.last_loss: float | None = None

    def count_tokens(self, tokens: int, targets: int) -> None:
        self.tokens += tokens
        self.targets += targets

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.bar = tqdm(
                total=state.max_steps, initial=state.global_step, desc="training", unit="step", dynamic_ncols=True
            )
            self.started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is None:
            return
        self.bar.update(state.global_step - self.bar.n)
        elapsed = max(1e-9, time.perf_counter() - self.started)
        postfix = {"tok/s": f"{self.tokens / elapsed:.0f}", "target tok/s": f"{self.targets / elapsed:.0f}"}
        if self.last_loss is not None:
            postfix["loss"] = f"{self.last_loss:.3f}"
        self.bar.set_postfix(postfix, refresh=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.last_loss = float(logs["loss"])
        if self.bar is not None and logs and "eval_loss" in logs:
            behaviour = "".join(
                f", {key[len('eval_behaviour_') :]} {value:.0%}"
                for key, value in logs.items()
                if key.startswith("eval_behaviour_")
            )
            self.bar.write(f"step {state.global_step}: validation loss {logs['eval_loss']:.4f}{behaviour}")

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def throughput(self) -> dict[str, float]:
        if not self.started:  # no training ran (a run restored at its last step): nothing was timed
            return {"tokens": 0, "target_tokens": 0, "seconds": 0.0, "tokens_per_s": 0.0, "target_tokens_per_s": 0.0}
        elapsed = max(1e-9, time.perf_counter() - self.started)
        return {
            "tokens": self.tokens,
            "target_tokens": self.targets,
            "seconds": elapsed,
            "tokens_per_s": self.tokens / elapsed,
            "target_tokens_per_s": self.targets / elapsed,
        }
