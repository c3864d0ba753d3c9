"""The Taskmaster-4 fine-tuning experiment (bench/taskmaster_sft.py) over library code: its training
config, the sizes of its subsets as training sees them, and validation loss of a model on dialogues."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tunelab.config import Config, load
from tunelab.messages import Conversation


def training_config(
    config_file: str | Path,
    paths: dict[str, Path],
    run_dir: Path,
    n_train: int,
    *,
    seed: int,
    n_val: int,
    steps: int | None = None,
    epochs: float | None = None,
    sets: Sequence[str] = (),
) -> Config:
    """`config_file` with this run's data, output, seed, length of training and the `sets` overrides
    (key=value). Precision and compile stay as the file says (`auto`: the run measures this CPU)."""
    overrides = [
        f"data.train={paths['train']}",
        f"output.dir={run_dir}",
        f"train.seed={seed}",
        f"data.seed={seed}",
    ]  # threads: torch's default (all cores); set train.threads=N to change
    overrides.append(f"data.val={paths['val']}" if n_val else "data.val=null")  # never the example file's val set
    from tunelab.train.precision import resolve_hyperparameters

    base = resolve_hyperparameters(load(config_file))  # batch size auto: what the run will use
    per_epoch = -(-n_train // (base.train.batch_size * base.train.grad_accum))
    total = steps or max(1, round(per_epoch * (epochs or base.train.epochs)))
    overrides.append(f"train.max_steps={total}" if steps else f"train.epochs={epochs or base.train.epochs}")
    # How often to evaluate and checkpoint: the file's setting, `auto` by default (the run decides).
    return load(config_file, [*overrides, *sets])


def subset_stats(convs: Sequence[Conversation], tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Dialogues, assistant turns (text / tool call) and tokens as training would see them."""
    from tunelab.data.prepare import tokenize_all

    turns = [m for c in convs for m in c.messages if m.is_target]
    tokenized = tokenize_all(tokenizer, list(convs), max_length)
    return {
        "dialogues": len(convs),
        "assistant_turns": len(turns),
        "tool_call_turns": sum(1 for m in turns if m.tool_calls),
        "text_turns": sum(1 for m in turns if not m.tool_calls),
        "tokens": sum(len(e.input_ids) for e in tokenized.examples),
        "target_tokens": sum(e.n_targets for e in tokenized.examples),
        "truncated_dialogues": tokenized.truncated,
        "dropped_too_long": len(tokenized.too_long),
    }


def val_loss(model_spec: str, convs: Sequence[Conversation], max_length: int) -> float | None:
    """Mean cross-entropy per target token over `convs`, one dialogue at a time (no padding)."""
    import torch

    from tunelab.data.prepare import tokenize_all
    from tunelab.data.tokenize import IGNORE
    from tunelab.models.load import load_model

    if not convs:
        return None
    model, tokenizer = load_model(model_spec, merge=True)
    total, count = 0.0, 0
    with torch.inference_mode():
        for example in tokenize_all(tokenizer, list(convs), max_length).examples:
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor(example.labels[1:])
            logits = model(input_ids=ids).logits[0, :-1]
            keep = labels != IGNORE
            total += float(torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum"))
            count += int(keep.sum())
    return total / count if count else None
