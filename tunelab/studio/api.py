"""The studio's routes: OpenAI Files and Fine-tuning, a few tunelab extensions the pages use
(file reports, loss masks, an SSE event stream, run comparison), the login page and the UI.

Mounted on the serving app (serve/app.py), so /v1/chat/completions and /v1/models are the serving engine's own.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
from html import escape
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from tunelab.report.page import shell
from tunelab.serve.auth import add_api_key, key_matches
from tunelab.serve.errors import ApiError
from tunelab.studio.jobs import TERMINAL
from tunelab.studio.schema import RESPONSES, UPLOAD_BODY, EvaluationRequest, JobRequest
from tunelab.studio.security import add_request_checks

UI = Path(__file__).parent / "ui"
COOKIE = "tunelab_key"
CHAT_FORMATS = ("openai", "sharegpt", "alpaca")  # what data inspect can show with a loss mask


def login_html(error: str = "") -> str:
    """The page a browser without the key is sent to; it styles itself with the UI's stylesheet."""
    body = (
        '<main class="login"><h1>tunelab studio</h1><form method="post" action="/login"><label>API key '
        '<input type="password" name="key" autofocus></label><button>Log in</button></form>'
        f'<p class="error">{escape(error)}</p></main>'
    )
    return shell("tunelab studio: log in", body, head='<link rel="stylesheet" href="/ui/style.css">')


def add_auth(app: FastAPI, api_key: str | None, hosts: set[str]) -> None:
    """Every route needs the key: `Authorization: Bearer KEY` (API clients) or the cookie that
    the login URL (/login?token=KEY) or the login page sets (browsers); pages without it are
    redirected to /login. No key (--no-auth): every route is open. Host and cross-site checks
    (studio/security.py) run before the key check, with or without a key."""
    add_api_key(app, api_key, cookie=COOKIE, open_paths=("/login", "/ui/style.css"), login_page="/login")
    add_request_checks(app, hosts)

    def logged_in(key: str) -> Response:
        response = RedirectResponse("/", status_code=303)
        # lax, not strict: the login URL is often opened from another app or site, and the
        # redirect to / must carry the cookie; cross-site POSTs are refused by the Origin check.
        response.set_cookie(COOKIE, key, httponly=True, samesite="lax")
        return response

    @app.get("/login", include_in_schema=False)
    async def login_page(token: str | None = None) -> Response:
        if token is None or not api_key:
            return HTMLResponse(login_html())
        if not key_matches(token, api_key):
            return HTMLResponse(login_html("the login link's token is wrong or old"), status_code=401)
        return logged_in(token)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        key = str((await request.form()).get("key", ""))
        if not api_key or not key_matches(key, api_key):
            return HTMLResponse(login_html("wrong key"), status_code=401)
        return logged_in(key)


