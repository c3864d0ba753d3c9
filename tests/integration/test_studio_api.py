"""tunelab studio end to end with the official `openai` client against a real server on 127.0.0.1:
upload, validate, fine-tune a tiny model a few steps, events, checkpoints, chat with the ft: model;
a bad file named by line; cancel stops the job's whole process group."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")

from tunelab.studio.app import Studio, serve_in_thread  # noqa: E402
from tunelab.studio.runner import group_alive  # noqa: E402

ROOT = Path(__file__).parents[2]
FAST = {
    "train": {"logging_steps": 1, "eval_steps": 2, "save_steps": 2, "threads": 1, "max_steps": 4},
    "model": {"lora": {"r": 4, "alpha": 8}},
}


def conversations(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(start, start + n)
    ]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def wait(client, job_id: str, statuses: tuple[str, ...], limit: float = 300):
    deadline = time.monotonic() + limit  # a hang guard, not a timing assertion
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} stayed {job.status}")


@pytest.fixture()
def studio(tmp_path, tiny_model_dir):
    s = Studio(tmp_path / "studio", api_key="sekrit", base_models=[tiny_model_dir]).start()
    with serve_in_thread(s) as url:
        yield s, openai.OpenAI(base_url=url, api_key="sekrit", max_retries=0)
    s.close()


@pytest.mark.slow
def test_upload_train_events_checkpoints_chat(studio, tmp_path, tiny_model_dir):
    s, client = studio
    train = client.files.create(file=write_jsonl(tmp_path / "train.jsonl", conversations(12)), purpose="fine-tune")
    val = client.files.create(
        file=write_jsonl(tmp_path / "val.jsonl", conversations(4, start=100)), purpose="fine-tune"
    )
    assert client.files.wait_for_processing(train.id).status == "processed"
    assert client.files.wait_for_processing(val.id).status == "processed"
    assert client.files.content(train.id).content == (tmp_path / "train.jsonl").read_bytes()
    page = client.files.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    assert {f.id for f in page} == {train.id, val.id}  # auto-pagination follows the cursor

    job = client.fine_tuning.jobs.create(
        model=tiny_model_dir,
        training_file=train.id,
        validation_file=val.id,
        suffix="sums",
        seed=7,
        metadata={"who": "test"},
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"batch_size": 2, "n_epochs": "auto", "learning_rate_multiplier": 2}},
        },
        extra_body={"tunelab": {"config": FAST}},
    )
    assert job.status == "validating_files" and job.seed == 7
    frozen = Path(job.tunelab["run_dir"]).parent / "config.yaml"
    # multiplier 2 of LoRA's auto learning rate, 1e-3
    assert "learning_rate: 0.002" in frozen.read_text() and frozen.stat().st_mode & 0o777 == 0o444
    done = wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft:") and ":sums:" in done.fine_tuned_model
    assert done.trained_tokens > 0 and done.finished_at
    assert done.tunelab["status_text"] == "succeeded after 4 steps"
    # The finished job's metrics as CSV: one row per line of its metrics.jsonl.
    csv_rows = client.get(f"/fine_tuning/jobs/{job.id}/metrics", cast_to=httpx.Response).text.splitlines()
    train_losses = [r for r in csv_rows[1:] if r.split(",")[2:4] == ["train", "loss"]]
    assert csv_rows[0] == "step,epoch,split,name,value" and [r.split(",")[0] for r in train_losses] == [
        "1",
        "2",
        "3",
        "4",
    ]

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    metrics = [e.data for e in events if e.type == "metrics"]
    assert {m["step"] for m in metrics if m["train_loss"] is not None} == {1, 2, 3, 4}
    assert any(m["valid_loss"] is not None for m in metrics) and all(m["total_steps"] == 4 for m in metrics)
    messages = [e.message for e in events]
    assert messages[0] == "The job has successfully completed"  # newest first, as the API lists them
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [4, 2]
    assert checkpoints[0].fine_tuned_model_checkpoint == f"{done.fine_tuned_model}:ckpt-step-4"

    served = {m.id for m in client.models.list()}
    assert done.fine_tuned_model in served and checkpoints[0].fine_tuned_model_checkpoint in served
    for model in (done.fine_tuned_model, checkpoints[1].fine_tuned_model_checkpoint):
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "What is 2 plus 2?"}], max_tokens=5
        )
        assert reply.model == model and reply.usage.completion_tokens > 0

    # Each job lists its own; the ft: model is a base for the next job.
    again = client.fine_tuning.jobs.create(
        model=done.fine_tuned_model, training_file=train.id, extra_body={"tunelab": {"config": FAST}}
    )
    assert wait(client, again.id, ("succeeded", "failed")).status == "succeeded"
    assert [j.id for j in client.fine_tuning.jobs.list()] == [again.id, job.id]
    compared = client.get("/studio/compare", cast_to=object, options={"params": {"ids": f"{job.id},{again.id}"}})
    assert compared["chart"].count("<polyline") == 4  # each job: training and validation (held out) curves
    assert set(compared["config_diff"]) == {"model.name", "train.learning_rate", "train.batch_size", "train.seed"}
    assert compared["scores"][job.id]["steps"] == 4
    assert client.files.delete(train.id).deleted and val.id in {f.id for f in client.files.list()}


def test_auto_hyperparameters_are_what_tunelab_train_uses_and_the_multiplier_scales_its_rate(
    idle_studio, tmp_path, tiny_model_dir, monkeypatch
):
    import torch
    import yaml

    from tunelab.config import load
    from tunelab.train.precision import resolve

    _, client = idle_studio
    train = client.files.create(file=write_jsonl(tmp_path / "train.jsonl", conversations(8)), purpose="fine-tune")
    assert client.files.wait_for_processing(train.id).status == "processed"

    def create(hp: dict, method: str = "supervised", config: dict | None = None):
        job = client.fine_tuning.jobs.create(
            model=tiny_model_dir,
            training_file=train.id,
            method={"type": method, method: {"hyperparameters": hp}},
            extra_body={"tunelab": {"config": config or {}}},
        )
        return job, yaml.safe_load((Path(job.tunelab["run_dir"]).parent / "config.yaml").read_text())["train"]

    auto = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    job, frozen = create(auto)
    # `tunelab train` on a config that sets none of them: the same numbers
    cli = resolve(load(data={"model": {"name": tiny_model_dir}, "data": {"train": "x"}})).train
    used = (frozen["batch_size"], frozen["learning_rate"], frozen["best_metric"])
    assert used == (cli.batch_size, cli.learning_rate, cli.best_metric) == (1, 1e-3, "loss")
    assert frozen["precision"] == "auto"  # measured by the run, on the machine it trains on
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size) == (1, 1)
    assert job.hyperparameters.learning_rate_multiplier == 1
    # m: m times the auto rate of the job's adapter and recipe, echoed as m
    job, frozen = create({"learning_rate_multiplier": 2})
    assert frozen["learning_rate"] == pytest.approx(2e-3) and job.hyperparameters.learning_rate_multiplier == 2
    job, frozen = create({"learning_rate_multiplier": 2}, config={"model": {"adapter": "ia3"}})
    assert frozen["learning_rate"] == pytest.approx(4e-4) and job.hyperparameters.learning_rate_multiplier == 2
    job, frozen = create({}, config={"train": {"learning_rate": 5e-4}})  # a pasted rate, echoed as its multiplier
    assert job.hyperparameters.learning_rate_multiplier == pytest.approx(0.5)
    job, frozen = create({"learning_rate_multiplier": 0.5}, method="dpo")
    assert (frozen["batch_size"], frozen["learning_rate"]) == (4, pytest.approx(1e-4))
    assert job.hyperparameters.batch_size == 4 and job.hyperparameters.learning_rate_multiplier == 0.5
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the server decides on its own device
    job, frozen = create(auto)
    assert frozen["batch_size"] == 8 == job.hyperparameters.batch_size


@pytest.mark.slow
def test_bad_rows_named_and_cancel_stops_the_group(studio, tmp_path, tiny_model_dir):
    s, client = studio
    rows = conversations(4)
    rows[1] = {"messages": [{"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]}
    bad = client.files.create(file=write_jsonl(tmp_path / "bad.jsonl", rows), purpose="fine-tune")
    checked = client.files.wait_for_processing(bad.id)
    assert checked.status == "error" and "bad.jsonl:2: messages[0].role: wrong role order" in checked.status_details
    job = client.fine_tuning.jobs.create(model=tiny_model_dir, training_file=bad.id)
    failed = wait(client, job.id, ("failed", "succeeded"))
    assert (
        failed.status == "failed"
        and failed.error.code == "invalid_training_file"
        and "bad.jsonl:2:" in failed.error.message
    )

    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=str(client.base_url), api_key="wrong", max_retries=0).files.list()
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=bad.id, extra_body={"tunelab": {"config": {"train": {"epoch": 2}}}}
        )

    good = client.files.create(file=write_jsonl(tmp_path / "good.jsonl", conversations(8)), purpose="fine-tune")
    client.files.wait_for_processing(good.id)
    long = {"train": {**FAST["train"], "max_steps": 100000, "save_steps": 1000, "eval_steps": 1000}}
    first = client.fine_tuning.jobs.create(
        model=tiny_model_dir, training_file=good.id, extra_body={"tunelab": {"config": long}}
    )
    second = client.fine_tuning.jobs.create(
        model=tiny_model_dir, training_file=good.id, extra_body={"tunelab": {"config": long}}
    )
    deadline = time.monotonic() + 120
    while not (client.fine_tuning.jobs.retrieve(first.id).tunelab["step"] or 0) and time.monotonic() < deadline:
        time.sleep(0.3)
    running = client.fine_tuning.jobs.retrieve(first.id)
    assert (
        running.status == "running" and client.fine_tuning.jobs.retrieve(second.id).status == "queued"
    )  # one at a time
    pgid = running.tunelab["pid"]
    assert group_alive(pgid)
    assert client.fine_tuning.jobs.cancel(first.id).status == "cancelled"
    deadline = time.monotonic() + 10
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_alive(pgid), "the job's process group outlived cancel by 10 s"
    assert client.fine_tuning.jobs.cancel(second.id).status == "cancelled"


@pytest.mark.slow
def test_job_under_accelerate_launch_runs_two_processes(studio, tmp_path, tiny_model_dir):
    s, client = studio
    train = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", conversations(16)), purpose="fine-tune")
    val = client.files.create(file=write_jsonl(tmp_path / "v.jsonl", conversations(2, start=50)), purpose="fine-tune")
    client.files.wait_for_processing(train.id)
    client.files.wait_for_processing(val.id)
    config = {"train": {**FAST["train"], "max_steps": 2, "batch_size": 2, "group_by_length": False}}
    job = client.fine_tuning.jobs.create(
        model=tiny_model_dir,
        training_file=train.id,
        validation_file=val.id,
        extra_body={"tunelab": {"config": config, "accelerate_config": "ddp_cpu"}},
    )
    assert Path(job.tunelab["accelerate_config"]).read_text() == (ROOT / "examples/accelerate/ddp_cpu.yaml").read_text()
    done = wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    # 16 examples, 2 per process: step 1 covers a quarter of the epoch only if two ranks split the data.
    first = next(
        r
        for r in map(json.loads, (Path(done.tunelab["run_dir"]) / "metrics.jsonl").read_text().splitlines())
        if r["name"] == "loss"
    )
    assert first["step"] == 1 and first["epoch"] == pytest.approx(0.25)
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=train.id, extra_body={"tunelab": {"accelerate_config": "nope"}}
        )


def preference_rows(n: int, start: int = 0) -> list[dict]:
    """OpenAI's preference-data format, as DPO jobs take it."""
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}]},
            "preferred_output": [{"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}],
            "non_preferred_output": [{"role": "assistant", "content": f"I cannot add {i} and {i}."}],
        }
        for i in range(start, start + n)
    ]


