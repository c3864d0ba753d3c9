"""Batched replies to contexts (message lists rendered with the tokenizer's own chat template).

Generation sorts contexts by length and runs them in left-padded batches (padding on
the left keeps every prompt's last token next to its first generated one), which on CPU is
several times faster than one context at a time. In float32, greedy batched replies equal
unbatched ones; tests pin that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tunelab.config import GENERATION_BATCH
from tunelab.generation.tokens import left_pad, pad_token_id, stop_token_ids
from tunelab.messages import Message

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    do_sample: bool = False  # greedy unless asked
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = GENERATION_BATCH
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 (use greedy decoding for 0), got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Reply:
    text: str
    latency_s: float  # the batch's wall time divided by its size (per-reply time is not separable)
    new_tokens: int
    token_ids: tuple[int, ...] = ()  # the generated ids before the stop token


def render_prompts(tokenizer: Any, contexts: Sequence[Sequence[Message]]) -> list[list[int]]:
    """Token ids of each context through the chat template, ending with the assistant's turn opener.

    Messages are adapted to the template exactly as in training (`data.tokenize`): tool calls as
    text for templates that ignore them, tool results as user turns for templates without that role.
    """
    from tunelab.data.tokenize import ensure_template, template_info, to_template_messages

    ensure_template(tokenizer)
    info = template_info(tokenizer)
    prompts = []
    for messages in contexts:
        text = tokenizer.apply_chat_template(
            to_template_messages(tuple(messages), info), tokenize=False, add_generation_prompt=True
        )
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompts


def _generation_config(settings: GenerationSettings, stop_ids: list[int], pad_id: int) -> Any:
    from transformers import GenerationConfig

    sampling = {"temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {}
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        eos_token_id=stop_ids,
        pad_token_id=pad_id,
        **sampling,
    )


def _cut(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:i]
    return tokens


def progress_bar(enabled: bool) -> Any:
    """A rich progress bar on stderr (counts, elapsed, remaining); a no-op when not `enabled`."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def generate_replies(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    settings: GenerationSettings = GenerationSettings(),
    *,
    progress: bool = True,
    description: str = "generating",
) -> list[Reply]:
    """One reply per prompt (token ids), in the prompts' order, batched by similar length."""
    import torch

    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt cannot be continued; every context must render to tokens")
    stop_ids = stop_token_ids(tokenizer, model)
    pad_id = pad_token_id(tokenizer, stop_ids)
    config = _generation_config(settings, stop_ids, pad_id)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies: list[Reply | None] = [None] * len(prompts)
    if settings.do_sample:
        torch.manual_seed(settings.seed)
    with progress_bar(progress) as bar, torch.inference_mode():
        task = bar.add_task(description, total=len(prompts))
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            ids, mask = left_pad([prompts[i] for i in batch], pad_id)
            began = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            latency = (time.perf_counter() - began) / len(batch)
            for row, i in enumerate(batch):
                tokens = _cut(out[row, ids.shape[1] :].tolist(), set(stop_ids))
                text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
                replies[i] = Reply(text=text, latency_s=latency, new_tokens=len(tokens), token_ids=tuple(tokens))
            bar.advance(task, len(batch))
    return [r for r in replies if r is not None]
