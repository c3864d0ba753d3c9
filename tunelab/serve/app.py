"""An OpenAI-compatible chat server around a run directory or model.

The HTTP layer (FastAPI): request validation with OpenAI-style errors, SSE streaming, the API key
(serve/auth.py), and a real uvicorn server thread for tests. Generation and batching live in tunelab/generation/engine.py.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tunelab.generation.engine import Engine, Job, build_prompt
from tunelab.serve.auth import add_api_key, warn_if_reachable
from tunelab.serve.errors import ApiError
from tunelab.serve.limits import CHAT, COMMON, MAX_BODY_BYTES, MAX_MESSAGES, BodyLimit, openapi_without_unused_422

log = logging.getLogger(__name__)


@dataclass
class ServeSettings:
    model_name: str
    api_key: str | None = None
    system_prompt: str | None = None  # used when a request brings no system message
    max_tokens_limit: int = 1024
    default_max_tokens: int = 256
    batch_window: float = 0.01  # seconds the worker waits for companions of the first request
    max_batch: int = 16
    max_queue: int = 256
    max_body_bytes: int = MAX_BODY_BYTES  # bigger bodies get 413 before they are read


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    """A listening-ready socket bound to a free port (no race between choosing and binding)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


class ServerThread:
    """Run a real uvicorn server on 127.0.0.1 in a thread: `with ServerThread(app) as url: ...`."""

    def __init__(self, app: Any, host: str = "127.0.0.1"):
        import uvicorn

        self.sock = free_socket(host)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}/v1"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def load_engine(spec: str, settings: ServeSettings) -> Engine:
    from tunelab.models.load import load_model

    model, tokenizer = load_model(spec, merge=True, dtype="auto")
    return Engine(
        model, tokenizer, batch_window=settings.batch_window, max_batch=settings.max_batch, max_queue=settings.max_queue
    )


def serve(spec: str, *, host: str = "127.0.0.1", port: int = 8000, settings: ServeSettings | None = None) -> None:
    """Load `spec` and serve it until interrupted."""
    import uvicorn

    from tunelab.models.load import describe

    settings = settings or ServeSettings(model_name=default_model_name(spec))
    where = describe(spec)
    engine = load_engine(spec, settings)
    warn_if_reachable(host, "server", settings.api_key)
    log.info(
        "serving %s (base %s, adapter %s, %s) as '%s' on http://%s:%d/v1",
        spec,
        where["base"],
        where["adapter"],
        str(engine.model.dtype).removeprefix("torch."),
        settings.model_name,
        host,
        port,
    )
    try:
        uvicorn.run(create_app(engine, settings), host=host, port=port, log_level="info")
    finally:
        engine.close()


class OneModel:
    """The model source of `tunelab serve`: one engine under one name. The studio passes its own
    source (many models, loaded on first use) with the same methods."""

    def __init__(self, engine: Engine, name: str):
        self.engine, self.name = engine, name

    def names(self) -> list[str]:
        return [self.name]

    def get(self, name: str) -> Engine:
        if name != self.name:
            raise ApiError(404, f"model '{name}' is not served here; use '{self.name}'", "model", "model_not_found")
        return self.engine

    def stats(self) -> dict[str, Any]:
        return self.engine.stats()


def default_model_name(spec: str) -> str:
    from pathlib import Path

    path = Path(spec)
    return path.resolve().name if path.exists() else spec


def new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


# ---- HTTP layer -------------------------------------------------------------------------------

from typing import Annotated  # noqa: E402

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool  # noqa: E402


def _whole_number(value: Any) -> Any:
    """JSON Schema's "integer" includes 1.0, so the schema's clients may send it; "1" and true are not numbers."""
    if isinstance(value, (bool, str)):
        raise ValueError("must be an integer")
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeInt = Annotated[int, BeforeValidator(_whole_number)]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(pattern="^(system|developer|user|assistant|tool)$")
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def for_template(self, index: int) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            if any(part.type != "text" or part.text is None for part in content):
                raise ApiError(400, "only text content parts are supported", f"messages.{index}.content")
            content = "".join(part.text or "" for part in content)
        out: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": content or ""}
        if self.tool_calls:
            out["tool_calls"] = self.tool_calls
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


class StreamOptions(BaseModel):
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    # Unknown OpenAI fields (user, seed, ...) are accepted and ignored; known ones are type-checked.
    model_config = ConfigDict(extra="allow")
    model: str
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: WholeInt | None = Field(None, ge=1)
    max_completion_tokens: WholeInt | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: str | list[str] | None = None
    n: WholeInt = Field(1, description="Only 1 is supported (400 otherwise).")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None


def _validation_error(exc: Any) -> ApiError:
    first = exc.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        return ApiError(
            400, f"request body is not valid JSON: {first.get('ctx', {}).get('error', '')}", None, "invalid_json"
        )
    where = ".".join(loc) or None
    return ApiError(400, f"{where or 'body'}: {first.get('msg')}", where, "invalid_value")


