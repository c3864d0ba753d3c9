"""SFT/KTO/DPO sets and statistics from one log; the kto and dpo recipes on a tiny model."""

from __future__ import annotations

import csv
import json
import os

import pytest

from tunelab.data.log_sets import dpo_pairs, kto_rows, sft_rows, statistics, write_sets
from tunelab.data.logs import LogRecord


def rec(i: str, question: str, answer: str, label: bool, comment: str = "", role: str = "student") -> LogRecord:
    return LogRecord(
        id=i, question=question, answer=answer, label=label, tags={"role": role}, contexts=("ctx",), comment=comment
    )


RECORDS = [
    rec("1", "Q1", "good one", True),
    rec("2", "Q1", "bad one", False, "Too long."),
    rec("3", "Q1", "another bad", False, "too long"),
    rec("4", "Q2", "good two", True, role="staff"),
    rec("5", "Q1", "bad staff", False, "wrong language", role="staff"),  # same question, other tags: other prompt
]


def test_sft_kto_and_dpo_sets():
    sft = sft_rows(RECORDS)
    assert [r["messages"][-1]["content"] for r in sft] == ["good one", "good two"]
    kto = kto_rows(RECORDS)
    assert [r["label"] for r in kto] == [True, False, False, True, False]
    assert kto[0]["prompt"][0]["role"] == "user" and kto[0]["completion"] == [
        {"role": "assistant", "content": "good one"}
    ]
    pairs = dpo_pairs(RECORDS)
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [
        ("good one", "bad one"),
        ("good one", "another bad"),
    ]
    assert all("role=student" in p["prompt"][0]["content"] for p in pairs)


def test_statistics_by_label_tag_and_comment_theme(tmp_path):
    stats = statistics(RECORDS)
    assert stats["by_label"] == {"good": 2, "bad": 3}
    assert stats["by_tag"]["role"] == {"staff": {"good": 1, "bad": 1}, "student": {"good": 1, "bad": 2}}
    assert stats["comment_themes"][0] == {"comment": "too long", "count": 2}
    counts = write_sets(RECORDS, tmp_path)
    assert (counts["sft"], counts["kto"], counts["dpo"]) == (2, 5, 2)
    assert len((tmp_path / "dpo.jsonl").read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["kto", "dpo"])
def test_preference_recipe_trains_and_reloads(tmp_path, tiny_model_dir, recipe):
    from tunelab import rundir
    from tunelab.config import load
    from tunelab.data.synth.helpdesk import generate_logs
    from tunelab.models.load import load_model
    from tunelab.train.run import run

    logs = rundir.write_jsonl(tmp_path / "logs.jsonl", generate_logs(16, seed=1))
    out = tmp_path / "run"
    cfg = load(
        data={
            "model": {"name": tiny_model_dir},
            "data": {"train": str(logs)},
            "train": {
                "recipe": recipe,
                "max_steps": 2,
                "batch_size": 2,
                "logging_steps": 1,
                "eval_steps": 2,
                "save_steps": 2,
            },
            "preference": {"max_length": 256},
            "output": {"dir": str(out)},
        }
    )
    summary = run(cfg)
    assert summary["steps"] == 2 and summary["recipe"] == recipe
    assert {"config.yaml", "data_report.json", "metrics.jsonl", "adapter", "summary.json"} <= set(os.listdir(out))
    names = {r["name"] for r in rundir.read_metrics(out)}
    assert "loss" in names and "rewards/chosen" in names
    model, tokenizer = load_model(str(out))
    assert type(model).__name__ == "PeftModelForCausalLM"
    assert json.loads((out / "summary.json").read_text())["train_rows"] > 0


def test_data_logs_command_reports_and_writes_sets(tmp_path):
    import typer
    from typer.testing import CliRunner

    from tunelab.cli.data import register

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "data",
            "logs",
            "examples/helpdesk/logs.csv",
            "--config",
            "examples/helpdesk/logs_csv.yaml",
            "-o",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "read 56, kept 56, rejected 0" in result.output and "user_role:" in result.output
    assert {"sft.jsonl", "kto.jsonl", "dpo.jsonl", "stats.json", "clean.jsonl"} <= {p.name for p in tmp_path.iterdir()}
    russian = next(
        r["query"]
        for r in csv.DictReader(open("examples/helpdesk/logs.csv", encoding="utf-8"))
        if "Уважаемый" in r["response"]
    )
    prompts = [
        json.loads(line)["prompt"][0]["content"]
        for line in (tmp_path / "kto.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert any(p.endswith(f"Question: {russian}") for p in prompts)  # UTF-8 intact end to end


def _judgement(cid: str, reply: dict, label: bool, turns: int = 1) -> dict:
    context = []
    for k in range(turns):
        context += [
            {"role": "user", "content": f"I'd like a latte number {k}, please."},
            {"role": "assistant", "content": "What size?"},
        ]
    context += [{"role": "user", "content": "Large."}]
    return {"conversation_id": cid, "context": context, "completion": reply, "label": label}


CALL = {
    "role": "assistant",
    "content": "",
    "tool_calls": [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "add_item", "arguments": '{"item": "latte", "size": "large"}'},
        }
    ],
}
WRONG = {"role": "assistant", "content": "Sorry, we are closed."}


