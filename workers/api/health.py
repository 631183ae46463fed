"""GET /health (and /api/health, which the seed's admin dashboard polls)."""

from __future__ import annotations

import time

from aiohttp import web

from ..keys import DATABASE, SOCKET_STATS

_STARTED = time.monotonic()


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/api/health", health)


def _socket_counters(app: web.Application) -> dict[str, int]:
    stats = app.get(SOCKET_STATS)
    if stats is None:
        return {
            "active_connections": 0,
            "active_sessions": 0,
            "typing_sessions": 0,
            "total_socket_connections": 0,
        }
    return stats()


async def health(request: web.Request) -> web.Response:
    db = request.app[DATABASE]
    try:
        database = await db.ping(wait=2.0)
    except Exception as exc:  # any failure to reach the database means unhealthy
        database = {"status": "down", "error": type(exc).__name__}
    healthy = database["status"] == "up"
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "database": database,
        "redis": {"status": "not_configured"},
        "uptime_seconds": round(time.monotonic() - _STARTED, 1),
        "chat_socket": _socket_counters(request.app),
    }
    return web.json_response(body, status=200 if healthy else 503)