@pytest.mark.slow
def test_dpo_job_trains_on_preference_data(studio, tmp_path, tiny_model_dir):
    s, client = studio
    rows = preference_rows(3)
    rows[1] = {**rows[1], "preferred_output": [{"role": "user", "content": "x"}]}
    bad = client.files.wait_for_processing(
        client.files.create(file=write_jsonl(tmp_path / "badpref.jsonl", rows), purpose="fine-tune").id
    )
    assert (
        bad.status == "error"
        and bad.status_details == "badpref.jsonl:2: preferred_output[0].role: must be 'assistant', got 'user'"
    )
    train = client.files.create(file=write_jsonl(tmp_path / "pref.jsonl", preference_rows(8)), purpose="fine-tune")
    val = client.files.create(
        file=write_jsonl(tmp_path / "prefval.jsonl", preference_rows(2, start=50)), purpose="fine-tune"
    )
    chat = client.files.create(file=write_jsonl(tmp_path / "chat.jsonl", conversations(4)), purpose="fine-tune")
    for f in (train, val, chat):
        assert client.files.wait_for_processing(f.id).status == "processed"
    report = client.get(f"/files/{train.id}/report", cast_to=object)["report"]
    assert (
        report["format"] == "openai-preference" and report["kept"] == 8 and report["stats"]["target_tokens"]["min"] > 0
    )

    # A file of the other kind fails the job at validation, naming the method it fits.
    sft_on_pairs = client.fine_tuning.jobs.create(model=tiny_model_dir, training_file=train.id)
    dpo = {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.25, "batch_size": 2}}}
    dpo_on_chats = client.fine_tuning.jobs.create(model=tiny_model_dir, training_file=chat.id, method=dpo)
    failed = wait(client, sft_on_pairs.id, ("failed", "succeeded"))
    assert failed.error.code == "invalid_training_file" and "method {type: 'dpo'}" in failed.error.message
    assert "needs OpenAI preference rows" in wait(client, dpo_on_chats.id, ("failed", "succeeded")).error.message
    with pytest.raises(openai.BadRequestError, match="beta"):
        client.fine_tuning.jobs.create(
            model=tiny_model_dir,
            training_file=train.id,
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": -1}}},
        )

    config = {"train": {**FAST["train"], "max_steps": 2}, "model": FAST["model"]}
    job = client.fine_tuning.jobs.create(
        model=tiny_model_dir,
        training_file=train.id,
        validation_file=val.id,
        suffix="pref",
        method=dpo,
        extra_body={"tunelab": {"config": config}},
    )
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.25
    frozen = (Path(job.tunelab["run_dir"]).parent / "config.yaml").read_text()
    assert "recipe: dpo" in frozen and "beta: 0.25" in frozen
    done = wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    assert done.trained_tokens > 0
    metrics = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert {m["step"] for m in metrics if m["train_loss"] is not None} == {1, 2} and all(
        m["total_steps"] == 2 for m in metrics
    )
    assert [m["step"] for m in metrics if m["valid_loss"] is not None] == [2]  # the validation pairs' DPO loss
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data] == [2]
    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "user", "content": "What is 2 plus 2?"}], max_tokens=4
    )
    assert reply.usage.completion_tokens > 0


