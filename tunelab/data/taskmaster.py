"""Taskmaster-4 (Google Research, TM-4-2024, CC BY 4.0) to OpenAI chat format.

Two inputs, two outputs:
- `dialogs/*.json` (lists of dialogues whose user utterances carry the agent's API calls as
  annotations) -> conversations: the calls become assistant `tool_calls`, the API results
  `tool` messages, in the order the agent made them.
- `reward/*.json` (one judged agent step per row) -> a judgement set: rows
  `{id, conversation_id, source, context, completion, label}` usable by KTO as is and by DPO
  through `preference_pairs`.

A dialogue or row that cannot be converted is rejected with file, index and field, never
dropped silently. Some request/response strings in the real data double their quotes
(`""latte-4968""`); those are repaired, counted and logged, because the intent is unambiguous.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.data.formats import Rejected, RowError
from tunelab.data.split import grouped_split
from tunelab.messages import Message, ToolCall
from tunelab.rundir import write_jsonl
from tunelab.textio import check_file, check_value, loads_row, split_json_list

log = logging.getLogger(__name__)

# `""value""` where a JSON string should be: a typing slip in the source files.
_DOUBLED_QUOTES = re.compile(r'""([^"\\,:{}\[\]]+)""')


class TaskmasterError(RowError):
    """A dialogue or reward row that cannot be converted; `where` names file, index and field."""

    def __init__(self, where: str, message: str):
        super().__init__(where, message)
        self.where = where


@dataclass
class ConvertResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    n_read: int = 0
    stats: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        return {"read": self.n_read, "kept": len(self.rows), "rejected": len(self.rejected), **dict(self.stats)}


def _loads(text: str, where: str) -> Any:
    """json.loads + the shape check; a JSONDecodeError goes up for the caller to repair or report."""
    try:
        # strict=False: a raw tab inside a string (" \tAssam") is harmless and kept.
        return _checked(json.loads(text, strict=False), where)
    except RecursionError:
        raise TaskmasterError(where, "JSON nested too deeply to parse") from None
    except (json.JSONDecodeError, TaskmasterError):
        raise
    except ValueError as err:  # a number over Python's 4300-digit int conversion limit
        raise TaskmasterError(where, f"invalid JSON: {err}") from None


def parse_json_value(text: str, where: str, stats: Counter) -> Any:
    """Parse a JSON string from the source data, repairing doubled quotes (counted in `stats`)."""
    if not isinstance(text, str):
        raise TaskmasterError(where, f"must be a JSON string, got {type(text).__name__}")
    try:
        return _loads(text, where)
    except json.JSONDecodeError:
        pass
    try:
        value = _loads(_DOUBLED_QUOTES.sub(r'"\1"', text), where)
    except json.JSONDecodeError as err:
        raise TaskmasterError(where, f"invalid JSON ({err.msg} at char {err.pos}): {text[:120]!r}") from None
    stats["json_repaired"] += 1
    log.debug("%s: repaired doubled quotes in JSON value", where)
    return value


def _checked(value: Any, where: str) -> Any:
    try:
        return check_value(value)
    except RowError as err:
        raise TaskmasterError(f"{where}.{err.field}" if err.field != "(row)" else where, err.reason) from None


def _expect(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind):
        raise TaskmasterError(
            where, f"must be {'an object' if kind is dict else 'a ' + kind.__name__}, got {type(value).__name__}"
        )
    return value


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _append(messages: list[Message], message: Message) -> None:
    """Append, merging a text turn into a preceding plain turn of the same role."""
    prev = messages[-1] if messages else None
    if prev is None or prev.role != message.role or message.role == "tool" or prev.tool_calls:
        messages.append(message)
        return
    content = "\n".join(part for part in (prev.content, message.content) if part)
    messages[-1] = Message(role=prev.role, content=content, tool_calls=message.tool_calls)


def _check_conversation(messages: list[Message], where: str) -> None:
    if not messages:
        raise TaskmasterError(where, "no messages")
    if messages[0].role not in ("user", "system"):
        raise TaskmasterError(f"{where}.messages[0].role", f"starts with {messages[0].role!r}, expected user")
    if not any(m.role == "assistant" for m in messages):
        raise TaskmasterError(where, "no assistant turn")


# --- dialogs -------------------------------------------------------------------------------


def _annotation_calls(utterance: dict[str, Any], where: str, stats: Counter) -> list[tuple[str, str, str]]:
    """(function name, arguments JSON, response JSON) per API call, in the order they were made."""
    by_n: dict[str, dict[str, Any]] = defaultdict(dict)
    for k, ann in enumerate(_expect(utterance.get("annotations") or [], list, f"{where}.annotations")):
        ann = _expect(ann, dict, f"{where}.annotations[{k}]")
        name, value, context = ann.get("name"), ann.get("value"), str(ann.get("context", ""))
        number = context.rsplit("_", 1)[-1]
        if name not in ("api_call", "request", "api_response", "response") or not number.isdigit():
            raise TaskmasterError(f"{where}.annotations[{k}]", f"unknown annotation {name!r}/{context!r}")
        by_n[number][name] = value
    calls = []
    for number, parts in by_n.items():
        here = f"{where}.annotations[api_call_{number}]"
        fn = parts.get("api_call")
        if not fn or not isinstance(fn, str):
            raise TaskmasterError(f"{here}.api_call", "missing function name")
        if parts.get("api_response", fn) != fn:
            raise TaskmasterError(f"{here}.api_response", f"response of {parts['api_response']!r} to a call of {fn!r}")
        if "response" not in parts:
            raise TaskmasterError(f"{here}.response", "missing API response")
        if "request" not in parts:
            stats["calls_without_request"] += 1  # e.g. show_menu takes no arguments
        args = parse_json_value(parts.get("request") or "{}", f"{here}.request", stats)
        if not isinstance(args, dict):
            raise TaskmasterError(f"{here}.request", f"arguments must be a JSON object, got {type(args).__name__}")
        response = parse_json_value(parts["response"], f"{here}.response", stats)
        calls.append((fn, _compact(args), _compact(response)))
    return calls


def dialog_to_messages(dialog: dict[str, Any], where: str, stats: Counter | None = None) -> list[Message]:
    """One Taskmaster dialogue as OpenAI-style messages; raises TaskmasterError naming the field."""
    stats = stats if stats is not None else Counter()
    utterances = dialog.get("utterances")
    if not isinstance(utterances, list):
        raise TaskmasterError(f"{where}.utterances", "missing or not a list")
    messages: list[Message] = []
    n_call = 0
    for i, utt in enumerate(utterances):
        here = f"{where}.utterances[{i}]"
        speaker = _expect(utt, dict, here).get("speaker")
        if speaker not in ("user", "assistant"):
            raise TaskmasterError(f"{here}.speaker", f"unknown speaker {speaker!r}")
        text = _expect(utt.get("text") or "", str, f"{here}.text").strip()
        _checked(text, f"{here}.text")
        if text:
            _append(messages, Message(role=speaker, content=text))
        for fn, args, response in _annotation_calls(utt, here, stats):
            n_call += 1
            call = ToolCall(name=fn, arguments=args, id=f"call_{n_call}")
            _append(messages, Message(role="assistant", tool_calls=(call,)))
            messages.append(Message(role="tool", content=response, tool_call_id=call.id))
    _check_conversation(messages, where)
    return messages


def _json_files(path: Path, sub: str) -> list[Path]:
    folder = path / sub if (path / sub).is_dir() else path
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"no *.json files in {folder}")
    return files


def _load_list(path: Path) -> list[Any]:
    """The items of one JSON list file; an item that does not parse is a RowError in its place,
    so one bad dialogue is rejected and the rest of the file kept."""
    items = split_json_list(check_file(path).read_bytes().removeprefix(b"\xef\xbb\xbf"))
    if items is None:
        raise TaskmasterError(str(path), "expected one JSON list of objects")
    out: list[Any] = []
    for raw in items:
        try:
            out.append(loads_row(raw))
        except RowError as err:
            out.append(err)
    return out


def _reject(result: ConvertResult, where: str, conversation_id: Any, reason: str) -> None:
    """Record a rejected row: source "file[index]", the field path inside it, the reason."""
    source, _, field_path = where.partition("].")
    source = source + "]" if field_path else where
    result.rejected.append(
        Rejected(
            source=source,
            field=field_path or "(row)",
            reason=reason,
            conversation_id=None if conversation_id is None else str(conversation_id),
        )
    )


def convert_dialogs(path: str | Path) -> ConvertResult:
    """Convert every dialogue in `path` (the Taskmaster-4 folder or its `dialogs/` folder)."""
    result = ConvertResult()
    for file in _json_files(Path(path), "dialogs"):
        for index, dialog in enumerate(_load_list(file)):
            result.n_read += 1
            where = f"{file.name}[{index}]"
            cid = dialog.get("conversation_id") if isinstance(dialog, dict) else None
            try:
                if isinstance(dialog, RowError):
                    raise TaskmasterError(
                        where if dialog.field == "(row)" else f"{where}.{dialog.field}", dialog.reason
                    )
                if not isinstance(dialog, dict):
                    raise TaskmasterError(where, "dialogue is not an object")
                if not cid or not isinstance(cid, (str, int)) or isinstance(cid, bool):
                    raise TaskmasterError(f"{where}.conversation_id", "missing, or not a string")
                messages = dialog_to_messages(dialog, where, result.stats)
            except TaskmasterError as err:
                _reject(result, err.where, cid, err.reason)
                continue
            meta = {"source": where, "scenario": dialog.get("scenario")}
            result.rows.append({"id": str(cid), "messages": [m.to_openai() for m in messages], "meta": meta})
            result.stats["assistant_turns"] += sum(1 for m in messages if m.role == "assistant")
            result.stats["assistant_text_turns"] += sum(1 for m in messages if m.role == "assistant" and m.content)
            result.stats["tool_calls"] += sum(len(m.tool_calls) for m in messages)
    return result


# --- reward judgements ---------------------------------------------------------------------


def _reward_turn(turn: Any, where: str, calls: list[ToolCall]) -> Message:
    """One reward-file turn ({role: agent|user|api, text|api|response}) as a Message."""
    if not isinstance(turn, dict):
        raise TaskmasterError(where, "turn is not an object")
    role = turn.get("role")
    if role == "user" and isinstance(turn.get("text"), str):
        return Message(role="user", content=turn["text"].strip())
    if role == "agent" and isinstance(turn.get("text"), str):
        return Message(role="assistant", content=turn["text"].strip())
    if role == "agent" and isinstance(turn.get("api"), dict):
        if len(turn["api"]) != 1:
            raise TaskmasterError(f"{where}.api", f"expected one call, got {len(turn['api'])}")
        ((fn, args),) = turn["api"].items()
        if not fn:
            raise TaskmasterError(f"{where}.api", "empty function name")
        if not isinstance(args, dict):
            raise TaskmasterError(f"{where}.api.{fn}", "arguments must be a JSON object")
        call = ToolCall(name=fn, arguments=_compact(args), id=f"call_{len(calls) + 1}")
        calls.append(call)
        return Message(role="assistant", tool_calls=(call,))
    if role == "api" and isinstance(turn.get("response"), dict) and len(turn["response"]) == 1:
        ((fn, value),) = turn["response"].items()
        if not calls or calls[-1].name != fn:
            raise TaskmasterError(f"{where}.response", f"response of {fn!r} without a matching call")
        return Message(role="tool", content=_compact(value), tool_call_id=calls[-1].id)
    raise TaskmasterError(where, f"unrecognised turn with role {role!r} and keys {sorted(turn)}")


def reward_row_to_judgement(row: dict[str, Any], where: str, stats: Counter) -> dict[str, Any]:
    """One reward row as {context, completion, label}; the leading greeting turn is dropped."""
    for key in ("conversation_id", "context", "generation", "reward"):
        if key not in row:
            raise TaskmasterError(f"{where}.{key}", "missing")
    if not isinstance(row["conversation_id"], (str, int)) or isinstance(row["conversation_id"], bool):
        raise TaskmasterError(f"{where}.conversation_id", "must be a string")
    context_turns = parse_json_value(row["context"], f"{where}.context", stats)
    generation = parse_json_value(row["generation"], f"{where}.generation", stats)
    if not isinstance(context_turns, list):
        raise TaskmasterError(f"{where}.context", "expected a JSON list of turns")
    calls: list[ToolCall] = []
    messages: list[Message] = []
    for k, turn in enumerate(context_turns):
        message = _reward_turn(turn, f"{where}.context[{k}]", calls)
        # The agent's fixed welcome line precedes the first user turn; a chat must start with
        # the user, and the line carries no order information.
        if not messages and message.role != "user":
            stats["leading_agent_turns_dropped"] += 1
            continue
        _append(messages, message)
    if not messages:
        raise TaskmasterError(f"{where}.context", "no user turn")
    completion = _reward_turn(generation, f"{where}.generation", calls)
    if completion.role != "assistant":
        raise TaskmasterError(f"{where}.generation", f"expected an agent turn, got {generation.get('role')!r}")
    if messages[-1].role == "assistant":
        raise TaskmasterError(
            f"{where}.context[{len(context_turns) - 1}]",
            "context ends with an agent turn, so the judged reply would be a second one in a row",
        )
    if row["reward"] not in (0, 1, 0.0, 1.0):
        raise TaskmasterError(f"{where}.reward", f"expected 0.0 or 1.0, got {row['reward']!r}")
    return {
        "conversation_id": row["conversation_id"],
        "context": [m.to_openai() for m in messages],
        "completion": completion.to_openai(),
        "label": bool(row["reward"]),
    }


def convert_rewards(path: str | Path) -> ConvertResult:
    """Convert every judged step in `path` (the Taskmaster-4 folder or its `reward/` folder)."""
    result = ConvertResult()
    for file in _json_files(Path(path), "reward"):
        for index, row in enumerate(_load_list(file)):
            result.n_read += 1
            where = f"{file.name}[{index}]"
            cid = row.get("conversation_id") if isinstance(row, dict) else None
            try:
                if isinstance(row, RowError):
                    raise TaskmasterError(where if row.field == "(row)" else f"{where}.{row.field}", row.reason)
                if not isinstance(row, dict):
                    raise TaskmasterError(where, "row is not an object")
                judgement = reward_row_to_judgement(row, where, result.stats)
            except TaskmasterError as err:
                _reject(result, err.where, cid, err.reason)
                continue
            result.rows.append({"id": f"{file.stem}-{index:04d}", "source": where, **judgement})
            result.stats["good" if judgement["label"] else "bad"] += 1
    result.stats["preference_pairs"] = len(preference_pairs(result.rows))
    return result


def context_key(context: list[dict[str, Any]]) -> str:
    """A key equal for equal contexts; tool-call ids are ignored since they are renumbered per row."""

    def strip(m: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in m.items() if k not in ("tool_call_id",)}
        if "tool_calls" in out:
            out["tool_calls"] = [c["function"] for c in out["tool_calls"]]
        return out

    return json.dumps([strip(m) for m in context], sort_keys=True, ensure_ascii=False)


def preference_pairs(rows: Iterable[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Every (good, bad) pair of judgement rows that share a context, for DPO."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[context_key(row["context"])].append(row)
    pairs = []
    for group in groups.values():
        good = [r for r in group if r["label"]]
        bad = [r for r in group if not r["label"]]
        pairs.extend((g, b) for g in good for b in bad)
    return pairs


def opening(row: dict[str, Any]) -> str:
    """The customer's first request in a judgement row: the same for every step of one dialogue."""
    first = next((m["content"] for m in row["context"] if m["role"] == "user"), "")
    return " ".join(first.lower().split())


def split_by_opening(rows: list[dict[str, Any]], held_fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) judgement rows, about `held_fraction` of the distinct openings held out.
    Every reward row has its own conversation id, yet many continue one dialogue (the good and the
    bad reply to one context, its later steps), so it is the opening request that groups them."""
    _, held_openings = grouped_split(sorted({opening(r) for r in rows}), None, seed, fraction=held_fraction)
    held = set(held_openings)
    return [r for r in rows if opening(r) not in held], [r for r in rows if opening(r) in held]


def write_result(result: ConvertResult, out: str | Path) -> Path | None:
    """Write kept rows to `out` and rejected ones to `<out stem>.rejected.jsonl` (if any)."""
    out = Path(out)
    write_jsonl(out, result.rows)
    rejected_path = out.with_name(out.name.removesuffix(".jsonl") + ".rejected.jsonl")
    if result.rejected:
        write_jsonl(rejected_path, [r.to_row() for r in result.rejected])
        return rejected_path
    rejected_path.unlink(missing_ok=True)
    return None
