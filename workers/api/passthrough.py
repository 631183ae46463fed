"""HTTP middlewares that stay out of a websocket's way.

An aiohttp middleware's coroutine lives as long as the request it wraps, and a websocket
request lives as long as the connection: each middleware frame (with its ``partial``) is
held by every idle socket, about 0.4 KB apiece. None of ours has anything to do for a
Socket.IO websocket (CORS preflight, REST error shapes, REST telemetry), so
:func:`passes_websockets` hands such a request straight to the next handler, leaving no
frame of its own behind; every other request goes through the middleware as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

SOCKET_PATH = "/socket.io/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def is_socket_upgrade(request: web.Request) -> bool:
    """A Socket.IO websocket: what Engine.IO upgrades (anything else it serves as polling,
    which keeps every middleware)."""
    headers = request.headers
    return (
        request.method == "GET"
        and request.path.startswith(SOCKET_PATH)
        and request.query.get("transport") == "websocket"
        and headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in (t.strip() for t in headers.get("Connection", "").lower().split(","))
    )


def passes_websockets(middleware: Middleware) -> Any:
    """``middleware``, but a Socket.IO websocket request skips it without a frame."""

    def frameless(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        if is_socket_upgrade(request):
            return handler(request)
        return middleware(request, handler)

    frameless.__middleware_version__ = 1  # type: ignore[attr-defined]
    frameless.__name__ = getattr(middleware, "__name__", "middleware")
    frameless.__doc__ = middleware.__doc__
    return frameless
