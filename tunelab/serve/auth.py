"""The API key check and the warning for a server other machines can reach, for `tunelab serve`
and the studio alike.

A key is sent as `Authorization: Bearer KEY` (API clients) or, where the server names a cookie,
as that cookie (browsers after the studio's login page). Keys are compared in constant time.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any

from tunelab.serve.errors import ApiError

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def warn_if_reachable(host: str, what: str, api_key: str | None) -> None:
    """Log a warning when `host` is not a loopback address, louder when there is no key."""
    if host not in LOOPBACK:
        log.warning(
            "binding %s: the %s is reachable from other machines%s",
            host,
            what,
            "" if api_key else " and has no API key",
        )


def presented_key(request: Any, cookie: str | None = None) -> str:
    """The key a request brings: the Bearer token, else the value of `cookie` (when named)."""
    header = request.headers.get("authorization", "")
    given = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    return given or (request.cookies.get(cookie, "") if cookie else "")


def key_matches(given: str, api_key: str) -> bool:
    return hmac.compare_digest(given.encode(), api_key.encode())


def add_api_key(
    app: Any,
    api_key: str | None,
    *,
    cookie: str | None = None,
    open_paths: Sequence[str] = (),
    login_page: str | None = None,
) -> None:
    """Make every route of `app` need `api_key` (no key: nothing is added, every route is open).

    Routes in `open_paths` stay open. A request without the key gets the OpenAI-style 401, or,
    with a `login_page` and a path outside /v1/, a redirect to that page.
    """
    if not api_key:
        return
    from fastapi.responses import RedirectResponse

    @app.middleware("http")
    async def require_key(request: Any, call_next: Any) -> Any:
        path = request.url.path
        if path in open_paths or key_matches(presented_key(request, cookie), api_key):
            return await call_next(request)
        if login_page and not path.startswith("/v1/"):
            return RedirectResponse(login_page, status_code=303)
        return ApiError(
            401, "missing or wrong API key (send 'Authorization: Bearer KEY')", None, "invalid_api_key"
        ).response()
