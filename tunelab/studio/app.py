"""Build the studio: state under one folder, the job runner, the model pool and one FastAPI app.

Folder layout: studio.db (SQLite, WAL), files/<file-id>/<name>, jobs/<job-id>/{config.yaml,
train.log, run/} where run/ is an ordinary tunelab run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunelab.models.registry import DEFAULT_MODEL, tunelab_home
from tunelab.serve.app import ServeSettings, create_app
from tunelab.serve.auth import warn_if_reachable
from tunelab.studio import api
from tunelab.studio.db import Database
from tunelab.studio.files import FileStore
from tunelab.studio.jobs import Jobs
from tunelab.studio.models import StudioModels
from tunelab.studio.runner import Runner

log = logging.getLogger(__name__)


def default_dir() -> Path:
    return tunelab_home() / "studio"


class Studio:
    def __init__(
        self,
        folder: Path | None = None,
        *,
        api_key: str | None = None,
        base_models: list[str] | None = None,
        max_upload_mb: int = 512,
        tokenizer_model: str = DEFAULT_MODEL,
    ):
        self.folder = Path(folder or default_dir()).resolve()
        (self.folder / "files").mkdir(parents=True, exist_ok=True)
        (self.folder / "jobs").mkdir(parents=True, exist_ok=True)
        self.db = Database(self.folder / "studio.db")
        self.max_upload_bytes = max_upload_mb * 2**20
        self.files = FileStore(self.db, self.folder / "files", tokenizer_model)
        self.jobs = Jobs(self.db, self.folder / "jobs")
        self.runner = Runner(self.db, self.folder / "jobs")
        # The serving engine's own settings; the studio's middleware checks the key (header or cookie).
        settings = ServeSettings(model_name="", api_key=None)
        self.models = StudioModels(self.db, base_models or [DEFAULT_MODEL], settings)
        self.app = create_app(None, settings, models=self.models)
        api.add_files(self.app, self)
        api.add_jobs(self.app, self)
        api.add_compare(self.app, self)
        api.add_ui(self.app)
        api.add_auth(self.app, api_key)  # added last: the outermost middleware, so it runs first
        self._resume_validation()

    def _resume_validation(self) -> None:
        """Files a killed server left half-validated are validated again."""
        for row in self.db.all("SELECT id FROM files WHERE status = 'uploaded' AND deleted = 0"):
            self.files.validate(row["id"])

    def start(self) -> Studio:
        self.runner.start()
        return self

    def close(self) -> None:
        self.runner.close()
        self.models.close()


def run(
    folder: Path | None, host: str, port: int, api_key: str | None, base_models: list[str], max_upload_mb: int
) -> None:
    import uvicorn

    warn_if_reachable(host, "studio", api_key)
    studio = Studio(folder, api_key=api_key, base_models=base_models, max_upload_mb=max_upload_mb).start()
    print(
        f"tunelab studio: state in {studio.folder}\n  web UI and API:  http://{host}:{port}/   (OpenAI base_url http://{host}:{port}/v1)",
        flush=True,
    )
    try:
        uvicorn.run(studio.app, host=host, port=port, log_level="warning")
    finally:
        studio.close()


def serve_in_thread(studio: Studio) -> Any:
    """For tests and scripts: `with serve_in_thread(studio) as url:` (url ends in /v1)."""
    from tunelab.serve.app import ServerThread

    return ServerThread(studio.app)
