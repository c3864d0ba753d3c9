"""recipes kto and dpo: preference training with LoRA on TRL's KTOTrainer / DPOTrainer.

data.train is one of:
- a feedback log (CSV/JSONL/Parquet, read with the `logs` section and its hygiene; KTO uses every
  labelled answer, DPO the good/bad pairs of the same user turn);
- a judgement set, JSONL rows {context: [messages], completion: message, label: bool} as
  `tunelab data import taskmaster --reward-out` writes (KTO uses every row, DPO every good/bad
  pair that shares a context); tool calls and tool results are rendered for the chat template
  exactly as SFT renders them, so preference tuning sees the same text as SFT;
- OpenAI's preference JSONL, rows {input: {messages}, preferred_output, non_preferred_output}
  (tunelab/data/openai_preference.py), for DPO: what the studio's `method: dpo` jobs train on;
- a JSONL file already in TRL's conversational form: rows {prompt, completion, label} for KTO or
  {prompt, chosen, rejected} for DPO.
data.val, when set, is any of these too: its loss (TRL's eval_loss) is logged every
train.eval_steps as the validation loss. The reference model is the base itself with the adapter
switched off (TRL does this for peft models), so no second copy is held in memory.

Same run-directory contract as SFT: config.yaml, data_report.json, metrics.jsonl, checkpoints/,
adapter/, summary.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from tunelab import rundir
from tunelab.config import Config
from tunelab.data.log_sets import dpo_pairs, kto_rows
from tunelab.data.openai_preference import is_preference_row
from tunelab.models import adapters
from tunelab.models.load import load_base, load_tokenizer
from tunelab.models.registry import resolve
from tunelab.train.precision import resolve_hyperparameters
from tunelab.train.session import Session
from tunelab.train.trainer import schedule_arguments

log = logging.getLogger(__name__)
KTO_KEYS = {"prompt", "completion", "label"}
DPO_KEYS = {"prompt", "chosen", "rejected"}
JUDGEMENT_KEYS = {"context", "completion", "label"}


def _first_row(path: Path) -> dict[str, Any] | None:
    if path.suffix.lower() not in (".jsonl", ".json"):
        return None
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return row if isinstance(row, dict) else None
    return None


def _fitter(tokenizer: Any, max_length: int | None) -> Any:
    """fit(context, replies): the messages as the chat template takes them, with whole oldest
    exchanges of the context dropped until context + every reply fits in max_length; None when
    even the last exchange alone does not fit.

    TRL cuts over-long sequences from the right, which would cut the judged reply itself; so, as
    in SFT, the context is shortened from the left instead, and a row that cannot fit is dropped."""
    from tunelab.data.tokenize import drop_oldest_exchange, template_info, to_template_messages

    info = template_info(tokenizer)

    def length(messages: tuple, reply: tuple) -> int:
        return len(
            tokenizer.apply_chat_template(
                to_template_messages(messages + tuple(reply), info), tokenize=True, return_dict=False
            )
        )

    def fit(context: tuple, replies: list[tuple]) -> tuple[list, list[list]] | None:
        while max_length is not None and max(length(context, r) for r in replies) > max_length:
            shorter, _ = drop_oldest_exchange(context)
            if len(shorter) == len(context):
                return None
            context = shorter
        return to_template_messages(context, info), [to_template_messages(r, info) for r in replies]

    return fit


def judgement_rows(
    rows: list[dict[str, Any]], recipe: str, tokenizer: Any, max_length: int | None, source: str = "judgements"
) -> tuple[list[dict[str, Any]], int]:
    """Judgement rows {context, completion, label} as TRL KTO rows or DPO pairs, rendered the way
    SFT renders the same messages for this tokenizer's chat template, and how many were dropped
    as too long (see _fitter)."""
    from tunelab.data.formats import RowError, parse_openai
    from tunelab.data.taskmaster import preference_pairs

    fit = _fitter(tokenizer, max_length)

    def render(row: dict[str, Any], replies: list[dict[str, Any]], where: str) -> tuple[list, list[list]] | None:
        try:
            context = tuple(parse_openai({"messages": row["context"]}))
            parsed = [tuple(parse_openai({"messages": [r]})) for r in replies]
        except RowError as err:
            raise ValueError(f"{where}: {err.field}: {err.reason}") from None
        return fit(context, parsed)

    out, dropped = [], 0
    if recipe == "kto":
        for i, r in enumerate(rows, 1):
            done = render(r, [r["completion"]], f"{source}:{i}")
            if done is None:
                dropped += 1
                continue
            out.append({"prompt": done[0], "completion": done[1][0], "label": bool(r["label"])})
        return out, dropped
    line = {id(r): i for i, r in enumerate(rows, 1)}
    for good, bad in preference_pairs(rows):
        done = render(
            good,
            [good["completion"], bad["completion"]],
            f"{source}:{line[id(good)]} (good) / {source}:{line[id(bad)]} (bad)",
        )
        if done is None:
            dropped += 1
            continue
        out.append({"prompt": done[0], "chosen": done[1][0], "rejected": done[1][1]})
    return out, dropped


def openai_preference_rows(
    path: Path, recipe: str, tokenizer: Any, max_length: int | None, out_dir: Path
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """OpenAI preference JSONL (what DPO fine-tuning jobs take) as TRL DPO pairs; bad rows are
    written to out_dir/rejected/ and counted, as SFT does with bad chat rows."""
    from tunelab.data.openai_preference import read_pairs
    from tunelab.data.prepare import write_rejected

    if recipe != "dpo":
        raise ValueError(
            f"{path}: OpenAI preference rows (input, preferred_output, non_preferred_output) are pairs for recipe dpo, not {recipe}"
        )
    read = read_pairs(path)
    rejected_file = write_rejected(read, out_dir / "rejected")  # type: ignore[arg-type]
    for r in read.rejected[:5]:
        log.warning("rejected %s", r.message())
    fit = _fitter(tokenizer, max_length)
    rows, dropped = [], 0
    for pair in read.pairs:
        done = fit(pair.context, [pair.chosen, pair.rejected])
        if done is None:
            dropped += 1
            continue
        rows.append({"prompt": done[0], "chosen": done[1][0], "rejected": done[1][1]})
    return rows, {
        "file": str(path),
        "format": read.fmt,
        "read": read.n_read,
        "kept": len(read.pairs),
        "rejected": len(read.rejected),
        "rejected_file": str(rejected_file) if rejected_file else None,
        "dropped_too_long": dropped,
        "rows": len(rows),
    }


def load_rows(config: Config, run_dir: Path, tokenizer: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The training rows for the recipe, and a data report."""
    path = Path(config.data.train)
    recipe = config.train.recipe
    keys = KTO_KEYS if recipe == "kto" else DPO_KEYS
    first = _first_row(path)
    if first is not None and is_preference_row(first) and tokenizer is not None:
        return openai_preference_rows(path, recipe, tokenizer, config.preference.max_length, run_dir)
    if first is not None and JUDGEMENT_KEYS <= set(first) and tokenizer is not None:
        judged = rundir.read_jsonl(path)
        bad = [i for i, r in enumerate(judged, 1) if not JUDGEMENT_KEYS <= set(r)]
        if bad:
            raise ValueError(f"{path}:{bad[0]}: a judgement row needs the fields {sorted(JUDGEMENT_KEYS)}")
        rows, dropped = judgement_rows(judged, recipe, tokenizer, config.preference.max_length, str(path))
        return rows, {
            "file": str(path),
            "format": "judgements",
            "judgements": len(judged),
            "rows": len(rows),
            "dropped_too_long": dropped,
            "good": sum(bool(r["label"]) for r in judged),
            "bad": sum(not r["label"] for r in judged),
        }
    if first is not None and keys <= set(first):
        rows = [r for r in rundir.read_jsonl(path)]
        bad = [i for i, r in enumerate(rows, 1) if not keys <= set(r)]
        if bad:
            raise ValueError(f"{path}:{bad[0]}: a {recipe} row needs the fields {sorted(keys)}")
        return [{k: r[k] for k in keys} for r in rows], {
            "file": str(path),
            "format": f"trl-{recipe}",
            "rows": len(rows),
        }
    from tunelab.train.recipes.bake import load_records

    records, report = load_records(config, run_dir)
    rows = kto_rows(records, config.logs.template) if recipe == "kto" else dpo_pairs(records, config.logs.template)
    return [{k: r[k] for k in keys} for r in rows], {**report, "rows": len(rows)}


