"""Structural checks on a conversation: role order, empty content, a target to learn from.

The rules, in the order they are checked:
- a system message may only come first;
- the first non-system message is from the user;
- a user message follows the system prompt, an assistant message or a tool result;
- an assistant message follows a user message or a tool result;
- a tool message follows an assistant message that made tool calls, or another tool message;
- content may be empty only on an assistant message that makes tool calls;
- at least one assistant message carries loss (weight is not 0).
"""

from __future__ import annotations

from tunelab.messages import Conversation

ALLOWED_BEFORE = {
    "user": {None, "system", "assistant", "tool"},
    "assistant": {"user", "tool"},
    "tool": {"assistant", "tool"},
}


def check_conversation(conv: Conversation) -> list[tuple[str, str]]:
    """(field, reason) for each problem; empty when the conversation is usable."""
    problems: list[tuple[str, str]] = []
    msgs = conv.messages
    if not msgs:
        return [("messages", "empty conversation")]
    previous: str | None = None
    for i, m in enumerate(msgs):
        where = f"messages[{i}]"
        if m.role == "system":
            if i != 0:
                problems.append((f"{where}.role", "wrong role order: a system message may only come first"))
        elif previous not in ALLOWED_BEFORE[m.role]:
            after = previous or "the start"
            problems.append((f"{where}.role", f"wrong role order: {m.role} after {after}"))
        if m.role == "tool" and previous == "assistant" and not msgs[i - 1].tool_calls:
            problems.append(
                (f"{where}.role", "wrong role order: tool result after an assistant message without tool_calls")
            )
        if not m.content.strip() and not (m.role == "assistant" and m.tool_calls):
            problems.append((f"{where}.content", "empty content"))
        previous = m.role
    if not any(m.is_target for m in msgs):
        problems.append(("messages", "no assistant turn to learn from"))
    return problems
