"""The run-directory contract: fixed file names and atomic writes of files and directories.

A run directory is what users keep, compare and ship. Every file in it is written to a
temporary name and renamed, so a killed run never leaves a half-written file that looks whole.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CONFIG = "config.yaml"
DATA_REPORT = "data_report.json"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
MODEL = "model"
MERGED = "merged"
PREDICTIONS = "predictions.jsonl"
SCORES = "scores.json"
REPORT = "report.html"
MODEL_CARD = "README.md"
SUMMARY = "summary.json"
ADHERENCE_PREDICTIONS = "adherence_predictions.jsonl"  # `tunelab adherence`: every condition's replies
ADHERENCE = "adherence.json"  # its per-rule pass rates, prompt tokens and latency per condition

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to `path` atomically (temporary file in the same folder, then rename)."""
    return write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes | Iterable[bytes]) -> Path:
    """Write `data` to `path` atomically (temporary file in the same folder, then rename).

    `data` may be an iterable of chunks, so a large file is streamed rather than held in memory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as handle:
            for chunk in [data] if isinstance(data, bytes) else data:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextmanager
def publish_dir(target: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and publish it at `target` only when the block ends
    without an error, replacing what was there: a killed process never leaves a half-written
    directory that looks whole. Yields the temporary folder (empty, created) to write into.

    >>> with publish_dir(tmp_root / "adapter") as staging:   # doctest: +SKIP
    ...     model.save_pretrained(staging)
    """
    target = Path(target)
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(target, ignore_errors=True)
    staging.replace(target)


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> Path:
    return write_text(path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows))


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one line. A line is written whole or the reader skips it (see read_jsonl)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file we wrote; a torn last line (killed mid-append) is skipped."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def read_metrics(run_dir: str | Path, name: str | None = None, split: str | None = None) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl, optionally filtered by metric name and split."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    rows = read_jsonl(path)
    return [r for r in rows if (name is None or r.get("name") == name) and (split is None or r.get("split") == split)]
