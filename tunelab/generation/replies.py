"""Replies to held-out contexts: contexts from conversations, batched generation.

A context is the messages before one assistant turn, rendered with the tokenizer's own chat
template. Generation sorts contexts by length and runs them in left-padded batches (padding on
the left keeps every prompt's last token next to its first generated one), which on CPU is
several times faster than one context at a time. In float32, greedy batched replies equal
unbatched ones; tests pin that.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

from tunelab.messages import Conversation, Message

log = logging.getLogger(__name__)

Turns = Literal["all", "last"]
# End-of-turn markers of common chat templates; whichever the tokenizer knows also stops generation.
END_OF_TURN_TOKENS = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>", "<|endoftext|>")


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    do_sample: bool = False  # greedy unless asked
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 16
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
class Context:
    """The messages before assistant turn `turn_index` of a conversation, and that turn as text."""

    conversation_id: str
    turn_index: int
    messages: tuple[Message, ...]
    reference: str
    source: str = ""
    # What the right reply does, when the data's generator recorded it (conversation meta
    # "turns", e.g. the cafe demo's {"act": "ask", "slot": ..., "item": ...}); judged by
    # tunelab.eval.behaviour.judge_expected instead of comparing with the reference's act.
    expected: dict[str, Any] | None = field(default=None, compare=False, hash=False)


@dataclass(frozen=True)
class Reply:
    text: str
    latency_s: float  # the batch's wall time divided by its size (per-reply time is not separable)
    new_tokens: int
    token_ids: tuple[int, ...] = ()  # the generated ids before the stop token


def message_text(message: Message) -> str:
    """An assistant message as the text the model is trained to write: content, then tool calls
    as `<tool_call>{...}</tool_call>` lines (the same form `data.tokenize` trains on)."""
    from tunelab.data.tokenize import render_tool_calls

    return "\n".join(part for part in (message.content.strip(), render_tool_calls(message.tool_calls)) if part)


def replace_system_prompt(messages: Sequence[Message], system_prompt: str | None) -> tuple[Message, ...]:
    """Replace the leading system message with `system_prompt`, or insert one; None leaves as is."""
    if system_prompt is None:
        return tuple(messages)
    rest = messages[1:] if messages and messages[0].role == "system" else messages
    return (Message(role="system", content=system_prompt), *rest)


def build_contexts(
    conversations: Sequence[Conversation], turns: Turns = "all", system_prompt: str | None = None
) -> list[Context]:
    """One context per target assistant turn (or per conversation's last one with turns='last')."""
    if turns not in ("all", "last"):
        raise ValueError(f"turns must be 'all' or 'last', got {turns!r}")
    contexts = []
    for conv in conversations:
        targets = conv.target_turns()
        if turns == "last":
            targets = targets[-1:]
        for index in targets:
            contexts.append(
                Context(
                    conversation_id=conv.id,
                    turn_index=index,
                    messages=replace_system_prompt(conv.messages[:index], system_prompt),
                    reference=message_text(conv.messages[index]),
                    source=conv.source,
                    expected=judged_expectation(conv, index),
                )
            )
    return contexts


def judged_expectation(conv: Conversation, index: int) -> dict[str, Any] | None:
    """The generator's record of what turn `index` must do, if it is one the strict judge scores."""
    turns = conv.meta.get("turns") if isinstance(conv.meta, dict) else None
    expected = turns.get(str(index)) if isinstance(turns, dict) else None
    if not (isinstance(expected, dict) and expected.get("act") in JUDGED_ACTS):
        return None
    for key, kind in REQUIRED[expected["act"]]:
        if not isinstance(expected.get(key), kind):
            raise ValueError(f"{conv.source or conv.id}: meta.turns.{index}.{key}: the {expected['act']} record needs "
                             f"a {kind.__name__} here (see tunelab.data.synth.cafe for the form)")
    return expected


JUDGED_ACTS = ("ask", "confirm")
# What judge_expected reads from a record, per act.
REQUIRED = {"ask": (("slot", str), ("item", str), ("missing", list)), "confirm": (("order", list),)}


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
        text = tokenizer.apply_chat_template(to_template_messages(tuple(messages), info), tokenize=False, add_generation_prompt=True)
        prompts.append(tokenizer(text, add_special_tokens=False)["input_ids"])
    return prompts


def stop_token_ids(tokenizer: Any, model: Any | None = None) -> list[int]:
    """The EOS id(s) of the tokenizer and model, plus any end-of-turn token the vocabulary has."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if config_eos is not None:
        ids.update([config_eos] if isinstance(config_eos, int) else config_eos)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[token] for token in END_OF_TURN_TOKENS if token in vocab)
    return sorted(ids)


def _generation_config(settings: GenerationSettings, stop_ids: list[int], pad_id: int) -> Any:
    from transformers import GenerationConfig

    sampling = {"temperature": settings.temperature, "top_p": settings.top_p} if settings.do_sample else {}
    return GenerationConfig(
        max_new_tokens=settings.max_new_tokens, do_sample=settings.do_sample,
        eos_token_id=stop_ids, pad_token_id=pad_id, **sampling,
    )


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """(input_ids, attention_mask) tensors with each prompt right-aligned."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if prompt:
            ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt):] = 1
    return ids, mask


def _cut(tokens: list[int], stop_ids: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:i]
    return tokens


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
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
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    config = _generation_config(settings, stop_ids, pad_id)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies: list[Reply | None] = [None] * len(prompts)
    if settings.do_sample:
        torch.manual_seed(settings.seed)
    with _progress(progress) as bar, torch.inference_mode():
        task = bar.add_task(description, total=len(prompts))
        for start in range(0, len(order), settings.batch_size):
            batch = order[start:start + settings.batch_size]
            ids, mask = left_pad([prompts[i] for i in batch], pad_id)
            began = time.perf_counter()
            out = model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
            latency = (time.perf_counter() - began) / len(batch)
            for row, i in enumerate(batch):
                tokens = _cut(out[row, ids.shape[1]:].tolist(), set(stop_ids))
                text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
                replies[i] = Reply(text=text, latency_s=latency, new_tokens=len(tokens), token_ids=tuple(tokens))
            bar.advance(task, len(batch))
    return [r for r in replies if r is not None]