@pytest.mark.slow
def test_bake_job_with_an_uploaded_prompt_file(studio, tmp_path, tiny_model_dir):
    from tunelab.data.synth.helpdesk import PROMPT_YAML, generate_logs

    s, client = studio
    rows = generate_logs(16, seed=2)
    logs = client.files.create(file=write_jsonl(tmp_path / "logs.jsonl", rows), purpose="fine-tune")
    prompt = client.files.create(file=("prompt.yaml", PROMPT_YAML.encode()), purpose="fine-tune")
    broken = client.files.create(file=("broken.yaml", b"rules: []\n"), purpose="fine-tune")
    assert client.files.wait_for_processing(logs.id).status == "processed"
    assert client.files.wait_for_processing(prompt.id).status == "processed"
    assert (
        "broken.yaml: a prompt file is a mapping with a non-empty 'prompt' string"
        in client.files.wait_for_processing(broken.id).status_details
    )
    report = client.get(f"/files/{logs.id}/report", cast_to=object)["report"]
    assert (
        report["format"] == "feedback-log"
        and report["read"] == report["kept"] == len(rows)
        and report["good"] == sum(r["label"] == "good" for r in rows)
    )
    with pytest.raises(openai.BadRequestError, match="not a processed system-prompt file"):
        client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=logs.id, extra_body={"tunelab": {"prompt_file": logs.id}}
        )
    with pytest.raises(openai.BadRequestError, match="broken.yaml"):
        client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=logs.id, extra_body={"tunelab": {"prompt_file": broken.id}}
        )
    with pytest.raises(openai.BadRequestError, match="val_fraction"):
        client.fine_tuning.jobs.create(
            model=tiny_model_dir,
            training_file=logs.id,
            validation_file=logs.id,
            extra_body={"tunelab": {"prompt_file": prompt.id}},
        )
    sft_on_logs = client.fine_tuning.jobs.create(model=tiny_model_dir, training_file=logs.id)

    config = {"train": {**FAST["train"], "max_steps": 2, "batch_size": 2}, "bake": {"targets": ["logged"]}}
    job = client.fine_tuning.jobs.create(
        model=tiny_model_dir,
        training_file=logs.id,
        suffix="baked",
        extra_body={"tunelab": {"prompt_file": prompt.id, "config": config}},
    )
    frozen = (Path(job.tunelab["run_dir"]).parent / "config.yaml").read_text()
    assert "recipe: bake" in frozen and f"system_prompt_file: {s.files.row(prompt.id)['path']}" in frozen
    assert "tunelab.prompt_file (recipe bake)" in wait(client, sft_on_logs.id, ("failed", "succeeded")).error.message
    done = wait(client, job.id, ("succeeded", "failed", "cancelled"))
    assert done.status == "succeeded", done.error
    metrics = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=100) if e.type == "metrics"]
    assert {m["step"] for m in metrics if m["train_loss"] is not None} == {1, 2} and all(
        m["total_steps"] == 2 for m in metrics
    )
    assert (Path(done.tunelab["run_dir"]) / "prompt.yaml").exists() and done.fine_tuned_model in {
        m.id for m in client.models.list()
    }


