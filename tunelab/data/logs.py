"""Feedback logs: question, user tags, retrieved contexts, answer, good/bad label, comment.

Read from CSV, JSONL or Parquet with column names mapped in the config (`logs.columns`). Every
row becomes a LogRecord or a Rejected record naming file:line and the field, so kept + rejected
= read always holds. "line" is the physical line a CSV row starts on, the line of a JSONL file,
or the 1-based row number of a Parquet file.

The user turn the model sees is rendered from a Jinja template (`logs.template`; default
DEFAULT_TEMPLATE) with these variables:
  question  the question text
  tags      a dict of tag name -> value (only tags present in the row)
  contexts  a list of passage strings
For example, `"[{{ tags.role }}] {{ question }}"` sends the role and the question only.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.sandbox

from tunelab.config import LogsConfig
from tunelab.data.formats import Rejected, RowError
from tunelab.messages import Conversation, Message
from tunelab.textio import InputFileError, bad_value, check_file, check_value, iter_lines, loads_row, shown

DEFAULT_TEMPLATE = (
    "{% if tags %}User: {% for k, v in tags.items() %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}\n{% endif %}"
    "{% if contexts %}Retrieved passages:\n{% for c in contexts %}[{{ loop.index }}] {{ c }}\n{% endfor %}{% endif %}"
    "Question: {{ question }}"
)
LOG_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_LABELS = {"good": True, "bad": False, "1": True, "0": False, "yes": True, "no": False, "true": True, "false": False}


class LogFileError(InputFileError):
    """A problem with the whole file (unknown format, a mapped column that does not exist)."""


@dataclass(frozen=True)
class LogRecord:
    id: str
    question: str
    answer: str
    label: bool
    tags: dict[str, str] = field(default_factory=dict, hash=False)
    contexts: tuple[str, ...] = ()
    comment: str = ""
    source: str = ""  # "file:line"

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            **self.tags,
            "contexts": list(self.contexts),
            "answer": self.answer,
            "label": "good" if self.label else "bad",
            "comment": self.comment,
        }


@dataclass
class LogReadResult:
    path: str
    fmt: str
    records: list[LogRecord] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def n_read(self) -> int:
        return len(self.records) + len(self.rejected)


def parse_label(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    key = str(value).strip().lower() if value is not None else ""
    if key not in _LABELS:
        raise RowError("label", f"expected good/bad, 1/0, yes/no or true/false (any case), got {value!r}")
    return _LABELS[key]


def parse_contexts(value: Any, separator: str, name: str) -> tuple[str, ...]:
    if value is None or (isinstance(value, float) and value != value):  # missing, or NaN from pandas
        return ()
    if hasattr(value, "tolist"):  # a numpy array from Parquet
        value = value.tolist()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RowError(name, f"looks like a JSON list but does not parse: {exc.msg}") from None
        else:
            return tuple(p.strip() for p in text.split(separator) if p.strip())
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise RowError(name, f"must be a list of strings or a string split on {separator!r}")
    return tuple(c.strip() for c in value if c.strip())


def _text(row: dict[str, Any], name: str, required: bool) -> str:
    value = row.get(name)
    if value is None or (isinstance(value, float) and value != value):
        value = ""
    if not isinstance(value, (str, int, float)):
        raise RowError(name, f"must be text, got {type(value).__name__}")
    text = str(value).strip()
    if required and not text:
        raise RowError(name, "is missing or empty")
    return text


def row_to_record(row: dict[str, Any], cfg: LogsConfig, source: str, questions_only: bool = False) -> LogRecord:
    """One log row as a record. `questions_only`: a question list (answer and label may be absent;
    such a record has label False, so it never serves as a good answer)."""
    cols = cfg.columns
    if not isinstance(row, dict):
        raise RowError("(row)", f"must be an object, got {type(row).__name__}")
    question = _text(row, cols.question, True)
    answer = _text(row, cols.answer, not questions_only)
    if cols.label not in row and not questions_only:
        raise RowError(cols.label, "is missing")
    label = parse_label(row[cols.label]) if cols.label in row and not questions_only else False
    tags = {t: _text(row, t, False) for t in cols.tags}
    contexts = parse_contexts(row.get(cols.contexts), cfg.context_separator, cols.contexts) if cols.contexts else ()
    comment = _text(row, cols.comment, False) if cols.comment else ""
    rid = _text(row, cols.id, False) if cols.id else ""
    return LogRecord(
        id=rid or source,
        question=question,
        answer=answer,
        label=label,
        tags={k: v for k, v in tags.items() if v},
        contexts=contexts,
        comment=comment,
        source=source,
    )


# The CSV reader's default cap (128 KiB per field) would stop the whole file at one long field;
# rows are streamed, so a bigger cap costs memory only for the row that has such a field.
csv.field_size_limit(16 * 1024 * 1024)


def _open_csv(path: Path) -> Any:
    # surrogateescape: invalid UTF-8 becomes lone surrogates that check_value rejects row by row,
    # instead of a UnicodeDecodeError that would end the file at the first bad byte.
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with _open_csv(path) as handle:
        reader = csv.DictReader(handle)
        start = 2  # the header is line 1; a quoted field may span lines, so track where each row starts
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                row = RowError("(row)", f"not valid CSV: {exc}")
            yield start, row
            start = reader.line_num + 1


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            yield number, loads_row(line)
        except RowError as err:
            yield number, err


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    import pyarrow.parquet as pq

    number = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):  # streamed, memory bounded
            for row in batch.to_pylist():
                number += 1
                yield number, row
    except Exception as exc:  # a corrupt page: pyarrow's errors are ArrowInvalid/OSError subclasses
        raise InputFileError(
            f"{path}: unreadable Parquet after row {number} ({' '.join(str(exc).split())[:200]})"
        ) from None


def _columns_present(path: Path, fmt: str) -> set[str] | None:
    """The file's column names when the format has a header (CSV, Parquet); None for JSONL."""
    if fmt == "csv":
        with _open_csv(path) as handle:
            try:
                header = next(csv.reader(handle), [])
            except csv.Error as exc:
                raise InputFileError(f"{path}:1: the CSV header does not parse ({exc})") from None
        if bad_value(header):
            raise InputFileError(f"{path}:1: the CSV header holds invalid UTF-8")
        return set(header)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return set(pq.read_schema(path).names)
        except Exception as exc:  # pyarrow raises ArrowInvalid/OSError subclasses for a non-Parquet file
            raise InputFileError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())[:200]})") from None
    return None


