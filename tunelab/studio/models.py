"""Every model the studio serves, by name, through the serving engine: the base models, each
succeeded job's `ft:` model and each of its checkpoints. Engines load on first use and the
least recently used is closed when more than `max_loaded` are in memory."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab.generation.engine import Engine
from tunelab.serve.app import ServeSettings, load_engine
from tunelab.serve.errors import ApiError
from tunelab.studio.db import Database


class StudioModels:
    def __init__(
        self,
        db: Database,
        base_models: list[str],
        settings: ServeSettings,
        local_models: Callable[[], dict[str, str]] = dict,
        max_loaded: int = 3,
    ):
        """`local_models`: the models folder's directories by name (Jobs.local_models)."""
        self.db, self.base_models, self.settings, self.max_loaded = db, base_models, settings, max_loaded
        self.local_models = local_models
        self.engines: OrderedDict[str, Engine] = OrderedDict()
        self.lock = threading.Lock()

    def _specs(self) -> dict[str, str]:
        specs = {name: name for name in self.base_models}
        local = self.local_models()
        specs.update(local)
        for job in self.db.all("SELECT model, run_dir, fine_tuned_model, status FROM jobs ORDER BY created_at"):
            if not job["model"].startswith("ft:"):  # a job's base (checked when the job was created)
                specs.setdefault(job["model"], local.get(job["model"], job["model"]))
            if job["status"] == "succeeded":
                specs[job["fine_tuned_model"]] = job["run_dir"]
        for ckpt in self.db.all("SELECT model, path FROM checkpoints ORDER BY job_id, step"):
            if Path(ckpt["path"]).exists():  # keep_checkpoints may have rotated it away
                specs[ckpt["model"]] = ckpt["path"]
        return specs

    def spec(self, name: str) -> str | None:
        """What `name` loads (a registry name, a model or run directory, a checkpoint), None if unlisted."""
        return self._specs().get(name)

    def names(self) -> list[str]:
        return list(self._specs())

    def get(self, name: str) -> Engine:
        with self.lock:
            if name in self.engines:
                self.engines.move_to_end(name)
                return self.engines[name]
            spec = self._specs().get(name)
            if spec is None:
                raise ApiError(
                    404,
                    f"model '{name}' is not served here; GET /v1/models lists the served ones",
                    "model",
                    "model_not_found",
                )
            engine = load_engine(spec, self.settings)
            self.engines[name] = engine
            while len(self.engines) > self.max_loaded:
                _, old = self.engines.popitem(last=False)
                old.close()
            return engine

    def stats(self) -> dict[str, Any]:
        return {name: engine.stats() for name, engine in self.engines.items()}

    def close(self) -> None:
        with self.lock:
            for engine in self.engines.values():
                engine.close()
            self.engines.clear()
