"""Evaluations: a held-out file run through the one behaviour judge for a finished job (its base
beside its `ft:` model) or for one or two models the studio serves.

Each evaluation is a row of the `evaluations` table and a folder evals/<id>/; one runs at a time,
as `python -m tunelab.studio.evaluate evals/<id>` in its own process group (studio/evaluate.py
calls `tunelab eval`'s run_eval). Its state (queued, running with the model it is generating
with, succeeded, failed, cancelled) is on the evaluation object; when it succeeds its
evaluation.json is stored as a file (purpose `fine-tune-results`), which the job object lists
in `result_files`. A server restart queues a running evaluation again; a model it had finished
is not generated twice.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import GENERATION_BATCH
from tunelab.serve.errors import ApiError
from tunelab.studio import evaluate
from tunelab.studio.db import Database, new_id
from tunelab.studio.runner import (
    ProcessQueue,
    failure_message,
    group_alive,
    is_our_process,
    kill_group,
    start_in_own_session,
)

log = logging.getLogger(__name__)
TERMINAL = ("succeeded", "failed", "cancelled")
CHAT_FORMATS = ("openai", "sharegpt", "alpaca")  # what `tunelab eval` reads
RESULTS_PURPOSE = "fine-tune-results"  # OpenAI's purpose for a job's result files


def status_text(row: dict[str, Any], ahead: int | None, state: dict[str, Any] | None) -> str:
    status = row["status"]
    if status == "queued":
        return "queued: next to run" if not ahead else f"queued: {ahead} evaluation{'s' * (ahead > 1)} ahead"
    if status == "running":
        if not state:
            return "running: starting"
        return f"running: generating with {state['model']} ({state['side']} of {state['of']})"
    return status


class Evaluations(ProcessQueue):
    """The evaluations, one `tunelab.studio.evaluate` process at a time."""

    def __init__(self, db: Database, folder: Path, files: Any, jobs: Any, models: Any):
        """`files`, `jobs`, `models`: the studio's FileStore, Jobs and StudioModels."""
        super().__init__(db, folder, "studio-evaluations")
        self.files, self.jobs, self.models = files, jobs, models
        self.eval_id: str | None = None

    # ---- creation and the API's objects ----

    def _held_out(self, file_id: str) -> dict[str, Any]:
        row = self.files.row(file_id)
        if row is None:
            raise ApiError(404, f"file: no file with id '{file_id}'", "file", "file_not_found")
        if row["purpose"] != "fine-tune":
            raise ApiError(400, f"file: {file_id} is a {row['purpose']} file, not data", "file", "invalid_value")
        fmt = (row["report"] or {}).get("format")
        if row["status"] != "processed" or fmt not in CHAT_FORMATS:
            why = {"uploaded": "is still being validated", "error": "failed validation"}.get(
                row["status"], f"holds {fmt} data; evaluation needs chat conversations (OpenAI, ShareGPT, Alpaca)"
            )
            raise ApiError(409, f"file: {row['filename']} ({file_id}) {why}", "file", "file_not_usable")
        return row

    def _sides(self, body: dict[str, Any]) -> tuple[str | None, list[dict[str, str]]]:
        job_id, names = body.get("fine_tuning_job_id"), body.get("models")
        if (job_id is None) == (names is None):
            raise ApiError(
                400,
                "give fine_tuning_job_id (its base beside its fine-tuned model) or models (one or two names), not both",
                "fine_tuning_job_id" if job_id else "models",
                "missing_required_parameter" if job_id is None else "invalid_value",
            )
        if job_id is not None:
            job = self.jobs.row(job_id)
            if job is None:
                raise ApiError(404, f"no fine-tuning job with id '{job_id}'", "fine_tuning_job_id", "job_not_found")
            if job["status"] != "succeeded":
                raise ApiError(
                    409,
                    f"job {job_id} is {job['status']}: only a succeeded job has a model to evaluate",
                    "fine_tuning_job_id",
                    "job_not_succeeded",
                )
            named = [("base", job["model"]), ("tuned", job["fine_tuned_model"])]
        else:
            named = list(zip("AB", names))
        sides = []
        for label, name in named:
            spec = self.models.spec(name)
            if spec is None:
                raise ApiError(
                    404,
                    f"model '{name}' is not served here; GET /v1/models lists the served ones",
                    "models" if job_id is None else "fine_tuning_job_id",
                    "model_not_found",
                )
            sides.append({"label": label, "model": name, "spec": spec})
        return job_id, sides

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        held_out = self._held_out(body["file"])
        job_id, sides = self._sides(body)
        eval_id = new_id("eval")
        folder = self.folder / eval_id
        settings = {
            "max_new_tokens": body.get("max_new_tokens", 128),
            "batch_size": body.get("batch_size", GENERATION_BATCH),
        }
        request = {
            "id": eval_id,
            "fine_tuning_job_id": job_id,
            "file": {"id": held_out["id"], "filename": held_out["filename"]},
            "data": held_out["path"],
            "sides": sides,
            "turns": body.get("turns", "all"),
            "limit": body.get("limit"),
            "settings": settings,
        }
        folder.mkdir(parents=True)
        rundir.write_json(folder / evaluate.REQUEST, request)
        self.db.insert(
            "evaluations",
            {
                "id": eval_id,
                "created_at": int(time.time()),
                "status": "queued",
                "job_id": job_id,
                "file_id": held_out["id"],
                "request": {k: v for k, v in request.items() if k != "data"},  # no server path reaches a client
                "dir": str(folder),
            },
        )
        return self.get(eval_id)  # type: ignore[return-value]

    def row(self, eval_id: str) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM evaluations WHERE id = ?", (eval_id,))

    def _queue(self) -> dict[str, int]:
        rows = self.db.all("SELECT id FROM evaluations WHERE status = 'queued' ORDER BY created_at, rowid")
        return {r["id"]: i for i, r in enumerate(rows)}

    def _object(self, row: dict[str, Any], ahead: int | None) -> dict[str, Any]:
        request = row["request"]
        state_file = Path(row["dir"]) / evaluate.STATE
        state = rundir.read_json(state_file) if row["status"] == "running" and state_file.exists() else None
        return {
            "object": "tunelab.evaluation",
            "id": row["id"],
            "created_at": row["created_at"],
            "status": row["status"],
            "status_text": status_text(row, ahead, state),
            "queue_position": ahead,
            "fine_tuning_job_id": row["job_id"],
            "file": request["file"],
            "models": [{"label": s["label"], "model": s["model"]} for s in request["sides"]],
            "turns": request["turns"],
            "limit": request["limit"],
            "settings": request["settings"],
            "error": row["error"],
            "result_file": row["result_file"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
        }

    def get(self, eval_id: str, *, result: bool = False) -> dict[str, Any] | None:
        row = self.row(eval_id)
        if row is None:
            return None
        out = self._object(row, self._queue().get(eval_id))
        if result and row["status"] == "succeeded":
            out["result"] = rundir.read_json(Path(row["dir"]) / evaluate.RESULT)
        return out

    def list(self, job_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        sql, params = "SELECT * FROM evaluations", ()
        if job_id:
            sql, params = sql + " WHERE job_id = ?", (job_id,)
        rows = self.db.all(sql + " ORDER BY created_at DESC, rowid DESC LIMIT ?", (*params, limit + 1))
        queue = self._queue()
        return {
            "object": "list",
            "data": [self._object(r, queue.get(r["id"])) for r in rows[:limit]],
            "has_more": len(rows) > limit,
        }

    def in_use(self, file_id: str) -> str | None:
        """An unfinished evaluation that reads this held-out file."""
        row = self.db.one(
            "SELECT id FROM evaluations WHERE file_id = ? AND status NOT IN (?, ?, ?)", (file_id, *TERMINAL)
        )
        return row["id"] if row else None

    # ---- the background queue ----

    def recover(self) -> None:
        for row in self.db.all("SELECT * FROM evaluations WHERE status = 'running'"):
            if row["pid"] and group_alive(row["pid"]) and is_our_process(row["pid"], Path(row["dir"])):
                kill_group(row["pid"])  # an orphan of a killed server
            self.db.update("evaluations", row["id"], {"status": "queued", "pid": None})

    def _start_next(self) -> None:
        row = self.db.one("SELECT * FROM evaluations WHERE status = 'queued' ORDER BY created_at, rowid LIMIT 1")
        if row is None:
            return
        folder = Path(row["dir"])
        self.proc = start_in_own_session(
            [sys.executable, "-m", "tunelab.studio.evaluate", str(folder)], folder, evaluate.LOG
        )
        self.eval_id = row["id"]
        self.db.update(
            "evaluations", row["id"], {"status": "running", "pid": self.proc.pid, "started_at": int(time.time())}
        )

    def _watch(self) -> None:
        assert self.proc is not None and self.eval_id is not None
        rc = self.proc.poll()
        if rc is None:
            return
        row = self.row(self.eval_id)
        assert row is not None
        self.proc, self.eval_id = None, None
        result = Path(row["dir"]) / evaluate.RESULT
        if rc == 0 and result.exists():
            name = f"{row['id']}-evaluation.json"
            stored = self.files.add_result(name, RESULTS_PURPOSE, result.read_bytes())
            values = {"status": "succeeded", "result_file": stored["id"]}
        else:
            request = rundir.read_json(Path(row["dir"]) / evaluate.REQUEST)
            # The worker names the stored path; users know the name they uploaded.
            message = failure_message(Path(row["dir"]) / evaluate.LOG, "the evaluation").replace(
                request["data"], request["file"]["filename"]
            )
            values = {"status": "failed", "error": {"code": "evaluation_failed", "message": message, "param": None}}
        self.db.update(
            "evaluations", row["id"], {**values, "finished_at": int(time.time()), "pid": None}, "AND status = 'running'"
        )

    def cancel(self, eval_id: str) -> None:
        if self.db.update(
            "evaluations", eval_id, {"status": "cancelled", "finished_at": int(time.time())}, "AND status = 'queued'"
        ):
            return
        with self.lock:
            if self.eval_id != eval_id or self.proc is None:
                return
            self.db.update(
                "evaluations",
                eval_id,
                {"status": "cancelled", "finished_at": int(time.time()), "pid": None},
                "AND status = 'running'",
            )
            kill_group(self.proc.pid, self.proc)
            self.proc.wait()
            self.proc, self.eval_id = None, None
