"""What every recipe does around its own training: the run directory set up, then saved.

`Session.start` refuses a used run directory (or finds the checkpoint to resume), sets the
thread count, resolves `auto` precision and compile (saying what it chose in one line), writes
the resolved config, and seeds; `Session.settle_cadence` decides how often to evaluate once the data are read;
`Session.train` trains, resumes or restores;
`Session.finish` publishes the final weights and summary.json. The recipes (train/recipes/)
supply what lies between: their data, model and trainer.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, set_seed

from tunelab import rundir
from tunelab.config import Config, dump, evaluation_cadence
from tunelab.train.callbacks import MetricsFileCallback
from tunelab.train.checkpoint import checkpoint_to_resume, logged_evaluation, save_final, train_or_restore
from tunelab.train.precision import choice_line, resolve
from tunelab.train.tracking import close_trackers, tracking_callbacks


@dataclass
class Session:
    config: Config
    run_dir: Path
    checkpoint: Path | None  # where a resumed run continues; None for a fresh run
    trackers: list[Any] = field(default_factory=list)

    @classmethod
    def start(cls, config: Config, resume: bool, files: dict[str, str] | None = None) -> Session:
        """Prepare `output.dir` for a run: config.yaml (with `auto` resolved; the session's `config`
        is that one) and any recipe `files` ({name: text}) written, seeded."""
        run_dir = Path(config.output.dir)
        checkpoint = checkpoint_to_resume(run_dir, resume)
        if config.train.threads:
            torch.set_num_threads(config.train.threads)  # before the probe, which records the threads
        configured, config = config, resolve(config)
        # stderr, like the progress bar: stdout of `tunelab train` stays the summary
        print(f"train: {choice_line(configured, config)}", file=sys.stderr, flush=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_text(run_dir / rundir.CONFIG, dump(config))
        for name, text in (files or {}).items():
            rundir.write_text(run_dir / name, text)
        set_seed(config.train.seed)
        return cls(config, run_dir, checkpoint)

    def settle_cadence(self, train_examples: int, val_examples: int) -> Config:
        """Decide eval_steps and save_steps left at auto, now that the data's size is known (saying
        what was chosen and rewriting config.yaml with it); returns the session's config."""
        config, why = evaluation_cadence(self.config, train_examples, val_examples)
        if why:
            print(f"train: {why}", file=sys.stderr, flush=True)
            rundir.write_text(self.run_dir / rundir.CONFIG, dump(config))
        self.config = config
        return config

    def callbacks(self, *mine: Any, track: bool = False) -> list[Any]:
        """metrics.jsonl's writer, then `mine`, then with `track` the trackers of `config.track`."""
        if track:
            self.trackers = tracking_callbacks(self.config, self.run_dir)
        return [MetricsFileCallback(self.run_dir), *mine, *self.trackers]

    def train(self, trainer: Trainer, evaluate: bool = False) -> dict[str, float]:
        """Train (resuming or restoring the checkpoint); with `evaluate`, returns the evaluation of
        the weights it ends with: the one logged when they were checkpointed (evaluating the same
        weights again would only cost the time), else a final one the trackers record too."""
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        try:
            train_or_restore(trainer, self.checkpoint)
            if not evaluate:
                return {}
            return logged_evaluation(trainer) or trainer.evaluate()
        finally:
            close_trackers(self.trackers)

    def finish(
        self, trainer: Trainer, tokenizer: Any, details: dict[str, Any], recipe: str | None = None
    ) -> dict[str, Any]:
        """Save the final weights, then the summary (what it says of the run, then `details`) to
        summary.json; under `accelerate launch` one process writes and the others wait for it."""
        saved = save_final(trainer, self.config, tokenizer, self.run_dir) if trainer.is_world_process_zero() else None
        trainer.accelerator.wait_for_everyone()
        summary = {
            "run_dir": str(self.run_dir),
            **({"recipe": recipe} if recipe else {}),
            "model": self.config.model.name,
            "saved": str(saved),
            "steps": trainer.state.global_step,
            **details,
        }
        if trainer.is_world_process_zero():
            rundir.write_json(self.run_dir / rundir.SUMMARY, summary)
        return summary
