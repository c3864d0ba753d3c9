"""Which dialogue act a reply performs (ask and which slot, confirm, inform, steer, closing, tool call)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tunelab.eval.behaviour.lexicon import DEFAULT, Lexicon
from tunelab.messages import Message, ToolCall

ACTS: tuple[str, ...] = ("ask", "confirm", "inform", "steer", "closing", "tool_call")
LABELS: tuple[str, ...] = ACTS + ("none",)


@dataclass(frozen=True)
class Act:
    """The act of one reply; `slots` in priority order (slots[0] is the one asked about)."""

    act: str
    slots: tuple[str, ...] = ()
    mentions: tuple[str, ...] = ()
    tool_calls: tuple[tuple[str, str], ...] = ()  # (name, canonical JSON arguments)
    tool_call_from_text: bool = False

    @property
    def slot(self) -> str | None:
        return self.slots[0] if self.slots else None


_TOOL_TAG = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def tool_calls_in_text(text: str) -> list[ToolCall]:
    """Tool calls a model wrote as text: `<tool_call>{...}</tool_call>` blocks or one bare JSON
    object with "name" and "arguments" (or "parameters"). Anything else gives []."""
    blobs = _TOOL_TAG.findall(text) or ([text.strip()] if text.strip().startswith("{") else [])
    calls = []
    for blob in blobs:
        try:
            obj = json.loads(blob)
        except json.JSONDecodeError:
            return []
        args = obj.get("arguments", obj.get("parameters", {})) if isinstance(obj, dict) else None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or args is None:
            return []
        calls.append(ToolCall(name=obj["name"], arguments=args if isinstance(args, str) else json.dumps(args)))
    return calls


def attempts_tool_call(text: str) -> bool:
    """Text that sets out to be a tool call (a `<tool_call>` tag, or a JSON object opening with
    "name") whether or not it parses: a broken call is a failed call, not prose, even where the
    words inside it read like a reply."""
    stripped = text.strip()
    return "<tool_call>" in text or bool(re.match(r'\{\s*"name"\s*:', stripped))


def _canonical_args(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments or "{}"), sort_keys=True, ensure_ascii=False)
    except json.JSONDecodeError:
        return arguments  # unparseable arguments only equal themselves


def _as_message(reply: Message | Mapping[str, Any] | str) -> Message:
    if isinstance(reply, Message):
        return reply
    if isinstance(reply, str):
        return Message(role="assistant", content=reply)
    calls = tuple(
        ToolCall(name=c["function"]["name"], arguments=c["function"].get("arguments") or "{}", id=c.get("id", ""))
        for c in reply.get("tool_calls") or ()
    )
    return Message(role="assistant", content=reply.get("content") or "", tool_calls=calls)


def normalise_text(text: str) -> str:
    """Lowercase, curly apostrophes straightened, whitespace collapsed: the form every pattern matches."""
    return re.sub(r"\s+", " ", text.lower().replace("’", "'")).strip()


def _slots(text: str, lexicon: Lexicon) -> tuple[str, ...]:
    """Slots a text refers to, specific ones first. Cues ("what size") are searched in the text
    as is; values ("hot", "oat") with menu item names masked, so that "hot chocolate" is not a
    temperature question."""
    masked = lexicon.items.sub(" ", text)
    found = [
        (slot, generic)
        for slot, cues, values, generic in lexicon.slot_patterns
        if (cues and cues.search(text)) or (values and values.search(masked))
    ]
    specific = tuple(slot for slot, generic in found if not generic)
    return specific or tuple(slot for slot, _ in found)


def split_sentences(text: str) -> list[str]:
    """The text's sentences, each with its closing punctuation (a trailing fragment counts too)."""
    return [s.strip() for s in re.findall(r"[^.?!]+[.?!]*", text) if s.strip()]


def question_sentences(text: str, lexicon: Lexicon) -> list[str]:
    """The sentences that ask: ending in '?' or opening like a question ("Would you like ...")."""
    sentences = split_sentences(text)
    return [s for s in sentences if s.endswith("?") or lexicon.question_start.search(s.lstrip(" ,-"))]


def classify(reply: Message | Mapping[str, Any] | str, lexicon: Lexicon | None = None) -> Act:
    """The dialogue act of an assistant reply (a Message, an OpenAI message dict, or text)."""
    lexicon = lexicon or DEFAULT
    message = _as_message(reply)
    from_text = False
    calls = list(message.tool_calls)
    if not calls and message.content:
        calls, from_text = tool_calls_in_text(message.content), True
    if calls or (from_text and attempts_tool_call(message.content)):  # a broken call has no calls
        return Act(
            "tool_call",
            tool_calls=tuple((c.name, _canonical_args(c.arguments)) for c in calls),
            tool_call_from_text=from_text,
        )
    text = normalise_text(message.content)
    if not text:
        return Act("none")
    about_order = lexicon.ignore.sub(" ", text)  # only for mentions: "coffee bar" matters to closing
    mentions = tuple(
        sorted(
            set(lexicon.items.findall(about_order)) | set(lexicon.values.findall(lexicon.items.sub(" ", about_order)))
        )
    )
    for act in ("steer", "confirm", "closing"):
        if any(p.search(text) for p in lexicon.acts[act]):
            return Act(act, mentions=mentions)
    questions = question_sentences(text, lexicon)
    if questions:
        # An item offered without a slot word ("Would you like a mocha?") is a drink question.
        slots = _slots(" ".join(questions), lexicon) or _slots(text, lexicon) or (("drink",) if mentions else ())
        return Act("ask", slots=slots, mentions=mentions)
    return Act("inform", mentions=mentions)


def reply_form(reply: Message | Mapping[str, Any] | str, lexicon: Lexicon | None = None) -> str:
    """The coarse act of a reply where a domain's acts are not all in the lexicon (Taskmaster-4's
    text turns): "question" if any sentence asks (as `classify` finds questions), else
    "statement"; "tool_call" (a broken one too) or "none" for those."""
    act = classify(reply, lexicon)
    if act.act in ("tool_call", "none"):
        return act.act
    text = normalise_text(_as_message(reply).content)
    return "question" if question_sentences(text, lexicon or DEFAULT) else "statement"


def missing_slots(context: Sequence[Mapping[str, Any]], lexicon: Lexicon | None = None) -> tuple[str, ...]:
    """Slots the last tool result lists as `unfilled_attributes` (Taskmaster's add_order_item)."""
    lexicon = lexicon or DEFAULT
    for message in reversed(context):
        if message.get("role") != "tool":
            continue
        try:
            result = json.loads(message.get("content") or "")
        except json.JSONDecodeError:
            return ()
        unfilled = result.get("unfilled_attributes", []) if isinstance(result, dict) else []
        ids = [str(a.get("attribute_id", "")).strip().lower() for a in unfilled if isinstance(a, dict)]
        return tuple(lexicon.data["attributes"].get(i, i) for i in ids)
    return ()
