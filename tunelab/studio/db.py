"""The studio's state: one SQLite file (WAL) holding files, jobs, events, checkpoints and evaluations.

WAL lets the API read while the job runner writes. One connection guarded by a lock is enough
for a single-user local service and keeps every write in its own short transaction, so a
SIGKILL loses at most the write in flight, never a committed row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, filename TEXT, purpose TEXT, bytes INTEGER, created_at INTEGER,
    status TEXT, status_details TEXT, path TEXT, report TEXT, deleted INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, created_at INTEGER, status TEXT, model TEXT, training_file TEXT,
    validation_file TEXT, suffix TEXT, seed INTEGER, metadata TEXT, hyperparameters TEXT,
    method TEXT, config TEXT, run_dir TEXT, fine_tuned_model TEXT, error TEXT,
    started_at INTEGER, finished_at INTEGER, trained_tokens INTEGER, total_steps INTEGER,
    step INTEGER, pid INTEGER, resume INTEGER DEFAULT 0, accelerate_config TEXT);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, job_id TEXT, created_at INTEGER,
    level TEXT, message TEXT, type TEXT, data TEXT, key TEXT, UNIQUE(job_id, key));
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, job_id TEXT, created_at INTEGER, step INTEGER, model TEXT,
    path TEXT, metrics TEXT, UNIQUE(job_id, step));
CREATE TABLE IF NOT EXISTS evaluations (
    id TEXT PRIMARY KEY, created_at INTEGER, status TEXT, job_id TEXT, file_id TEXT, request TEXT,
    dir TEXT, pid INTEGER, error TEXT, result_file TEXT, started_at INTEGER, finished_at INTEGER);
"""
JSON_COLUMNS = {
    "status_details",
    "report",
    "metadata",
    "hyperparameters",
    "method",
    "error",
    "data",
    "metrics",
    "request",
}


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class Database:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(SCHEMA)
        self.lock = threading.Lock()

    def _row(self, row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(row)
        for key in JSON_COLUMNS & out.keys():
            if out[key] is not None:
                out[key] = json.loads(out[key])
        return out

    @staticmethod
    def _encode(values: dict[str, Any]) -> dict[str, Any]:
        return {k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in values.items()}

    def insert(self, table: str, values: dict[str, Any], ignore: bool = False) -> bool:
        values = self._encode(values)
        sql = f"INSERT {'OR IGNORE ' if ignore else ''}INTO {table} ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})"
        with self.lock:
            return self.conn.execute(sql, tuple(values.values())).rowcount > 0

    def update(self, table: str, key: str, values: dict[str, Any], where: str = "", params: tuple = ()) -> int:
        """Update one row; `where` adds a guard (e.g. only while still running) so racing writers
        cannot move a finished job back."""
        values = self._encode(values)
        sql = f"UPDATE {table} SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ? {where}"
        with self.lock:
            return self.conn.execute(sql, (*values.values(), key, *params)).rowcount

    def one(self, sql: str, params: tuple = ()) -> dict[str, Any] | None:
        with self.lock:
            return self._row(self.conn.execute(sql, params).fetchone())

    def all(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        with self.lock:
            return [self._row(r) for r in self.conn.execute(sql, params).fetchall()]  # type: ignore[misc]

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
        key: str | None = None,
    ) -> bool:
        """One job event; `key` makes it idempotent (metrics re-read after a restart are not doubled)."""
        return self.insert(
            "events",
            {
                "id": new_id("ftevent"),
                "job_id": job_id,
                "created_at": int(time.time()),
                "level": level,
                "message": message,
                "type": kind,
                "data": data,
                "key": key or uuid.uuid4().hex,
            },
            ignore=True,
        )