def test_judgement_rows_render_tool_calls_like_sft_and_pair_by_context(smol_dir):
    from transformers import AutoTokenizer

    from tunelab.train.recipes.preference import judgement_rows

    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    rows = [_judgement("a", CALL, True), _judgement("a", WRONG, False), _judgement("b", CALL, True, turns=2)]
    kto, dropped = judgement_rows(rows, "kto", tokenizer, max_length=None)
    assert dropped == 0 and [r["label"] for r in kto] == [True, False, True]
    assert kto[0]["completion"] == [
        {
            "role": "assistant",
            "content": '<tool_call>{"name": "add_item", "arguments": {"item": "latte", "size": "large"}}</tool_call>',
        }
    ]
    assert kto[0]["prompt"][-1] == {"role": "user", "content": "Large."}
    dpo, _ = judgement_rows(rows, "dpo", tokenizer, max_length=None)
    assert len(dpo) == 1  # only conversation a has a good and a bad reply for the same context
    assert (
        dpo[0]["chosen"][0]["content"].startswith("<tool_call>")
        and dpo[0]["rejected"][0]["content"] == "Sorry, we are closed."
    )


def test_judgement_rows_drop_oldest_exchanges_not_the_reply(smol_dir):
    from transformers import AutoTokenizer

    from tunelab.train.recipes.preference import judgement_rows

    tokenizer = AutoTokenizer.from_pretrained(smol_dir)
    long_row = _judgement("a", CALL, True, turns=12)
    full, _ = judgement_rows([long_row], "kto", tokenizer, max_length=None)
    cut, dropped = judgement_rows([long_row], "kto", tokenizer, max_length=120)
    assert dropped == 0 and len(cut[0]["prompt"]) < len(full[0]["prompt"])
    assert cut[0]["completion"] == full[0]["completion"] and cut[0]["prompt"][-1] == full[0]["prompt"][-1]
    text = tokenizer.apply_chat_template(cut[0]["prompt"] + cut[0]["completion"], tokenize=True, return_dict=False)
    assert len(text) <= 120
    _, dropped = judgement_rows([long_row], "kto", tokenizer, max_length=20)  # not even the last exchange fits
    assert dropped == 1


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["kto", "dpo"])
def test_preference_recipe_trains_on_a_judgement_set(tmp_path, tiny_model_dir, recipe):
    from tunelab import rundir
    from tunelab.config import load
    from tunelab.train.run import run

    rows = [_judgement(str(i % 3), CALL if i % 2 == 0 else WRONG, i % 2 == 0) for i in range(8)]
    data = rundir.write_jsonl(tmp_path / "judgements.jsonl", rows)
    out = tmp_path / "run"
    cfg = load(
        data={
            "model": {"name": tiny_model_dir},
            "data": {"train": str(data)},
            "train": {
                "recipe": recipe,
                "max_steps": 2,
                "batch_size": 2,
                "logging_steps": 1,
                "eval_steps": 2,
                "save_steps": 2,
            },
            "preference": {"max_length": 256},
            "output": {"dir": str(out)},
        }
    )
    summary = run(cfg)
    report = json.loads((out / "data_report.json").read_text())
    assert report["format"] == "judgements" and report["judgements"] == 8 and (report["good"], report["bad"]) == (4, 4)
    assert (
        summary["steps"] == 2
        and summary["train_rows"] == (8 if recipe == "kto" else report["rows"])
        and report["rows"] > 0
    )


def test_openai_preference_rows_are_read_or_rejected_by_line_and_field(tmp_path):
    from tunelab.data.openai_preference import read_pairs

    user = {"role": "user", "content": "Say hi"}
    good = {
        "input": {"messages": [user]},
        "preferred_output": [{"role": "assistant", "content": "Hi!"}],
        "non_preferred_output": [{"role": "assistant", "content": "No."}],
    }
    rows = [
        good,
        {**good, "input": {"messages": [{"role": "assistant", "content": "Hello"}]}},
        {**good, "preferred_output": [{"role": "user", "content": "Hi!"}]},
        {k: v for k, v in good.items() if k != "non_preferred_output"},
        {**good, "non_preferred_output": good["preferred_output"]},
        {**good, "input": [user]},
        {**good, "non_preferred_output": [{"role": "assistant", "content": " "}]},
        {**good, "input": {"messages": [user, {"role": "assistant", "content": "Hi"}, user]}},
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n", encoding="utf-8")
    read = read_pairs(path)
    assert read.n_read == 9 and len(read.pairs) == 2 and len(read.rejected) == 7
    assert [r.message().split(": ", 1)[1] for r in read.rejected] == [
        "input.messages[0].role: wrong role order: assistant after the start",
        "preferred_output[0].role: must be 'assistant', got 'user'",
        "non_preferred_output: missing key",
        "non_preferred_output: same as preferred_output: the pair teaches nothing",
        "input: must be an object with a 'messages' list",
        "non_preferred_output[0].content: empty content",
        "(row): invalid JSON: Expecting property name enclosed in double quotes at column 2",
    ]
    assert read.rejected[0].source == f"{path}:2" and len(read.pairs[1].context) == 3
