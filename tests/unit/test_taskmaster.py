"""Taskmaster-4 import: dialogues -> OpenAI chat rows, reward rows -> judgement set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tunelab.cli.data import register
from tunelab.data.formats import parse_openai, read_conversations
from tunelab.data.structure import check_conversation
from tunelab.data.taskmaster import (
    context_key,
    convert_dialogs,
    convert_rewards,
    preference_pairs,
    write_result,
)
from tunelab.messages import Conversation
from tunelab.rundir import read_jsonl

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "taskmaster4"


def _call(n: int, fn: str, request: str | None, response: str) -> list[dict]:
    rows = [{"name": "api_call", "value": fn, "context": f"api_call_{n}"}]
    if request is not None:
        rows.append({"name": "request", "value": request, "context": f"api_call_{n}"})
    rows += [
        {"name": "api_response", "value": fn, "context": f"api_response_{n}"},
        {"name": "response", "value": response, "context": f"api_response_{n}"},
    ]
    return rows


def _utt(i: int, speaker: str, text: str, annotations: list[dict] | None = None) -> dict:
    return {"index": i, "speaker": speaker, "text": text, "segments": [], "annotations": annotations or []}


def _dialog(cid: str, utterances: list[dict]) -> dict:
    return {
        "conversation_id": cid,
        "vertical": "Coffee",
        "scenario": "test",
        "instructions": None,
        "utterances": utterances,
    }


GOOD = _dialog(
    "good",
    [
        _utt(
            0,
            "user",
            "one latte please",
            _call(0, "get_menu_items", '{"query": "latte"}', '{"menu_items":[{"menu_item_id":"latte-1"}]}')
            + _call(1, "add_order_item", '{"menu_item_id": "latte-1", "quantity": "1"}', '{"order_id": "7"}'),
        ),
        _utt(1, "assistant", "Is the order correct?"),
        _utt(2, "user", "yes"),
        _utt(3, "user", "thanks", _call(2, "finish_order", '{"order_id": "7"}', '{"success": true}')),
        _utt(4, "assistant", "It will be ready soon."),
    ],
)
# The real files contain ""id"" for "id" and calls without a request (show_menu).
REPAIRABLE = _dialog(
    "repairable",
    [
        _utt(
            0,
            "user",
            "menu?",
            _call(0, "show_menu", None, '{"success":true}')
            + _call(1, "get_menu_items", '{"query": "mocha"}', '{"menu_items":[{"menu_item_id":""mocha-1""}]}'),
        ),
        _utt(1, "assistant", "Here it is."),
    ],
)
BROKEN_JSON = _dialog(
    "broken",
    [
        _utt(0, "user", "hi", _call(0, "get_order_details", '{"order_id": "1"}', '{"name": "two of clubs""}')),
        _utt(1, "assistant", "Hello"),
    ],
)
BAD_SPEAKER = _dialog("speaker", [_utt(0, "user", "hi"), _utt(1, "barista", "hello")])
NO_ASSISTANT = _dialog("lonely", [_utt(0, "user", "hello?")])


@pytest.fixture()
def tm_dir(tmp_path: Path) -> Path:
    (tmp_path / "dialogs").mkdir()
    (tmp_path / "reward").mkdir()
    dialogs = [GOOD, REPAIRABLE, BROKEN_JSON, BAD_SPEAKER, NO_ASSISTANT]
    (tmp_path / "dialogs" / "data_00.json").write_text(json.dumps(dialogs))
    welcome = {"role": "agent", "text": "Welcome to the Coffee Bar. What can I get for you?"}
    user = {"role": "user", "text": "an espresso please"}
    call = {"role": "agent", "api": {"get_menu_items": {"query": "espresso"}}}
    result = {"role": "api", "response": {"get_menu_items": {"items": [{"menu_item_id": "espresso-1"}]}}}
    context = json.dumps([welcome, user, call, result])
    good = json.dumps({"role": "agent", "api": {"add_order_item": {"menu_item_id": "espresso-1", "quantity": "1"}}})
    bad = json.dumps({"role": "agent", "api": {"add_order_item": {"menu_item_id": "cortado-1", "quantity": "1"}}})
    invalid = json.dumps(
        [welcome, user, {"role": "agent", "api": {"": {}}}, {"role": "api", "response": {"invalid_intent": {}}}]
    )
    rows = [
        {"conversation_id": "a", "context": context, "generation": good, "reward": 1.0},
        {"conversation_id": "b", "context": context, "generation": bad, "reward": 0.0},
        {
            "conversation_id": "c",
            "context": json.dumps([welcome, user]),
            "generation": json.dumps({"role": "agent", "text": "Sure, how many shots?"}),
            "reward": 1.0,
        },
        {"conversation_id": "d", "context": invalid, "generation": good, "reward": 1.0},
    ]
    (tmp_path / "reward" / "reward_00.json").write_text(json.dumps(rows))
    return tmp_path


def test_dialog_calls_become_tool_calls_in_order(tm_dir: Path) -> None:
    result = convert_dialogs(tm_dir)
    row = next(r for r in result.rows if r["id"] == "good")
    roles = [m["role"] for m in row["messages"]]
    assert roles == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    calls = [m["tool_calls"][0] for m in row["messages"] if m.get("tool_calls")]
    assert [c["function"]["name"] for c in calls] == ["get_menu_items", "add_order_item", "finish_order"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"menu_item_id": "latte-1", "quantity": "1"}
    # each tool result answers the call just before it
    for i, m in enumerate(row["messages"]):
        if m["role"] == "tool":
            assert m["tool_call_id"] == row["messages"][i - 1]["tool_calls"][0]["id"]
    # the two consecutive user utterances became one user message
    assert row["messages"][6]["content"] == "yes\nthanks"


def test_dialog_rejections_name_file_index_and_field(tm_dir: Path) -> None:
    result = convert_dialogs(tm_dir)
    assert result.n_read == 5 and len(result.rows) + len(result.rejected) == result.n_read
    assert {r["id"] for r in result.rows} == {"good", "repairable"}
    by_id = {r.conversation_id: r for r in result.rejected}
    assert by_id["broken"].source == "data_00.json[2]"
    assert by_id["broken"].field == "utterances[0].annotations[api_call_0].response"
    assert "invalid JSON" in by_id["broken"].reason
    assert by_id["speaker"].field == "utterances[1].speaker"
    assert "no assistant turn" in by_id["lonely"].reason


def test_repairs_and_argumentless_calls_are_counted(tm_dir: Path) -> None:
    result = convert_dialogs(tm_dir)
    row = next(r for r in result.rows if r["id"] == "repairable")
    assert row["messages"][1]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert json.loads(row["messages"][4]["content"]) == {"menu_items": [{"menu_item_id": "mocha-1"}]}
    assert result.stats["json_repaired"] == 1 and result.stats["calls_without_request"] == 1


def test_output_passes_the_openai_reader(tm_dir: Path, tmp_path: Path) -> None:
    result = convert_dialogs(tm_dir)
    out = tmp_path / "out" / "tm.jsonl"
    rejected_path = write_result(result, out)
    read = read_conversations(out)
    assert read.rejected == [] and len(read.conversations) == 2
    assert rejected_path == out.with_name("tm.rejected.jsonl")
    assert [r["conversation_id"] for r in read_jsonl(rejected_path)] == ["broken", "speaker", "lonely"]


def test_rewards_become_judgements_and_pairs(tm_dir: Path) -> None:
    result = convert_rewards(tm_dir)
    assert result.n_read == 4 and len(result.rows) == 3
    assert result.rejected[0].field == "context[2].api" and "empty function name" in result.rejected[0].reason
    first = result.rows[0]
    # the welcome line is dropped so the context starts with the user
    assert [m["role"] for m in first["context"]] == ["user", "assistant", "tool"]
    assert first["context"][2]["tool_call_id"] == first["context"][1]["tool_calls"][0]["id"]
    assert first["completion"]["tool_calls"][0]["function"]["name"] == "add_order_item"
    assert [r["label"] for r in result.rows] == [True, False, True]
    assert result.rows[2]["completion"] == {"role": "assistant", "content": "Sure, how many shots?"}
    pairs = preference_pairs(result.rows)
    assert [(g["conversation_id"], b["conversation_id"]) for g, b in pairs] == [("a", "b")]
    assert context_key(result.rows[0]["context"]) != context_key(result.rows[2]["context"])
    for row in result.rows:
        conv = Conversation(
            id=row["id"], messages=tuple(parse_openai({"messages": row["context"] + [row["completion"]]}))
        )
        assert check_conversation(conv) == []


def test_cli_writes_both_files(tm_dir: Path, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out, reward_out = tmp_path / "d.jsonl", tmp_path / "r.jsonl"
    res = CliRunner().invoke(
        app, ["data", "import", "taskmaster", str(tm_dir / "dialogs"), "-o", str(out), "--reward-out", str(reward_out)]
    )
    assert res.exit_code == 0, res.output
    assert "read 5, kept 2, rejected 3" in res.output and "read 4, kept 3, rejected 1" in res.output
    assert len(read_jsonl(out)) == 2 and len(read_jsonl(reward_out)) == 3
    assert (tmp_path / "r.rejected.jsonl").exists()


@pytest.mark.skipif(not REAL.is_dir(), reason="Taskmaster-4 data not present")
def test_real_taskmaster_file_converts_cleanly(tmp_path: Path) -> None:
    (tmp_path / "dialogs").mkdir()
    (tmp_path / "reward").mkdir()
    (tmp_path / "dialogs" / "data_00.json").symlink_to(REAL / "dialogs" / "data_00.json")
    (tmp_path / "reward" / "reward_00.json").symlink_to(REAL / "reward" / "reward_00.json")
    dialogs = convert_dialogs(tmp_path)
    assert dialogs.n_read == 500 and len(dialogs.rows) == 500  # data_00's doubled quotes are repaired
    write_result(dialogs, tmp_path / "d.jsonl")
    read = read_conversations(tmp_path / "d.jsonl")
    assert read.rejected == [] and len(read.conversations) == 500
    assert any(
        c.tool_calls[0].name == "finish_order" for conv in read.conversations for c in conv.messages if c.tool_calls
    )
    rewards = convert_rewards(tmp_path)
    assert rewards.n_read == 500 and len(rewards.rows) + len(rewards.rejected) == 500
    assert all(r.reason == "empty function name" for r in rewards.rejected)
    assert {r["label"] for r in rewards.rows} == {True, False} and preference_pairs(rewards.rows)
