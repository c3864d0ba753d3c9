"""Regression tests for the hostile inputs of issue 16, one per reported failure and per reader.

Each case writes the file a real tool or an attacker produces and checks the named answer:
read = kept + rejected, the bad row named file:line and field, good rows kept around it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tunelab.config import ConfigError, load
from tunelab.data.formats import read_conversations
from tunelab.data.logs import read_logs
from tunelab.data.tokenize import ensure_template
from tunelab.data.validate import validate_file
from tunelab.prompts.rules import PromptFileError, load_prompt
from tunelab.textio import InputFileError

GOOD = json.dumps({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})
SURROGATE = '{"messages": [{"role": "user", "content": "caf\\ud800"}, {"role": "assistant", "content": "ok"}]}'
DEEP = "[" * 5000 + "]" * 5000


@pytest.fixture(scope="module")
def tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return ensure_template(AutoTokenizer.from_pretrained(smol_dir))


def test_bom_does_not_reject_the_first_row(tmp_path, tokenizer):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (GOOD + "\r\n" + GOOD + "\r\n").encode())
    report = validate_file(path, tokenizer, None, out_dir=tmp_path)
    assert (report["read"], report["kept"], report["rejected"]) == (2, 2, 0)


def test_bom_before_a_json_list(tmp_path):
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf[" + GOOD.encode() + b"," + GOOD.encode() + b"]")
    res = read_conversations(path)
    assert (len(res.conversations), len(res.rejected)) == (2, 0)


def test_lone_surrogate_is_rejected_not_a_tokenizer_crash(tmp_path, tokenizer):
    path = tmp_path / "s.jsonl"
    path.write_text(f"{GOOD}\n{SURROGATE}\n{GOOD}\n")
    report = validate_file(path, tokenizer, None, out_dir=tmp_path)
    assert (report["read"], report["kept"], report["rejected"]) == (3, 2, 1)
    assert report["errors"] == [f"{path}:2: messages[0].content: holds a lone surrogate (\\ud800 at character 3)"]
    # the rejected file itself is valid UTF-8 (the surrogate is not written back)
    (tmp_path / "s.rejected.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize("deep", [DEEP, "[" * 100 + "]" * 100, '{"messages": ' + "[" * 70 + "]" * 70 + "}"])
def test_deep_nesting_rejects_that_line_only(tmp_path, tokenizer, deep):
    path = tmp_path / "d.jsonl"
    path.write_text(f"{GOOD}\n{deep}\n{GOOD}\n")
    report = validate_file(path, tokenizer, None, out_dir=tmp_path)
    assert (report["read"], report["kept"], report["rejected"]) == (3, 2, 1)
    assert report["errors"][0].startswith(f"{path}:2: ") and "nested" in report["errors"][0]


def test_deep_item_in_a_json_list_rejects_that_item_only(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(f"[{GOOD}, {DEEP}, {GOOD}]")
    res = read_conversations(path)
    assert (len(res.conversations), [r.source for r in res.rejected]) == (2, [f"{path}:2"])


def test_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(InputFileError, match="is a directory"):
        read_conversations(tmp_path)
    cli = subprocess.run(
        [sys.executable, "-m", "tunelab.cli", "data", "validate", str(tmp_path)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert cli.returncode == 2
    assert "Traceback" not in cli.stderr
    assert cli.stderr.strip() == f"error: {tmp_path}: is a directory; give the data file inside it"


def test_duplicate_key_and_wrong_types_are_named(tmp_path):
    path = tmp_path / "t.jsonl"
    rows = [
        '{"messages": [], "messages": []}',
        json.dumps({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "x"}]}),
        json.dumps(
            {"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": "assistant", "content": "x"}]}
        ),
        json.dumps({"messages": [{"role": "user", "content": "a", "name": 3}, {"role": "assistant", "content": "x"}]}),
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "a"}]},
                    {"role": "assistant", "content": "x"},
                ]
            }
        ),
    ]
    path.write_text("\n".join(rows) + "\n")
    res = read_conversations(path)
    assert [(r.source.rsplit(":", 1)[1], r.field) for r in res.rejected] == [
        ("1", "messages"),
        ("2", "messages[0].content"),
        ("3", "messages[0].content[0]"),
        ("4", "messages[0].name"),
    ]
    assert len(res.conversations) == 1


def test_logs_csv_with_bom_invalid_utf8_nul_and_a_huge_field(tmp_path):
    path = tmp_path / "l.csv"
    path.write_bytes(
        b"\xef\xbb\xbfquestion,answer,label\r\nq1,a1,good\r\nq\xff2,a2,good\r\nq3,a\x003,bad\r\n"
        + b"q4,"
        + b"x" * 200_000
        + b",good\r\nq5,a5,bad\r"
    )
    res = read_logs(path)
    assert res.n_read == 5 and [r.question for r in res.records] == ["q1", "q3", "q4", "q5"]
    assert [(r.source, r.field) for r in res.rejected] == [(f"{path}:3", "question")]
    assert "invalid UTF-8" in res.rejected[0].reason


def test_logs_jsonl_bom_surrogate_deep(tmp_path):
    good = json.dumps({"question": "q", "answer": "a", "label": "good"})
    path = tmp_path / "l.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + "\n".join([good, '{"question": "\\udc00", "answer": "a", "label": 1}', DEEP, good]).encode()
    )
    res = read_logs(path)
    assert len(res.records) == 2 and [(r.source, r.field) for r in res.rejected] == [
        (f"{path}:2", "question"),
        (f"{path}:3", "(row)"),
    ]


def test_logs_not_parquet_and_directory(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputFileError, match="not a readable Parquet file"):
        read_logs(tmp_path / "x.parquet")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(InputFileError, match="is a directory"):
        read_logs(tmp_path / "d.csv")


def test_config_and_prompt_yaml(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"\xef\xbb\xbfmodel:\n  name: smollm2-135m\ndata:\n  train: t.jsonl\n")
    assert load(cfg).data.train == "t.jsonl"
    cfg.write_text("data:\n  train: a\n  train: b\n")
    with pytest.raises(ConfigError, match="duplicate key 'train'"):
        load(cfg)
    cfg.write_bytes(b"data:\n  train: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"c.yaml:2: invalid UTF-8"):
        load(cfg)
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)
    with pytest.raises(ConfigError, match="--set data.train: not valid YAML"):
        load(data={"data": {"train": "x"}}, overrides=["data.train=[unclosed"])
    with pytest.raises(ConfigError, match="nested too deeply"):
        load(data={"data": {"train": "x"}}, overrides=["data.train=" + "[" * 3000 + "]" * 3000])
    prompt = tmp_path / "p.yaml"
    prompt.write_text('prompt: "caf\\ud800"\n')
    with pytest.raises(PromptFileError, match="prompt: holds a lone surrogate"):
        load_prompt(prompt)


def config_with(key: str, value: str) -> str:
    """A config file's text with the dotted `key` set to the YAML `value` (beside data.train)."""
    *sections, field = key.split(".")
    lines = ["data:", "  train: t.jsonl"] + ["  " * depth + f"{name}:" for depth, name in enumerate(sections)]
    return "\n".join([*lines, "  " * len(sections) + f"{field}: {value}"]) + "\n"


