"""Experiment trackers (`track: [wandb, mlflow, tensorboard, trackio]`) fed from the Trainer's logs.

Each tracker gets the same values metrics.jsonl gets, named `split/name` (`train/loss`,
`val/loss`, ...) at the optimizer step. The trackers are driven through their own Python
APIs with explicit locations rather than transformers' report_to integrations, because those
read process-wide environment variables: a sweep running many trials in one process needs
each trial's records to land in that trial's run directory.

Where each writes, by default:
- tensorboard: RUN_DIR/tensorboard/ event files (`tensorboard --logdir RUN_DIR`)
- mlflow: RUN_DIR/mlflow.db (SQLite store; `mlflow ui --backend-store-uri sqlite:///RUN_DIR/mlflow.db`),
  or the server in MLFLOW_TRACKING_URI when that is set
- wandb: RUN_DIR/wandb/; offline unless WANDB_API_KEY is set (or WANDB_MODE says otherwise);
  upload later with `wandb sync RUN_DIR/wandb/offline-run-*`
- trackio: trackio's local SQLite store (TRACKIO_DIR, default ~/.cache/huggingface/trackio),
  one database per project; `trackio show --project PROJECT`
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from tunelab.config import Config
from tunelab.train.callbacks import LOG_KEYS

log = logging.getLogger(__name__)
SKIPPED = ("runtime", "samples_per_second", "steps_per_second", "total_flos", "epoch")


def metric_key(key: str) -> str | None:
    """Trainer log key -> tracker metric name (`eval_loss` -> `val/loss`), None for bookkeeping values."""
    split, name = LOG_KEYS.get(key, ("val", key[5:]) if key.startswith("eval_") else ("train", key))
    return None if name in SKIPPED else f"{split}/{name}"


def flat_config(config: Config) -> dict[str, Any]:
    """The resolved config as `section.key` -> value, the shape trackers show as parameters."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = node

    walk("", config.model_dump(mode="json"))
    return flat


class TrackerCallback(TrainerCallback):
    """Start the tracker when training begins, forward every numeric log value, close on request."""

    name = "tracker"

    def __init__(self, config: Config, run_dir: Path):
        self.config = config
        self.run_dir = Path(run_dir)
        self.run_name = config.run_name or self.run_dir.name
        self.started = False

    def start(self) -> None:
        raise NotImplementedError

    def write(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero and not self.started:
            self.start()
            self.started = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.started or not logs:
            return
        values = {k: float(v) for key, v in logs.items() if isinstance(v, (int, float)) and (k := metric_key(key))}
        if values:
            self.write(values, state.global_step)

    def close(self) -> None:
        if self.started:
            self.finish()
            self.started = False


class TensorBoardTracker(TrackerCallback):
    name = "tensorboard"

    def start(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in flat_config(self.config).items()))

    def write(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def finish(self) -> None:
        self.writer.close()


class MLflowTracker(TrackerCallback):
    name = "mlflow"

    def tracking_uri(self) -> str:
        env = os.environ.get("MLFLOW_TRACKING_URI")
        if env:
            log.info("mlflow: logging to MLFLOW_TRACKING_URI=%s instead of the run directory", env)
            return env
        return f"sqlite:///{(self.run_dir / 'mlflow.db').resolve()}"

    def start(self) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.tracking_uri())
        experiment = self.client.get_experiment_by_name(self.config.project)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            artifacts = (self.run_dir / "mlartifacts").resolve().as_uri()
            experiment_id = self.client.create_experiment(self.config.project, artifact_location=artifacts)
        tags = {t: "" for t in self.config.tags}
        self.run_id = self.client.create_run(experiment_id, run_name=self.run_name, tags=tags).info.run_id
        # MLflow caps a parameter value at 6000 characters (system prompts can be longer).
        params = [Param(k, str(v)[:6000]) for k, v in flat_config(self.config).items()]
        self.client.log_batch(self.run_id, params=params, tags=[RunTag("tunelab.run_dir", str(self.run_dir.resolve()))])

    def write(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def finish(self) -> None:
        self.client.set_terminated(self.run_id)


def wandb_mode() -> str:
    """W&B's mode: WANDB_MODE when set, online with an API key, otherwise offline (logged)."""
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return mode
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    log.warning("wandb: no WANDB_API_KEY, logging offline to the run directory; upload later with `wandb sync`")
    return "offline"


class WandbTracker(TrackerCallback):
    name = "wandb"

    def start(self) -> None:
        import wandb

        self.run = wandb.init(
            project=self.config.project,
            name=self.run_name,
            tags=self.config.tags or None,
            config=flat_config(self.config),
            dir=str(self.run_dir),
            mode=wandb_mode(),
            reinit="create_new",
        )

    def write(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self) -> None:
        self.run.finish()


class TrackioTracker(TrackerCallback):
    name = "trackio"

    def start(self) -> None:
        import trackio

        self.run = trackio.init(
            project=self.config.project,
            name=self.run_name,
            config=flat_config(self.config),
            embed=False,
            auto_log_cpu=False,
            auto_log_gpu=False,
        )

    def write(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def finish(self) -> None:
        self.run.finish()


TRACKERS: dict[str, type[TrackerCallback]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MLflowTracker,
    "wandb": WandbTracker,
    "trackio": TrackioTracker,
}


def tracking_callbacks(config: Config, run_dir: str | Path) -> list[TrackerCallback]:
    """One callback per tracker in `config.track`; each starts with training and stops on `close_trackers`."""
    return [TRACKERS[name](config, Path(run_dir)) for name in dict.fromkeys(config.track)]


def close_trackers(trackers: list[TrackerCallback]) -> None:
    """Finish every tracker; one failing to close does not stop the others (each failure is logged)."""
    for tracker in trackers:
        try:
            tracker.close()
        except Exception:
            log.exception("%s: failed to finish the run", tracker.name)
