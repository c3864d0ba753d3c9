"""The API functions the walk-through does not run: bake_prompt, and judge (API and command) on a real server."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import tunelab
from tunelab import rundir

ROWS = [
    {
        "conversation_id": "a",
        "turn_index": 1,
        "context": [{"role": "user", "content": "A latte please"}],
        "prediction": "What size?",
        "reference": "Which size would you like?",
    },
    {"conversation_id": "b", "turn_index": 1, "context": [], "prediction": "Hello!"},
]


@pytest.fixture(scope="module")
def judge_url(tiny_model_dir):
    from tunelab.serve.app import ServerThread, ServeSettings, create_app, load_engine

    settings = ServeSettings(model_name="tiny-judge", default_max_tokens=8, batch_window=0.0)
    engine = load_engine(tiny_model_dir, settings)
    with ServerThread(create_app(engine, settings)) as url:
        yield url
    engine.close()


def test_judge_scores_rows_and_writes_one_verdict_per_row(judge_url, tmp_path):
    out = tmp_path / "verdicts.jsonl"
    report = tunelab.judge(ROWS, base_url=judge_url, model="tiny-judge", cache=tmp_path / "cache.sqlite", out=out)
    # A random 2-layer model cannot write the rubric's JSON: counted as unparseable, not dropped.
    assert report.summary()["n"] == 2 and report.summary()["unparseable"] == 2
    assert [(r["conversation_id"], r["parsed"]) for r in rundir.read_jsonl(out)] == [("a", False), ("b", False)]


def test_judge_command_reads_a_predictions_file(judge_url, tmp_path):
    from tunelab.cli import app

    predictions = rundir.write_jsonl(tmp_path / "predictions.jsonl", ROWS)
    result = CliRunner().invoke(
        app,
        [
            "judge",
            str(predictions),
            "--base-url",
            judge_url,
            "--model",
            "tiny-judge",
            "--cache",
            str(tmp_path / "cache.sqlite"),
            "-o",
            str(tmp_path / "v.jsonl"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{") :])["n"] == 2
    assert len(rundir.read_jsonl(tmp_path / "v.jsonl")) == 2


@pytest.mark.slow
def test_bake_prompt_trains_recipe_bake_with_the_given_sections(tmp_path, tiny_model_dir):
    from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs

    logs = rundir.write_jsonl(tmp_path / "logs.jsonl", generate_logs(16, seed=2))
    prompt = rundir.write_text(tmp_path / "prompt.yaml", PROMPT_YAML)
    summary = tunelab.bake_prompt(
        prompt,
        logs,
        out=tmp_path / "bake",
        model=tiny_model_dir,
        data={"val_fraction": 0.25},
        train={"max_steps": 1, "batch_size": 2, "eval_steps": 1, "save_steps": 1},
        bake={"targets": ["logged"]},
    )
    run_dir = tmp_path / "bake"
    assert summary["steps"] == 1 and str(run_dir) == str(summary["run_dir"])
    resolved = tunelab.load_config(run_dir / "config.yaml")
    assert resolved.train.recipe == "bake" and resolved.bake.targets == ["logged"]
    assert (
        resolved.data.train == str(logs)
        and resolved.data.val_fraction == 0.25
        and resolved.model.name == tiny_model_dir
    )
    assert (run_dir / "adapter").is_dir() and (run_dir / "heldout.jsonl").exists()
