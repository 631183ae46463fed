"""The asyncpg pool and the one way to talk to the database.

``as_user(principal)`` opens a transaction exactly as PostgREST does per request: role
``authenticated`` and ``request.jwt.claims`` set transaction-locally, so RLS decides.
``as_service()`` uses ``service_role`` for audit and monitoring writes only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from .auth import Principal

log = logging.getLogger(__name__)

_SERVICE_CLAIMS = json.dumps({"role": "service_role"})
_IMPERSONATE = "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)"
# The same, with sequential scans priced out of the transaction's plans (still used where
# no index serves). For reads of a few rows by key from a table that grows: a prepared
# statement first planned while the table was nearly empty settles on a generic plan with
# a sequential scan, the cheapest there, and keeps it until the next ANALYZE of the table,
# which can come a minute later: a full scan at every read meanwhile.
_IMPERSONATE_KEYED = _IMPERSONATE + ", set_config('enable_seqscan', 'off', true)"


class _Connection(asyncpg.Connection):
    """Released to the pool without a reset statement (``RESET ALL`` and friends): every
    setting this service makes is transaction-local (``set_config(..., true)``), LISTEN and
    advisory locks live on connections of their own, and an open transaction is still
    rolled back. One round trip less per checkout, on the hottest paths."""

    def get_reset_query(self) -> str:
        return ""


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_json_text, decoder=orjson.loads, schema="pg_catalog"
        )


def _json_text(value: Any) -> str:
    """json/jsonb parameters with orjson (metadata of every message sent and read); what
    orjson refuses (an integer beyond 64 bits) goes through the standard library."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


class Database:
    """Owns the pool. The pool is created lazily (min_size 0), so the service starts and
    reports itself unhealthy while the database is away, and recovers when it is back.
    ``warm_up()`` then opens ``min_size`` connections (type introspection included) before
    the service reports healthy, and idle connections are kept: a send never waits for a
    new connection."""

    def __init__(
        self, dsn: str, *, max_size: int = 10, min_size: int = 4, command_timeout: float = 30.0
    ) -> None:
        self._dsn = dsn
        self._max_size = max_size
        self._min_size = min(min_size, max_size)
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self.warm = False

    async def open(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_size,
            max_inactive_connection_lifetime=0,
            command_timeout=self._command_timeout,
            init=_init_connection,
            connection_class=_Connection,
            server_settings={"application_name": "chat-workers"},
        )

    async def warm_up(self) -> None:
        """Open ``min_size`` connections now, retrying while the database is away."""
        delay = 0.5
        while not self.warm:
            held: list[asyncpg.Connection] = []
            try:
                for _ in range(self._min_size):
                    held.append(await self.pool.acquire(timeout=5))
                self.warm = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("database not reachable at start-up (%s); retrying", exc)
            finally:
                for conn in held:
                    await self.pool.release(conn)
            if not self.warm:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

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
    async def as_service(self, *, keyed: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A transaction as service_role (bypasses RLS): audit and monitoring only. With
        ``keyed``, its statements read rows by key through an index even while a table is
        nearly empty (see ``_IMPERSONATE_KEYED``)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                _IMPERSONATE_KEYED if keyed else _IMPERSONATE, "service_role", _SERVICE_CLAIMS
            )
            yield conn

    async def ping(self, *, wait: float = 2.0) -> dict[str, Any]:
        """Round trip to the database; raises on failure. No version: /health is public."""
        async with self.pool.acquire(timeout=wait) as conn:
            await conn.fetchval("select 1", timeout=wait)
        return {"status": "up"}
