"""CORS for browsers calling /api/* from the origins in CORS_ORIGINS.

A preflight (OPTIONS with Access-Control-Request-Method) is answered here, before routing
or authentication; every other /api/* response, errors included, gets the allow-origin
headers when the request's Origin is allowed. (Socket.IO handles its own CORS.)
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web

from ..errors import ApiError
from .errors import error_response
from .passthrough import passes_websockets

_PREFIX = "/api/"
_METHODS = "GET, POST, PUT, OPTIONS"
_HEADERS = "Authorization, Content-Type"
_MAX_AGE = "600"


class _Origins:
    def __init__(self, origins: Iterable[str]) -> None:
        self.any = "*" in origins
        self.allowed = frozenset(o for o in origins if o != "*")

    def allow(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this origin, or None."""
        if not origin:
            return None
        if self.any:
            return "*"
        return origin if origin.rstrip("/") in self.allowed else None


def setup(app: web.Application, origins: Iterable[str]) -> None:
    policy = _Origins(tuple(origins))

    @web.middleware
    async def preflight(request: web.Request, handler) -> web.StreamResponse:
        is_preflight = (
            request.method == "OPTIONS"
            and request.path.startswith(_PREFIX)
            and "Access-Control-Request-Method" in request.headers
        )
        if not is_preflight:
            return await handler(request)
        allowed = policy.allow(request.headers.get("Origin"))
        if allowed is None:
            return error_response(ApiError(403, "forbidden", "origin not allowed"))
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": _METHODS,
                "Access-Control-Allow-Headers": _HEADERS,
                "Access-Control-Max-Age": _MAX_AGE,
            },
        )

    async def allow_origin(request: web.Request, response: web.StreamResponse) -> None:
        if not request.path.startswith(_PREFIX):
            return
        allowed = policy.allow(request.headers.get("Origin"))
        if allowed is None:
            return
        response.headers["Access-Control-Allow-Origin"] = allowed
        if allowed != "*":
            response.headers["Vary"] = "Origin"

    app.middlewares.append(passes_websockets(preflight))
    app.on_response_prepare.append(allow_origin)