def assert_refused(cfg, key: str, cases: list[tuple[str, str]]) -> None:
    """`key` set to each value (and to `true`, a number field's) in a config file that starts with a
    BOM, then to a lone surrogate: each refused, the message naming the file, the key's line and
    the key (and `says`)."""
    line = 3 + key.count(".")  # config_with's last line
    for value, says in [*cases, ("true", "expected a number, not true")]:
        cfg.write_bytes(b"\xef\xbb\xbf" + config_with(key, value).encode())
        with pytest.raises(ConfigError, match=rf"c.yaml: invalid config:\n  line {line}: '{re.escape(key)}': .*{says}"):
            load(cfg)
    cfg.write_text(config_with(key, '"\\ud800"'))
    with pytest.raises(ConfigError, match=f"{re.escape(key)}: holds a lone surrogate"):
        load(cfg)


def test_bake_limit_headroom_refuses_a_share_outside_zero_to_one_naming_file_and_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cases = [("1.5", "less than 1"), ("-0.1", "greater than or equal to 0"), ("many", "valid number")]
    assert_refused(cfg, "bake.limit_headroom", cases)
    cfg.write_text(config_with("bake.limit_headroom", "0"))
    assert load(cfg).bake.limit_headroom == 0


def test_eval_and_save_steps_refuse_what_is_neither_a_step_count_nor_auto_naming_file_and_field(tmp_path):
    cfg = tmp_path / "c.yaml"
    cases = [
        ("0", "greater than or equal to 1, or 'auto'"),
        ("sometimes", "valid integer.*or 'auto'"),
        ("2.5", "fractional part, or 'auto'"),
    ]
    for field in ("train.eval_steps", "train.save_steps"):
        assert_refused(cfg, field, cases)
    cfg.write_text("data:\n  train: t.jsonl\ntrain:\n  eval_steps: 7\n  save_steps: 50\n")
    with pytest.raises(
        ConfigError, match=r"c.yaml: train.save_steps \(50\) must be a multiple of train.eval_steps \(7\)"
    ):
        load(cfg)
    cfg.write_text("data:\n  train: t.jsonl\ntrain:\n  eval_steps: auto\n  save_steps: 50\n")
    assert (load(cfg).train.eval_steps, load(cfg).train.save_steps) == ("auto", 50)


