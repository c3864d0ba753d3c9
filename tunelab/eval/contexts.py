"""Held-out contexts: the messages before each assistant turn of a conversation, and that turn.

A context is what the model is asked to continue in evaluation; its reference is the turn the data
holds, rendered as the text the model is trained to write. When the data's generator recorded what
the right reply does (conversation meta "turns"), the context carries that record for the judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tunelab.messages import Conversation, Message

Turns = Literal["all", "last"]


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
            raise ValueError(
                f"{conv.source or conv.id}: meta.turns.{index}.{key}: the {expected['act']} record needs "
                f"a {kind.__name__} here (see tunelab.data.synth.cafe for the form)"
            )
    return expected


JUDGED_ACTS = ("ask", "confirm")
# What judge_expected reads from a record, per act.
REQUIRED = {"ask": (("slot", str), ("item", str), ("missing", list)), "confirm": (("order", list),)}
