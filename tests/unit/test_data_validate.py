"""Bad input gets a message naming file, line and field; nothing is lost (read = kept + rejected)."""

from __future__ import annotations

import json

import pytest

from tunelab.data.formats import read_conversations
from tunelab.data.split import dedupe, split
from tunelab.data.tokenize import ensure_template
from tunelab.data.validate import validate_file
from tunelab.rundir import read_jsonl

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


@pytest.fixture(scope="module")
def tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return ensure_template(AutoTokenizer.from_pretrained(smol_dir))


def write_lines(path, lines):
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    path.write_bytes(data)
    return path


BAD_ROWS = {
    "invalid_json": ('{"messages": [', "(row)", "invalid JSON"),
    "unknown_role": (
        json.dumps({"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}),
        "messages[0].role",
        "unknown role 'robot'",
    ),
    "empty_content": (
        json.dumps({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]}),
        "messages[0].content",
        "empty content",
    ),
    "no_assistant": (json.dumps({"messages": [{"role": "user", "content": "Hi"}]}), "messages", "no assistant turn"),
    "wrong_order": (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "user", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            }
        ),
        "messages[1].role",
        "wrong role order: user after user",
    ),
    "system_late": (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {"role": "system", "content": "b"},
                    {"role": "assistant", "content": "c"},
                ]
            }
        ),
        "messages[1].role",
        "system message may only come first",
    ),
    "invalid_utf8": (b'{"messages": [{"role": "user", "content": "caf\xe9"}]}', "(row)", "invalid UTF-8"),
    "missing_key": (
        json.dumps({"messages": [{"content": "Hi"}, {"role": "assistant", "content": "y"}]}),
        "messages[0].role",
        "missing key",
    ),
    "missing_messages": (json.dumps({"prompt": "x", "messages_": []}), "messages", "missing key"),
    "bad_tool_args": (
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "a"},
                    {
                        "role": "assistant",
                        "content": "",
                        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{nope"}}],
                    },
                ]
            }
        ),
        "messages[1].tool_calls[0].function.arguments",
        "not valid JSON",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_bad_row_is_named_and_rejected(tmp_path, tokenizer, case):
    raw, field, reason = BAD_ROWS[case]
    path = write_lines(tmp_path / "train.jsonl", [json.dumps(GOOD), raw, json.dumps(GOOD)])
    report = validate_file(path, tokenizer, max_length=None, out_dir=tmp_path / "out")
    assert (report["read"], report["kept"], report["rejected"]) == (3, 2, 1)
    assert len(report["errors"]) == 1
    message = report["errors"][0]
    assert message.startswith(f"{path}:2: {field}: ")
    assert reason in message
    rejected = read_jsonl(report["rejected_file"])
    assert len(rejected) == 1 and rejected[0]["source"] == f"{path}:2" and reason in rejected[0]["reason"]


def test_too_long_row_is_rejected_with_the_limit(tmp_path, tokenizer):
    long_row = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}
    path = write_lines(tmp_path / "train.jsonl", [json.dumps(GOOD), json.dumps(long_row)])
    report = validate_file(path, tokenizer, max_length=64, out_dir=tmp_path)
    assert (report["read"], report["kept"], report["rejected"]) == (2, 1, 1)
    assert report["errors"][0].startswith(f"{path}:2: messages: longer than max length 64")


def test_token_statistics(tmp_path, tokenizer):
    path = write_lines(tmp_path / "train.jsonl", [json.dumps(GOOD)] * 3)
    stats = validate_file(path, tokenizer, max_length=None)["stats"]
    assert stats["examples"] == 3
    assert stats["target_tokens"]["min"] == len(tokenizer("Hello!<|im_end|>", add_special_tokens=False)["input_ids"])
    assert stats["tokens_per_epoch"] == 3 * stats["tokens"]["max"]
    assert sum(b["count"] for b in stats["histogram_tokens"]) == 3


def test_sharegpt_and_alpaca_are_detected(tmp_path):
    share = write_lines(
        tmp_path / "s.jsonl",
        [json.dumps({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]})],
    )
    alpaca = write_lines(tmp_path / "a.jsonl", [json.dumps({"instruction": "Add", "input": "2 and 2", "output": "4"})])
    s, a = read_conversations(share), read_conversations(alpaca)
    assert s.fmt == "sharegpt" and [m.role for m in s.conversations[0].messages] == ["user", "assistant"]
    assert a.fmt == "alpaca" and a.conversations[0].messages[0].content == "Add\n\n2 and 2"
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"conversations": [{"from": "alien", "value": "x"}]})])
    assert read_conversations(bad).rejected[0].field == "conversations[0].from"


def test_openai_tool_calls_and_weights_are_read(tmp_path):
    row = {
        "messages": [
            {"role": "user", "content": "add a latte"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"item": "latte"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            {"role": "assistant", "content": "Done.", "weight": 0},
            {"role": "user", "content": "thanks"},
            {"role": "assistant", "content": "Bye."},
        ]
    }
    conv = read_conversations(write_lines(tmp_path / "t.jsonl", [json.dumps(row)])).conversations[0]
    assert conv.messages[1].tool_calls[0].args() == {"item": "latte"}
    assert conv.target_turns() == [1, 5]


def test_split_is_by_conversation_seeded_and_deduplicated(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": f"q{i % 30}"}, {"role": "assistant", "content": "a"}]}
        for i in range(40)
    ]
    convs = read_conversations(write_lines(tmp_path / "d.jsonl", [json.dumps(r) for r in rows])).conversations
    unique, removed = dedupe(convs)
    assert (len(unique), removed) == (30, 10)
    train, val = split(unique, 0.2, seed=3)
    again_train, again_val = split(unique, 0.2, seed=3)
    assert [c.id for c in val] == [c.id for c in again_val] and len(val) == 6
    assert not {c.messages for c in train} & {c.messages for c in val}
