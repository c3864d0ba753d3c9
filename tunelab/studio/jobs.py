"""Fine-tuning jobs: turn an OpenAI-style request into a frozen tunelab config, and back into
the job object the `openai` client reads.

The config is resolved once, at creation (every default filled in by tunelab/config.py, the
batch size, learning rate and checkpoint metric that `auto` means decided as for `tunelab train`),
written to jobs/<id>/config.yaml read-only and kept in the database; the runner trains exactly that.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from tunelab.config import Config, ConfigError, dump, load
from tunelab.serve.errors import ApiError
from tunelab.studio.behaviour import behaviour_section
from tunelab.studio.db import Database, new_id

TERMINAL = ("succeeded", "failed", "cancelled")
QUEUE_ORDER = "resume DESC, created_at, rowid"  # resumed jobs first, then first come first served
EXAMPLES = Path(__file__).parents[2] / "examples" / "accelerate"  # the repository's shipped configs


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def _hyperparameters(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The hyperparameters and method type, from `method` (new API) or `hyperparameters` (old)."""
    method = body.get("method") or {"type": "supervised"}
    if not isinstance(method, dict):
        raise ApiError(
            400, "method must be an object {type, supervised|dpo: {hyperparameters}}", "method", "invalid_value"
        )
    kind = method.get("type", "supervised")
    if kind not in ("supervised", "dpo"):
        raise ApiError(
            400, f"method.type {kind!r} is not supported; use supervised or dpo", "method.type", "invalid_value"
        )
    hp = dict(body.get("hyperparameters") or {})
    hp.update((method.get(kind) or {}).get("hyperparameters") or {})
    return hp, kind


def _train_section(hp: dict[str, Any]) -> dict[str, Any]:
    """n_epochs and batch_size as train keys; "auto" leaves the config's own (whose default is `auto`)."""
    train: dict[str, Any] = {}
    for name, key in (("n_epochs", "epochs"), ("batch_size", "batch_size")):
        value = hp.get(name, "auto")
        if value != "auto":
            train[key] = value
    return train


def _learning_rate_multiplier(hp: dict[str, Any]) -> float | None:
    mult = hp.get("learning_rate_multiplier", "auto")
    if mult == "auto":
        return None
    if isinstance(mult, bool) or not isinstance(mult, (int, float)) or mult <= 0:
        raise ApiError(
            400,
            "hyperparameters.learning_rate_multiplier must be a positive number or 'auto'",
            "hyperparameters.learning_rate_multiplier",
            "invalid_value",
        )
    return float(mult)


def resolved_config(raw: dict[str, Any], multiplier: float | None) -> Config:
    """The job's config as `tunelab train` resolves it: batch size, learning rate and checkpoint
    metric left at `auto` decided by the same rule; a learning_rate_multiplier m sets m x the auto
    learning rate of the job's recipe and adapter. Precision and compile stay `auto`: the run
    measures the CPU it trains on."""
    from tunelab.train.precision import auto_learning_rate, resolve_hyperparameters

    config = load(None, (), data=raw)
    if multiplier is not None:
        config.train.learning_rate = multiplier * auto_learning_rate(config)[0]
    return resolve_hyperparameters(config)


def echoed_hyperparameters(config: Config, kind: str) -> dict[str, Any]:
    """The job object's hyperparameters: the numbers the run trains with (OpenAI's names)."""
    from tunelab.train.precision import auto_learning_rate

    return {
        "n_epochs": config.train.epochs,
        "batch_size": config.train.batch_size,
        "learning_rate_multiplier": round(config.train.learning_rate / auto_learning_rate(config)[0], 9),
        **({"beta": config.preference.beta} if kind == "dpo" else {}),
    }


