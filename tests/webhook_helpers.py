"""A real HTTP receiver for webhook tests: an aiohttp server on a free port that verifies
every request with the ``standardwebhooks`` library (as the receiver in docs/operations.md does),
records it, and answers what the test tells it to."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from workers.db import Database

from .conftest import Users, database_from_template


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: str
    payload: Any
    verified: bool
    status: int
    at: float = field(default_factory=time.time)


class Receiver:
    """``respond(request_number) -> status`` decides each answer (default 200)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.verifier = Webhook(secret)
        self.requests: list[Received] = []
        self.respond: Callable[[int], int] = lambda _n: 200
        self.stall: Callable[[int], float] = lambda _n: 0.0  # seconds before answering
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/hooks"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            payload = self.verifier.verify(body, headers)
            verified = True
        except (WebhookVerificationError, ValueError):
            payload, verified = None, False
        number = len(self.requests)
        status = self.respond(number) if verified else 401
        self.requests.append(Received(headers, body, payload, verified, status))
        self._changed.set()
        await asyncio.sleep(self.stall(number))
        # A redirect points back here: a client that followed it would show up again.
        location = {"Location": self.url + "?followed=1"} if 300 <= status < 400 else {}
        return web.Response(status=status, text="ok" if status < 300 else "no", headers=location)

    # ------------------------------------------------------------------ queries
    def delivered(self, kind: str | None = None) -> list[Received]:
        """Verified requests answered 2xx, optionally of one event type."""
        return [
            r
            for r in self.requests
            if r.verified and r.status < 300 and (kind is None or r.payload["type"] == kind)
        ]

    def about(self, kind: str, session_id: uuid.UUID) -> list[Received]:
        return [
            r for r in self.delivered(kind) if r.payload["data"]["session_id"] == str(session_id)
        ]

    async def wait_for(self, check: Callable[[], bool], within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not check():
                self._changed.clear()
                if check():
                    return
                await self._changed.wait()


@asynccontextmanager
async def receiver(secret: str | None = None) -> AsyncIterator[Receiver]:
    made = Receiver(secret or new_secret())
    await made.start()
    try:
        yield made
    finally:
        await made.stop()


@asynccontextmanager
async def fresh_database(template_url: str) -> AsyncIterator[str]:
    """A database of its own (the outbox and cursor are per database), from the template."""
    async with database_from_template(template_url, "chat_hooks") as url:
        yield url


@dataclass
class Env:
    """A database of its own, a connection as its owner, users, and a pool to act as them."""

    url: str
    conn: asyncpg.Connection
    users: Users
    db: Database


@asynccontextmanager
async def open_env(template_url: str) -> AsyncIterator[Env]:
    async with fresh_database(template_url) as url:
        conn = await asyncpg.connect(url)
        db = Database(url, max_size=3)
        await db.open()
        try:
            yield Env(url, conn, Users(conn), db)
        finally:
            await db.close()
            await conn.close()


async def wait_until(check: Callable[[], Any], within: float = 10.0, every: float = 0.05) -> Any:
    """Poll an async or plain check until it returns something truthy."""
    async with asyncio.timeout(within):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            await asyncio.sleep(every)
