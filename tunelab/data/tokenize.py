"""Conversations -> token ids + labels, with loss on every assistant turn and nothing else.

How the mask is found, for any chat template and without `{% generation %}` markers: the
conversation is rendered once with the model's own template; for each target assistant turn i
we also render messages[:i] with the generation prompt, and messages[:i+1]. Both must be
prefixes of the full rendering (we check, and refuse templates for which they are not). The
target is the text between them: the reply and the template's end-of-turn token, without the
whitespace the template puts between turns. The full text is tokenized once and a token is a
target when its first character falls inside a target span.

Tool calls: a template that renders `tool_calls` gets them natively. For one that ignores them
(SmolLM2's ChatML does), the calls are written into the assistant text as
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` lines (the Hermes/Qwen convention),
which `parse_tool_calls` reads back from generated text. Tool results go in as the `tool`
role, or as a user turn starting "Tool result:" for templates that reject that role.

Truncation policy (max_length): the oldest exchanges are dropped, whole, from just after the
system prompt until the conversation fits; the targets they held are lost and counted in
`Example.dropped_turns`. If even the last exchange does not fit, the conversation is dropped
and counted: a target is never cut, so the model always sees each reply end.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tunelab.messages import Conversation, Example, Message, ToolCall

IGNORE = -100

# Used for tokenizers that ship no chat template; plain text roles, the tokenizer's EOS ends a turn.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '### ' + message['role'] | capitalize + ':\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Assistant:\n' }}{% endif %}"
)
TOOL_CALL_RE = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.DOTALL)


class TemplateError(RuntimeError):
    """The chat template cannot be masked reliably (it rewrites history as turns are added)."""


@dataclass(frozen=True)
class TemplateInfo:
    native_tool_calls: bool
    tool_role: bool


def ensure_template(tokenizer: Any) -> Any:
    """Give a tokenizer without a chat template the documented default one; set a pad token."""
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = DEFAULT_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _probe(tokenizer: Any, messages: list[dict[str, Any]]) -> str | None:
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # jinja raise_exception() in templates that reject a role
        return None


def template_info(tokenizer: Any) -> TemplateInfo:
    call = {"type": "function", "function": {"name": "zz_probe_fn", "arguments": {"k": 1}}}
    with_call = _probe(
        tokenizer, [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [call]}]
    )
    with_tool = _probe(
        tokenizer,
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "x"},
            {"role": "tool", "content": "zz_probe_result"},
            {"role": "assistant", "content": "y"},
        ],
    )
    return TemplateInfo(
        native_tool_calls=bool(with_call and "zz_probe_fn" in with_call),
        tool_role=bool(with_tool and "zz_probe_result" in with_tool),
    )


def render_tool_calls(calls: tuple[ToolCall, ...]) -> str:
    return "\n".join(
        "<tool_call>" + json.dumps({"name": c.name, "arguments": c.args()}, ensure_ascii=False) + "</tool_call>"
        for c in calls
    )


def parse_tool_calls(text: str) -> tuple[str, list[ToolCall]]:
    """Split generated text into (remaining text, tool calls) using the <tool_call> convention."""
    calls = []
    for i, match in enumerate(TOOL_CALL_RE.finditer(text)):
        try:
            obj = json.loads(match.group(1))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            args = obj.get("arguments", {})
            calls.append(ToolCall(name=obj["name"], arguments=json.dumps(args, ensure_ascii=False), id=f"call_{i}"))
    return TOOL_CALL_RE.sub("", text).strip(), calls


def to_template_messages(messages: tuple[Message, ...] | list[Message], info: TemplateInfo) -> list[dict[str, Any]]:
    """Our messages as the dicts `apply_chat_template` expects, adapted to what the template can show."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            if info.native_tool_calls:
                calls = [
                    {"type": "function", "id": c.id, "function": {"name": c.name, "arguments": c.args()}}
                    for c in m.tool_calls
                ]
                out.append({"role": "assistant", "content": m.content, "tool_calls": calls})
            else:
                text = "\n".join(part for part in (m.content.strip(), render_tool_calls(m.tool_calls)) if part)
                out.append({"role": "assistant", "content": text})
        elif m.role == "tool" and not info.tool_role:
            if out and out[-1]["role"] == "user" and out[-1]["content"].startswith("Tool result:"):
                out[-1]["content"] += "\n" + m.content  # several results of one call batch become one turn
            else:
                out.append({"role": "user", "content": "Tool result: " + m.content})
        else:
            entry: dict[str, Any] = {"role": m.role, "content": m.content}
            if m.tool_call_id:
                entry["tool_call_id"] = m.tool_call_id
            out.append(entry)
    return out