def _http_error(exc: Any) -> Any:
    """Starlette's own errors (404 no route, 405 wrong method) in the OpenAI body, keeping their
    headers: a 405 must say which methods are allowed (Allow)."""
    response = ApiError(exc.status_code, str(exc.detail)).response()
    response.headers.update(exc.headers or {})
    return response


def _prepare(body: ChatRequest, engine: Engine, settings: ServeSettings) -> Job:
    if body.n != 1:
        raise ApiError(400, "only n=1 is supported", "n", "unsupported_value")
    max_new = body.max_completion_tokens or body.max_tokens
    if max_new is not None and max_new > settings.max_tokens_limit:
        raise ApiError(
            400,
            f"max_tokens={max_new} is over this server's limit of {settings.max_tokens_limit}",
            "max_tokens",
            "invalid_value",
        )
    messages = [m.for_template(i) for i, m in enumerate(body.messages)]
    try:
        prompt = build_prompt(engine.tokenizer, messages, settings.system_prompt)
    except Exception as exc:  # the chat template rejects this role order / content
        raise ApiError(
            400, f"the chat template cannot render these messages: {exc}", "messages", "invalid_value"
        ) from exc
    room = engine.context_length - len(prompt)
    if room < (max_new or 1):
        raise ApiError(
            400,
            f"this model's maximum context length is {engine.context_length} tokens; the messages use "
            f"{len(prompt)} and max_tokens asks for {max_new or 1} more",
            "messages",
            "context_length_exceeded",
        )
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return Job(
        prompt_ids=prompt,
        max_new_tokens=max_new or min(settings.default_max_tokens, room),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=stop,
        stream=body.stream,
        loop=asyncio.get_running_loop(),
    )


def _usage(job: Job) -> dict[str, int]:
    prompt, completion = len(job.prompt_ids), len(job.tokens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _sse(job: Job, cid: str, model: str, include_usage: bool) -> Any:
    import json

    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind, payload = await job.events.get()
            if kind == "delta":
                yield chunk({"content": payload})
                continue
            if kind == "error":
                err = {"error": {"message": payload, "type": "server_error", "param": None, "code": None}}
                yield f"data: {json.dumps(err)}\n\n"
            else:
                yield chunk({}, job.finish_reason)
                if include_usage:
                    yield chunk(None, usage=_usage(job))  # type: ignore[arg-type]
            break
        yield "data: [DONE]\n\n"
    finally:
        job.cancelled = True  # a client that went away frees its batch row


def create_app(engine: Engine | None, settings: ServeSettings, models: Any = None) -> Any:
    """The app for `engine` served as settings.model_name, or for every model of `models` (an
    object with names(), get(name) -> Engine and stats(), as OneModel)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    app = FastAPI(title="tunelab", docs_url=None, redoc_url=None)
    models = models or OneModel(engine, settings.model_name)

    @app.middleware("http")
    async def no_bare_500(request: Request, call_next: Any) -> Any:
        try:
            return await call_next(request)
        except Exception:  # never let a crash reach the client as a bare 500 page
            log.exception("unhandled error on %s", request.url.path)
            return ApiError(500, "internal server error", kind="server_error").response()

    add_api_key(app, settings.api_key)  # added after: it runs first, so an unknown caller reaches nothing
    app.exception_handler(ApiError)(lambda request, exc: exc.response())
    app.exception_handler(RequestValidationError)(lambda request, exc: _validation_error(exc).response())
    app.exception_handler(HTTPException)(lambda request, exc: _http_error(exc))
    app.openapi = lambda: openapi_without_unused_422(app)  # type: ignore[method-assign]
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)

    @app.get("/v1/models", responses=COMMON)
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "tunelab"} for name in models.names()],
        }

    @app.get("/v1/stats", responses=COMMON)
    async def stats() -> dict[str, Any]:
        return models.stats()

    @app.post("/v1/chat/completions", responses=CHAT)
    async def chat_completions(body: ChatRequest) -> Any:
        engine = await run_in_threadpool(models.get, body.model)  # may load the model (seconds)
        job = _prepare(body, engine, settings)
        try:
            engine.submit(job)
        except queue.Full:
            raise ApiError(
                503, "server overloaded: too many queued requests, retry later", None, "overloaded", "server_error"
            ) from None
        cid = new_id()
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_sse(job, cid, body.model, include_usage), media_type="text/event-stream")
        kind, payload = await job.events.get()
        while kind == "delta":
            kind, payload = await job.events.get()
        if kind == "error":
            raise ApiError(500, payload, kind="server_error")
        return {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": job.text},
                    "finish_reason": job.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": _usage(job),
        }

    return app
