"""Behaviour evaluation during a studio job's training, through the official `openai` client on a
real server on 127.0.0.1: the request's `tunelab.behaviour_eval` / `best_metric` land in the frozen
config, a request the run could not honour is a 400 naming the field, and a short job's events,
checkpoints and metrics CSV carry the behaviour rates the recipe logged."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
import yaml

openai = pytest.importorskip("openai")

from test_studio_api import conversations, wait, write_jsonl  # noqa: E402

from tunelab.config import GENERATION_BATCH  # noqa: E402

TINY = {"train": {"logging_steps": 1, "threads": 1, "max_steps": 4, "batch_size": 2}, "model": {"lora": {"r": 4}}}


def upload(client, path: Path, rows: list) -> str:
    file = client.files.create(file=write_jsonl(path, rows), purpose="fine-tune")
    assert client.files.wait_for_processing(file.id).status == "processed"
    return file.id


def frozen(job) -> dict:
    return yaml.safe_load((Path(job.tunelab["run_dir"]).parent / "config.yaml").read_text())


def test_the_request_maps_onto_train_behaviour_eval_and_names_what_it_cannot_run(idle_studio, tmp_path, tiny_model_dir):
    _, client = idle_studio
    train = upload(client, tmp_path / "train.jsonl", conversations(20))
    few = upload(client, tmp_path / "few.jsonl", conversations(3))
    val = upload(client, tmp_path / "val.jsonl", conversations(4, start=100))

    def create(training_file=train, **ext):
        return client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=training_file, extra_body={"tunelab": ext}
        )

    job = create(
        behaviour_eval={"contexts": 40, "max_new_tokens": 24, "eval_steps": 10}, best_metric="behaviour_correct"
    )
    config = frozen(job)["train"]
    assert config["behaviour_eval"] == {
        "enabled": True,
        "contexts": 40,
        "max_new_tokens": 24,
        "batch_size": GENERATION_BATCH,
    }
    assert config["eval_steps"] == 10 and config["best_metric"] == "behaviour_correct"
    # true: the defaults; a pasted config's own settings are kept under the request's switch
    config = frozen(create(behaviour_eval=True, config={"train": {"behaviour_eval": {"contexts": 5}}}))["train"]
    assert config["behaviour_eval"]["enabled"] is True and config["behaviour_eval"]["contexts"] == 5
    assert frozen(create())["train"]["behaviour_eval"]["enabled"] is False  # not asked: off, as before

    cases = [
        ("validation_file", dict(training_file=few, behaviour_eval={})),
        ("validation_file", dict(behaviour_eval={}, config={"data": {"val_fraction": 0}})),
        ("tunelab.best_metric", dict(best_metric="behaviour_appropriate")),
        # 50 is no multiple of 7 (with save_steps left at auto, checkpoints follow the evaluations)
        (
            "tunelab.behaviour_eval.eval_steps",
            dict(behaviour_eval={"eval_steps": 7}, config={"train": {"save_steps": 50}}),
        ),
        ("tunelab.behaviour_eval.contexts", dict(behaviour_eval={"contexts": 0})),
        ("tunelab.best_metric", dict(best_metric="accuracy")),
        ("tunelab.config.train", dict(behaviour_eval={}, config={"train": 5})),  # a 400, not a TypeError
    ]
    for param, args in cases:
        with pytest.raises(openai.BadRequestError) as bad:
            create(**args)
        assert bad.value.body["param"] == param, (args, bad.value.body)
    with pytest.raises(openai.BadRequestError) as bad:
        client.fine_tuning.jobs.create(
            model=tiny_model_dir,
            training_file=train,
            method={"type": "dpo"},
            extra_body={"tunelab": {"behaviour_eval": True}},
        )
    assert bad.value.body["param"] == "tunelab.behaviour_eval" and "recipe dpo" in bad.value.body["message"]
    # the few conversations are enough with a validation file of their own
    job = client.fine_tuning.jobs.create(
        model=tiny_model_dir, training_file=few, validation_file=val, extra_body={"tunelab": {"behaviour_eval": {}}}
    )
    assert frozen(job)["train"]["behaviour_eval"]["enabled"] is True and frozen(job)["data"]["val"]


def test_best_metric_auto_is_the_correct_reply_rate_where_behaviour_is_measured(idle_studio, tmp_path, tiny_model_dir):
    _, client = idle_studio
    train = upload(client, tmp_path / "train.jsonl", conversations(20))

    def best(**ext) -> str:
        job = client.fine_tuning.jobs.create(model=tiny_model_dir, training_file=train, extra_body={"tunelab": ext})
        return frozen(job)["train"]["best_metric"]

    assert best(behaviour_eval=True) == best(behaviour_eval=True, best_metric="auto") == "behaviour_correct"
    assert best() == best(best_metric="auto") == "loss"  # nothing measured: the validation loss
    assert best(behaviour_eval=True, best_metric="loss") == "loss"


@pytest.mark.slow
def test_a_job_logs_behaviour_rates_to_its_events_checkpoints_and_metrics_csv(idle_studio, tmp_path, tiny_model_dir):
    studio, client = idle_studio
    studio.start()
    train = upload(client, tmp_path / "train.jsonl", conversations(16))
    val = upload(client, tmp_path / "val.jsonl", conversations(4, start=100))
    job = client.fine_tuning.jobs.create(
        model=tiny_model_dir,
        training_file=train,
        validation_file=val,
        extra_body={
            "tunelab": {
                "config": {**TINY, "train": {**TINY["train"], "save_steps": 2}},
                "behaviour_eval": {"contexts": 3, "max_new_tokens": 8, "eval_steps": 2},
                "best_metric": "behaviour_appropriate",
            }
        },
    )
    done = wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=200))
    rates = [e.data for e in events if e.type == "metrics" and "behaviour_appropriate" in e.data]
    assert sorted(r["step"] for r in rates) == [2, 4]
    assert all(0 <= r["behaviour_appropriate"] <= 1 and r["total_steps"] == 4 for r in rates)
    assert any(e.message.startswith("Step 2/4: validation appropriate ") for e in events)
    checkpoints = {c.step_number: c.metrics.model_dump() for c in client.fine_tuning.jobs.checkpoints.list(job.id).data}
    assert "valid_behaviour_appropriate" in checkpoints[2] and "valid_behaviour_correct" in checkpoints[4]

    text = client.get(f"/fine_tuning/jobs/{job.id}/metrics", cast_to=httpx.Response).text
    rows = [r for r in csv.DictReader(io.StringIO(text)) if r["name"] == "behaviour_appropriate"]
    assert {r["split"] for r in rows} == {"val"} and {r["step"] for r in rows} >= {"2", "4"}
    # the CSV says what the events said: the same rate at step 2
    assert float(next(r["value"] for r in rows if r["step"] == "2")) == next(
        r["behaviour_appropriate"] for r in rates if r["step"] == 2
    )
