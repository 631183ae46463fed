"""GET /health (and /api/health, which the seed's admin dashboard polls).

The seed's shape (``status``, ``chat_socket``) plus the state of the database, Redis and
the change listener. 503 and ``"status": "unhealthy"`` when the database or a configured
Redis is unreachable.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from ..keys import DATABASE, RELAY

_STARTED = time.monotonic()


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/api/health", health)


async def _redis_state(app: web.Application) -> dict[str, Any]:
    redis = app[RELAY].redis
    if redis is None:
        return {"status": "not_configured"}
    try:
        await asyncio.wait_for(redis.ping(), timeout=2.0)
    except Exception as exc:  # any failure to reach Redis
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "up"}


async def health(request: web.Request) -> web.Response:
    app = request.app
    relay = app[RELAY]
    try:
        database = await app[DATABASE].ping(wait=2.0)
    except Exception as exc:  # any failure to reach the database means unhealthy
        database = {"status": "down", "error": type(exc).__name__}
    redis = await _redis_state(app)
    healthy = database["status"] == "up" and redis["status"] != "down"
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "database": database,
        "redis": redis,
        "changefeed": {
            "status": "listening" if relay.changefeed.connected.is_set() else "reconnecting",
            "reconnects": relay.changefeed.reconnects,
        },
        "relay_id": relay.relay_id,
        "uptime_seconds": round(time.monotonic() - _STARTED, 1),
        "chat_socket": relay.stats(),
    }
    return web.json_response(body, status=200 if healthy else 503)
