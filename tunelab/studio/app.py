"""Build the studio: state under one folder, the job runner, the model pool and one FastAPI app.

Folder layout: studio.db (SQLite, WAL), files/<file-id>/<name>, jobs/<job-id>/{config.yaml,
train.log, run/} where run/ is an ordinary tunelab run directory, evals/<eval-id>/{request.json,
evaluate.log, side-<i>/ (`tunelab eval`'s predictions.jsonl, scores.json), evaluation.json}.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunelab.models.registry import DEFAULT_MODEL, tunelab_home
from tunelab.serve.app import ServeSettings, create_app
from tunelab.studio import api
from tunelab.studio.db import Database
from tunelab.studio.evaluations import Evaluations
from tunelab.studio.files import FileStore
from tunelab.studio.jobs import Jobs
from tunelab.studio.models import StudioModels
from tunelab.studio.runner import Runner
from tunelab.studio.security import KEY_FILE, SecurityError, allowed_hosts, check_no_auth, stored_key

log = logging.getLogger(__name__)
UPLOAD_SLACK = 64 * 1024  # multipart headers around the file


def default_dir() -> Path:
    return tunelab_home() / "studio"


class Studio:
    def __init__(
        self,
        folder: Path | None = None,
        *,
        api_key: str | None = None,
        no_auth: bool = False,
        host: str = "127.0.0.1",
        allow_hosts: list[str] | tuple[str, ...] = (),
        models_dir: Path | None = None,
        base_models: list[str] | None = None,
        max_upload_mb: int = 512,
        tokenizer_model: str = DEFAULT_MODEL,
    ):
        """No `api_key` and not `no_auth`: the key kept in the state folder (made on first start)."""
        self.folder = Path(folder or default_dir()).resolve()
        if no_auth:
            check_no_auth(host)
        self.api_key = None if no_auth else api_key or stored_key(self.folder)
        (self.folder / "files").mkdir(parents=True, exist_ok=True)
        (self.folder / "jobs").mkdir(parents=True, exist_ok=True)
        self.db = Database(self.folder / "studio.db")
        self.max_upload_bytes = max_upload_mb * 2**20
        self.files = FileStore(self.db, self.folder / "files", tokenizer_model)
        self.models_dir = Path(models_dir).resolve() if models_dir else None
        self.jobs = Jobs(self.db, self.folder / "jobs", base_models or [DEFAULT_MODEL], self.models_dir)
        self.runner = Runner(self.db, self.folder / "jobs")
        # The serving engine's own settings; the studio's middleware checks the key (header or cookie).
        # The body limit is the upload's (the largest body a route takes); chat requests are
        # bounded again by the serving engine's message and token limits.
        settings = ServeSettings(model_name="", api_key=None, max_body_bytes=self.max_upload_bytes + UPLOAD_SLACK)
        self.models = StudioModels(self.db, base_models or [DEFAULT_MODEL], settings, self.jobs.local_models)
        self.evaluations = Evaluations(self.db, self.folder / "evals", self.files, self.jobs, self.models)
        self.app = create_app(None, settings, models=self.models)
        api.add_files(self.app, self)
        api.add_jobs(self.app, self)
        api.add_compare(self.app, self)
        api.add_metrics_csv(self.app, self)
        api.add_evaluations(self.app, self)
        api.add_error_handlers(self.app)
        api.add_ui(self.app)
        api.add_auth(
            self.app, self.api_key, allowed_hosts(host, allow_hosts)
        )  # added last: the outermost middleware, so it runs first
        self._resume_validation()

    def _resume_validation(self) -> None:
        """Files a killed server left half-validated are validated again."""
        for row in self.db.all("SELECT id FROM files WHERE status = 'uploaded' AND deleted = 0"):
            self.files.validate(row["id"])

    def start(self) -> Studio:
        self.runner.start()
        self.evaluations.start()
        return self

    def close(self) -> None:
        self.evaluations.close()
        self.runner.close()
        self.models.close()


def login_url(host: str, port: int, key: str | None) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}/" + (f"login?token={key}" if key else "")


def run(
    folder: Path | None,
    host: str,
    port: int,
    api_key: str | None,
    base_models: list[str],
    max_upload_mb: int,
    *,
    no_auth: bool = False,
    allow_hosts: list[str] | tuple[str, ...] = (),
    models_dir: Path | None = None,
) -> None:
    import uvicorn

    try:
        studio = Studio(
            folder,
            api_key=api_key,
            no_auth=no_auth,
            host=host,
            allow_hosts=allow_hosts,
            models_dir=models_dir,
            base_models=base_models,
            max_upload_mb=max_upload_mb,
        ).start()
    except SecurityError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"tunelab studio: state in {studio.folder}", flush=True)
    if studio.api_key:
        kept = "" if api_key else f" (the key is kept in {studio.folder / KEY_FILE})"
        print(f"  open in a browser: {login_url(host, port, studio.api_key)}{kept}", flush=True)
        print(f"  OpenAI base_url:   http://{host}:{port}/v1 with that key as api_key", flush=True)
    else:
        print(f"  web UI and API (no key, --no-auth): {login_url(host, port, None)}", flush=True)
    try:
        uvicorn.run(studio.app, host=host, port=port, log_level="warning")
    finally:
        studio.close()


def serve_in_thread(studio: Studio) -> Any:
    """For tests and scripts: `with serve_in_thread(studio) as url:` (url ends in /v1)."""
    from tunelab.serve.app import ServerThread

    return ServerThread(studio.app)