def read_logs(path: str | Path, cfg: LogsConfig = LogsConfig(), questions_only: bool = False) -> LogReadResult:
    """Every row of a CSV/JSONL/Parquet log kept as a record or rejected with file:line and field.
    With `questions_only` the file is a list of questions: only the question column is needed."""
    path = Path(path)
    fmt = LOG_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LogFileError(f"{path}: unknown log format {path.suffix!r}; use one of {sorted(LOG_FORMATS)}")
    check_file(path)
    present = _columns_present(path, fmt)
    if present is not None:
        cols = cfg.columns
        needed = [
            c
            for c in ((cols.question,) if questions_only else (cols.question, cols.answer, cols.label))
            if c not in present
        ]
        if needed:
            raise LogFileError(
                f"{path}: column(s) {needed} not in the file (it has {sorted(present)}); map them under logs.columns"
            )
    rows = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[fmt](path)
    result = LogReadResult(path=str(path), fmt=fmt)
    for line, row in rows:
        source = f"{path}:{line}"
        try:
            if isinstance(row, RowError):
                raise row
            check_value(row)
            result.records.append(row_to_record(row, cfg, source, questions_only))
        except RowError as err:
            raw = _raw(row)
            result.rejected.append(Rejected(source=source, field=err.field, reason=err.reason, raw=shown(raw)))
    return result


def _raw(row: Any) -> str:
    if isinstance(row, RowError):
        return ""
    try:
        return json.dumps(row, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):  # too deep to show
        return ""


def compile_template(template: str | None) -> jinja2.Template:
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False)
    try:
        return env.from_string(template or DEFAULT_TEMPLATE)
    except jinja2.TemplateSyntaxError as exc:
        raise ValueError(f"logs.template: line {exc.lineno}: {exc.message}") from None


def render_user_turn(record: LogRecord, template: jinja2.Template | str | None = None) -> str:
    compiled = template if isinstance(template, jinja2.Template) else compile_template(template)
    try:
        return compiled.render(question=record.question, tags=dict(record.tags), contexts=list(record.contexts)).strip()
    except jinja2.UndefinedError as exc:
        raise ValueError(f"logs.template: {exc.message} (while rendering {record.source})") from None


def to_conversation(
    record: LogRecord, template: jinja2.Template | str | None = None, system_prompt: str | None = None
) -> Conversation:
    """The record as a chat: [system], user (rendered template), assistant (the logged answer)."""
    messages = [Message("system", system_prompt)] if system_prompt else []
    messages += [Message("user", render_user_turn(record, template)), Message("assistant", record.answer)]
    return Conversation(
        id=record.id,
        messages=tuple(messages),
        source=record.source,
        meta={"label": record.label, "tags": dict(record.tags)},
    )
