"""Checkpoints in, final weights out: what to resume from, how to resume, and the saved model.

Trainer writes checkpoints/checkpoint-<step>/ and its trainer_state.json last, so a checkpoint
without that file was cut off mid-save. The final adapter/ (or model/, and with `output.merge`
merged/) is published whole or not at all (rundir.publish_dir).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerState

from tunelab import rundir
from tunelab.config import Config
from tunelab.models.adapters import can_merge, is_adapter
from tunelab.models.load import load_base
from tunelab.models.registry import resolve
from tunelab.train.precision import base_dtype

log = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state.json"  # written last into a checkpoint by Trainer


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint whose trainer_state.json exists (Trainer writes it last)."""
    found = sorted(checkpoints.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for ckpt in found:
        if (ckpt / TRAINER_STATE).exists():
            return ckpt
        log.warning("skipping incomplete checkpoint %s (killed while saving)", ckpt)
    return None


def checkpoint_to_resume(run_dir: Path, resume: bool) -> Path | None:
    """With `resume`, the newest complete checkpoint (metrics logged after it are dropped, since
    they will be logged again); without, None, refusing a directory that already holds a run."""
    if not resume:
        if (run_dir / rundir.METRICS).exists():
            raise FileExistsError(
                f"{run_dir} already holds a run; pass --resume to continue it or choose another output.dir"
            )
        return None
    checkpoint = last_complete_checkpoint(run_dir / rundir.CHECKPOINTS)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir}: nothing to resume (no complete checkpoint in {rundir.CHECKPOINTS}/)")
    _forget_metrics_after(run_dir, int(checkpoint.name.split("-")[-1]))
    return checkpoint


def _forget_metrics_after(run_dir: Path, step: int) -> None:
    """On resume, rows logged after the checkpoint will be logged again; drop the stale ones."""
    path = run_dir / rundir.METRICS
    if path.exists():
        rundir.write_jsonl(path, [r for r in rundir.read_jsonl(path) if r.get("step", 0) <= step])


def train_or_restore(trainer: Trainer, checkpoint: Path | None) -> None:
    """trainer.train(), resuming from `checkpoint` if given. A checkpoint at the run's last step
    (the job was stopped after it, before the final save) is restored instead of resumed:
    transformers' loop trains one step before it looks at max_steps, so resuming there would
    train a step past the end."""
    state = TrainerState.load_from_json(str(checkpoint / TRAINER_STATE)) if checkpoint else None
    # This run's length as train() computes it (a resumed run may have been given more steps).
    max_steps = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())[-1] if state else 0
    if state is None or state.global_step < max_steps:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        return
    log.info(
        "%s is the last step (%d of %d): restoring it, nothing is left to train",
        checkpoint,
        state.global_step,
        max_steps,
    )
    best = state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    # What train() would end with: the best checkpoint's weights when it keeps the best, else the last's.
    # Trainer's own loader, so adapters, full models and sharded files load as a resumed run loads them.
    trainer._load_from_checkpoint(best if best and Path(best).is_dir() else str(checkpoint))
    trainer.state = state


def logged_evaluation(trainer: Trainer) -> dict[str, float] | None:
    """The evaluation the trainer logged of the weights it ended with: the best checkpoint's when it
    loaded the best at the end, else the last step's; None when those weights were not evaluated."""
    state = trainer.state
    best = state.best_model_checkpoint if trainer.args.load_best_model_at_end else None
    step = state.best_global_step if best and Path(best).is_dir() else state.global_step
    for row in reversed(state.log_history):
        if row.get("step") == step and "eval_loss" in row:
            return {key: value for key, value in row.items() if key != "step"}
    return None


def _merge(model: Any, config: Config, adapter_dir: Path) -> Any:
    """The adapter folded into the base. A bf16-stored training base (precision bf16_base) would
    round the merged weights to bf16, so the saved adapter is folded into the fp32 base instead."""
    if base_dtype(config) == torch.float32:
        return model.merge_and_unload()
    from peft import PeftModel

    base = load_base(resolve(config.model.name), torch.float32)
    return PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()


def save_final(trainer: Trainer, config: Config, tokenizer: Any, run_dir: Path) -> Path:
    """Publish adapter/ (an adapter) or model/ (a full fine-tune) and, with `output.merge`, merged/."""
    target = run_dir / (rundir.ADAPTER if is_adapter(config.model) else rundir.MODEL)
    with rundir.publish_dir(target) as staging:
        trainer.model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    if config.output.merge and is_adapter(config.model) and not can_merge(config.model):
        log.warning(
            "output.merge: skipped, a %s adapter adds virtual tokens and cannot be folded into the weights; load the run dir with its adapter/",
            config.model.adapter,
        )
    elif is_adapter(config.model) and config.output.merge:
        merged = _merge(trainer.model, config, target)
        with rundir.publish_dir(run_dir / rundir.MERGED) as staging:
            merged.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
    return target
