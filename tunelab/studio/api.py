"""The studio's routes: OpenAI Files and Fine-tuning, a few tunelab extensions the pages use
(file reports, loss masks, an SSE event stream, run comparison), the login page and the UI.

Mounted on the serving app (serve/app.py), so /v1/chat/completions and /v1/models are the serving engine's own.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from html import escape
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from tunelab.report.page import shell
from tunelab.serve.auth import add_api_key, key_matches
from tunelab.serve.errors import ApiError
from tunelab.studio.jobs import TERMINAL

UI = Path(__file__).parent / "ui"
COOKIE = "tunelab_key"


def login_html(error: str = "") -> str:
    """The page a browser without the key is sent to; it styles itself with the UI's stylesheet."""
    body = (
        '<main class="login"><h1>tunelab studio</h1><form method="post" action="/login"><label>API key '
        '<input type="password" name="key" autofocus></label><button>Log in</button></form>'
        f'<p class="error">{escape(error)}</p></main>'
    )
    return shell("tunelab studio: log in", body, head='<link rel="stylesheet" href="/ui/style.css">')


def add_auth(app: FastAPI, api_key: str | None) -> None:
    """Every route needs the key: `Authorization: Bearer KEY` (API clients) or the cookie the
    login page sets (browsers). Pages without it are redirected to /login."""
    add_api_key(app, api_key, cookie=COOKIE, open_paths=("/login", "/ui/style.css"), login_page="/login")

    @app.get("/login", include_in_schema=False)
    async def login_page() -> HTMLResponse:
        return HTMLResponse(login_html())

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        key = str((await request.form()).get("key", ""))
        if not api_key or not key_matches(key, api_key):
            return HTMLResponse(login_html("wrong key"), status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict")
        return response


def add_files(app: FastAPI, studio: Any) -> None:
    files = studio.files

    def found(file_id: str) -> dict[str, Any]:
        row = files.row(file_id)
        if row is None:
            raise ApiError(404, f"no file with id '{file_id}'", "file_id", "file_not_found")
        return row

    @app.post("/v1/files")
    async def upload(request: Request) -> dict[str, Any]:
        limit = studio.max_upload_bytes
        if int(request.headers.get("content-length") or 0) > limit + 64 * 1024:
            raise ApiError(
                413,
                f"file too large: the limit is {limit // 2**20} MB (tunelab studio --max-upload-mb)",
                "file",
                "file_too_large",
            )
        form = await request.form()
        purpose, upload = form.get("purpose"), form.get("file")
        if purpose != "fine-tune":
            raise ApiError(400, f"purpose must be 'fine-tune' (got {purpose!r})", "purpose", "invalid_value")
        if not isinstance(upload, UploadFile):
            raise ApiError(400, "a multipart field 'file' is required", "file", "missing_required_parameter")
        with tempfile.NamedTemporaryFile(dir=studio.files.folder, delete=False, suffix=".part") as out:
            size = 0
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > limit:
                    out.close()
                    Path(out.name).unlink()
                    raise ApiError(413, f"file too large: the limit is {limit // 2**20} MB", "file", "file_too_large")
                out.write(chunk)
        return await run_in_threadpool(files.create, upload.filename or "upload.jsonl", purpose, Path(out.name), size)

    @app.get("/v1/files")
    async def list_files(
        purpose: str | None = None, after: str | None = None, limit: int = 10000, order: str = "desc"
    ) -> dict[str, Any]:
        return files.list(purpose, after, max(1, min(limit, 10000)), order)

    @app.get("/v1/files/{file_id}")
    async def retrieve_file(file_id: str) -> dict[str, Any]:
        return files.get(found(file_id)["id"])

    @app.get("/v1/files/{file_id}/content")
    async def file_content(file_id: str) -> FileResponse:
        row = found(file_id)
        return FileResponse(row["path"], media_type="application/octet-stream", filename=row["filename"])

    @app.delete("/v1/files/{file_id}")
    async def delete_file(file_id: str) -> dict[str, Any]:
        found(file_id)
        files.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @app.get("/v1/files/{file_id}/report")  # tunelab: the validator's whole report
    async def file_report(file_id: str) -> dict[str, Any]:
        row = found(file_id)
        return {"id": file_id, "status": row["status"], "report": row["report"]}

    @app.get("/v1/files/{file_id}/inspect")  # tunelab: `tunelab data inspect --json` with the pieces
    async def file_inspect(file_id: str, n: int = 1) -> dict[str, Any]:
        found(file_id)
        return {"id": file_id, "examples": await run_in_threadpool(files.inspect, file_id, max(1, min(n, 10)))}


def add_jobs(app: FastAPI, studio: Any) -> None:
    jobs, db = studio.jobs, studio.db

    def found(job_id: str) -> dict[str, Any]:
        row = jobs.row(job_id)
        if row is None:
            raise ApiError(404, f"no fine-tuning job with id '{job_id}'", "fine_tuning_job_id", "job_not_found")
        return row

    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "request body is not valid JSON", None, "invalid_json") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object", None, "invalid_value")
        return await run_in_threadpool(jobs.create, body)

    @app.get("/v1/fine_tuning/jobs")
    async def list_jobs(request: Request, after: str | None = None, limit: int = 20) -> dict[str, Any]:
        metadata = {k[9:-1]: v for k, v in request.query_params.items() if k.startswith("metadata[")}
        return jobs.list(after, max(1, min(limit, 100)), metadata or None)

    @app.get("/v1/fine_tuning/jobs/{job_id}")
    async def retrieve_job(job_id: str) -> dict[str, Any]:
        return jobs.get(found(job_id)["id"])

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str) -> dict[str, Any]:
        row = found(job_id)
        if row["status"] in TERMINAL:
            raise ApiError(400, f"job {job_id} is already {row['status']}", "fine_tuning_job_id", "invalid_state")
        await run_in_threadpool(studio.runner.cancel, job_id)
        return jobs.get(job_id)

    @app.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def list_events(job_id: str, after: str | None = None, limit: int = 20) -> dict[str, Any]:
        found(job_id)
        sql, params = "SELECT * FROM events WHERE job_id = ?", [job_id]
        if after:
            sql += " AND seq < (SELECT seq FROM events WHERE id = ?)"
            params.append(after)
        rows = db.all(sql + " ORDER BY seq DESC LIMIT ?", (*params, max(1, min(limit, 1000)) + 1))
        page = [event_object(r) for r in rows[:limit]]
        return {"object": "list", "data": page, "has_more": len(rows) > limit}

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def list_checkpoints(job_id: str, after: str | None = None, limit: int = 10) -> dict[str, Any]:
        found(job_id)
        rows = db.all("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step DESC", (job_id,))
        if after:
            ids = [r["id"] for r in rows]
            rows = rows[ids.index(after) + 1 :] if after in ids else rows
        page = [
            {
                "object": "fine_tuning.job.checkpoint",
                "id": r["id"],
                "created_at": r["created_at"],
                "fine_tuned_model_checkpoint": r["model"],
                "fine_tuning_job_id": job_id,
                "metrics": r["metrics"],
                "step_number": r["step"],
            }
            for r in rows[:limit]
        ]
        return {
            "object": "list",
            "data": page,
            "has_more": len(rows) > limit,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }

    @app.get("/v1/fine_tuning/jobs/{job_id}/stream")  # tunelab: events as SSE, replayed after Last-Event-ID
    async def stream_events(job_id: str, request: Request) -> StreamingResponse:
        found(job_id)
        last = int(request.headers.get("last-event-id") or request.query_params.get("after_seq") or 0)
        return StreamingResponse(
            _event_stream(db, job_id, last, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )


def add_compare(app: FastAPI, studio: Any) -> None:
    from tunelab.studio.compare import compare

    @app.get("/v1/studio/compare")  # tunelab: ?ids=ftjob-a,ftjob-b
    async def compare_jobs(ids: str) -> dict[str, Any]:
        rows = [studio.jobs.row(i) for i in ids.split(",") if i]
        if not rows or any(r is None for r in rows):
            raise ApiError(404, "ids must name existing fine-tuning jobs, comma-separated", "ids", "job_not_found")
        return await run_in_threadpool(compare, rows)


def event_object(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": row["id"],
        "created_at": row["created_at"],
        "level": row["level"],
        "message": row["message"],
        "data": row["data"],
        "type": row["type"],
        "seq": row["seq"],
    }


async def _event_stream(db: Any, job_id: str, last: int, request: Request) -> Any:
    """Every event after sequence number `last`, then new ones as they come; each carries its
    sequence number as the SSE id, so the browser's automatic reconnect resumes where it was."""
    yield "retry: 1000\n\n"
    while True:
        rows = db.all("SELECT * FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, last))
        for row in rows:
            last = row["seq"]
            yield f"id: {last}\nevent: job_event\ndata: {json.dumps(event_object(row), ensure_ascii=False)}\n\n"
        job = db.one("SELECT status FROM jobs WHERE id = ?", (job_id,))
        if not rows and job["status"] in TERMINAL:
            yield f"event: end\ndata: {json.dumps({'status': job['status']})}\n\n"
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.5)


def add_ui(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(UI / "index.html")

    @app.get("/ui/{name}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        path = (UI / name).resolve()
        if path.parent != UI.resolve() or not path.is_file():
            raise ApiError(404, f"no such page asset: {name}")
        return FileResponse(path)
