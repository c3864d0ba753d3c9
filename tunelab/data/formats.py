"""Readers: OpenAI chat JSONL, ShareGPT and Alpaca files -> Conversations.

Every row either becomes a Conversation or a Rejected record naming file:line and the field,
so that read = kept + rejected always holds. A `.json` file holding one list is read too
(its "line" is then the item number, 1-based).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data.structure import check_conversation
from tunelab.messages import ROLES, Conversation, Message, ToolCall
from tunelab.textio import BOM, RowError, check_file, iter_lines, loads_row, shown, split_json_list

FORMATS = ("auto", "openai", "sharegpt", "alpaca")
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "tool": "tool",
    "function_response": "tool",
    "observation": "tool",
}


@dataclass
class Rejected:
    source: str  # "file:line", or "file[index]" for formats that are one JSON list per file
    field: str
    reason: str
    raw: str = ""
    conversation_id: str | None = None  # when the row had a readable id

    def message(self) -> str:
        return f"{self.source}: {self.field}: {self.reason}"

    def to_row(self) -> dict[str, Any]:
        row = {"source": self.source, "field": self.field, "reason": self.reason, "raw": self.raw}
        if self.conversation_id is not None:
            row["conversation_id"] = self.conversation_id
        return row


@dataclass
class ReadResult:
    path: str
    fmt: str
    conversations: list[Conversation] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def n_read(self) -> int:
        return len(self.conversations) + len(self.rejected)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise RowError(where, f"must be a string or a list of text parts, got {type(value).__name__}")
    # OpenAI also allows a list of content parts; a text model can learn from text parts only.
    texts = []
    for j, part in enumerate(value):
        if not isinstance(part, dict) or part.get("type", "text") != "text":
            raise RowError(f"{where}[{j}]", "only text parts ({'type': 'text', 'text': ...}) are supported")
        if not isinstance(part.get("text"), str):
            raise RowError(f"{where}[{j}].text", "must be a string")
        texts.append(part["text"])
    return "".join(texts)


def _optional_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise RowError(where, f"must be a string, got {type(value).__name__}")
    return value


def _tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RowError(where, "must be a list")
    calls = []
    for j, call in enumerate(raw):
        here = f"{where}[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise RowError(f"{here}.function.name", "missing or empty")
        args = fn.get("arguments", "{}")
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False)
        try:
            loads_row(args or "{}")
        except RowError as exc:
            raise RowError(f"{here}.function.arguments", f"not valid JSON ({exc.reason})") from None
        calls.append(ToolCall(name=fn["name"], arguments=args, id=str(call.get("id", f"call_{j}"))))
    return tuple(calls)


def parse_openai(row: dict[str, Any]) -> list[Message]:
    msgs = row.get("messages")
    if msgs is None:
        raise RowError("messages", "missing key")
    if not isinstance(msgs, list):
        raise RowError("messages", "must be a list of messages")
    out = []
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RowError(where, "must be an object")
        if "role" not in m:
            raise RowError(f"{where}.role", "missing key")
        role = m["role"]
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ROLES:
            raise RowError(f"{where}.role", f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        weight = m.get("weight")
        if weight is not None and weight not in (0, 1):
            raise RowError(f"{where}.weight", f"must be 0 or 1, got {weight!r}")
        out.append(
            Message(
                role=role,
                content=_text(m.get("content"), f"{where}.content"),
                tool_calls=_tool_calls(m.get("tool_calls"), f"{where}.tool_calls"),
                tool_call_id=_optional_str(m.get("tool_call_id"), f"{where}.tool_call_id"),
                name=_optional_str(m.get("name"), f"{where}.name"),
                weight=weight,
            )
        )
    return out


def parse_sharegpt(row: dict[str, Any]) -> list[Message]:
    turns = row.get("conversations")
    if turns is None:
        raise RowError("conversations", "missing key")
    if not isinstance(turns, list):
        raise RowError("conversations", "must be a list of turns")
    out = []
    if isinstance(row.get("system"), str) and row["system"]:
        out.append(Message(role="system", content=row["system"]))
    for i, t in enumerate(turns):
        where = f"conversations[{i}]"
        if not isinstance(t, dict):
            raise RowError(where, "must be an object")
        for key in ("from", "value"):
            if key not in t:
                raise RowError(f"{where}.{key}", "missing key")
        role = SHAREGPT_ROLES.get(str(t["from"]).lower())
        if role is None:
            raise RowError(
                f"{where}.from", f"unknown speaker {t['from']!r} (expected one of {', '.join(SHAREGPT_ROLES)})"
            )
        out.append(Message(role=role, content=_text(t["value"], f"{where}.value")))
    return out


def parse_alpaca(row: dict[str, Any]) -> list[Message]:
    for key in ("instruction", "output"):
        if key not in row:
            raise RowError(key, "missing key")
    instruction = _text(row["instruction"], "instruction")
    extra = _text(row.get("input"), "input")
    out = []
    if isinstance(row.get("system"), str) and row["system"]:
        out.append(Message(role="system", content=row["system"]))
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    out.append(Message(role="user", content=prompt))
    out.append(Message(role="assistant", content=_text(row["output"], "output")))
    return out


PARSERS: dict[str, Callable[[dict[str, Any]], list[Message]]] = {
    "openai": parse_openai,
    "sharegpt": parse_sharegpt,
    "alpaca": parse_alpaca,
}


def detect_format(row: dict[str, Any]) -> str | None:
    if "messages" in row:
        return "openai"
    if "conversations" in row:
        return "sharegpt"
    if "instruction" in row and "output" in row:
        return "alpaca"
    return None


def raw_rows(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw bytes) per row of a data file, undecoded; JSONL is streamed. A file whose
    first non-space byte (after a BOM) is '[' is a JSON list: its items are the rows, numbered from 1."""
    with path.open("rb") as handle:
        head = handle.read(4096).removeprefix(BOM).lstrip()
    if head[:1] == b"[":
        items = split_json_list(path.read_bytes().removeprefix(BOM))
        if items is not None:
            yield from ((i + 1, item) for i, item in enumerate(items))
            return  # otherwise line by line, where the bad line gets named
    yield from ((n, line) for n, line in iter_lines(path) if line.strip())


def _conversation(row: Any, result: ReadResult, path: Path, line_no: int) -> Conversation:
    if not isinstance(row, dict):
        raise RowError("(row)", "must be a JSON object")
    if result.fmt == "auto":
        detected = detect_format(row)
        if detected is None:
            raise RowError(
                "(row)", "unknown format: expected key 'messages', 'conversations' or 'instruction'+'output'"
            )
        result.fmt = detected
    messages = PARSERS[result.fmt](row)
    conv = Conversation(
        id=str(row.get("id", row.get("conversation_id", f"{path.stem}-{line_no}"))),
        messages=tuple(messages),
        source=f"{path}:{line_no}",
        meta=row.get("meta") if isinstance(row.get("meta"), dict) else {},
    )
    problems = check_conversation(conv)
    if problems:
        raise RowError(*problems[0])
    return conv


def read_conversations(path: str | Path, fmt: str = "auto") -> ReadResult:
    """Read one file; the format is detected from its first parseable row unless given.
    A file that cannot be read at all raises InputFileError (one line); a bad row never raises."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    path = check_file(path)
    result = ReadResult(path=str(path), fmt=fmt)
    for line_no, raw in raw_rows(path):
        try:
            result.conversations.append(_conversation(loads_row(raw), result, path, line_no))
        except RowError as err:
            result.rejected.append(
                Rejected(source=f"{path}:{line_no}", field=err.field, reason=err.reason, raw=shown(raw))
            )
    return result
