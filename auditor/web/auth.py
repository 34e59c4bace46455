"""Who may see the page (interface.md, "The daemon's web page").

Bound to a loopback address, anyone on the machine may; bound anywhere else, only a request with the
token from the environment variable named by `[daemon] web_token_env`, as a bearer token or as the
password of basic auth, compared in constant time. `/healthz` and `/metrics` stay open for probes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from auditor.domain.config import ConfigError, DaemonSettings

OPEN_PATHS = frozenset({"/healthz", "/metrics"})
REALM = "lab-auditor"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_token(settings: DaemonSettings, file: str, env: Mapping[str, str]) -> str | None:
    """The token the page requires; None on a loopback address. Refuses to go on without one elsewhere."""
    if settings.health_port == 0 or is_loopback(settings.health_host):
        return None
    where = f"the page is bound to {settings.health_host!r}, not a loopback address"
    name = settings.web_token_env
    if not name:
        raise ConfigError(
            file, "daemon.web_token_env", f"{where}: name the environment variable that holds its token"
        )
    token = env.get(name, "")
    if not token.strip():
        raise ConfigError(
            file, "daemon.web_token_env", f"{where}, and the environment variable {name} is unset or empty"
        )
    return token


def presented_token(authorization: str | None) -> str | None:
    """The token a request presents: `Bearer <token>`, or basic auth with the token as the password."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _user, colon, password = decoded.partition(":")
        return password if colon else None
    return None


def authorized(authorization: str | None, token: str) -> bool:
    presented = presented_token(authorization)
    # Both sides as bytes: compare_digest refuses non-ASCII str, and takes the same time either way.
    return presented is not None and hmac.compare_digest(presented.encode(), token.encode())


class TokenRequired:
    """ASGI middleware: 401 with a challenge for any request without the token, except the open paths."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorized(authorization, self.token):
            await self.app(scope, receive, send)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()),
                    (b"www-authenticate", f'Bearer realm="{REALM}"'.encode()),
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"a token is required\n"})
