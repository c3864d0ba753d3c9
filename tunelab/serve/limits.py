"""The server's answers to bad requests, as its OpenAPI schema documents them, and its size limits.

Every error the server sends has one body shape (OpenAI's): {"error": {message, type, param, code}}.
ERROR_RESPONSES lists, per status, when it is sent, so a client generated from the schema knows
every answer. The body limit is enforced in an ASGI wrapper before the body is read into memory:
a Content-Length over the limit gets 413 at once, and a chunked body is counted as it arrives.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

MAX_BODY_BYTES = 1 << 20  # 1 MiB holds ~250k tokens of text, far above any context this serves
MAX_MESSAGES = 512


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def _doc(text: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": text}


COMMON = {
    401: _doc("Missing or wrong API key (send 'Authorization: Bearer KEY'); only when the server has a key."),
    413: _doc("Request body over the server's limit (1 MiB by default)."),
    500: _doc("Generation failed inside the server; logged, never a bare error page."),
}
CHAT = {
    400: _doc(
        "Invalid request: not JSON, a field of the wrong type or value, too many messages, "
        "max_tokens over the limit, or messages longer than the model's context."
    ),
    404: _doc("The model named in the request is not the one served here."),
    503: _doc("Server overloaded: too many queued requests; retry later."),
    **COMMON,
}


def error_body(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}}).encode()


class BodyLimit:
    """ASGI wrapper: 413 for a request body over `limit` bytes, without reading it whole first."""

    def __init__(self, app: Any, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._reject(send)
        seen, over = 0, False

        async def counted_receive() -> dict:
            # Over the limit, the app is told the body ended; its answer to the cut body is then
            # replaced by 413 below. (Raising here instead would reach Starlette's 500 handler.)
            nonlocal seen, over
            if over:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def checked_send(message: dict) -> None:
            if not over:
                await send(message)
            elif message["type"] == "http.response.start":
                await self._reject(send)

        await self.app(scope, counted_receive, checked_send)

    async def _reject(self, send: Any) -> None:
        body = error_body(413, f"request body over this server's limit of {self.limit} bytes", code="request_too_large")
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def openapi_without_unused_422(app: Any) -> dict[str, Any]:
    """FastAPI documents 422 on every operation with a body; this server answers a body that does
    not validate with 400 (as OpenAI does), so 422 is removed from the schema it serves."""
    from fastapi.openapi.utils import get_openapi

    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
