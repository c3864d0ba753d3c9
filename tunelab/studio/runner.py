"""The job queue: one `tunelab train` subprocess at a time, each in its own process group.

The runner thread moves jobs validating_files -> queued -> running -> succeeded|failed|cancelled,
turns the run directory's metrics.jsonl and checkpoints/ into events and checkpoint rows (keyed,
so re-reading after a restart adds nothing twice), and on start recovers jobs a killed server
left `running`: resumed from their last complete checkpoint, or failed with `server_restart`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import planned_steps
from tunelab.studio.behaviour import rate_events, rates_at
from tunelab.studio.db import Database, new_id
from tunelab.studio.jobs import QUEUE_ORDER
from tunelab.train.checkpoint import last_complete_checkpoint

log = logging.getLogger(__name__)
POLL = 0.5  # seconds between looks at the queue and the running job


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def is_our_process(pid: int, folder: Path) -> bool:
    """A pid left by a killed server is ours only if its command line names our folder."""
    try:
        return str(folder) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def start_in_own_session(cmd: list[str], folder: Path, log_name: str) -> subprocess.Popen:
    """Start `cmd` in `folder`, its output appended to `folder/log_name`. start_new_session: it and
    every process it starts form one group, so cancel (killpg) stops all of them, and a Ctrl-C meant
    for the server does not reach them."""
    with (folder / log_name).open("ab") as logfile:
        return subprocess.Popen(
            cmd, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=folder
        )


def kill_group(pgid: int, proc: subprocess.Popen | None = None, grace: float = 5.0) -> None:
    """SIGTERM the whole group, SIGKILL what is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
            if sig == signal.SIGTERM:
                os.killpg(pgid, signal.SIGCONT)  # a stopped process only acts on TERM once continued
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None and not group_alive(pgid):
                return
            if proc is None and not group_alive(pgid):
                return
            time.sleep(0.1)


def total_steps(config: Any, run_dir: Path) -> int | None:
    """Optimizer steps the Trainer will take, as it computes them (once the data report exists)."""
    if config.train.max_steps:
        return config.train.max_steps
    report = run_dir / rundir.DATA_REPORT
    if not report.exists():
        return None
    data = rundir.read_json(report)
    # sft: {"train": {"examples"}}; bake: {"examples"}; kto/dpo: {"rows"} (their data reports differ)
    examples = (
        data["train"].get("examples", 0)
        if isinstance(data.get("train"), dict)
        else data.get("examples", data.get("rows", 0))
    )
    return planned_steps(config, examples)


def _wrong_kind(job: dict[str, Any], file: dict[str, Any]) -> str | None:
    """Why a validated file does not fit the job's recipe (DPO takes preference pairs, bake a
    feedback log, SFT chats)."""
    import yaml

    from tunelab.data.openai_preference import FORMAT as PAIRS
    from tunelab.studio.files import LOG, PROMPT

    fmt = (file["report"] or {}).get("format")
    recipe = (yaml.safe_load(job["config"] or "{}") or {}).get("train", {}).get("recipe", "sft")
    wanted = {"dpo": (PAIRS, LOG), "bake": (LOG,), "kto": (LOG,)}.get(recipe, ("openai", "sharegpt", "alpaca"))
    if fmt in wanted:
        return None
    hint = {
        PAIRS: "create the job with method {type: 'dpo'}",
        LOG: "bake it with tunelab.prompt_file (recipe bake)",
        PROMPT: "give it as tunelab.prompt_file",
    }.get(fmt, "")
    needs = {
        "dpo": "OpenAI preference rows {input, preferred_output, non_preferred_output} or a feedback log",
        "bake": "a feedback log (question, answer, label)",
        "kto": "a feedback log (question, answer, label)",
    }.get(recipe, "chat rows {messages}")
    return f"holds {fmt} data; recipe {recipe} (method {job['method']['type']}) needs {needs}" + (
        f": {hint}" if hint else ""
    )


def failure_message(log_path: Path, what: str = "tunelab train") -> str:
    """What a failed `tunelab train` tells the user: its own `error:` line, or the message of one
    of tunelab's errors; an internal exception (AttributeError, ...) is named only as internal,
    with where the traceback is, so no Python exception text reaches the client."""
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
        head, _, message = line.partition(": ")
        if message and head.startswith("tunelab.") and head.rsplit(".", 1)[-1].endswith("Error"):
            return message
    if any(line.startswith("Traceback") for line in lines):
        return f"{what} stopped on an internal error; the traceback is in its {log_path.name} on the server"
    return f"{what} exited without saying why" + (f" (its last line: {lines[-1][:200]})" if lines else "")