def test_lora_layers_that_are_not_a_count_or_all_are_refused_naming_the_file_and_the_key(tmp_path):
    """model.lora.layers: 0, a word, a fraction or a lone surrogate; a count is kept."""
    cfg = tmp_path / "c.yaml"
    cases = [
        ("0", "greater than or equal to 1, or 'all'"),
        ("half", "valid integer.*or 'all'"),
        ("0.5", "fractional part, or 'all'"),
    ]
    assert_refused(cfg, "model.lora.layers", cases)
    cfg.write_bytes(b"\xef\xbb\xbf" + config_with("model.lora.layers", "12").encode())
    assert load(cfg).model.lora.layers == 12


HOSTILE_LINES = [
    b"\xef\xbb\xbf" + GOOD.encode(),
    SURROGATE.encode(),
    DEEP.encode(),
    b'{"messages": [], "messages": []}',
    b'{"messages": [{"role": "user", "content": "caf\xe9"}]}',
    b'{"messages": [{"role": "user", "content": null}, {"role": "assistant", "content": 7}]}',
    b"\x00\x00",
    b"x" * 100_000,
]


@pytest.mark.slow
def test_train_rejects_and_counts_hostile_rows_and_trains_on_the_rest(tmp_path, tiny_model_dir):
    """`tunelab train` end to end (tiny model, 2 steps) on a file of 24 good rows among 7 hostile ones."""
    from tunelab.data.synth import cafe
    from tunelab.rundir import read_json, read_jsonl
    from tunelab.train.recipes.sft import train

    good = [json.dumps(c.to_openai()).encode() for c in cafe.generate(23, seed=3, system_prompt=None)]
    lines = HOSTILE_LINES[:1] + [row for pair in zip(good, HOSTILE_LINES[1:]) for row in pair] + good[7:]
    path = tmp_path / "train.jsonl"
    path.write_bytes(b"\r\n".join(lines) + b"\r\n")
    config = {
        "model": {"name": tiny_model_dir, "lora": {"r": 4, "alpha": 8}},
        "data": {"train": str(path), "val_fraction": 0.2, "max_length": 256},
        "train": {"max_steps": 2, "batch_size": 4, "eval_steps": 2, "save_steps": 2, "logging_steps": 1},
        "output": {"dir": str(tmp_path / "run")},
    }
    summary = train(load(data=config))
    assert summary["steps"] == 2
    entry = read_json(tmp_path / "run" / "data_report.json")["files"][0]
    assert (entry["read"], entry["kept"], entry["rejected"]) == (31, 24, 7)
    rejected = read_jsonl(entry["rejected_file"])
    assert [r["source"] for r in rejected] == [f"{path}:{n}" for n in (3, 5, 7, 9, 11, 13, 15)]
    assert all(r["field"] and r["reason"] for r in rejected)


def test_a_large_file_is_streamed_with_bounded_memory(tmp_path):
    """24 MiB of JSONL (long invalid lines among good rows): the readers hold one line at a time
    and keep 2,000 characters of a rejected row, so their peak allocation stays far below the file."""
    import tracemalloc

    bad = b'{"question": "' + b"x" * 200_000 + b"\n"  # unterminated string: rejected
    good_log = json.dumps({"question": "q", "answer": "a", "label": "good"}).encode() + b"\n"
    for name, good in (("chats.jsonl", GOOD.encode() + b"\n"), ("logs.jsonl", good_log)):
        path = tmp_path / name
        with path.open("wb") as handle:
            for _ in range(120):
                handle.write(bad + good)
        size = path.stat().st_size
        tracemalloc.start()
        res = read_conversations(path) if name == "chats.jsonl" else read_logs(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert res.n_read == 240 and len(res.rejected) == 120
        print(f"{name}: {size / 2**20:.1f} MiB read with a peak of {peak / 2**20:.1f} MiB")
        assert peak < size / 8
