"""OpenAI's preference-data JSONL (the format of DPO fine-tuning jobs) -> preference pairs.

One row per comparison:
    {"input": {"messages": [...]}, "preferred_output": [{"role": "assistant", ...}],
     "non_preferred_output": [{"role": "assistant", ...}]}
`input.messages` is read exactly as a chat row's `messages` (formats.parse_openai), and, as in
chat files, `input.tools` is not read. As in formats.py every row becomes a PreferencePair or a
Rejected naming file:line and the field, so read = kept + rejected holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data.formats import Rejected, parse_openai, raw_rows
from tunelab.data.structure import check_conversation
from tunelab.messages import Conversation, Message
from tunelab.textio import RowError, check_file, loads_row, shown

FORMAT = "openai-preference"
OUTPUTS = ("preferred_output", "non_preferred_output")


@dataclass(frozen=True)
class PreferencePair:
    context: tuple[Message, ...]  # the conversation so far, ending with the turn both outputs answer
    chosen: tuple[Message, ...]
    rejected: tuple[Message, ...]
    source: str = ""


@dataclass
class PairsResult:
    path: str
    fmt: str = FORMAT
    pairs: list[PreferencePair] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def n_read(self) -> int:
        return len(self.pairs) + len(self.rejected)


def is_preference_row(row: Any) -> bool:
    """A row that means to be a preference row (so its errors are reported as such)."""
    return isinstance(row, dict) and any(key in row for key in OUTPUTS)


def _messages(value: Any, where: str) -> list[Message]:
    """parse_openai with the field names of this format (input.messages[0].role, not messages[0].role)."""
    try:
        return parse_openai({"messages": value})
    except RowError as err:
        raise RowError(where + err.field.removeprefix("messages"), err.reason) from None


def _output(row: dict[str, Any], key: str) -> tuple[Message, ...]:
    if key not in row:
        raise RowError(key, "missing key")
    if not isinstance(row[key], list) or not row[key]:
        raise RowError(key, "must be a non-empty list of assistant messages")
    messages = _messages(row[key], key)
    for i, m in enumerate(messages):
        if m.role != "assistant":
            raise RowError(f"{key}[{i}].role", f"must be 'assistant', got {m.role!r}")
    return tuple(messages)


def parse_pair(row: Any, source: str = "") -> PreferencePair:
    if not isinstance(row, dict):
        raise RowError("(row)", "must be a JSON object")
    inp = row.get("input")
    if inp is None:
        raise RowError("input", "missing key")
    if not isinstance(inp, dict) or "messages" not in inp:
        raise RowError("input", "must be an object with a 'messages' list")
    context = tuple(_messages(inp["messages"], "input.messages"))
    if not context:
        raise RowError("input.messages", "empty: the outputs need a turn to answer")
    chosen, rejected = _output(row, "preferred_output"), _output(row, "non_preferred_output")
    for key, reply in zip(OUTPUTS, (chosen, rejected)):
        # The rules of chat files (role order, empty content), on the conversation each output completes.
        for where, reason in check_conversation(Conversation(id="", messages=context + reply)):
            i = int(where[9 : where.index("]")]) if where.startswith("messages[") else None
            if i is None:
                raise RowError(key, reason)
            name = f"input.messages[{i}]" if i < len(context) else f"{key}[{i - len(context)}]"
            raise RowError(name + where[where.index("]") + 1 :], reason)
    if chosen == rejected:
        raise RowError("non_preferred_output", "same as preferred_output: the pair teaches nothing")
    return PreferencePair(context, chosen, rejected, source)


def read_pairs(path: str | Path) -> PairsResult:
    """Read one JSONL (or JSON list) file; a file that cannot be read raises InputFileError, a bad row never raises."""
    path = check_file(path)
    result = PairsResult(path=str(path))
    for line_no, raw in raw_rows(path):
        try:
            result.pairs.append(parse_pair(loads_row(raw), f"{path}:{line_no}"))
        except RowError as err:
            result.rejected.append(
                Rejected(source=f"{path}:{line_no}", field=err.field, reason=err.reason, raw=shown(raw))
            )
    return result


def is_preference_file(path: str | Path) -> bool:
    """Whether the first parseable row of a JSONL/JSON file is a preference row."""
    try:
        for _, raw in raw_rows(check_file(path)):
            try:
                return is_preference_row(loads_row(raw))
            except RowError:
                continue
    except (OSError, ValueError):
        return False
    return False
