"""Behaviour evaluation during a job's training: the request's `tunelab.behaviour_eval` and
`tunelab.best_metric` onto the run config's `train.behaviour_eval` / `train.best_metric`, and the
rates the run logs to metrics.jsonl (split "val", `behaviour_*`) as job events and checkpoint metrics.

The generating and judging is the recipe's own (tunelab/train/behaviour_eval.py); the studio only
asks for it and shows what it logged.
"""

from __future__ import annotations

from typing import Any, get_args

from tunelab.config import BehaviourEvalConfig, DataConfig, TrainConfig
from tunelab.serve.errors import ApiError

PARAM = "tunelab.behaviour_eval"
BEST_METRICS = get_args(TrainConfig.model_fields["best_metric"].annotation)
SETTINGS = tuple(BehaviourEvalConfig.model_fields)  # enabled, contexts, max_new_tokens, batch_size
PREFIX = "behaviour_"


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, param, "invalid_value")


def _asked(ext: dict[str, Any], train: dict[str, Any]) -> None:
    """Merge the request's settings into the (pasted) config's train section."""
    asked = ext.get("behaviour_eval")
    if asked is None:
        return
    if not isinstance(asked, (bool, dict)):
        raise _bad(
            PARAM, f"{PARAM} must be true, false or an object {{contexts, max_new_tokens, batch_size, eval_steps}}"
        )
    settings = {"enabled": asked} if isinstance(asked, bool) else {**asked, "enabled": True}
    unknown = sorted(set(settings) - set(SETTINGS) - {"eval_steps"})
    if unknown:
        raise _bad(f"{PARAM}.{unknown[0]}", f"{PARAM} has no setting {unknown[0]!r}")
    every = settings.pop("eval_steps", None)
    section = train.get("behaviour_eval")
    train["behaviour_eval"] = {**(section if isinstance(section, dict) else {}), **settings}
    if every is not None:
        save = train.get("save_steps", TrainConfig.model_fields["save_steps"].default)  # auto follows it
        if (
            isinstance(every, bool)
            or not isinstance(every, int)
            or every < 1
            or (isinstance(save, int) and save % every)
        ):
            raise _bad(
                f"{PARAM}.eval_steps",
                f"{PARAM}.eval_steps must be a positive whole number that divides train.save_steps ({save}), "
                f"so the best checkpoint can be kept; got {every!r}",
            )
        train["eval_steps"] = every


def behaviour_section(raw: dict[str, Any], ext: dict[str, Any], val_file: Any, train_file: dict[str, Any]) -> None:
    """Set train.behaviour_eval / train.best_metric of the job's raw config from the request, and
    refuse (400 naming the field) what the run would fail on: behaviour evaluation for a recipe
    other than sft, or with no validation data to generate on."""
    train = raw["train"]
    _asked(ext, train)
    best = ext.get("best_metric")
    if best is not None:
        if best not in BEST_METRICS:
            raise _bad(
                "tunelab.best_metric", f"tunelab.best_metric must be one of {', '.join(BEST_METRICS)}; got {best!r}"
            )
        train["best_metric"] = best
    section = train.get("behaviour_eval")
    enabled = isinstance(section, dict) and section.get("enabled") is True
    where = PARAM if ext.get("behaviour_eval") not in (None, False) else "tunelab.config.train.behaviour_eval"
    best = train.get("best_metric", "auto")  # auto: behaviour_correct with behaviour_eval, else loss
    # an unknown name: config validation names it
    if best in BEST_METRICS and best not in ("auto", "loss") and not enabled:
        param = "tunelab.best_metric" if ext.get("best_metric") is not None else "tunelab.config.train.best_metric"
        raise _bad(param, f"{param} {best!r} is measured by behaviour evaluation: ask for it with {PARAM}")
    if not enabled:
        return
    recipe = train.get("recipe") or "sft"
    if recipe != "sft":
        raise _bad(where, f"{where} works with method supervised (recipe sft) only; this job trains recipe {recipe}")
    if val_file is not None:
        return
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    fraction = data.get("val_fraction", DataConfig.model_fields["val_fraction"].default)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        return  # not a number: config validation names data.val_fraction
    if fraction <= 0:
        raise _bad(
            "validation_file", f"{where} generates on validation data: give a validation_file (data.val_fraction is 0)"
        )
    report = train_file.get("report") or {}
    kept = report.get("kept") if train_file.get("status") == "processed" else None
    # The run holds out round(kept * fraction) conversations (data/split.py); none left means nothing to generate on.
    if isinstance(kept, int) and round(kept * fraction) == 0:
        raise _bad(
            "validation_file",
            f"{where} generates on validation data, and {train_file['filename']} ({kept} conversations) leaves none "
            f"held out at data.val_fraction {fraction}: give a validation_file",
        )


def rate_events(rows: list[dict[str, Any]], total: int | None) -> list[tuple[str, str, dict[str, Any]]]:
    """metrics.jsonl's behaviour rows -> (key, message, data) of one job event each. The data has
    OpenAI's metric-event keys (train_loss, valid_loss: None here) and the rate under its metrics.jsonl name."""
    events = []
    for row in rows:
        name = row.get("name", "")
        if row.get("split") != "val" or not name.startswith(PREFIX):
            continue
        text = (
            f"Step {row['step']}/{total}: validation {name.removeprefix(PREFIX).replace('_', ' ')} {row['value']:.1%}"
        )
        data = {"step": row["step"], "total_steps": total, "train_loss": None, "valid_loss": None, name: row["value"]}
        events.append((f"val:{name}:{row['step']}", text, data))
    return events


def rates_at(rows: list[dict[str, Any]], step: int) -> dict[str, float]:
    """The latest behaviour rates logged at or before `step`, as checkpoint metrics (valid_behaviour_*)."""
    out: dict[str, float] = {}
    for row in rows:
        name = row.get("name", "")
        if row.get("split") == "val" and name.startswith(PREFIX) and row["step"] <= step:
            out[f"valid_{name}"] = row["value"]
    return out