def add_files(app: FastAPI, studio: Any) -> None:
    files = studio.files

    def found(file_id: str) -> dict[str, Any]:
        row = files.row(file_id)
        if row is None:
            raise ApiError(404, f"no file with id '{file_id}'", "file_id", "file_not_found")
        return row

    @app.post("/v1/files", responses=RESPONSES["upload"], openapi_extra=UPLOAD_BODY)
    async def upload(request: Request) -> dict[str, Any]:
        limit = studio.max_upload_bytes
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(
                415, "upload a file as multipart/form-data (fields file, purpose)", None, "unsupported_media_type"
            )
        if int(request.headers.get("content-length") or 0) > limit + 64 * 1024:
            raise ApiError(
                413,
                f"file too large: the limit is {limit // 2**20} MB (tunelab studio --max-upload-mb)",
                "file",
                "file_too_large",
            )
        try:
            form = await request.form()
        except (MultiPartException, ValueError) as exc:
            raise ApiError(400, f"the multipart body cannot be read: {exc}", "file", "invalid_multipart") from None
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

    @app.get("/v1/files", responses=RESPONSES["list_files"])
    async def list_files(
        purpose: str | None = None, after: str | None = None, limit: int = 10000, order: Literal["asc", "desc"] = "desc"
    ) -> dict[str, Any]:
        return files.list(purpose, after, max(1, min(limit, 10000)), order)

    @app.get("/v1/files/{file_id}", responses=RESPONSES["file"])
    async def retrieve_file(file_id: str) -> dict[str, Any]:
        return files.get(found(file_id)["id"])

    @app.get("/v1/files/{file_id}/content", responses=RESPONSES["file"])
    async def file_content(file_id: str) -> FileResponse:
        row = found(file_id)
        return FileResponse(row["path"], media_type="application/octet-stream", filename=row["filename"])

    @app.delete("/v1/files/{file_id}", responses=RESPONSES["delete_file"])
    async def delete_file(file_id: str) -> dict[str, Any]:
        found(file_id)
        users = studio.db.all(
            "SELECT id FROM jobs WHERE ? IN (training_file, validation_file) AND status NOT IN (?, ?, ?)",
            (file_id, *TERMINAL),
        )
        if users:
            raise ApiError(
                409, f"file {file_id} is used by job {users[0]['id']}, which has not finished", "file_id", "file_in_use"
            )
        if evaluation := studio.evaluations.in_use(file_id):
            raise ApiError(
                409,
                f"file {file_id} is read by evaluation {evaluation}, which has not finished",
                "file_id",
                "file_in_use",
            )
        files.delete(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    @app.get("/v1/files/{file_id}/report", responses=RESPONSES["file"])  # tunelab: the validator's whole report
    async def file_report(file_id: str) -> dict[str, Any]:
        row = found(file_id)
        return {"id": file_id, "status": row["status"], "report": row["report"]}

    @app.get("/v1/files/{file_id}/inspect", responses=RESPONSES["file_inspect"])  # tunelab: `data inspect --json`
    async def file_inspect(file_id: str, n: int = 1) -> dict[str, Any]:
        row = found(file_id)
        if row["status"] != "processed" or (row["report"] or {}).get("format") not in CHAT_FORMATS:
            raise ApiError(
                409,
                f"file {file_id} has no chat examples to show: it is {row['status']}"
                + (f" and holds {row['report'].get('format')} data" if row["report"] else ""),
                "file_id",
                "no_chat_examples",
            )
        return {"id": file_id, "examples": await run_in_threadpool(files.inspect, file_id, max(1, min(n, 10)))}


def add_jobs(app: FastAPI, studio: Any) -> None:
    jobs, db = studio.jobs, studio.db

    def found(job_id: str) -> dict[str, Any]:
        row = jobs.row(job_id)
        if row is None:
            raise ApiError(404, f"no fine-tuning job with id '{job_id}'", "fine_tuning_job_id", "job_not_found")
        return row

    @app.post("/v1/fine_tuning/jobs", responses=RESPONSES["create_job"])
    async def create_job(body: JobRequest) -> dict[str, Any]:
        return await run_in_threadpool(jobs.create, body.model_dump(exclude_unset=True, exclude_none=True))

    @app.get("/v1/fine_tuning/jobs", responses=RESPONSES["list_jobs"])
    async def list_jobs(request: Request, after: str | None = None, limit: int = 20) -> dict[str, Any]:
        metadata = {k[9:-1]: v for k, v in request.query_params.items() if k.startswith("metadata[")}
        return jobs.list(after, max(1, min(limit, 100)), metadata or None)

    @app.get("/v1/fine_tuning/jobs/{job_id}", responses=RESPONSES["job"])
    async def retrieve_job(job_id: str) -> dict[str, Any]:
        return jobs.get(found(job_id)["id"])

    @app.post("/v1/fine_tuning/jobs/{job_id}/cancel", responses=RESPONSES["cancel_job"])
    async def cancel_job(job_id: str) -> dict[str, Any]:
        row = found(job_id)
        if row["status"] in TERMINAL:
            raise ApiError(409, f"job {job_id} is already {row['status']}", "fine_tuning_job_id", "invalid_state")
        await run_in_threadpool(studio.runner.cancel, job_id)
        return jobs.get(job_id)

    @app.get("/v1/fine_tuning/jobs/{job_id}/events", responses=RESPONSES["job"])
    async def list_events(job_id: str, after: str | None = None, limit: int = 20) -> dict[str, Any]:
        found(job_id)
        sql, params = "SELECT * FROM events WHERE job_id = ?", [job_id]
        if after:
            sql += " AND seq < (SELECT seq FROM events WHERE id = ?)"
            params.append(after)
        rows = db.all(sql + " ORDER BY seq DESC LIMIT ?", (*params, max(1, min(limit, 1000)) + 1))
        page = [event_object(r) for r in rows[:limit]]
        return {"object": "list", "data": page, "has_more": len(rows) > limit}

    @app.get("/v1/fine_tuning/jobs/{job_id}/checkpoints", responses=RESPONSES["job"])
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

    @app.get("/v1/fine_tuning/jobs/{job_id}/stream", responses=RESPONSES["job"])  # tunelab: events as SSE
    async def stream_events(job_id: str, request: Request, after_seq: int = 0) -> StreamingResponse:
        found(job_id)
        given = request.headers.get("last-event-id", "")  # the browser's replay point after a reconnect
        last = int(given) if given.isdigit() else after_seq
        return StreamingResponse(
            _event_stream(db, job_id, last, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )


def add_metrics_csv(app: FastAPI, studio: Any) -> None:
    @app.get(
        "/v1/fine_tuning/jobs/{job_id}/metrics",
        responses={
            **RESPONSES["job_metrics"],
            200: {"content": {"text/csv": {}}, "description": "metrics.jsonl as CSV"},
        },
        response_class=Response,
    )  # tunelab: a finished job's metrics.jsonl as CSV (step, epoch, split, name, value)
    async def job_metrics(job_id: str) -> Response:
        from tunelab import rundir

        row = studio.jobs.row(job_id)
        if row is None:
            raise ApiError(404, f"no fine-tuning job with id '{job_id}'", "fine_tuning_job_id", "job_not_found")
        if row["status"] not in TERMINAL:
            raise ApiError(
                409,
                f"job {job_id} is {row['status']}: its metrics come when it finishes",
                "fine_tuning_job_id",
                "job_not_finished",
            )
        out = io.StringIO()
        writer = csv.DictWriter(
            out, ["step", "epoch", "split", "name", "value"], extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rundir.read_metrics(row["run_dir"]))
        headers = {"Content-Disposition": f'attachment; filename="{job_id}-metrics.csv"'}
        return Response(out.getvalue(), media_type="text/csv", headers=headers)


TYPE_TAGS = {"int", "float", "str", "bool", "dict", "list", "none", "json-or-python"}


def _field(loc: tuple[Any, ...]) -> str:
    """('body', 'hyperparameters', 'n_epochs', "literal['auto']") -> 'hyperparameters.n_epochs':
    pydantic names the union branch it tried (a type tag, or a model's class name: our fields are
    lower case); the user named only the field."""
    parts = [
        str(p)
        for p in loc[1:]
        if not (isinstance(p, str) and (p in TYPE_TAGS or "[" in p or "-" in p or p[:1].isupper()))
    ]
    return ".".join(parts)


def add_error_handlers(app: FastAPI) -> None:
    """A body that does not validate: 400 naming the field and every way it could be right. A 405
    names every method of the path in Allow: Starlette names only those of the first route that
    matches the path, and GET /v1/files and POST /v1/files are two routes."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException
    from starlette.routing import Match

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if errors[0].get("type") == "json_invalid":
            return ApiError(400, "request body is not valid JSON", None, "invalid_json").response()
        where = _field(tuple(errors[0].get("loc", ())))
        reasons = dict.fromkeys(e.get("msg", "") for e in errors if _field(tuple(e.get("loc", ()))) == where)
        return ApiError(400, f"{where or 'body'}: {' or '.join(reasons)}", where or None, "invalid_value").response()

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = ApiError(exc.status_code, str(exc.detail)).response()
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            methods = set()
            for route in app.router.routes:
                if route.matches(request.scope)[0] is not Match.NONE:
                    methods |= getattr(route, "methods", None) or set()
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response


def add_compare(app: FastAPI, studio: Any) -> None:
    from tunelab.studio.compare import compare

    @app.get("/v1/studio/compare", responses=RESPONSES["compare"])  # tunelab: ?ids=ftjob-a,ftjob-b
    async def compare_jobs(ids: str) -> dict[str, Any]:
        rows = [studio.jobs.row(i) for i in ids.split(",") if i]
        if not rows or any(r is None for r in rows):
            raise ApiError(404, "ids must name existing fine-tuning jobs, comma-separated", "ids", "job_not_found")
        return await run_in_threadpool(compare, rows)


def add_evaluations(app: FastAPI, studio: Any) -> None:
    """tunelab: a held-out file through the one behaviour judge, in the background (studio/evaluations.py)."""
    evaluations = studio.evaluations

    def found(eval_id: str) -> dict[str, Any]:
        row = evaluations.row(eval_id)
        if row is None:
            raise ApiError(404, f"no evaluation with id '{eval_id}'", "evaluation_id", "evaluation_not_found")
        return row

    @app.post("/v1/studio/evaluations", responses=RESPONSES["create_evaluation"])
    async def create_evaluation(body: EvaluationRequest) -> dict[str, Any]:
        return await run_in_threadpool(evaluations.create, body.model_dump(exclude_none=True))

    @app.get("/v1/studio/evaluations", responses=RESPONSES["list_evaluations"])
    async def list_evaluations(fine_tuning_job_id: str | None = None, limit: int = 100) -> dict[str, Any]:
        return evaluations.list(fine_tuning_job_id, max(1, min(limit, 1000)))

    @app.get("/v1/studio/evaluations/{evaluation_id}", responses=RESPONSES["evaluation"])
    async def retrieve_evaluation(evaluation_id: str) -> dict[str, Any]:
        found(evaluation_id)
        return await run_in_threadpool(evaluations.get, evaluation_id, result=True)

    @app.post("/v1/studio/evaluations/{evaluation_id}/cancel", responses=RESPONSES["cancel_evaluation"])
    async def cancel_evaluation(evaluation_id: str) -> dict[str, Any]:
        row = found(evaluation_id)
        if row["status"] in ("succeeded", "failed", "cancelled"):
            raise ApiError(
                409, f"evaluation {evaluation_id} is already {row['status']}", "evaluation_id", "invalid_state"
            )
        await run_in_threadpool(evaluations.cancel, evaluation_id)
        return evaluations.get(evaluation_id)


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
