"""The relay's one Redis client, and whether Redis is reachable right now.

Redis only carries cross-relay extras (the Socket.IO message queue, shared presence,
shared budgets), so its absence must never stop a conversation. Every user of Redis goes
through :meth:`RedisLink.run`: while the link is down it raises :class:`RedisDown` at
once (callers fall back to local state) instead of letting each call wait out
redis-py's retries; a background probe pings Redis and, when it answers again, marks the
link up and calls the ``on_up`` callbacks (presence re-registers its entries).

The client fails fast: no retries, short timeouts. A call that fails marks the link down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

log = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that mean "Redis cannot serve us now" (redis-py's are not OSError subclasses).
# Any RedisError counts (an out-of-memory or read-only Redis answers with an error reply):
# the caller falls back to local state rather than fail the user's action.
UNREACHABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.RedisError,
    OSError,
    TimeoutError,
)


class RedisDown(Exception):
    """Redis is unreachable; use local state."""


def client_options(timeout: float) -> dict[str, Any]:
    """Fail-fast options for redis-py clients (ours and the Socket.IO manager's)."""
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }


class RedisLink:
    def __init__(self, url: str, *, timeout: float = 1.0, probe_every: float = 0.5) -> None:
        self.client: aioredis.Redis = aioredis.Redis.from_url(url, **client_options(timeout))
        self._probe_every = probe_every
        self._up = True  # optimistic: the first failure says otherwise
        self._task: asyncio.Task[None] | None = None
        self._on_up: list[Callable[[], Awaitable[None]]] = []
        self.down_since: float | None = None
        self.outages = 0
        self.last_error: str | None = None

    @property
    def up(self) -> bool:
        return self._up

    def on_up(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call ``callback`` each time Redis comes back after an outage."""
        self._on_up.append(callback)

    async def run(self, operation: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """``operation(client)``, or :class:`RedisDown` when Redis is unreachable."""
        if not self._up:
            raise RedisDown(self.last_error or "redis is down")
        try:
            return await operation(self.client)
        except UNREACHABLE as exc:
            self.mark_down(exc)
            raise RedisDown(type(exc).__name__) from exc

    def mark_down(self, exc: BaseException) -> None:
        self.last_error = type(exc).__name__
        if not self._up:
            return
        self._up = False
        self.down_since = time.monotonic()
        self.outages += 1
        log.warning("redis unreachable (%s): serving with local state", self.last_error)

    def state(self) -> dict[str, Any]:
        if self._up:
            return {"status": "up"}
        body: dict[str, Any] = {"status": "down", "error": self.last_error}
        if self.down_since is not None:
            body["down_seconds"] = round(time.monotonic() - self.down_since, 1)
        return body

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        with contextlib.suppress(RedisDown):
            await self.run(lambda c: c.ping())
        self._task = asyncio.create_task(self._probe(), name="redis-probe")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):
            await self.client.aclose()

    async def _probe(self) -> None:
        """While down, ping every ``probe_every`` seconds; while up, check now and then
        (a Redis that died while idle is noticed even without traffic)."""
        while True:
            await asyncio.sleep(self._probe_every if not self._up else 2.0)
            try:
                await self.client.ping()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.mark_down(exc)
                continue
            if not self._up:
                await self._came_back()

    async def _came_back(self) -> None:
        down = time.monotonic() - (self.down_since or time.monotonic())
        self._up = True
        self.down_since = None
        log.warning("redis is back after %.1f s", down)
        for callback in self._on_up:
            try:
                await callback()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("redis recovery callback failed", exc_info=True)
