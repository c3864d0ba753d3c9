"""What keeps a studio that a team leaves running safe: its key, the hosts it answers to, and the
refusal of cross-site requests.

- The key: given (--api-key), or made once and kept in the state folder (mode 0600) so a restart
  keeps it; the login URL carries it (`/login?token=KEY`, as Jupyter does) and sets the cookie.
- The Host allow-list: a page on evil.example whose name is re-pointed at 127.0.0.1 (DNS
  rebinding) reaches the studio with `Host: evil.example`; only loopback names, the --host name
  (all local addresses for a wildcard host) and --allow-host names are answered.
- Cross-site requests: a state-changing request from a browser (no Bearer key) whose Origin or
  Referer names another host is refused, so no other web page can upload or start jobs through
  the user's cookie (or through an open --no-auth studio).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tunelab.serve.auth import LOOPBACK
from tunelab.serve.errors import ApiError

KEY_FILE = "api_key"
WILDCARD = ("0.0.0.0", "::", "")
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")


class SecurityError(ValueError):
    """A studio configuration that would be unsafe (e.g. --no-auth on a reachable interface)."""


def stored_key(folder: Path) -> str:
    """The key kept in `folder` (made on first use, readable by its owner only)."""
    path = folder / KEY_FILE
    if path.exists():
        os.chmod(path, 0o600)  # a copied state folder may have widened it
        key = path.read_text(encoding="utf-8").strip()
        if key:
            return key
        path.unlink()  # an empty file (a crash between create and write) is made again
    key = secrets.token_urlsafe(32)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key + "\n")
    return key


def check_no_auth(host: str) -> None:
    if host not in LOOPBACK:
        raise SecurityError(
            f"--no-auth with --host {host}: every machine that reaches {host} could upload files and run "
            "jobs; bind a loopback address (127.0.0.1) or leave --no-auth out (the studio makes a key)"
        )


def _host_name(value: str) -> str:
    """'Example.com:8000' -> 'example.com', '[::1]:8000' -> '::1' (what a Host header names)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> set[str]:
    """Loopback names, `host` itself, and for a wildcard host this machine's names and addresses."""
    names = {*LOOPBACK, _host_name(host), *(_host_name(h) for h in extra)}
    if host in WILDCARD:
        import psutil

        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        for addresses in psutil.net_if_addrs().values():
            names |= {
                a.address.split("%")[0].lower() for a in addresses if a.family in (socket.AF_INET, socket.AF_INET6)
            }
    return names - {""}


def _cross_site(request: Any) -> bool:
    """True when a browser says the request comes from a page of another host (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return False  # not sent by a browser page (curl, scripts): nothing to compare
    if source == "null":
        return True  # sandboxed frames, file:// pages
    return urlsplit(source).netloc.lower() != request.headers.get("host", "").lower()


def add_request_checks(app: Any, hosts: set[str]) -> None:
    """Host allow-list (400) outside, cross-site refusal (403) inside; add after the key check so
    these run before it."""

    @app.middleware("http")
    async def same_site_only(request: Any, call_next: Any) -> Any:
        bearer = request.headers.get("authorization", "").startswith("Bearer ")
        if request.method in STATE_CHANGING and not bearer and _cross_site(request):
            return ApiError(
                403,
                f"cross-site request refused: {request.method} {request.url.path} came from a page of "
                f"{request.headers.get('origin') or request.headers.get('referer')}, not of this studio",
                None,
                "cross_site_request",
            ).response()
        return await call_next(request)

    @app.middleware("http")
    async def known_host_only(request: Any, call_next: Any) -> Any:
        name = _host_name(request.headers.get("host", ""))
        if name not in hosts:
            return ApiError(
                400,
                f"Host '{name}' is not a name this studio answers to ({', '.join(sorted(hosts))}); "
                "start it with --allow-host NAME to add one",
                None,
                "host_not_allowed",
            ).response()
        return await call_next(request)
