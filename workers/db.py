"""The asyncpg pool and the one way to talk to the database.

``as_user(principal)`` opens a transaction exactly as PostgREST does per request: role
``authenticated`` and ``request.jwt.claims`` set transaction-locally, so RLS decides.
``as_service()`` uses ``service_role`` for audit and monitoring writes only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from .auth import Principal

_SERVICE_CLAIMS = json.dumps({"role": "service_role"})
_IMPERSONATE = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )


class Database:
    """Owns the pool. The pool is created lazily (min_size 0), so the service starts and
    reports itself unhealthy while the database is away, and recovers when it is back."""

    def __init__(self, dsn: str, *, max_size: int = 10, command_timeout: float = 30.0) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_size,
            command_timeout=self._command_timeout,
            init=_init_connection,
            server_settings={"application_name": "chat-workers"},
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.open() has not been called")
        return self._pool

    @asynccontextmanager
    async def as_user(self, principal: Principal) -> AsyncIterator[asyncpg.Connection]:
        """A transaction in which the database sees this user, as under PostgREST."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_IMPERSONATE, "authenticated", principal.claims_json())
            yield conn

    @asynccontextmanager
    async def as_service(self) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as service_role (bypasses RLS): audit and monitoring only."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_IMPERSONATE, "service_role", _SERVICE_CLAIMS)
            yield conn

    async def ping(self, *, wait: float = 2.0) -> dict[str, Any]:
        """Round trip to the database; raises on failure. No version: /health is public."""
        async with self.pool.acquire(timeout=wait) as conn:
            await conn.fetchval("select 1", timeout=wait)
        return {"status": "up"}
