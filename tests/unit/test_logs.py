"""Feedback log reader: formats, column mapping, validation with file:line:field, the user-turn template."""

from __future__ import annotations

import csv
import json

import pytest

from tunelab.config import LogColumns, LogsConfig
from tunelab.data.logs import DEFAULT_TEMPLATE, LogFileError, read_logs, render_user_turn, to_conversation

ROWS = [
    {
        "id": "a",
        "question": "Когда открыта библиотека?",
        "role": "student",
        "campus": "north",
        "contexts": ["Библиотека открыта с 8:00.", "Общежитие — до 1 августа."],
        "answer": "Уважаемый студент, библиотека открыта с 8:00. Что-то ещё?",
        "label": "Good",
        "comment": "",
    },
    {
        "id": "b",
        "question": "When is the library open?",
        "role": "staff",
        "contexts": ["The library opens at 8:00."],
        "answer": "As an AI, no idea.",
        "label": 0,
        "comment": "calls itself an AI",
    },
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_jsonl_csv_and_parquet_give_the_same_records(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = read_logs(write_jsonl(tmp_path / "l.jsonl", ROWS))
    with (tmp_path / "l.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["id", "question", "role", "campus", "contexts", "answer", "label", "comment"])
        w.writeheader()
        for r in ROWS:
            w.writerow({**r, "contexts": "||".join(r["contexts"])})
    pq.write_table(
        pa.Table.from_pylist([{**r, "label": str(r["label"]), "campus": r.get("campus")} for r in ROWS]),
        tmp_path / "l.parquet",
    )
    results = [jsonl, read_logs(tmp_path / "l.csv"), read_logs(tmp_path / "l.parquet")]
    for res in results:
        assert [(r.id, r.question, r.answer, r.label, r.tags, r.contexts) for r in res.records] == [
            (r.id, r.question, r.answer, r.label, r.tags, r.contexts) for r in jsonl.records
        ]
    first = jsonl.records[0]
    assert first.label is True and first.tags == {"role": "student", "campus": "north"}
    assert first.contexts[1] == "Общежитие — до 1 августа."  # UTF-8 intact
    assert jsonl.records[1].label is False and jsonl.records[1].comment == "calls itself an AI"


@pytest.mark.parametrize(
    "value, expected",
    [("GOOD", True), ("bad", False), ("Yes", True), ("no", False), (1, True), ("0", False), (True, True)],
)
def test_label_spellings(tmp_path, value, expected):
    res = read_logs(write_jsonl(tmp_path / "l.jsonl", [{**ROWS[0], "label": value}]))
    assert res.records[0].label is expected


def test_bad_rows_are_rejected_with_file_line_and_field(tmp_path):
    rows = [ROWS[0], {**ROWS[0], "label": "maybe"}, {**ROWS[0], "question": ""}, {**ROWS[0], "contexts": 5}]
    path = write_jsonl(tmp_path / "l.jsonl", rows)
    with path.open("a", encoding="utf-8") as f:
        f.write("{not json\n")
    res = read_logs(path)
    assert len(res.records) + len(res.rejected) == res.n_read == 5
    where = [(r.source, r.field) for r in res.rejected]
    assert where == [
        (f"{path}:2", "label"),
        (f"{path}:3", "question"),
        (f"{path}:4", "contexts"),
        (f"{path}:5", "(row)"),
    ]
    assert "maybe" in res.rejected[0].reason


def test_csv_line_numbers_count_multiline_fields_and_columns_are_mapped(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text('query,reply,ok,why\n"two\nlines",fine,yes,\nq2,,no,empty\nq3,a3,1,\n', encoding="utf-8")
    cfg = LogsConfig(
        columns=LogColumns(question="query", answer="reply", label="ok", comment="why", contexts=None, id=None, tags=[])
    )
    res = read_logs(path, cfg)
    assert [r.question for r in res.records] == ["two\nlines", "q3"]
    assert res.records[1].id == f"{path}:5"
    assert [(r.source, r.field) for r in res.rejected] == [(f"{path}:4", "reply")]


def test_a_mapped_column_missing_from_the_file_is_a_file_error(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("q,a,label\nx,y,good\n", encoding="utf-8")
    with pytest.raises(LogFileError, match="column\\(s\\) \\['question', 'answer'\\] not in the file"):
        read_logs(path)
    with pytest.raises(LogFileError, match="unknown log format"):
        read_logs(tmp_path / "l.txt")


def test_template_renders_tags_and_contexts(tmp_path):
    rec = read_logs(write_jsonl(tmp_path / "l.jsonl", ROWS)).records[0]
    text = render_user_turn(rec)
    assert text.splitlines()[0] == "User: role=student, campus=north"
    assert "[2] Общежитие — до 1 августа." in text and text.endswith("Question: Когда открыта библиотека?")
    assert render_user_turn(rec, "[{{ tags.role }}] {{ question }}") == "[student] Когда открыта библиотека?"
    with pytest.raises(ValueError, match="logs.template"):
        render_user_turn(rec, "{{ tags.missing_tag }}")
    conv = to_conversation(rec, DEFAULT_TEMPLATE, system_prompt="Be brief.")
    assert [m.role for m in conv.messages] == ["system", "user", "assistant"]
    assert conv.messages[-1].content == rec.answer