def _method_sections(raw: dict[str, Any], kind: str, hp: dict[str, Any]) -> None:
    """method dpo -> tunelab's recipe dpo (tunelab/train/recipes/preference.py, TRL's DPOTrainer, LoRA),
    with `beta` as preference.beta; a pasted config may not ask for another recipe."""
    recipe = raw["train"].get("recipe")
    if kind == "supervised":
        if recipe == "dpo":
            raise ApiError(
                400,
                "tunelab.config asks for recipe dpo: create the job with method {type: 'dpo'}",
                "method.type",
                "invalid_value",
            )
        return
    if recipe not in (None, "dpo"):
        raise ApiError(
            400,
            f"method dpo trains recipe dpo; tunelab.config asks for recipe {recipe}",
            "tunelab.config",
            "invalid_value",
        )
    raw["train"]["recipe"] = "dpo"
    beta = hp.get("beta", "auto")
    if beta != "auto":
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or beta <= 0:
            raise ApiError(
                400,
                "method.dpo.hyperparameters.beta must be a positive number or 'auto'",
                "method.dpo.hyperparameters.beta",
                "invalid_value",
            )
        raw.setdefault("preference", {})["beta"] = beta


def shipped_accelerate_configs() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXAMPLES.glob("*.yaml"))}


def _bad(param: str, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param, code)


