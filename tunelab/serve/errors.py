"""Errors in OpenAI's body ({"error": {message, type, param, code}}), shared by the server and the studio."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the client caused (or a 5xx we name), answered with its status in OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> Any:
        from fastapi.responses import JSONResponse

        body = {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)