def test_compare_puts_behaviour_and_metric_scores_side_by_side(tmp_path):
    from types import SimpleNamespace

    from tunelab import rundir
    from tunelab.studio.compare import compare
    from tunelab.train.callbacks import MetricsFileCallback

    jobs = []
    for i, rate in enumerate((0.25, 0.75)):
        run = tmp_path / f"run{i}"
        run.mkdir()
        log = MetricsFileCallback(run).on_log  # as the Trainer logs them, behaviour_eval's rates included
        for step, loss in ((2, 1.5), (4, 1.0 + i)):
            log(
                None,
                SimpleNamespace(is_world_process_zero=True, global_step=step, epoch=1.0),
                None,
                {"eval_loss": loss, "eval_behaviour_appropriate": rate * step / 4, "eval_runtime": 3.0},
            )
        rundir.write_json(
            run / "summary.json", {"steps": 4, "final_val_loss": 1.0 + i, "throughput": {"tokens_per_s": 10.0}}
        )
        rundir.write_json(run / "scores.json", {"n": 8, "behaviour": {"appropriateness": rate}, "model": "m"})
        rundir.write_json(
            run / "adherence.json",
            {
                "conditions": {
                    "baked without prompt": {
                        "overall": rate,
                        "rules": {"language": {"pass_rate": 1.0, "applicable": 8}},
                        "latency_s": 0.5,
                    }
                }
            },
        )
        jobs.append({"id": f"ftjob-{i}", "run_dir": str(run), "config": f"train:\n  seed: {i}\n"})
    scores = compare(jobs)["scores"]
    assert scores["ftjob-0"] == {
        "steps": 4,
        "final_val_loss": 1.0,
        "tokens_per_s": 10.0,
        "val.loss": 1.0,
        "val.behaviour_appropriate": 0.25,
        "val.step": 4,
        "eval.n": 8,
        "eval.behaviour.appropriateness": 0.25,
        "adherence.baked without prompt.overall": 0.25,
        "adherence.baked without prompt.rules.language.pass_rate": 1.0,
    }
    assert scores["ftjob-1"]["val.behaviour_appropriate"] == 0.75 and scores["ftjob-1"]["val.loss"] == 2.0
