"""`tunelab data validate` and `tunelab data inspect`: what a file holds, what is wrong with it,
and exactly which tokens will carry loss."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tunelab.data.formats import ReadResult, Rejected, read_conversations
from tunelab.data.prepare import length_stats, token_stats, tokenize_all, write_rejected
from tunelab.data.tokenize import IGNORE, target_spans, template_info, to_template_messages, tokenize_conversation

log = logging.getLogger(__name__)


def rejected_folder(data_file: Path, out_dir: Path | None) -> Path:
    """Beside the data file, unless told otherwise or that folder is read-only (then the cwd, logged)."""
    folder = out_dir or data_file.parent
    if out_dir is None and not os.access(folder, os.W_OK):
        log.warning("%s is read-only; writing the rejected rows to the current directory", folder)
        folder = Path.cwd()
    return folder


def validate_file(
    path: str | Path, tokenizer: Any, max_length: int | None, fmt: str = "auto", out_dir: Path | None = None
) -> dict[str, Any]:
    """Read, check, tokenize. Rows too long even after the truncation policy are rejected too.
    An OpenAI preference file (DPO) is detected from its first row and checked as one."""
    from tunelab.data.openai_preference import is_preference_file

    path = Path(path)
    if fmt == "auto" and is_preference_file(path):
        return validate_preference_file(path, tokenizer, out_dir)
    result: ReadResult = read_conversations(path, fmt)
    n_read = result.n_read
    tokenized = tokenize_all(tokenizer, result.conversations, max_length or 10**9, template_info(tokenizer))
    for conv in tokenized.too_long:
        result.rejected.append(
            Rejected(
                source=conv.source,
                field="messages",
                reason=f"longer than max length {max_length} even after dropping old turns",
            )
        )
    kept = len(result.conversations) - len(tokenized.too_long)
    target = write_rejected(result, rejected_folder(path, out_dir))
    stats = token_stats(tokenized.examples)
    return {
        "file": str(path),
        "format": result.fmt,
        "read": n_read,
        "kept": kept,
        "rejected": len(result.rejected),
        "truncated": tokenized.truncated,
        "errors": [r.message() for r in result.rejected],
        "rejected_file": str(target) if target else None,
        "stats": stats,
    }


def inspect_file(
    path: str | Path, tokenizer: Any, n: int, max_length: int | None = None, fmt: str = "auto"
) -> list[dict[str, Any]]:
    """The first n usable examples: ids, labels and the decoded target spans."""
    result = read_conversations(path, fmt)
    info = template_info(tokenizer)
    shown = []
    for conv in result.conversations:
        example = tokenize_conversation(tokenizer, conv, max_length, info)
        if example is None:
            continue
        shown.append(
            {
                "id": conv.id,
                "source": conv.source,
                "tokens": len(example.input_ids),
                "target_tokens": example.n_targets,
                "dropped_turns": example.dropped_turns,
                "target_spans": target_spans(tokenizer, example),
                "pieces": [
                    (tokenizer.decode([t]), label != IGNORE) for t, label in zip(example.input_ids, example.labels)
                ],
            }
        )
        if len(shown) >= n:
            break
    return shown


def validate_preference_file(path: str | Path, tokenizer: Any, out_dir: Path | None = None) -> dict[str, Any]:
    """`validate_file` for OpenAI preference JSONL (DPO): the same report, where an example is one
    pair, its tokens the prompt rendered with each output, its target tokens the two outputs'."""
    from tunelab.data.openai_preference import read_pairs

    path = Path(path)
    result = read_pairs(path)
    info = template_info(tokenizer)

    def length(messages: tuple, prompt_only: bool = False) -> int:
        rendered = tokenizer.apply_chat_template(
            to_template_messages(messages, info), tokenize=True, return_dict=False, add_generation_prompt=prompt_only
        )
        return len(rendered)

    tokens, targets = [], []
    for pair in result.pairs:
        prompt = length(pair.context, prompt_only=True)
        full = [length(pair.context + reply) for reply in (pair.chosen, pair.rejected)]
        tokens.append(sum(full))
        targets.append(sum(max(0, n - prompt) for n in full))
    target = write_rejected(result, rejected_folder(path, out_dir))  # type: ignore[arg-type]
    return {
        "file": str(path),
        "format": result.fmt,
        "read": result.n_read,
        "kept": len(result.pairs),
        "rejected": len(result.rejected),
        "truncated": 0,
        "errors": [r.message() for r in result.rejected],
        "rejected_file": str(target) if target else None,
        "stats": length_stats(tokens, targets),
    }
