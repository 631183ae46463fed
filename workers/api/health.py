"""GET /health (and /api/health, which the original service's admin dashboard polls).

The original service's shape (``status``, ``chat_socket``) plus the state of the database, Redis and
the change listener. 503 and ``"status": "unhealthy"`` when the database is unreachable
(the one hard dependency); 200 and ``"status": "degraded"`` when a configured Redis is
down (each relay then serves its own sockets with local state).
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
    link = app[RELAY].redis_link
    if link is None:
        return {"status": "not_configured"}
    if link.up:  # confirm: the link notices an outage only when something uses Redis
        try:
            await asyncio.wait_for(link.client.ping(), timeout=2.0)
        except Exception as exc:  # any failure to reach Redis
            link.mark_down(exc)
    return link.state()


async def health(request: web.Request) -> web.Response:
    app = request.app
    relay = app[RELAY]
    try:
        database = await app[DATABASE].ping(wait=2.0)
    except Exception as exc:  # any failure to reach the database means unhealthy
        database = {"status": "down", "error": type(exc).__name__}
    redis = await _redis_state(app)
    healthy = database["status"] == "up"
    degraded = healthy and redis["status"] == "down"
    body = {
        "status": "degraded" if degraded else "healthy" if healthy else "unhealthy",
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
