"""`tunelab sweep SWEEP.yaml`: an Optuna search over any config keys, each trial a normal run dir.

SWEEP_DIR/
  study.db        the Optuna study (SQLite): rerun the command to resume, or run it in several
                  processes at once to share the work (see docs/sweep.md for PostgreSQL)
  sweep.yaml      the resolved sweep file
  trials/NNN/     one run directory per trial (checkpoints/ removed once the trial ends)
  sweep.json      every trial's parameters, state, objective and validation curve; importances
  best/           the best trial's run directory with its config.yaml and a model card (README.md)
"""

from __future__ import annotations

import copy
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tunelab import rundir
from tunelab.config import Config, ConfigError, load

log = logging.getLogger(__name__)
STUDY_DB = "study.db"
SWEEP_JSON = "sweep.json"
BEST = "best"
TRIALS = "trials"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs 'choices'")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"a {self.type} parameter needs 'low' <= 'high'")
        return self


class Objective(_Strict):
    # val_loss: the run's final validation loss; otherwise a key of scores.json (dotted, e.g.
    # behaviour.appropriateness) or the last val-split value of that name in metrics.jsonl.
    metric: str = "val_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    eval_data: str | None = None  # run `tunelab eval` on this file after each trial (for scores.json metrics)
    eval_limit: int | None = Field(None, ge=1)


class SweepConfig(_Strict):
    base: str | dict[str, Any]
    space: dict[str, Param]
    objective: Objective = Objective()
    trials: int = Field(8, ge=1)  # total finished (complete or pruned) trials the study should reach
    sampler: Literal["tpe", "grid", "random"] = "tpe"
    pruner: Literal["median", "none"] = "median"
    seed: int = 0
    dir: str | None = None  # default: next to the sweep file, named after it
    storage: str | None = None  # an Optuna storage URL; default sqlite:///SWEEP_DIR/study.db


