"""Restart safety: SIGKILL `tunelab studio` while a job trains, start it again; the job resumes
from its last complete checkpoint, the queued job stays queued, nothing recorded is lost."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")

from tunelab.studio.db import Database  # noqa: E402
from tunelab.studio.runner import Runner, group_alive  # noqa: E402

ROOT = Path(__file__).parents[2]


def start_server(folder: Path, port: int, base: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tunelab.cli",
            "studio",
            "--dir",
            str(folder),
            "--port",
            str(port),
            "--base-model",
            base,
            "--api-key",
            "k",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(folder.parent / "server.log").open("ab"),
    )
    deadline = time.monotonic() + 180  # a hang guard: importing torch on a busy 2-core machine is slow
    while time.monotonic() < deadline:
        try:
            if (
                httpx.get(f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": "Bearer k"}).status_code
                == 200
            ):
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("tunelab studio did not start")


def until(check, limit: float = 180):
    deadline = time.monotonic() + limit  # hang guard only
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigkill_then_restart_resumes(tmp_path, tiny_model_dir):
    folder, port = tmp_path / "studio", free_port()
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {"messages": [{"role": "user", "content": f"Say {i}"}, {"role": "assistant", "content": f"{i}!"}]}
            )
            + "\n"
            for i in range(16)
        )
    )
    server = start_server(folder, port, tiny_model_dir)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    try:
        file = client.files.wait_for_processing(client.files.create(file=data, purpose="fine-tune").id)
        config = {
            "train": {
                "max_steps": 60,
                "save_steps": 10,
                "eval_steps": 10,
                "logging_steps": 1,
                "threads": 1,
                "batch_size": 2,
            }
        }
        job = client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=file.id, extra_body={"tunelab": {"config": config}}
        )
        queued = client.fine_tuning.jobs.create(
            model=tiny_model_dir, training_file=file.id, extra_body={"tunelab": {"config": config}}
        )
        until(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data)
        before = client.fine_tuning.jobs.retrieve(job.id)
        ckpts_before = {c.fine_tuned_model_checkpoint for c in client.fine_tuning.jobs.checkpoints.list(job.id)}
        events_before = {e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)}
        assert before.status == "running" and before.tunelab["step"] < 60
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    orphan = before.tunelab["pid"]
    assert group_alive(orphan)  # the job outlives its server (own session); the restart must deal with it
    # Freeze it, so it is certainly still mid-run when the server returns, whatever this machine's speed.
    os.killpg(orphan, signal.SIGSTOP)

    server = start_server(folder, port, tiny_model_dir)
    try:
        until(lambda: not group_alive(orphan), 10)
        assert client.fine_tuning.jobs.retrieve(queued.id).status == "queued"
        messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)]
        assert any(m.startswith("Server restarted; the job resumes from checkpoint-") for m in messages)
        done = until(lambda: (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed") and j)
        assert done.status == "succeeded", done.error
        summary = json.loads((Path(done.tunelab["run_dir"]) / "summary.json").read_text())
        assert summary["steps"] == 60
        events_after = {e.id for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)}
        assert events_before <= events_after
        ckpt_rows = Database(folder / "studio.db").all("SELECT model FROM checkpoints WHERE job_id = ?", (job.id,))
        assert ckpts_before <= {r["model"] for r in ckpt_rows}
        steps = [
            e.data["step"]
            for e in client.fine_tuning.jobs.list_events(job.id, limit=1000)
            if e.type == "metrics" and e.data["valid_loss"] is None
        ]
        assert sorted(steps) == list(range(1, 61))  # nothing lost or doubled
        assert client.files.retrieve(file.id).status == "processed"
        assert client.fine_tuning.jobs.cancel(queued.id).status == "cancelled"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_job_killed_before_its_first_checkpoint_fails_with_server_restart(tmp_path):
    db = Database(tmp_path / "studio.db")
    db.insert(
        "jobs",
        {
            "id": "ftjob-x",
            "created_at": 0,
            "status": "running",
            "model": "m",
            "run_dir": str(tmp_path / "jobs/ftjob-x/run"),
            "hyperparameters": {},
            "method": {"type": "supervised"},
        },
    )
    db.insert(
        "jobs",
        {
            "id": "ftjob-y",
            "created_at": 1,
            "status": "queued",
            "model": "m",
            "run_dir": str(tmp_path / "jobs/ftjob-y/run"),
            "hyperparameters": {},
            "method": {"type": "supervised"},
        },
    )
    Runner(db, tmp_path / "jobs").recover()
    failed = db.one("SELECT * FROM jobs WHERE id = 'ftjob-x'")
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_restart"
    assert db.one("SELECT status FROM jobs WHERE id = 'ftjob-y'")["status"] == "queued"
