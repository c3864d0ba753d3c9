"""The data stage of a run: read, reject, dedupe, split, tokenize, and report what happened."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab import rundir
from tunelab.config import DataConfig
from tunelab.data.formats import ReadResult, read_conversations
from tunelab.data.logs import LogReadResult
from tunelab.data.split import dedupe, fingerprint, split
from tunelab.data.tokenize import TemplateInfo, template_info, tokenize_conversation
from tunelab.messages import Conversation, Example, Message


class NoUsableData(RuntimeError):
    pass


@dataclass
class Tokenized:
    examples: list[Example] = field(default_factory=list)
    kept: list[Conversation] = field(default_factory=list)  # the conversations behind `examples`
    too_long: list[Conversation] = field(default_factory=list)

    @property
    def truncated(self) -> int:
        return sum(1 for e in self.examples if e.dropped_turns)


def add_default_system_prompt(conv: Conversation, prompt: str | None) -> Conversation:
    """Give a conversation without a system message the configured one; its own one wins."""
    if not prompt or (conv.messages and conv.messages[0].role == "system"):
        return conv
    return Conversation(
        id=conv.id, messages=(Message("system", prompt), *conv.messages), source=conv.source, meta=conv.meta
    )


def tokenize_all(
    tokenizer: Any, convs: list[Conversation], max_length: int, info: TemplateInfo | None = None
) -> Tokenized:
    info = info or template_info(tokenizer)
    out = Tokenized()
    for conv in convs:
        example = tokenize_conversation(tokenizer, conv, max_length, info)
        if example is None:
            out.too_long.append(conv)
        else:
            out.examples.append(example)
            out.kept.append(conv)
    return out


def histogram(values: list[int], bins: int = 10) -> list[dict[str, int]]:
    if not values:
        return []
    low, high = min(values), max(values)
    width = max(1, -(-(high - low + 1) // bins))
    counts = [0] * bins
    for v in values:
        counts[min((v - low) // width, bins - 1)] += 1
    return [{"from": low + i * width, "to": low + (i + 1) * width - 1, "count": c} for i, c in enumerate(counts) if c]


def token_stats(examples: list[Example]) -> dict[str, Any]:
    return length_stats([len(e.input_ids) for e in examples], [e.n_targets for e in examples])


def length_stats(tokens: list[int], targets: list[int]) -> dict[str, Any]:
    """Token statistics of examples given as (tokens, target tokens) per example."""
    if not tokens:
        return {"examples": 0}

    def summary(values: list[int]) -> dict[str, float]:
        return {
            "mean": round(statistics.fmean(values), 1),
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
        }

    return {
        "examples": len(tokens),
        "tokens": summary(tokens),
        "target_tokens": summary(targets),
        "tokens_per_epoch": sum(tokens),
        "target_tokens_per_epoch": sum(targets),
        "target_share": round(sum(targets) / max(1, sum(tokens)), 3),
        "histogram_tokens": histogram(tokens),
    }


def write_rejected(result: ReadResult | LogReadResult, out_dir: Path) -> Path | None:
    """`out_dir/<input stem>.rejected.jsonl` with every rejected row of a conversation file or a
    feedback log (None when nothing was rejected)."""
    if not result.rejected:
        return None
    path = out_dir / f"{Path(result.path).stem}.rejected.jsonl"
    rundir.write_jsonl(path, [r.to_row() for r in result.rejected])
    return path


@dataclass
class Prepared:
    train: list[Example]
    val: list[Example]
    train_conversations: list[Conversation]
    val_conversations: list[Conversation]
    report: dict[str, Any]


def prepare(cfg: DataConfig, tokenizer: Any, out_dir: Path, system_prompt: str | None = None) -> Prepared:
    """Everything between the user's files and the Trainer. Raises NoUsableData when nothing is left."""
    reads = [read_conversations(cfg.train, cfg.format)]
    if cfg.val:
        reads.append(read_conversations(cfg.val, cfg.format))
    files = []
    for r in reads:
        rejected_path = write_rejected(r, out_dir / "rejected")
        files.append(
            {
                "path": r.path,
                "format": r.fmt,
                "read": r.n_read,
                "kept": len(r.conversations),
                "rejected": len(r.rejected),
                "rejected_file": str(rejected_path) if rejected_path else None,
            }
        )
    train_convs = [add_default_system_prompt(c, system_prompt) for c in reads[0].conversations]
    duplicates = 0
    if cfg.dedupe:
        train_convs, duplicates = dedupe(train_convs)
    if cfg.val:
        val_convs = [add_default_system_prompt(c, system_prompt) for c in reads[1].conversations]
        # A validation conversation that also appears in training would flatter the model.
        train_keys = {fingerprint(c) for c in train_convs}
        val_convs, leaked = dedupe(val_convs, seen=train_keys)
        duplicates += leaked
    else:
        train_convs, val_convs = split(train_convs, cfg.val_fraction, cfg.seed)
    info = template_info(tokenizer)
    train_tok = tokenize_all(tokenizer, train_convs, cfg.max_length, info)
    val_tok = tokenize_all(tokenizer, val_convs, cfg.max_length, info)
    report = {
        "files": files,
        "duplicates_removed": duplicates,
        "too_long_dropped": {"train": len(train_tok.too_long), "val": len(val_tok.too_long)},
        "truncated_history": {"train": train_tok.truncated, "val": val_tok.truncated},
        "max_length": cfg.max_length,
        "train": token_stats(train_tok.examples),
        "val": token_stats(val_tok.examples),
    }
    if not train_tok.examples:
        raise NoUsableData(
            f"{cfg.train}: no usable training example (read {reads[0].n_read}, rejected {len(reads[0].rejected)}, too long {len(train_tok.too_long)})"
        )
    return Prepared(
        train=train_tok.examples,
        val=val_tok.examples,
        train_conversations=train_tok.kept,
        val_conversations=val_tok.kept,
        report=report,
    )