def load_sweep(
    path: str | Path, trials: int | None = None, out: str | Path | None = None
) -> tuple[SweepConfig, Config, Path]:
    """Read and check the sweep file and its base config; returns (sweep, base config, sweep dir)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        sweep = SweepConfig.model_validate(raw)
    except ValidationError as err:
        lines = [f"'{'.'.join(map(str, e['loc']))}': {e['msg']}" for e in err.errors()]
        raise ConfigError(f"{path}: invalid sweep file:\n  " + "\n  ".join(lines)) from None
    if trials is not None:
        sweep.trials = trials
    sweep_dir = Path(out or sweep.dir or path.with_suffix(""))
    base = base_dict(sweep, path)
    for key, param in sweep.space.items():  # every key must exist and accept its extreme values
        for value in param.choices or [param.low, param.high]:
            trial_config(
                base,
                {key: int(value) if param.type == "int" else value},
                sweep_dir / TRIALS / "check",
                f"{path}: space.{key}={value!r}",
            )
    return sweep, trial_config(base, {}, sweep_dir / TRIALS / "check", f"{path}: base"), sweep_dir


def base_dict(sweep: SweepConfig, sweep_file: Path) -> dict[str, Any]:
    if isinstance(sweep.base, dict):
        return copy.deepcopy(sweep.base)
    base_path = Path(sweep.base)
    if not base_path.is_absolute() and not base_path.exists():
        base_path = sweep_file.parent / base_path
    return yaml.safe_load(base_path.read_text(encoding="utf-8")) or {}


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def trial_config(base: dict[str, Any], params: dict[str, Any], run_dir: Path, source: str) -> Config:
    data = copy.deepcopy(base)
    for key, value in params.items():
        set_key(data, key, value)
    set_key(data, "output.dir", str(run_dir))
    set_key(data, "run_name", f"{run_dir.parent.parent.name}-{run_dir.name}")
    try:
        return load(data=data)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def suggest(trial: Any, space: dict[str, Param]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, p in space.items():
        if p.type == "categorical":
            params[key] = trial.suggest_categorical(key, p.choices)
        elif p.type == "int":
            params[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            params[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
    return params


def grid_space(space: dict[str, Param]) -> dict[str, list[Any]]:
    grid = {}
    for key, p in space.items():
        if p.choices:
            grid[key] = list(p.choices)
        elif p.type == "int":
            grid[key] = list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
        else:
            raise ConfigError(f"space.{key}: sampler 'grid' needs 'choices' for a float parameter")
    return grid


class PruningCallback:
    """Report each validation loss to the trial; stop training when the pruner says the trial is hopeless."""

    def __init__(self, trial: Any):
        from transformers import TrainerCallback

        self.trial = trial
        self.pruned = False
        self.reported: set[int] = set()
        outer = self

        class _Callback(TrainerCallback):
            def on_evaluate(self, args, state, control, metrics=None, **kwargs):
                # The closing evaluation repeats the last step's; Optuna keeps one value per step.
                if not metrics or "eval_loss" not in metrics or outer.pruned or state.global_step in outer.reported:
                    return
                outer.reported.add(state.global_step)
                outer.trial.report(float(metrics["eval_loss"]), state.global_step)
                if outer.trial.should_prune():
                    log.info(
                        "trial %d pruned at step %d (validation loss %.4f)",
                        outer.trial.number,
                        state.global_step,
                        metrics["eval_loss"],
                    )
                    outer.pruned = True
                    control.should_training_stop = True

        self.callback = _Callback()


def objective_value(objective: Objective, run_dir: Path, summary: dict[str, Any]) -> float:
    """The trial's objective, read from the run directory's files."""
    if objective.metric == "val_loss":
        if summary.get("final_val_loss") is None:
            raise ConfigError("objective.metric val_loss needs validation data (data.val or data.val_fraction > 0)")
        return float(summary["final_val_loss"])
    scores_path = run_dir / rundir.SCORES
    if scores_path.exists():
        node: Any = rundir.read_json(scores_path)
        for part in objective.metric.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            return float(node)
    rows = rundir.read_metrics(run_dir, objective.metric.removeprefix("val/"), "val")
    if rows:
        return float(rows[-1]["value"])
    raise ConfigError(
        f"objective.metric {objective.metric!r}: not found in {scores_path.name} or as a val metric in {rundir.METRICS} of {run_dir}"
    )


def run_trial(trial: Any, sweep: SweepConfig, base: dict[str, Any], sweep_dir: Path) -> float:
    import optuna

    from tunelab.train.recipes.sft import train

    params = suggest(trial, sweep.space)
    run_dir = sweep_dir / TRIALS / f"{trial.number:03d}"
    config = trial_config(base, params, run_dir, f"trial {trial.number}")
    config.tags = [*config.tags, f"sweep:{sweep_dir.name}"]
    trial.set_user_attr("run_dir", str(run_dir))
    prune = PruningCallback(trial) if sweep.pruner != "none" and sweep.objective.metric == "val_loss" else None
    try:
        summary = train(config, extra_callbacks=[prune.callback] if prune else None)
    finally:
        shutil.rmtree(run_dir / rundir.CHECKPOINTS, ignore_errors=True)  # the final adapter/model stays
    trial.set_user_attr("val_loss", summary.get("final_val_loss"))
    if prune and prune.pruned:
        raise optuna.TrialPruned()
    if sweep.objective.eval_data:
        from tunelab.eval.runner import run_eval

        run_eval(
            str(run_dir),
            sweep.objective.eval_data,
            out_dir=run_dir,
            limit=sweep.objective.eval_limit,
            semantic=False,
            progress=False,
        )
    value = objective_value(sweep.objective, run_dir, summary)
    if math.isnan(value):
        raise ValueError(f"trial {trial.number}: objective {sweep.objective.metric} is NaN")
    return value


def open_study(sweep: SweepConfig, sweep_dir: Path) -> Any:
    import optuna
    from optuna.storages import RDBStorage, RetryFailedTrialCallback

    url = sweep.storage or f"sqlite:///{(sweep_dir / STUDY_DB).resolve()}"
    # Heartbeats let a process notice a trial whose process died (killed sweep) and retry it.
    storage = RDBStorage(
        url,
        heartbeat_interval=60,
        grace_period=180,
        heartbeat_stale_trial_callback=RetryFailedTrialCallback(max_retry=1),
    )
    n_before = (
        len(optuna.load_study(study_name=sweep_dir.name, storage=storage).trials)
        if sweep_dir.name in optuna.get_all_study_names(storage)
        else 0
    )
    if sweep.sampler == "grid":
        sampler = optuna.samplers.GridSampler(grid_space(sweep.space), seed=sweep.seed)
    elif sweep.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=sweep.seed + n_before)
    else:  # offset the seed so a resumed sweep does not replay the first process's random start
        sampler = optuna.samplers.TPESampler(
            seed=sweep.seed + n_before, n_startup_trials=min(10, max(2, sweep.trials // 3))
        )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if sweep.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=sweep_dir.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=sweep.objective.direction,
        load_if_exists=True,
    )


def run_sweep(path: str | Path, trials: int | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep until the study holds `trials` finished trials; returns sweep.json's content."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    sweep, _, sweep_dir = load_sweep(path, trials, out)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_text(sweep_dir / "sweep.yaml", yaml.safe_dump(sweep.model_dump(mode="json"), sort_keys=False))
    base = base_dict(sweep, Path(path))
    study = open_study(sweep, sweep_dir)
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    remaining = sweep.trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining > 0:
        study.optimize(
            lambda t: run_trial(t, sweep, base, sweep_dir),
            n_trials=remaining,
            callbacks=[
                MaxTrialsCallback(sweep.trials, states=finished),
                lambda s, t: write_summary(s, sweep, sweep_dir),
            ],
        )
    else:
        log.info("study %s already has %d finished trials; nothing to run", sweep_dir.name, sweep.trials)
    summary = write_summary(study, sweep, sweep_dir)
    if summary["best"] is not None:
        keep_best(summary, sweep_dir)
    return summary


def _trial_row(t: Any) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.name,
        "params": t.params,
        "value": t.value,
        "val_loss": t.user_attrs.get("val_loss"),
        "run_dir": t.user_attrs.get("run_dir"),
        "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
        "duration_s": t.duration.total_seconds() if t.duration else None,
    }


def importances(study: Any) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances (fANOVA), or why they cannot be computed yet."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return {}, f"needs at least 2 complete trials (has {len(complete)})"
    try:
        return dict(optuna.importance.get_param_importances(study)), None
    except (RuntimeError, ValueError) as exc:
        log.warning("parameter importances: %s", exc)
        return {}, str(exc)


def write_summary(study: Any, sweep: SweepConfig, sweep_dir: Path) -> dict[str, Any]:
    """sweep.json: what the report and the model card read (they never open the study)."""
    from optuna.trial import TrialState

    has_complete = bool(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    values, note = importances(study)
    summary = {
        "name": sweep_dir.name,
        "sweep_dir": str(sweep_dir),
        "objective": sweep.objective.model_dump(),
        "space": {k: p.model_dump(exclude_none=True) for k, p in sweep.space.items()},
        "sampler": sweep.sampler,
        "pruner": sweep.pruner,
        "target_trials": sweep.trials,
        "trials": [_trial_row(t) for t in study.get_trials(deepcopy=False)],
        "best": _trial_row(study.best_trial) if has_complete else None,
        "importances": values,
        "importances_note": note,
    }
    rundir.write_json(sweep_dir / SWEEP_JSON, summary)
    return summary


def keep_best(summary: dict[str, Any], sweep_dir: Path) -> Path | None:
    """Copy the best trial's run dir (without checkpoints) to best/, with best.json and a model card."""
    from tunelab.models.card import write_model_card

    best = summary["best"]
    if not Path(best["run_dir"]).is_dir():  # trained by another machine sharing the study
        log.warning(
            "best trial %d was trained elsewhere (%s is not here): best/ not updated", best["number"], best["run_dir"]
        )
        return None
    with rundir.publish_dir(sweep_dir / BEST) as staging:
        shutil.copytree(
            best["run_dir"],
            staging,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(rundir.CHECKPOINTS, "wandb", "mlflow.db", "mlartifacts", "tensorboard"),
        )
        rundir.write_json(
            staging / "best.json",
            {
                "trial": best["number"],
                "params": best["params"],
                "objective": summary["objective"],
                "value": best["value"],
                "trained_in": best["run_dir"],
            },
        )
    write_model_card(sweep_dir / BEST, sweep=summary)  # after the rename: the card names its final path
    return sweep_dir / BEST
