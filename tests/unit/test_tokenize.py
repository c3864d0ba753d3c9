"""The loss mask, pinned per chat template: exactly which text carries loss."""

from __future__ import annotations

import copy

import pytest

from tunelab.data.tokenize import (
    IGNORE,
    TemplateError,
    ensure_template,
    parse_tool_calls,
    render_tool_calls,
    target_spans,
    tokenize_conversation,
)
from tunelab.messages import Conversation, Message, ToolCall

LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}"
    "{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\n' + (first if loop.first else '') + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)

THREE_TURNS = Conversation(
    id="t",
    messages=(
        Message("system", "You take cafe orders."),
        Message("user", "Hi"),
        Message("assistant", "Hello! What would you like?"),
        Message("user", "A latte"),
        Message("assistant", "What size?"),
        Message("user", "Large"),
        Message("assistant", "One large latte. Anything else?"),
    ),
)
REPLIES = ["Hello! What would you like?", "What size?", "One large latte. Anything else?"]


@pytest.fixture(scope="module")
def smol_tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return ensure_template(AutoTokenizer.from_pretrained(smol_dir))


MARKERS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<start_of_turn>", "<end_of_turn>"]


def with_template(tokenizer, template):
    """SmolLM2's tokenizer with another family's template; that family's markers become special
    tokens, as they are in the real Llama-3 and Gemma tokenizers."""
    other = copy.deepcopy(tokenizer)
    other.add_special_tokens({"additional_special_tokens": MARKERS})
    other.chat_template = template
    return ensure_template(other)


@pytest.mark.parametrize(
    "template, end_of_turn",
    [
        ("chatml", "<|im_end|>"),
        (LLAMA3_TEMPLATE, "<|eot_id|>"),
        (GEMMA_TEMPLATE, "<end_of_turn>"),
        (None, "<|im_end|>"),
    ],
    ids=["chatml-smollm2", "llama3", "gemma", "no-template-default"],
)
def test_every_assistant_turn_and_only_those_carry_loss(smol_tokenizer, template, end_of_turn):
    tokenizer = smol_tokenizer if template == "chatml" else with_template(smol_tokenizer, template)
    example = tokenize_conversation(tokenizer, THREE_TURNS)
    assert target_spans(tokenizer, example) == [reply + end_of_turn for reply in REPLIES]
    # Nothing of the system prompt or the user turns is a target.
    context = tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label == IGNORE])
    assert "You take cafe orders." in context and "A latte" in context and "Large" in context
    assert not any(reply in context for reply in REPLIES)


def test_labels_equal_input_ids_where_they_are_targets(smol_tokenizer):
    example = tokenize_conversation(smol_tokenizer, THREE_TURNS)
    assert len(example.labels) == len(example.input_ids)
    assert all(label in (IGNORE, token) for token, label in zip(example.input_ids, example.labels))


def test_weight_zero_turn_is_context_only(smol_tokenizer):
    msgs = list(THREE_TURNS.messages)
    msgs[4] = Message("assistant", "What size?", weight=0)
    example = tokenize_conversation(smol_tokenizer, Conversation(id="w", messages=tuple(msgs)))
    assert target_spans(smol_tokenizer, example) == [
        "Hello! What would you like?<|im_end|>",
        "One large latte. Anything else?<|im_end|>",
    ]


def test_tool_calls_are_targets_and_tool_results_are_not(smol_tokenizer):
    conv = Conversation(
        id="tools",
        messages=(
            Message("user", "Add a latte"),
            Message("assistant", "", tool_calls=(ToolCall("add_item", '{"item": "latte"}', "c1"),)),
            Message("tool", '{"unfilled": ["size"]}', tool_call_id="c1"),
            Message("assistant", "What size?"),
        ),
    )
    example = tokenize_conversation(smol_tokenizer, conv)
    spans = target_spans(smol_tokenizer, example)
    assert spans == [
        '<tool_call>{"name": "add_item", "arguments": {"item": "latte"}}</tool_call><|im_end|>',
        "What size?<|im_end|>",
    ]
    text, calls = parse_tool_calls(spans[0].replace("<|im_end|>", ""))
    assert text == "" and calls[0].name == "add_item" and calls[0].args() == {"item": "latte"}


def test_render_and_parse_tool_calls_round_trip():
    calls = (ToolCall("a", '{"x": 1}'), ToolCall("b", '{"y": "z"}'))
    text, parsed = parse_tool_calls("Sure.\n" + render_tool_calls(calls))
    assert text == "Sure." and [(c.name, c.args()) for c in parsed] == [("a", {"x": 1}), ("b", {"y": "z"})]


def test_truncation_drops_oldest_exchange_and_keeps_whole_targets(smol_tokenizer):
    full = tokenize_conversation(smol_tokenizer, THREE_TURNS)
    example = tokenize_conversation(smol_tokenizer, THREE_TURNS, max_length=len(full.input_ids) - 1)
    assert example is not None and len(example.input_ids) < len(full.input_ids)
    assert example.dropped_turns == 1
    spans = target_spans(smol_tokenizer, example)
    assert spans == ["What size?<|im_end|>", "One large latte. Anything else?<|im_end|>"]
    assert "You take cafe orders." in smol_tokenizer.decode(example.input_ids)  # system prompt kept


def test_conversation_that_cannot_fit_is_dropped_not_cut(smol_tokenizer):
    assert tokenize_conversation(smol_tokenizer, THREE_TURNS, max_length=20) is None


def test_template_that_rewrites_history_is_refused(smol_tokenizer):
    # Shows only the last assistant message in full: earlier turns change once later ones exist.
    rewriting = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}{{ '<a>...</a>' }}"
        "{% else %}{{ '<' + m['role'] + '>' + m['content'] + '</>' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}"
    )
    with pytest.raises(TemplateError, match="cannot be located"):
        tokenize_conversation(with_template(smol_tokenizer, rewriting), THREE_TURNS)