class ProcessQueue:
    """A queue of work run one item at a time, each in its own process group, by a background
    thread that polls the database: the jobs' Runner and the studio's Evaluations. A subclass says
    how to `recover` after a restart, `_start_next` and `_watch`; `_before_tick` runs first in
    every poll, outside the lock."""

    def __init__(self, db: Database, folder: Path, name: str):
        self.db, self.folder = db, folder
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self.recover()
        self.thread.start()

    def close(self) -> None:
        """Server shutdown (not a kill): stop the running process; its work is taken up again on the next start."""
        self.stop.set()
        if self.thread.ident is not None:  # a studio that never started its queue has no thread
            self.thread.join(timeout=10)
        with self.lock:
            if self.proc is not None:
                kill_group(self.proc.pid, self.proc)

    def recover(self) -> None:
        raise NotImplementedError

    def _before_tick(self) -> None:
        pass

    def _start_next(self) -> None:
        raise NotImplementedError

    def _watch(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self.stop.is_set():
            try:
                self._before_tick()
                with self.lock:
                    if self.proc is not None:
                        self._watch()
                    else:
                        self._start_next()
            except Exception:  # keep the queue alive; the failure is in the log
                log.exception(self.thread.name)
            self.stop.wait(POLL)


class Runner(ProcessQueue):
    """The fine-tuning jobs, one `tunelab train` process at a time."""

    def __init__(self, db: Database, folder: Path):
        super().__init__(db, folder, "studio-runner")
        self.job_id: str | None = None

    def recover(self) -> None:
        for job in self.db.all("SELECT * FROM jobs WHERE status = 'running'"):
            job_dir = Path(job["run_dir"]).parent
            if job["pid"] and group_alive(job["pid"]) and is_our_process(job["pid"], job_dir):
                kill_group(job["pid"])  # an orphan of the killed server: it cannot report to us
            ckpt = last_complete_checkpoint(Path(job["run_dir"]) / rundir.CHECKPOINTS)
            if (Path(job["run_dir"]) / rundir.SUMMARY).exists():
                # The orphan finished while the server was down (summary.json is written last);
                # resuming from its final checkpoint would train past max_steps.
                self.collect(job)
                self._succeeded(job)
            elif ckpt is not None:
                self.db.update("jobs", job["id"], {"status": "queued", "resume": 1, "pid": None})
                self.db.add_event(job["id"], f"Server restarted; the job resumes from {ckpt.name}", level="warn")
            else:
                error = {
                    "code": "server_restart",
                    "param": None,
                    "message": "the server stopped while the job ran, before its first checkpoint; create the job again",
                }
                self.db.update(
                    "jobs",
                    job["id"],
                    {"status": "failed", "error": error, "finished_at": int(time.time()), "pid": None},
                )
                self.db.add_event(job["id"], "Job failed: server restarted before the first checkpoint", level="error")

    def _before_tick(self) -> None:
        self._advance_validation()

    def _advance_validation(self) -> None:
        for job in self.db.all("SELECT * FROM jobs WHERE status = 'validating_files'"):
            files = [
                self.db.one("SELECT * FROM files WHERE id = ?", (f,))
                for f in (job["training_file"], job["validation_file"])
                if f
            ]
            if any(f is None or f["status"] == "uploaded" for f in files):
                continue
            bad = [
                (name, f, f"failed validation:\n{f['status_details']}")
                for name, f in zip(("training_file", "validation_file"), files)
                if f["status"] != "processed"
            ]
            bad += [
                (name, f, problem)
                for name, f in zip(("training_file", "validation_file"), files)
                if (problem := _wrong_kind(job, f))
            ]
            if bad:
                param, f, problem = bad[0]
                error = {
                    "code": f"invalid_{param}",
                    "param": param,
                    "message": f"{f['filename']} ({f['id']}) {problem}",
                }
                if self.db.update(
                    "jobs",
                    job["id"],
                    {"status": "failed", "error": error, "finished_at": int(time.time())},
                    "AND status = 'validating_files'",
                ):
                    self.db.add_event(job["id"], error["message"], level="error")
            elif self.db.update("jobs", job["id"], {"status": "queued"}, "AND status = 'validating_files'"):
                self.db.add_event(job["id"], "Files validated, moving job to queued state")

    def _start_next(self) -> None:
        job = self.db.one(f"SELECT * FROM jobs WHERE status = 'queued' ORDER BY {QUEUE_ORDER} LIMIT 1")
        if job is None:
            return
        job_dir = Path(job["run_dir"]).parent
        train = ["-m", "tunelab.cli", "train", str(job_dir / "config.yaml"), *(["--resume"] if job["resume"] else [])]
        if job["accelerate_config"]:
            launcher = str(Path(sys.executable).parent / "accelerate")
            cmd = [launcher, "launch", "--config_file", job["accelerate_config"], *train]
        else:
            cmd = [sys.executable, *train]
        self.proc = start_in_own_session(cmd, job_dir, "train.log")
        self.job_id = job["id"]
        started = job["started_at"] or int(time.time())
        self.db.update("jobs", job["id"], {"status": "running", "pid": self.proc.pid, "started_at": started})
        self.db.add_event(job["id"], "Fine-tuning job resumed" if job["resume"] else "Fine-tuning job started")

    def _watch(self) -> None:
        assert self.proc is not None and self.job_id is not None
        job = self.db.one("SELECT * FROM jobs WHERE id = ?", (self.job_id,))
        rc = self.proc.poll()
        self.collect(job)
        if rc is None:
            return
        if rc == 0:
            self._succeeded(job)
        elif self.db.update(
            "jobs",
            job["id"],
            {"status": "failed", "finished_at": int(time.time()), "error": self._error(job)},
            "AND status = 'running'",
        ):
            self.db.add_event(job["id"], "Job failed: " + self._error(job)["message"], level="error")
        self.proc, self.job_id = None, None

    def _error(self, job: dict[str, Any]) -> dict[str, Any]:
        log_path = Path(job["run_dir"]).parent / "train.log"
        return {"code": "training_failed", "message": failure_message(log_path), "param": None}

    def _succeeded(self, job: dict[str, Any]) -> None:
        summary_path = Path(job["run_dir"]) / rundir.SUMMARY
        summary = rundir.read_json(summary_path) if summary_path.exists() else {}
        # trained_tokens counts every step, also those before a restart; DPO/KTO runs only have TRL's count since it started.
        tokens = int(summary.get("trained_tokens", summary.get("throughput", {}).get("tokens", 0)))
        if self.db.update(
            "jobs",
            job["id"],
            {
                "status": "succeeded",
                "finished_at": int(time.time()),
                "trained_tokens": tokens,
                "step": summary.get("steps", job["step"]),
            },
            "AND status = 'running'",
        ):
            self.db.add_event(job["id"], f"New fine-tuned model created: {job['fine_tuned_model']}")
            self.db.add_event(job["id"], "The job has successfully completed")

    def collect(self, job: dict[str, Any]) -> None:
        """metrics.jsonl -> metric events, checkpoints/ -> checkpoint rows (both idempotent)."""
        from tunelab.config import load

        run_dir = Path(job["run_dir"])
        total = job["total_steps"] or total_steps(load(Path(run_dir.parent / "config.yaml")), run_dir)
        last: dict[str, float] = {}
        step = job["step"] or 0
        for row in rundir.read_metrics(run_dir, name="loss"):
            key = "train_loss" if row["split"] == "train" else "valid_loss"
            last[key] = row["value"]
            step = max(step, int(row["step"]))
            data = {
                "step": row["step"],
                "total_steps": total,
                "train_loss": last.get("train_loss"),
                "valid_loss": last.get("valid_loss") if key == "valid_loss" else None,
            }
            text = f"Step {row['step']}/{total}: {'training' if key == 'train_loss' else 'validation'} loss={row['value']:.4f}"
            self.db.add_event(job["id"], text, kind="metrics", data=data, key=f"{row['split']}:{row['step']}")
        behaviour = rundir.read_metrics(run_dir, split="val")  # train.behaviour_eval's rates, when the job asked
        for key, text, data in rate_events(behaviour, total):
            self.db.add_event(job["id"], text, kind="metrics", data=data, key=key)
        self.db.update("jobs", job["id"], {"step": step, "total_steps": total})
        for ckpt in sorted((run_dir / rundir.CHECKPOINTS).glob("checkpoint-*")):
            if not (ckpt / "trainer_state.json").exists():
                continue  # still being written
            n = int(ckpt.name.split("-")[-1])
            metrics = {"step": n, "train_loss": None, "valid_loss": None}
            for row in rundir.read_metrics(run_dir, name="loss"):
                if row["step"] <= n:
                    metrics["train_loss" if row["split"] == "train" else "valid_loss"] = row["value"]
            metrics.update(rates_at(behaviour, n))
            if self.db.insert(
                "checkpoints",
                {
                    "id": new_id("ftckpt"),
                    "job_id": job["id"],
                    "created_at": int(time.time()),
                    "step": n,
                    "model": f"{job['fine_tuned_model']}:ckpt-step-{n}",
                    "path": str(ckpt),
                    "metrics": metrics,
                },
                ignore=True,
            ):
                self.db.add_event(job["id"], f"Checkpoint created at step {n}")

    def cancel(self, job_id: str) -> bool:
        """Queued or validating: cancelled at once. Running: the process group is stopped first."""
        if self.db.update(
            "jobs",
            job_id,
            {"status": "cancelled", "finished_at": int(time.time())},
            "AND status IN ('validating_files', 'queued')",
        ):
            self.db.add_event(job_id, "Fine-tuning job cancelled")
            return True
        with self.lock:
            if self.job_id != job_id or self.proc is None:
                return False
            self.db.update(
                "jobs", job_id, {"status": "cancelled", "finished_at": int(time.time())}, "AND status = 'running'"
            )
            kill_group(self.proc.pid, self.proc)
            self.proc.wait()
            self.collect(self.db.one("SELECT * FROM jobs WHERE id = ?", (job_id,)))
            self.proc, self.job_id = None, None
        self.db.add_event(job_id, "Fine-tuning job cancelled")
        return True
