"""Property-based: feedback logs (CSV, JSONL, Parquet), question files and the data stage of
recipe bake. No exception escapes; read = kept + rejected; rejections name file:line and field;
no good row is lost beside a bad one."""

from __future__ import annotations

import csv
import io
import re
import tempfile
from pathlib import Path

import pytest
from hostile import files, hostile_rows, safe_text
from hypothesis import given
from hypothesis import strategies as st

from tunelab.config import load
from tunelab.data.logs import read_logs
from tunelab.train.recipes.bake import load_records


def log_row(question: str, answer: str) -> dict:
    return {"question": question, "answer": answer, "label": "good", "role": "student", "contexts": ["a", "b"]}


LOG_PATHS = [["question"], ["answer"], ["label"], ["role"], ["contexts"], ["contexts", 0]]
good_jsonl = st.builds(lambda q, a: (__import__("json").dumps(log_row(q, a)).encode(), q.strip()), safe_text, safe_text)


def check(res, path: Path, rows, n_rows: int | None) -> None:
    assert res.n_read == len(res.records) + len(res.rejected)
    if n_rows is not None:
        assert res.n_read == n_rows
    for r in res.rejected:
        assert re.fullmatch(re.escape(str(path)) + r":\d+", r.source) and r.field
    kept = {r.question for r in res.records}
    for row in rows:
        if row.good:
            assert row.key in kept


@pytest.mark.parametrize("questions_only", [False, True])
def test_jsonl_logs_and_question_files(questions_only):
    @given(files(good_jsonl, hostile_rows(log_row, LOG_PATHS)))
    def run(sample):
        data, rows = sample
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "logs.jsonl"
            path.write_bytes(data)
            res = read_logs(path, questions_only=questions_only)
            check(res, path, rows, sum(1 for r in rows if r.raw.strip()))

    run()


# CSV cells: text that needs quoting, NUL, lone CR, and invalid UTF-8 (written with surrogateescape).
cell = st.one_of(
    safe_text,
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "a,b",
            'say "hi"',
            "two\nlines",
            "cr\ronly",
            "nul\x00",
            "bad\udcff",
            "\udcc3",
            "x" * 200_000,
            "[1, 2",
            '["a"]',
            "2",
        ]
    ),
)


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just(True), safe_text, safe_text),
            st.tuples(st.just(False), st.lists(cell, min_size=0, max_size=6)),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),
)
def test_csv_logs(rows, end, bom):
    header = ["question", "answer", "label", "role", "contexts"]
    buffer = io.StringIO()
    writer = csv.writer(
        buffer, lineterminator=end, quoting=csv.QUOTE_ALL
    )  # minimal quoting leaves a lone LF unquoted under CR line ends: two rows
    writer.writerow(header)
    expected = []
    for good, *cells in rows:
        if good:
            writer.writerow([cells[0], cells[1], "good", "student", "a|b"])
            expected.append(cells[0].strip())
        else:
            writer.writerow(cells[0] if cells[0] else ["", ""])
    data = (b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8", errors="surrogateescape")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.csv"
        path.write_bytes(data)
        res = read_logs(path)
        assert res.n_read == len(res.records) + len(res.rejected) == len(rows)
        for r in res.rejected:
            assert re.fullmatch(re.escape(str(path)) + r":\d+", r.source) and r.field
        assert set(expected) <= {r.question for r in res.records}


parquet_cell = st.one_of(st.none(), safe_text, st.text(max_size=10), st.just(""))


@given(
    st.lists(
        st.tuples(parquet_cell, parquet_cell, st.sampled_from(["good", "bad", "1", "maybe", None, ""])),
        min_size=1,
        max_size=20,
    )
)
def test_parquet_logs(rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"question": [r[0] for r in rows], "answer": [r[1] for r in rows], "label": [r[2] for r in rows]})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.parquet"
        pq.write_table(table, path, row_group_size=3)
        res = read_logs(path)
        assert res.n_read == len(rows) == len(res.records) + len(res.rejected)
        assert {r.source for r in res.records} | {r.source for r in res.rejected} == {
            f"{path}:{i}" for i in range(1, len(rows) + 1)
        }
        for i, (q, a, label) in enumerate(rows, 1):
            if q and q.strip() and a and a.strip() and label in ("good", "bad", "1"):
                assert f"{path}:{i}" in {r.source for r in res.records}


@given(files(good_jsonl, hostile_rows(log_row, LOG_PATHS)))
def test_the_data_stage_of_bake_rejects_and_counts(sample):
    """load_records is how recipe bake reads data.train: the same reader, rejected rows written."""
    data, rows = sample
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "logs.jsonl"
        path.write_bytes(data)
        config = load(data={"data": {"train": str(path)}, "train": {"recipe": "bake"}})
        records, report = load_records(config, Path(tmp))
        assert report["read"] == report["kept"] + report["rejected"] == sum(1 for r in rows if r.raw.strip())
        if report["rejected"]:
            lines = (
                Path(report["rejected_file"]).read_text(encoding="utf-8").split("\n")[:-1]
            )  # not splitlines: U+2028 is text
            assert len(lines) == report["rejected"]