def trl_args(config: Config, run_dir: Path, has_val: bool = False) -> Any:
    """KTOConfig or DPOConfig from the train/preference sections (TRL 1.16's argument names)."""
    from trl import DPOConfig, KTOConfig

    t, p = resolve_hyperparameters(config).train, config.preference  # batch and learning rate: auto decided
    common = dict(
        **schedule_arguments(t, run_dir, has_val),
        bf16=False,
        gradient_checkpointing=False,  # TRL defaults both on; CPU float32 wants neither
        beta=p.beta,
        max_length=p.max_length,
    )
    if config.train.recipe == "kto":
        return KTOConfig(**common, desirable_weight=p.desirable_weight, undesirable_weight=p.undesirable_weight)
    return DPOConfig(**common, loss_type=[p.dpo_loss])


def peft_config(config: Config, model: Any) -> Any:
    if config.model.adapter != "lora":
        raise ValueError(
            f"recipes kto/dpo train a LoRA adapter; model.adapter={config.model.adapter!r} is not supported here"
        )
    return adapters.peft_config(config.model, model)


def train(config: Config, resume: bool = False) -> dict[str, Any]:
    """Run a KTO or DPO job; returns the summary also written to summary.json."""
    from datasets import Dataset
    from trl import DPOTrainer, KTOTrainer

    recipe = config.train.recipe
    if recipe not in ("kto", "dpo"):
        raise ValueError(f"tunelab.train.recipes.preference runs recipes kto and dpo, not {recipe!r}")
    session = Session.start(config, resume)
    run_dir = session.run_dir
    path = resolve(config.model.name)
    tokenizer = load_tokenizer(path)
    rows, report = load_rows(config, run_dir, tokenizer)
    val_rows: list[dict[str, Any]] = []
    if config.data.val:  # read as data.train is, with the same sections
        val_config = config.model_copy(update={"data": config.data.model_copy(update={"train": config.data.val})})
        val_rows, report["val"] = load_rows(val_config, run_dir, tokenizer)
    rundir.write_json(run_dir / rundir.DATA_REPORT, report)
    if recipe == "dpo" and not rows:
        raise RuntimeError(
            f"{config.data.train}: no DPO pair (no user turn / context has both a good and a bad answer)"
        )
    if recipe == "kto" and len({r["label"] for r in rows}) < 2:
        log.warning(
            "KTO data holds only %s examples; KTO learns most from both kinds",
            "good" if rows and rows[0]["label"] else "bad",
        )
    config = session.settle_cadence(len(rows), len(val_rows))
    model = load_base(path, torch.float32)  # TRL wraps it in the LoRA adapter itself
    trainer_cls = KTOTrainer if recipe == "kto" else DPOTrainer
    trainer = trainer_cls(
        model=model,
        args=trl_args(config, run_dir, bool(val_rows)),
        train_dataset=Dataset.from_list(rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        processing_class=tokenizer,
        peft_config=peft_config(config, model),
        callbacks=session.callbacks(),
    )
    session.train(trainer)
    last = {k: v for row in trainer.state.log_history for k, v in row.items() if isinstance(v, (int, float))}
    # TRL logs the tokens it trained on as num_tokens (counted since this process started).
    tokens = int(last.get("num_tokens", 0))
    return session.finish(
        trainer,
        tokenizer,
        {
            "train_rows": len(rows),
            "last_logged": last,
            "throughput": {
                "tokens": tokens,
                "tokens_per_s": tokens / last["train_runtime"] if last.get("train_runtime") else 0.0,
            },
        },
        recipe=recipe,
    )
