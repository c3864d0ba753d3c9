"""Property-based: conversation files (JSONL and JSON list; OpenAI, ShareGPT, Alpaca) through
`data validate` and the data stage `tunelab train` uses. For any generated file: no exception
escapes, read = kept + rejected, every rejection names file:line and field, no good row is lost.

Examples per test come from the hypothesis profile (tests/conftest.py; HYPOTHESIS_PROFILE=long).
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import pytest
from hostile import CONVERSATION_PATHS, conversation_row, files, good_conversation, hostile_rows, json_values, safe_text
from hypothesis import given
from hypothesis import strategies as st

from tunelab.config import DataConfig
from tunelab.data.formats import read_conversations
from tunelab.data.prepare import NoUsableData, prepare
from tunelab.data.tokenize import ensure_template
from tunelab.data.validate import validate_file


@pytest.fixture(scope="module")
def tokenizer(smol_dir):
    from transformers import AutoTokenizer

    return ensure_template(AutoTokenizer.from_pretrained(smol_dir))


def check_result(
    path: Path, data: bytes, rows, kept_replies: list[str], rejected: list[tuple[str, str]], n_read: int
) -> None:
    assert n_read == len(kept_replies) + len(rejected)
    for source, field in rejected:
        assert re.fullmatch(re.escape(str(path)) + r":\d+", source) and field
    for row in rows:
        if row.good:
            assert row.key in kept_replies  # a good row is never lost beside a bad one
    is_list = data.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] == b"["
    if not is_list:  # one row per non-blank physical line
        assert n_read == sum(1 for r in rows if r.raw.strip())


@given(files(good_conversation(), hostile_rows(conversation_row, CONVERSATION_PATHS)))
def test_validate_never_crashes_and_loses_no_good_row(tokenizer, sample):
    data, rows = sample
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        path.write_bytes(data)
        report = validate_file(path, tokenizer, None, out_dir=Path(tmp))
        res = read_conversations(path)
        assert report["read"] == report["kept"] + report["rejected"] == res.n_read
        kept = [c.messages[-1].content for c in res.conversations]
        check_result(path, data, rows, kept, [(r.source, r.field) for r in res.rejected], res.n_read)
        for line in report["errors"]:
            assert line.startswith(f"{path}:")
        if report["rejected_file"]:
            Path(report["rejected_file"]).read_text(encoding="utf-8")  # written whole, valid UTF-8


@given(
    st.lists(
        st.one_of(
            st.builds(lambda u, r: ("good", conversation_row(u, r)), safe_text, safe_text),
            st.builds(lambda v: ("bad", v), json_values),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_json_list_items_are_rejected_one_by_one(items):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.json"
        path.write_text(json.dumps([v for _, v in items], ensure_ascii=True))
        res = read_conversations(path)
        assert res.n_read == len(items) == len(res.conversations) + len(res.rejected)
        kept = {c.source for c in res.conversations}
        for i, (kind, _) in enumerate(items, 1):
            if kind == "good":
                assert f"{path}:{i}" in kept


def _sharegpt(user: str, reply: str) -> dict:
    return {"conversations": [{"from": "human", "value": user}, {"from": "gpt", "value": reply}]}


def _alpaca(user: str, reply: str) -> dict:
    return {"instruction": user, "input": "", "output": reply}


@pytest.mark.parametrize(
    "fmt,template,paths",
    [
        (
            "sharegpt",
            _sharegpt,
            [["conversations"], ["conversations", 0, "from"], ["conversations", 1, "value"], ["system"]],
        ),
        ("alpaca", _alpaca, [["instruction"], ["input"], ["output"], ["system"]]),
    ],
)
def test_sharegpt_and_alpaca_readers(fmt, template, paths):
    good = st.builds(lambda u, r: (json.dumps(template(u, r)).encode(), r), safe_text, safe_text)

    @given(files(good, hostile_rows(template, paths)))
    def run(sample):
        data, rows = sample
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "train.jsonl"
            path.write_bytes(data)
            res = read_conversations(path, fmt)
            kept = [c.messages[-1].content for c in res.conversations]
            check_result(path, data, rows, kept, [(r.source, r.field) for r in res.rejected], res.n_read)

    run()


@given(files(good_conversation(), hostile_rows(conversation_row, CONVERSATION_PATHS)))
def test_the_data_stage_of_train_rejects_and_counts(tokenizer, sample):
    """prepare() is what `tunelab train` (recipes sft, kto, dpo) runs before the Trainer."""
    data, rows = sample
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.jsonl"
        path.write_bytes(data)
        try:
            prepared = prepare(DataConfig(train=str(path), val_fraction=0.0, dedupe=False), tokenizer, Path(tmp))
        except NoUsableData as exc:  # the documented one-line error when no row is usable
            assert not any(r.good for r in rows) and str(path) in str(exc)
            return
        entry = prepared.report["files"][0]
        assert entry["read"] == entry["kept"] + entry["rejected"]
        # a kept row may still be too long for max_length (a 70,000-character content): dropped and counted
        assert (
            len(prepared.train) + prepared.report["too_long_dropped"]["train"]
            == entry["kept"]
            >= sum(1 for r in rows if r.good)
        )
