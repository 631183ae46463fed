"""MEASUREMENT PROTOTYPE: the relay's Socket.IO path on an ASGI server (uvicorn, granian).

``RELAY_SERVER=uvicorn|granian python -m workers relay`` serves the same relay as the
aiohttp service, for ``scripts/bench --server uvicorn|granian`` to compare the servers under
the socket path (ARCHITECTURE.md: the server under python-socketio is chosen by
measurement). It is not a deployment mode:

* Served: python-socketio's ``ASGIApp`` (``async_mode="asgi"``) at ``/socket.io/`` and
  ``GET /health`` (also ``/api/health``). Nothing else: the REST API, ``/metrics`` and the
  console stay aiohttp-only in this prototype (any other path answers 404).
* The same relay and everything around it: ``create_app(settings, socket_mode="asgi")``
  builds the aiohttp application as always (gate, events, changefeed, database pool, audit
  linker, audit and monitoring writers, object store, webhook and lifecycle workers) but
  never serves it; an ``AppRunner`` without sites runs its start-up (every cleanup context)
  at the ASGI lifespan's startup, and its shutdown (sockets closed) and cleanup at the
  lifespan's shutdown.
* What does not carry over: cutting a slow reader's connection. Under aiohttp the gate
  aborts the TCP transport of a socket whose client stopped reading
  (``GuardedServer.close_transport``); ASGI gives the application no transport, so the
  socket is closed at the Engine.IO level only and the connection lasts until the server or
  the peer ends it.

Server settings, each the lightest that serves the relay: one process serving sockets (one
granian worker), uvloop, no permessage-deflate (as the aiohttp path), no server-side
websocket pings (Engine.IO pings every socket itself), no access log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import socketio
from aiohttp import web

from .api import health
from .app import create_app, settle_garbage_collector
from .config import Settings
from .keys import RELAY

log = logging.getLogger(__name__)

# uvicorn's websocket implementation: the lighter of wsproto and websockets-sansio, by
# scripts/bench --parts idle --server uvicorn (10,000 joined clients, two runs each): wsproto
# 35,882 and 35,868 bytes per idle connection, websockets-sansio 37,620 and 37,503.
UVICORN_WS = "wsproto"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def create_asgi_app(settings: Settings) -> socketio.ASGIApp:
    """The relay's socket path and ``GET /health`` as one ASGI application, with the
    relay's lifecycle on the ASGI lifespan protocol."""
    app = create_app(settings, socket_mode="asgi")
    runner = web.AppRunner(app, handle_signals=False, access_log=None)

    async def startup() -> None:
        # python-socketio reports a failed startup without saying why: log it here.
        try:
            await runner.setup()
        except Exception:
            log.exception("relay start-up failed")
            raise
        await settle_garbage_collector(app)

    async def shutdown() -> None:
        try:
            await runner.cleanup()
        except Exception:
            log.exception("relay shutdown failed")
            raise

    return socketio.ASGIApp(
        app[RELAY].sio,
        other_asgi_app=_health_route(app),
        socketio_path="socket.io",
        on_startup=startup,
        on_shutdown=shutdown,
    )


def _health_route(app: web.Application) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """``GET /health`` (and ``/api/health``) from the same report as the aiohttp handler;
    404 for anything else."""

    async def route(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # a websocket elsewhere than /socket.io/
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            return
        if scope["path"] in ("/health", "/api/health") and scope["method"] in ("GET", "HEAD"):
            body, status = await health.report(app)
        else:
            status = 404
            body = {"error": {"code": "not_found", "message": "not served by this prototype"}}
        payload = orjson.dumps(body)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return route


def serve_uvicorn(settings: Settings, *, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(
        create_asgi_app(settings),
        host=settings.host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws=UVICORN_WS,
        ws_max_size=settings.max_packet_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="on",
        log_config=None,  # the relay's logging, as configured by python -m workers
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run()


def serve_granian(settings: Settings, *, port: int) -> None:
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces, Loops, RuntimeModes
    from granian.log import LogLevels

    Granian(
        # Loaded in the worker process (granian serves from a worker of its own).
        "workers.asgi:granian_app",
        factory=True,
        address=settings.host,
        port=port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=1,
        runtime_threads=1,
        runtime_mode=RuntimeModes.st,
        http=HTTPModes.http1,
        websockets=True,
        # (granian 2.8.9 gives each websocket tungstenite's default configuration, whose
        # read buffer is 128 KiB, and has no option for it.)
        # Connections one worker serves at once (a websocket holds one for its life):
        # granian's default (the backlog, 1,024) would stall the relay's caps.
        backpressure=2 * settings.max_connections + 1024,
        log_level=LogLevels(settings.log_level.lower()),
        log_access=False,
    ).serve()


def granian_app() -> socketio.ASGIApp:
    """granian's factory, run in its worker: the settings ``python -m workers`` checked."""
    return create_asgi_app(Settings.from_env())