def render_with_spans(
    tokenizer: Any, conv: Conversation, info: TemplateInfo | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its target assistant turns."""
    info = info or template_info(tokenizer)
    msgs = conv.messages
    full = tokenizer.apply_chat_template(to_template_messages(msgs, info), tokenize=False)
    spans = []
    for i in conv.target_turns():
        before = tokenizer.apply_chat_template(
            to_template_messages(msgs[:i], info), tokenize=False, add_generation_prompt=True
        )
        upto = tokenizer.apply_chat_template(to_template_messages(msgs[: i + 1], info), tokenize=False)
        if not full.startswith(before) or not full.startswith(upto) or len(upto) <= len(before):
            raise TemplateError(
                f"{conv.source or conv.id}: the chat template renders earlier turns differently once later turns are added, "
                "so the assistant tokens cannot be located; use a template without history rewriting"
            )
        end = len(upto.rstrip())  # the newline(s) between turns belong to the template, not the reply
        spans.append((len(before), end))
    return full, spans


def _encode(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, labels = enc["input_ids"], []
    for token, (start, _end) in zip(ids, enc["offset_mapping"]):
        inside = any(s <= start < e for s, e in spans)
        labels.append(token if inside else IGNORE)
    return ids, labels


def drop_oldest_exchange(msgs: tuple[Message, ...]) -> tuple[tuple[Message, ...], int]:
    """Remove the first user turn and everything up to the next user turn (system prompt kept)."""
    head = msgs[:1] if msgs and msgs[0].role == "system" else ()
    body = msgs[len(head) :]
    nxt = next((j for j in range(1, len(body)) if body[j].role == "user"), None)
    if nxt is None:
        return msgs, 0
    dropped = sum(1 for m in body[:nxt] if m.is_target)
    return head + body[nxt:], dropped


def tokenize_conversation(
    tokenizer: Any, conv: Conversation, max_length: int | None = None, info: TemplateInfo | None = None
) -> Example | None:
    """Tokenize with assistant-only labels; None when the conversation cannot fit (see module doc)."""
    info = info or template_info(tokenizer)
    msgs, dropped = conv.messages, 0
    while True:
        current = Conversation(id=conv.id, messages=msgs, source=conv.source)
        text, spans = render_with_spans(tokenizer, current, info)
        ids, labels = _encode(tokenizer, text, spans)
        if max_length is None or len(ids) <= max_length:
            break
        msgs, lost = drop_oldest_exchange(msgs)
        if lost == 0 and len(msgs) == len(current.messages):
            return None
        dropped += lost
    if not any(label != IGNORE for label in labels):
        return None
    return Example(input_ids=ids, labels=labels, conversation_id=conv.id, dropped_turns=dropped)


def target_spans(tokenizer: Any, example: Example) -> list[str]:
    """Decoded text of each contiguous run of target tokens, in order (what `data inspect --json` shows)."""
    runs: list[list[int]] = []
    previous = False
    for token, label in zip(example.input_ids, example.labels):
        if label != IGNORE:
            if not previous:
                runs.append([])
            runs[-1].append(token)
        previous = label != IGNORE
    return [tokenizer.decode(run) for run in runs]