class Jobs:
    def __init__(
        self, db: Database, folder: Path, base_models: list[str] | None = None, models_dir: Path | None = None
    ):
        self.db, self.folder = db, folder
        self.base_models, self.models_dir = list(base_models or []), models_dir

    def local_models(self) -> dict[str, str]:
        """Model directories in the models folder (a config.json one or two levels down), by name."""
        if self.models_dir is None or not self.models_dir.is_dir():
            return {}
        found = [*self.models_dir.glob("*/config.json"), *self.models_dir.glob("*/*/config.json")]
        return {c.parent.relative_to(self.models_dir).as_posix(): str(c.parent) for c in sorted(found)}

    def model_spec(self, model: str, param: str = "model") -> tuple[str, str]:
        """(what training loads, the base name for ft: names). A client names a model, never a
        server path: a base model of this studio (--base-model), a registry name, a directory
        of the models folder (--models-dir) or a finished ft: model of this studio."""
        from tunelab.models.registry import REGISTRY

        if model.startswith("ft:"):
            job = self.db.one("SELECT * FROM jobs WHERE fine_tuned_model = ? AND status = 'succeeded'", (model,))
            merged = Path(job["run_dir"]) / "merged" if job else None
            if merged is None or not (merged / "config.json").exists():
                raise _bad(
                    param,
                    f"{param} '{model}' is not a finished fine-tuned model of this studio (with merged weights)",
                    "model_not_available",
                )
            return str(merged), model.split(":")[1]
        if model in self.base_models:  # the operator's choice, a path or a name
            path = Path(model)
            return model, path.name if path.is_dir() else model
        if model in REGISTRY:
            return model, model
        local = self.local_models()
        if model in local:
            return local[model], Path(model).name
        where = f", a directory of the models folder ({', '.join(local) or 'empty'})" if self.models_dir else ""
        raise _bad(
            param,
            f"{param} '{model}' is not a model of this studio: use a base model ({', '.join(self.base_models)}), "
            f"a registry name ({', '.join(REGISTRY)}){where} or a finished ft: model; server paths are not "
            "accepted from clients (start the studio with --models-dir to offer local model directories)",
            "model_not_available",
        )

    def accelerate_config(self, name: Any) -> str | None:
        """The YAML text of a shipped accelerate config (by name) or of one uploaded through the
        API (by file id); the job keeps its own copy, so deleting the upload changes nothing."""
        param = "tunelab.accelerate_config"
        if name is None or name == "":
            return None
        shipped = shipped_accelerate_configs()
        if not isinstance(name, str) or not (name in shipped or name.startswith("file-")):
            raise _bad(
                param,
                f"{param} must be a shipped config ({', '.join(shipped)}) or the id of an uploaded accelerate "
                f"config file (file-...); got {name!r} (server paths are not accepted from clients)",
            )
        if name in shipped:
            return shipped[name].read_text(encoding="utf-8")
        row = self._file(name, param)
        assert row is not None
        text = Path(row["path"]).read_text(encoding="utf-8", errors="replace")
        what = f"{param}: {row['filename']} ({name})"
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise _bad(param, f"{what} is not YAML: {exc}") from None
        if not isinstance(parsed, dict) or "distributed_type" not in parsed:
            raise _bad(
                param,
                f"{what} is not an accelerate config (a YAML mapping with distributed_type, as `accelerate config` writes)",
            )
        return text

    def _file(self, file_id: str | None, param: str) -> dict[str, Any] | None:
        if file_id is None:
            return None
        row = self.db.one("SELECT * FROM files WHERE id = ? AND deleted = 0", (file_id,))
        if row is None:
            raise ApiError(404, f"{param}: file '{file_id}' does not exist", param, "file_not_found")
        return row

    def _stored(self, file_id: str, param: str, kind: str) -> str:
        """The stored path of an uploaded file the config names (a prompt file, a question list),
        once it validated as `kind`; these are read when the job starts, not at creation."""
        row = self._file(file_id, param)
        deadline = time.monotonic() + 30  # validating a YAML or a question list takes milliseconds
        while row and row["status"] == "uploaded" and time.monotonic() < deadline:
            time.sleep(0.1)
            row = self._file(file_id, param)
        if row is None or row["status"] != "processed" or (row["report"] or {}).get("format") != kind:
            details = (
                row["status_details"] if row and row["status"] == "error" else f"it is not a processed {kind} file"
            )
            raise ApiError(400, f"{param}: {file_id} cannot be used: {details}", param, "invalid_value")
        return row["path"]

    def _bake_section(self, raw: dict[str, Any], ext: dict[str, Any]) -> None:
        """The tunelab extension for recipe bake: `tunelab.prompt_file` (an uploaded prompt YAML)
        sets recipe bake with that prompt; file ids in bake.system_prompt_file / bake.questions_file
        of a pasted config are resolved to the uploaded files too."""
        from tunelab.studio.files import LOG, PROMPT

        bake = raw.get("bake") or {}
        if not isinstance(bake, dict):
            return  # config validation names the bad section
        raw["bake"] = bake
        if ext.get("prompt_file") is not None:
            if raw["train"].get("recipe") not in (None, "bake"):
                raise ApiError(
                    400,
                    f"tunelab.prompt_file bakes a prompt (recipe bake); tunelab.config asks for recipe {raw['train']['recipe']}",
                    "tunelab.prompt_file",
                    "invalid_value",
                )
            raw["train"]["recipe"] = "bake"
            bake["system_prompt_file"] = ext["prompt_file"]
        for key, kind in (("system_prompt_file", PROMPT), ("questions_file", LOG)):
            param = (
                "tunelab.prompt_file"
                if ext.get("prompt_file") and key == "system_prompt_file"
                else f"tunelab.config.bake.{key}"
            )
            if bake.get(key) is None:
                continue
            if not isinstance(bake[key], str) or not bake[key].startswith("file-"):
                raise _bad(param, f"{param} must be the id of an uploaded file (file-...), not {bake[key]!r}")
            bake[key] = self._stored(bake[key], param, kind)
        teacher = bake.get("teacher")
        if isinstance(teacher, str):
            bake["teacher"] = self.model_spec(teacher, "tunelab.config.bake.teacher")[0]
        elif isinstance(teacher, dict) and teacher.get("api_key_env"):
            raise _bad(
                "tunelab.config.bake.teacher.api_key_env",
                "tunelab.config.bake.teacher.api_key_env names a variable of the server's environment, which a "
                "client may not send to an endpoint; run such a bake with `tunelab train` instead",
            )

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body.get("model"), str) or not isinstance(body.get("training_file"), str):
            raise ApiError(
                400,
                "model and training_file are required",
                "model" if "model" not in body else "training_file",
                "missing_required_parameter",
            )
        spec, base = self.model_spec(body["model"])
        train_file = self._file(body["training_file"], "training_file")
        val_file = self._file(body.get("validation_file"), "validation_file")
        hp, kind = _hyperparameters(body)
        multiplier = _learning_rate_multiplier(hp)
        # the tunelab extension: a config (dict or YAML text), an accelerate config, a prompt file, behaviour_eval
        ext = body.get("tunelab") or {}
        if not isinstance(ext, dict):
            raise ApiError(
                400,
                "tunelab must be an object {config, accelerate_config, prompt_file, behaviour_eval, best_metric}",
                "tunelab",
                "invalid_value",
            )
        pasted = ext.get("config") or {}
        if isinstance(pasted, str):
            try:
                pasted = yaml.safe_load(pasted) or {}
            except yaml.YAMLError as exc:
                raise _bad("tunelab.config", f"tunelab.config is not valid YAML: {exc}") from None
        if not isinstance(pasted, dict):
            raise ApiError(
                400, "tunelab.config must be a mapping of config sections", "tunelab.config", "invalid_value"
            )
        for section in ("model", "train", "data"):  # the studio writes into these; config validation names the rest
            if not isinstance(pasted.get(section, {}), dict):
                raise _bad(f"tunelab.config.{section}", f"tunelab.config.{section} must be a mapping of settings")
        job_id = new_id("ftjob")
        job_dir = self.folder / job_id
        raw = _merge({"model": {"name": spec}, "train": {}}, pasted)
        raw["model"]["name"] = spec
        raw["data"] = {
            **raw.get("data", {}),
            "train": train_file["path"],
            "val": val_file["path"] if val_file else None,
        }
        raw["train"] = {**raw["train"], **_train_section(hp)}
        _method_sections(raw, kind, hp)
        self._bake_section(raw, ext)
        if raw["train"].get("recipe") == "bake" and val_file:  # bake.py never reads data.val
            raise ApiError(
                400,
                "recipe bake holds out data.val_fraction of the log's questions itself; leave validation_file out",
                "validation_file",
                "invalid_value",
            )
        behaviour_section(raw, ext, val_file, train_file)
        if body.get("seed") is not None:
            raw["train"]["seed"] = body["seed"]
        # merged/ lets a finished model be the base of a later job and load fast for serving.
        raw["output"] = {"dir": str(job_dir / "run"), "merge": True}
        try:
            config = resolved_config(raw, multiplier)
        except ConfigError as exc:
            raise ApiError(400, str(exc), "tunelab.config", "invalid_config") from None
        if kind == "dpo" and config.model.adapter != "lora":
            raise ApiError(
                400,
                f"method dpo trains a LoRA adapter; model.adapter {config.model.adapter!r} is not supported for it",
                "tunelab.config",
                "invalid_value",
            )
        accelerate = self.accelerate_config(ext.get("accelerate_config"))
        snapshot = dump(config)
        job_dir.mkdir(parents=True)
        if accelerate is not None:
            (job_dir / "accelerate.yaml").write_text(accelerate, encoding="utf-8")
        (job_dir / "config.yaml").write_text(snapshot, encoding="utf-8")
        (job_dir / "config.yaml").chmod(0o444)  # frozen: the job trains exactly this
        suffix = body.get("suffix") or ""
        self.db.insert(
            "jobs",
            {
                "id": job_id,
                "created_at": int(time.time()),
                "status": "validating_files",
                "model": body["model"],
                "training_file": train_file["id"],
                "validation_file": val_file["id"] if val_file else None,
                "suffix": suffix or None,
                "seed": config.train.seed,
                "metadata": body.get("metadata"),
                "hyperparameters": echoed_hyperparameters(config, kind),
                "method": {"type": kind},
                "config": snapshot,
                "run_dir": config.output.dir,
                "fine_tuned_model": f"ft:{base}:tunelab:{suffix}:{job_id[-8:]}",
                # the job's own copy: what the runner launches with, whatever happens to the upload
                "accelerate_config": str(job_dir / "accelerate.yaml") if accelerate is not None else None,
            },
        )
        self.db.add_event(job_id, f"Created fine-tuning job: {job_id}")
        self.db.add_event(
            job_id,
            f"Validating training file: {train_file['id']}"
            + (f" and validation file: {val_file['id']}" if val_file else ""),
        )
        return self.get(job_id)  # type: ignore[return-value]

    def row(self, job_id: str) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def queue(self) -> dict[str, int]:
        """Queued jobs by id -> how many run before them (the runner's order)."""
        rows = self.db.all(f"SELECT id FROM jobs WHERE status = 'queued' ORDER BY {QUEUE_ORDER}")
        return {r["id"]: i for i, r in enumerate(rows)}

    def result_files(self) -> dict[str, list[str]]:
        """Job id -> the ids of its result files (its evaluations' results that were not deleted)."""
        rows = self.db.all(
            "SELECT e.job_id, e.result_file FROM evaluations e JOIN files f ON f.id = e.result_file "
            "WHERE e.job_id IS NOT NULL AND f.deleted = 0 ORDER BY e.created_at, e.rowid"
        )
        out: dict[str, list[str]] = {}
        for r in rows:
            out.setdefault(r["job_id"], []).append(r["result_file"])
        return out

    def get(self, job_id: str) -> dict[str, Any] | None:
        row = self.row(job_id)
        return job_object(row, self.queue().get(job_id), self.result_files().get(job_id, [])) if row else None

    def list(self, after: str | None, limit: int, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        sql, params = "SELECT * FROM jobs", []
        if after:
            anchor = self.row(after)
            if anchor:
                sql += " WHERE (created_at, rowid) < (?, (SELECT rowid FROM jobs WHERE id = ?))"
                params += [anchor["created_at"], after]
        rows = self.db.all(sql + " ORDER BY created_at DESC, rowid DESC", tuple(params))
        if metadata:
            rows = [r for r in rows if all((r["metadata"] or {}).get(k) == v for k, v in metadata.items())]
        queue, results = self.queue(), self.result_files()
        page = [job_object(r, queue.get(r["id"]), results.get(r["id"], [])) for r in rows[:limit]]
        return {"object": "list", "data": page, "has_more": len(rows) > limit}


def estimated_finish(row: dict[str, Any]) -> int | None:
    if row["status"] != "running" or not row["started_at"] or not row["step"] or not row["total_steps"]:
        return None
    elapsed = time.time() - row["started_at"]
    return int(time.time() + elapsed / row["step"] * max(0, row["total_steps"] - row["step"]))


def status_text(row: dict[str, Any], ahead: int | None = None) -> str:
    """The one line every view shows for a job's state (the jobs table and the job's panel alike)."""
    status, step, total = row["status"], row["step"], row["total_steps"]
    of = f" of {total}" if total else ""
    if status == "validating_files":
        return "validating files"
    if status == "queued":
        return "queued: next to run" if not ahead else f"queued: {ahead} job{'s' * (ahead > 1)} ahead"
    if status == "running":
        return f"running: step {step}{of}" if step else "running: loading data and model"
    if status == "succeeded":
        return f"succeeded after {step} steps" if step else "succeeded"
    if status == "cancelled":
        return f"cancelled at step {step}{of}" if step else "cancelled"
    return f"failed at step {step}{of}" if step else "failed"


def job_object(row: dict[str, Any], ahead: int | None = None, result_files: list[str] | None = None) -> dict[str, Any]:
    """`ahead`: for a queued job, how many queued jobs run before it; `result_files`: the file ids
    of its evaluations' results (GET /v1/files/{id}/content)."""
    done = row["status"] == "succeeded"
    return {
        "object": "fine_tuning.job",
        "id": row["id"],
        "created_at": row["created_at"],
        "error": row["error"],
        "fine_tuned_model": row["fine_tuned_model"] if done else None,
        "finished_at": row["finished_at"],
        "hyperparameters": row["hyperparameters"],
        "model": row["model"],
        "organization_id": "tunelab",
        "result_files": result_files or [],
        "seed": row["seed"],
        "status": row["status"],
        "trained_tokens": row["trained_tokens"],
        "training_file": row["training_file"],
        "validation_file": row["validation_file"],
        "estimated_finish": estimated_finish(row),
        "integrations": None,
        "metadata": row["metadata"],
        "method": {"type": row["method"]["type"], row["method"]["type"]: {"hyperparameters": row["hyperparameters"]}},
        "user_provided_suffix": row["suffix"],
        # tunelab's extension: where the run lives, how far it is, the frozen config.
        "tunelab": {
            "run_dir": row["run_dir"],
            "step": row["step"],
            "total_steps": row["total_steps"],
            "pid": row["pid"],
            "config": row["config"],
            "accelerate_config": row["accelerate_config"],
            "planned_model": row["fine_tuned_model"],
            "status_text": status_text(row, ahead),
            "queue_position": ahead,
        },
    }
