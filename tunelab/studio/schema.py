"""What the studio's OpenAPI schema says: the request bodies (OpenAI's fine-tuning job and file
upload, with tunelab's extension) and, per route, every error status it can answer, each with
OpenAI's error body (serve/limits.py does the same for `tunelab serve`).

The job body is a pydantic model, so a body the schema forbids gets the 400 that names the field
(serve/app.py's validation handler), and a body the schema allows reaches jobs.py's checks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictStr

from tunelab.config import GENERATION_BATCH
from tunelab.serve.app import _whole_number
from tunelab.serve.limits import ErrorResponse

Auto = Literal["auto"]
# The Field before the validator, so the schema says exclusiveMinimum; 1.0 is an integer to JSON
# Schema (and so to the schema's clients), "1" and true are not.
PositiveInt = Annotated[int, Field(gt=0), BeforeValidator(_whole_number)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1), BeforeValidator(_whole_number)]
Number = Annotated[float, Field(gt=0, strict=True)]  # strict: "0.5" is not a number; 1 is
Upto256 = Annotated[int, Field(gt=0, le=256), BeforeValidator(_whole_number)]
Upto2048 = Annotated[int, Field(gt=0, le=2048), BeforeValidator(_whole_number)]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n_epochs: Auto | PositiveInt | None = None
    batch_size: Auto | PositiveInt | None = None
    learning_rate_multiplier: Auto | Number | None = None


class DpoHyperparameters(Hyperparameters):
    beta: Auto | Number | None = None


class Supervised(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters | None = None


class Dpo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: DpoHyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised", "dpo"] = "supervised"
    supervised: Supervised | None = None
    dpo: Dpo | None = None


class BehaviourEvalOptions(BaseModel):
    """train.behaviour_eval of the run: at every evaluation step, greedy replies to a fixed set of
    validation contexts, judged by the behaviour judge; their rates join the job's metrics."""

    model_config = ConfigDict(extra="forbid")
    contexts: Upto2048 | None = Field(None, description="validation assistant turns generated on (default 16)")
    max_new_tokens: Upto2048 | None = Field(None, description="default 48")
    batch_size: Upto256 | None = Field(None, description=f"generation batch (default {GENERATION_BATCH})")
    eval_steps: PositiveInt | None = Field(
        None,
        description="evaluate every N optimizer steps (train.eval_steps; must divide train.save_steps where that is set; default auto: about 10 a run)",
    )


class TunelabOptions(BaseModel):
    """tunelab's extension: a config (mapping or YAML text; its data and output are the studio's),
    an accelerate config (a shipped name or an uploaded file id), a prompt file id (recipe bake),
    behaviour evaluation during training and the metric that picks the best checkpoint."""

    model_config = ConfigDict(extra="forbid")
    config: dict[str, Any] | StrictStr | None = None
    accelerate_config: StrictStr | None = Field(None, description="ddp_cpu (or another shipped name) or file-...")
    prompt_file: StrictStr | None = Field(None, description="file id of an uploaded prompt YAML: recipe bake")
    behaviour_eval: BehaviourEvalOptions | StrictBool | None = Field(
        None,
        description="method supervised; needs validation_file or a held-out tenth of training_file; "
        "true or {} for the defaults",
    )
    best_metric: Literal["auto", "loss", "behaviour_appropriate", "behaviour_correct"] | None = Field(
        None,
        description="what picks the kept checkpoint: validation loss, or a behaviour rate (needs behaviour_eval); "
        "auto (the default): behaviour_correct with behaviour_eval, else loss",
    )


class JobRequest(BaseModel):
    """OpenAI's POST /v1/fine_tuning/jobs body; `model` is a name, never a server path."""

    model_config = ConfigDict(extra="forbid")
    model: StrictStr = Field(description="a base model, registry name, models-folder name or ft: model")
    training_file: StrictStr
    validation_file: StrictStr | None = None
    suffix: StrictStr | None = Field(None, max_length=64)
    seed: Seed | None = None
    metadata: dict[str, StrictStr] | None = Field(None, max_length=16)
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    integrations: list[dict[str, Any]] | None = Field(None, max_length=0, description="not supported: leave out")
    tunelab: TunelabOptions | None = None


class EvaluationRequest(BaseModel):
    """tunelab's POST /v1/studio/evaluations body: a held-out file and what to run on it, a finished
    job (its base beside its fine-tuned model) or one or two served models; greedy decoding."""

    model_config = ConfigDict(extra="forbid")
    file: StrictStr = Field(description="id of an uploaded chat file (purpose fine-tune) held out from training")
    fine_tuning_job_id: StrictStr | None = Field(None, description="a succeeded job: its base beside its ft: model")
    models: list[StrictStr] | None = Field(None, min_length=1, max_length=2, description="names GET /v1/models lists")
    turns: Literal["all", "last"] = Field("all", description="every assistant turn, or each conversation's last")
    limit: PositiveInt | None = Field(None, description="only the first N contexts")
    max_new_tokens: Upto2048 = 128
    batch_size: Upto256 = GENERATION_BATCH


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "purpose": {"type": "string", "enum": ["fine-tune"]},
                    },
                }
            }
        },
    }
}


def _doc(text: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": text}


BAD = _doc(
    "Invalid request: a parameter of the wrong type or value (named in error.param), or a Host header that is not one of the studio's names."
)
KEY = _doc(
    "Missing or wrong key (Authorization: Bearer KEY, or the browser's login cookie); only when the studio has a key."
)
CROSS_SITE = _doc("A browser request (no Bearer key) sent by a page of another site (Origin/Referer).")
TOO_LARGE = _doc("Request body over the studio's limit (--max-upload-mb).")
READ = {400: BAD, 401: KEY, 413: TOO_LARGE}
WRITE = {**READ, 403: CROSS_SITE}


def found(what: str) -> dict[int, Any]:
    return {404: _doc(f"No {what} with that id.")}


RESPONSES: dict[str, dict[int, Any]] = {
    "upload": {**WRITE, 415: _doc("The body is not multipart/form-data.")},
    "list_files": READ,
    "file": {**READ, **found("file")},
    "file_inspect": {
        **READ,
        **found("file"),
        409: _doc("The file holds no chat examples to show (still validating, failed, or another kind)."),
    },
    "delete_file": {
        **WRITE,
        **found("file"),
        409: _doc("A job that has not finished trains on this file, or an unfinished evaluation reads it."),
    },
    "create_job": {**WRITE, **found("file (training_file, validation_file, tunelab.prompt_file)")},
    "list_jobs": READ,
    "job": {**READ, **found("fine-tuning job")},
    "cancel_job": {**WRITE, **found("fine-tuning job"), 409: _doc("The job has already finished.")},
    "job_metrics": {**READ, **found("fine-tuning job"), 409: _doc("The job has not finished yet.")},
    "compare": {**READ, **found("fine-tuning job (one of ids)")},
    "create_evaluation": {
        **WRITE,
        **found("file, fine-tuning job or served model"),
        409: _doc("The file is not a validated chat file, or the job has not succeeded."),
    },
    "list_evaluations": READ,
    "evaluation": {**READ, **found("evaluation")},
    "cancel_evaluation": {**WRITE, **found("evaluation"), 409: _doc("The evaluation has already finished.")},
}
