"""Helpers for relay tests: a relay on a real port, recording Socket.IO clients."""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import socketio
from aiohttp.test_utils import TestServer

from workers.app import create_app
from workers.keys import RELAY
from workers.relay import Relay

from .conftest import Users, settings_for

_LIVE: weakref.WeakSet[Recorder] = weakref.WeakSet()


class Recorder:
    """A python-socketio AsyncClient that records every event it receives."""

    def __init__(self, name: str = "client") -> None:
        _LIVE.add(self)
        self.name = name
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self._changed = asyncio.Event()

        @self.client.on("*")
        async def _any(event: str, data: Any = None) -> None:
            self.events.append((event, data))
            self._changed.set()

        @self.client.on("connect_error")
        async def _refused(data: Any = None) -> None:
            self.connect_error = data
            self._changed.set()

        @self.client.on("disconnect")
        async def _gone(*_args: Any) -> None:
            self.events.append(("disconnect", None))
            self._changed.set()

    async def connect(self, url: str, token: str | None, transport: str = "websocket") -> None:
        await self.client.connect(
            url,
            auth={"token": token} if token is not None else None,
            transports=[transport],
            wait_timeout=5,
        )

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.client.call(event, data, timeout=5)

    def of(self, event: str) -> list[Any]:
        return [data for name, data in self.events if name == event]

    async def wait_for(self, event: str, count: int = 1, within: float = 5.0) -> list[Any]:
        """Wait until ``count`` events of that name arrived; return them."""
        async with asyncio.timeout(within):
            while len(self.of(event)) < count:
                self._changed.clear()
                if len(self.of(event)) >= count:
                    break
                await self._changed.wait()
        return self.of(event)

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@asynccontextmanager
async def running_relay(database_url: str, **overrides: Any) -> AsyncIterator[tuple[str, Relay]]:
    """The full app (HTTP + Socket.IO) on 127.0.0.1, its changefeed listening."""
    app = create_app(settings_for(database_url, **overrides))
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    relay = app[RELAY]
    await asyncio.wait_for(relay.changefeed.connected.wait(), timeout=10)
    try:
        yield f"http://127.0.0.1:{server.port}", relay
    finally:
        # Clients hang up first: the server would otherwise wait for their sockets.
        for recorder in list(_LIVE):
            await recorder.close()
        await server.close()


async def eventually(check: Any, within: float = 10.0) -> Any:
    """Poll ``check()`` (async) until it returns something truthy; that value."""
    async with asyncio.timeout(within):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


async def make_session(
    superuser: asyncpg.Connection, *members: uuid.UUID, type_: str = "support"
) -> uuid.UUID:
    return await superuser.fetchval(
        "insert into chat_sessions (participants, type, booking_id, created_by) "
        "values ($1::uuid[], $2, case when $2 = 'booking' then gen_random_uuid() end, $3) "
        "returning id",
        list(members),
        type_,
        members[0],
    )


async def people(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    """A client and a reader sharing a session, and an outsider."""
    client = await users.create("client", "Cora Client")
    reader = await users.create("reader", "Rhea Reader")
    outsider = await users.create("client", "Otto Outsider")
    session_id = await make_session(superuser, client, reader)
    return {
        "client": client,
        "reader": reader,
        "outsider": outsider,
        "session": session_id,
        "tokens": {
            "client": users.token(client, "client", name="Cora Client"),
            "reader": users.token(reader, "reader", name="Rhea Reader"),
            "outsider": users.token(outsider, "client", name="Otto Outsider"),
        },
    }


@asynccontextmanager
async def bare_socket_server(
    *, max_size: int = 1_000_000, async_handlers: bool = True
) -> AsyncIterator[tuple[Any, Any, str]]:
    """The relay's Engine.IO/Socket.IO server alone on aiohttp (no database): the server,
    aiohttp's runner, and the Engine.IO URL (``http://127.0.0.1:<port>/socket.io/?EIO=4``)."""
    from aiohttp import web

    from workers.relay.upstream.packets import PacketGuardServer

    sio = PacketGuardServer(
        async_mode="aiohttp", max_http_buffer_size=max_size, async_handlers=async_handlers
    )
    sio.on("connect", lambda *_args: None)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield sio, runner, f"http://127.0.0.1:{port}/socket.io/?EIO=4"
    finally:
        await runner.cleanup()
