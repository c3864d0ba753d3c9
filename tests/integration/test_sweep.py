"""The sweep: an Optuna study over config keys, resumable from its SQLite file, best trial kept with a model card."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from test_adapters import write_tiny_data

from tunelab.config import ConfigError


def sweep_file(tmp_path: Path, model_dir: str, trials: int = 3, **extra) -> Path:
    data = write_tiny_data(tmp_path / "train.jsonl")
    sweep = {
        "base": {
            "model": {"name": model_dir, "adapter": "lora", "lora": {"r": 4, "alpha": 8}},
            "data": {"train": str(data), "val_fraction": 0.25, "max_length": 128},
            "train": {
                "max_steps": 4,
                "batch_size": 2,
                "eval_steps": 2,
                "save_steps": 2,
                "logging_steps": 1,
                "threads": 1,
            },
        },
        "space": {
            "train.learning_rate": {"type": "float", "low": 1e-4, "high": 5e-2, "log": True},
            "model.adapter": {"type": "categorical", "choices": ["lora", "dora"]},
        },
        "objective": {"metric": "val_loss", "direction": "minimize"},
        "trials": trials,
        "dir": str(tmp_path / "sweep"),
        **extra,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def n_trials_in_db(db: Path) -> int:
    with sqlite3.connect(db) as con:
        return con.execute("select count(*) from trials").fetchone()[0]


@pytest.mark.slow
def test_sweep_runs_resumes_and_keeps_best(tmp_path, tiny_model_dir):
    from tunelab.train.sweep import run_sweep

    path = sweep_file(tmp_path, tiny_model_dir, trials=3)
    first = run_sweep(path)
    sweep_dir = tmp_path / "sweep"
    assert [t["number"] for t in first["trials"]] == [0, 1, 2]
    assert all(t["state"] in ("COMPLETE", "PRUNED") for t in first["trials"])
    assert n_trials_in_db(sweep_dir / "study.db") == 3
    for t in first["trials"]:  # each trial is a normal run directory, checkpoints removed
        run = Path(t["run_dir"])
        assert (
            (run / "config.yaml").exists() and (run / "metrics.jsonl").exists() and not (run / "checkpoints").exists()
        )
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["learning_rate"] == pytest.approx(
            t["params"]["train.learning_rate"]
        )

    # A second invocation (through the command) with a higher target continues the same study.
    from typer.testing import CliRunner

    from tunelab.cli import app

    result = CliRunner().invoke(app, ["sweep", str(path), "--trials", "4"])
    assert result.exit_code == 0, result.output
    assert "best: trial" in result.output and (sweep_dir / "report.html").exists()
    second = json.loads((sweep_dir / "sweep.json").read_text())
    assert [t["number"] for t in second["trials"]] == [0, 1, 2, 3]
    assert n_trials_in_db(sweep_dir / "study.db") == 4
    assert [t["params"] for t in second["trials"][:3]] == [t["params"] for t in first["trials"]]

    complete = [t for t in second["trials"] if t["state"] == "COMPLETE"]
    best = min(complete, key=lambda t: t["value"])
    assert second["best"]["number"] == best["number"]
    # The objective is the trial's own final validation loss, as written in its summary.json.
    summary = json.loads((Path(best["run_dir"]) / "summary.json").read_text())
    assert best["value"] == pytest.approx(summary["final_val_loss"])
    kept = sweep_dir / "best"
    assert (kept / "adapter" / "adapter_config.json").exists() and (kept / "config.yaml").exists()
    assert json.loads((kept / "best.json").read_text())["trial"] == best["number"]
    card = (kept / "README.md").read_text()
    assert "How the parameters were chosen" in card and f"trial {best['number']}" in card and "load_model" in card

    from tunelab.report import build_report

    html = build_report(sweep_dir)  # the report reads the real sweep's files
    assert f"Trial {best['number']} has the best val_loss (minimize) of {len(complete)} complete trials" in html
    assert html.count("<tr") >= 4 + 1 and "The best trial" in html


def test_sweep_file_errors_name_the_key(tmp_path, tiny_model_dir):
    from tunelab.train.sweep import load_sweep

    path = sweep_file(
        tmp_path, tiny_model_dir, space={"train.learning_rat": {"type": "float", "low": 1e-4, "high": 1e-2}}
    )
    with pytest.raises(ConfigError, match="(?s)space.train.learning_rat.*did you mean 'train.learning_rate'"):
        load_sweep(path)
    path = sweep_file(tmp_path, tiny_model_dir, space={"train.batch_size": {"type": "int", "low": 4}})
    with pytest.raises(ConfigError, match="(?s)space.train.batch_size.*'low' <= 'high'"):
        load_sweep(path)
    path = sweep_file(
        tmp_path, tiny_model_dir, space={"model.adapter": {"type": "categorical", "choices": ["lora", "loha"]}}
    )
    with pytest.raises(ConfigError, match="space.model.adapter='loha'"):
        load_sweep(path)


def test_grid_space_needs_choices_for_floats():
    from tunelab.train.sweep import Param, grid_space

    assert grid_space({"train.batch_size": Param(type="int", low=2, high=6, step=2)}) == {"train.batch_size": [2, 4, 6]}
    with pytest.raises(ConfigError, match="grid"):
        grid_space({"train.learning_rate": Param(type="float", low=1e-4, high=1e-2)})


def test_objective_reads_scores_json_or_val_metrics(tmp_path):
    from tunelab import rundir
    from tunelab.train.sweep import Objective, objective_value

    rundir.write_json(tmp_path / "scores.json", {"behaviour": {"appropriateness": 0.75}})
    rundir.append_jsonl(
        tmp_path / "metrics.jsonl", {"step": 2, "epoch": 1, "split": "val", "name": "accuracy", "value": 0.5}
    )
    rundir.append_jsonl(
        tmp_path / "metrics.jsonl", {"step": 4, "epoch": 2, "split": "val", "name": "accuracy", "value": 0.6}
    )
    assert objective_value(Objective(metric="behaviour.appropriateness", direction="maximize"), tmp_path, {}) == 0.75
    assert objective_value(Objective(metric="accuracy", direction="maximize"), tmp_path, {}) == 0.6
    assert objective_value(Objective(), tmp_path, {"final_val_loss": 1.5}) == 1.5
    with pytest.raises(ConfigError, match="not found"):
        objective_value(Objective(metric="bleu"), tmp_path, {})


@pytest.mark.slow
def test_hopeless_trial_is_pruned_and_stops_training(tmp_path, tiny_model_dir):
    """A pruner that rejects any loss stops the trial at its first validation (step 2 of 4)."""
    import optuna

    from tunelab import rundir
    from tunelab.train.sweep import base_dict, load_sweep, run_trial

    path = sweep_file(tmp_path, tiny_model_dir)
    sweep, _, sweep_dir = load_sweep(path)
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    study.optimize(lambda t: run_trial(t, sweep, base_dict(sweep, path), sweep_dir), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [2]
    run = Path(trial.user_attrs["run_dir"])
    assert max(r["step"] for r in rundir.read_metrics(run, "loss", "train")) == 2


def test_a_base_left_at_auto_trains_each_trial_with_what_auto_means(tmp_path, tiny_model_dir):
    """A base without batch size or learning rate: each trial resolves them as every run does, and
    its config.yaml records the numbers."""
    import optuna

    from tunelab.train.sweep import base_dict, load_sweep, run_trial

    path = sweep_file(tmp_path, tiny_model_dir, space={"model.adapter": {"type": "categorical", "choices": ["dora"]}})
    raw = yaml.safe_load(path.read_text())
    del raw["base"]["train"]["batch_size"]
    path.write_text(yaml.safe_dump(raw))
    sweep, base, sweep_dir = load_sweep(path)
    assert (base.train.batch_size, base.train.learning_rate) == ("auto", "auto")
    study = optuna.create_study(pruner=optuna.pruners.NopPruner())
    study.optimize(lambda t: run_trial(t, sweep, base_dict(sweep, path), sweep_dir), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    recorded = yaml.safe_load((Path(trial.user_attrs["run_dir"]) / "config.yaml").read_text())["train"]
    assert (recorded["batch_size"], recorded["learning_rate"], recorded["best_metric"]) == (1, 1e-3, "loss")
