"""Uploaded files: stored beside the database, validated by `tunelab data validate`'s code.

A file is `uploaded` until its validation thread finishes, then `processed` (every row usable)
or `error` with the validator's `file:line: field: reason` lines in status_details, which is
what the `openai` client's `files.wait_for_processing` waits for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from tunelab.studio.db import Database, new_id

log = logging.getLogger(__name__)
MAX_ERROR_LINES = 20  # status_details is a summary; the full list is in the file's report


PROMPT, LOG = "system-prompt", "feedback-log"  # report formats beside the chat ones and openai-preference


def upload_kind(path: Path) -> str | None:
    """PROMPT for a YAML file, LOG for a CSV/Parquet file or JSONL rows with a 'question' and no
    'messages' (a feedback log), None for the rest (chats or preference pairs)."""
    from tunelab.textio import RowError, loads_row

    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return PROMPT
    if suffix in (".csv", ".parquet", ".pq"):
        return LOG
    try:
        from tunelab.data.formats import raw_rows

        for _, raw in raw_rows(path):
            try:
                first = loads_row(raw)
            except RowError:
                continue
            return LOG if isinstance(first, dict) and "question" in first and "messages" not in first else None
    except (OSError, ValueError):
        return None
    return None


def file_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "object": "file",
        "bytes": row["bytes"],
        "created_at": row["created_at"],
        "filename": row["filename"],
        "purpose": row["purpose"],
        "status": row["status"],
        "status_details": row["status_details"],
        "expires_at": None,
    }


class FileStore:
    def __init__(self, db: Database, folder: Path, tokenizer_model: str):
        self.db, self.folder, self.tokenizer_model = db, folder, tokenizer_model
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()

    def tokenizer(self) -> Any:
        with self._tokenizer_lock:
            if self._tokenizer is None:
                from tunelab.models.load import load_tokenizer

                self._tokenizer = load_tokenizer(self.tokenizer_model)
            return self._tokenizer

    def create(self, filename: str, purpose: str, data_path: Path, size: int) -> dict[str, Any]:
        """Register a file already written to `data_path` and start validating it."""
        file_id = new_id("file")
        target = self.folder / file_id / Path(filename).name
        target.parent.mkdir(parents=True, exist_ok=True)
        data_path.replace(target)
        self.db.insert(
            "files",
            {
                "id": file_id,
                "filename": filename,
                "purpose": purpose,
                "bytes": size,
                "created_at": int(time.time()),
                "status": "uploaded",
                "path": str(target),
            },
        )
        threading.Thread(target=self.validate, args=(file_id,), name=f"validate-{file_id}", daemon=True).start()
        return self.get(file_id)  # type: ignore[return-value]

    def add_result(self, filename: str, purpose: str, data: bytes) -> dict[str, Any]:
        """A file the studio made (an evaluation's result): stored as is, nothing to validate."""
        from tunelab import rundir

        file_id = new_id("file")
        target = rundir.write_bytes(self.folder / file_id / filename, data)
        self.db.insert(
            "files",
            {
                "id": file_id,
                "filename": filename,
                "purpose": purpose,
                "bytes": len(data),
                "created_at": int(time.time()),
                "status": "processed",
                "path": str(target),
            },
        )
        return self.get(file_id)  # type: ignore[return-value]

    def validate(self, file_id: str) -> None:
        row = self.row(file_id)
        if row is None:
            return
        try:
            report = self._report(Path(row["path"]))
        except Exception as exc:  # unreadable file, unknown format: the reason is the file's status
            log.info("validation of %s failed: %s", file_id, exc)
            report = {
                "read": 0,
                "kept": 0,
                "rejected": 0,
                "errors": [f"{row['filename']}: {exc}"],
                "stats": {"examples": 0},
            }
        # The validator names the stored path; users know the name they uploaded.
        report["errors"] = [e.replace(row["path"], row["filename"]) for e in report["errors"]]
        ok = report["kept"] > 0 and not report["errors"]
        details = None
        if not ok:
            lines = report["errors"][:MAX_ERROR_LINES] or [f"{row['filename']}: no usable conversation"]
            more = len(report["errors"]) - len(lines)
            details = "\n".join(lines) + (f"\n... and {more} more" if more > 0 else "")
        self.db.update(
            "files", file_id, {"status": "processed" if ok else "error", "status_details": details, "report": report}
        )

    def _report(self, path: Path) -> dict[str, Any]:
        """The validator the file's kind needs: chats and preference pairs (`tunelab data validate`),
        feedback logs (recipe bake's reader with the default columns), prompt files (YAML)."""
        kind = upload_kind(path)
        if kind == PROMPT:
            from tunelab.prompts.rules import PromptFileError, load_prompt

            try:
                spec, errors = load_prompt(path), []
            except PromptFileError as exc:
                spec, errors = None, [str(exc)]
            return {
                "file": str(path),
                "format": PROMPT,
                "read": 1,
                "kept": 0 if errors else 1,
                "rejected": 1 if errors else 0,
                "errors": errors,
                "rules": [r.id for r in spec.rules] if spec else [],
                "stats": {"examples": 0},
            }
        if kind == LOG:
            from tunelab.data.logs import read_logs
            from tunelab.data.prepare import write_rejected

            read = read_logs(path)
            rejected = write_rejected(read, path.parent)
            good = sum(r.label for r in read.records)
            return {
                "file": str(path),
                "format": LOG,
                "log_format": read.fmt,
                "read": read.n_read,
                "kept": len(read.records),
                "rejected": len(read.rejected),
                "errors": [r.message() for r in read.rejected],
                "good": good,
                "bad": len(read.records) - good,
                "rejected_file": str(rejected) if rejected else None,
                "stats": {"examples": 0},
            }
        from tunelab.data.validate import validate_file

        return validate_file(path, self.tokenizer(), None, "auto", out_dir=path.parent)

    def row(self, file_id: str) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM files WHERE id = ? AND deleted = 0", (file_id,))

    def get(self, file_id: str) -> dict[str, Any] | None:
        row = self.row(file_id)
        return file_object(row) if row else None

    def list(self, purpose: str | None, after: str | None, limit: int, order: str) -> dict[str, Any]:
        """Cursor pagination as the API does it: `after` is the last id of the previous page."""
        desc = order != "asc"
        sql, params = "SELECT * FROM files WHERE deleted = 0", []
        if purpose:
            sql += " AND purpose = ?"
            params.append(purpose)
        if after:
            anchor = self.db.one("SELECT created_at, rowid FROM files WHERE id = ?", (after,))
            if anchor:
                sql += f" AND (created_at, rowid) {'<' if desc else '>'} (?, ?)"
                params += [anchor["created_at"], anchor["rowid"]]
        sql += f" ORDER BY created_at {'DESC' if desc else 'ASC'}, rowid {'DESC' if desc else 'ASC'} LIMIT ?"
        rows = self.db.all(sql, (*params, limit + 1))
        page = [file_object(r) for r in rows[:limit]]
        return {
            "object": "list",
            "data": page,
            "has_more": len(rows) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    def delete(self, file_id: str) -> bool:
        row = self.row(file_id)
        if row is None:
            return False
        # The row stays (jobs name their files), marked deleted; the bytes go.
        self.db.update("files", file_id, {"deleted": 1})
        Path(row["path"]).unlink(missing_ok=True)
        return True

    def inspect(self, file_id: str, n: int = 1) -> list[dict[str, Any]]:
        """`tunelab data inspect --json` for the first n examples, with the loss-mask pieces."""
        from tunelab.data.validate import inspect_file

        row = self.row(file_id)
        if row is None:
            return []
        return json.loads(json.dumps(inspect_file(row["path"], self.tokenizer(), n), ensure_ascii=False))
