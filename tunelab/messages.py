"""The data every stage passes along: messages, conversations, tokenized examples.

Plain frozen dataclasses so that they hash, compare and print well, and import nothing of ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolCall:
    """One function call made by the assistant; `arguments` is a JSON string as in OpenAI's API."""

    name: str
    arguments: str = "{}"
    id: str = ""

    def to_openai(self) -> dict[str, Any]:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    def args(self) -> dict[str, Any]:
        """The arguments parsed; an unparseable string gives an empty dict."""
        try:
            value = json.loads(self.arguments or "{}")
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Message:
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    # OpenAI's fine-tuning format: weight 0 on an assistant message means "context only, no loss".
    weight: int | None = None

    @property
    def is_target(self) -> bool:
        return self.role == "assistant" and self.weight != 0

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        if self.weight is not None:
            out["weight"] = self.weight
        return out


@dataclass(frozen=True)
class Conversation:
    """A dialogue; `source` is "file:line" of the row it came from, for error messages."""

    id: str
    messages: tuple[Message, ...]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "messages": [m.to_openai() for m in self.messages]}
        if self.meta:
            out["meta"] = self.meta
        return out

    def target_turns(self) -> list[int]:
        """Indices of the assistant messages that are training targets."""
        return [i for i, m in enumerate(self.messages) if m.is_target]


@dataclass
class Example:
    """A tokenized conversation: label -100 marks tokens that carry no loss."""

    input_ids: list[int]
    labels: list[int]
    conversation_id: str = ""
    dropped_turns: int = 0  # history messages removed to fit max_length

    @property
    def n_targets(self) -> int:
        return sum(1 for label in self.labels if label != -100)


def chat(user: str, reply: str | None = None, system: str | None = None) -> tuple[Message, ...]:
    """[system,] user[, assistant] messages: the one-question chats of recipe bake and its evaluation."""
    msgs = ([Message("system", system)] if system else []) + [Message("user", user)]
    return tuple(msgs + ([Message("assistant", reply)] if reply is not None else []))
