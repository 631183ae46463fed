"""A dependency that is down surfaces as ``unavailable`` (503), never ``internal_error``:
the database terminating a backend (a restart, a failover) and Redis errors."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from workers.config import Bucket
from workers.errors import from_postgres
from workers.relay.ratelimit import Budget
from workers.relay.redis_link import RedisLink

from .fault_helpers import RedisServer


async def test_a_terminated_database_backend_is_unavailable(
    database_url: str, superuser: asyncpg.Connection
) -> None:
    victim = await asyncpg.connect(database_url)
    try:
        pid = victim.get_server_pid()
        query = asyncio.ensure_future(victim.fetchval("select pg_sleep(10)"))
        await asyncio.sleep(0.3)
        await superuser.execute("select pg_terminate_backend($1)", pid)
        with pytest.raises(asyncpg.PostgresError) as info:
            await query
    finally:
        await victim.close()
    # asyncpg reports it as the shutdown (57P01) or as the lost connection (08003);
    # before, both were answered as internal errors.
    assert info.value.sqlstate in ("57P01", "08003"), info.value.sqlstate
    err = from_postgres(info.value)
    assert (err.status, err.code) == (503, "unavailable")


async def test_a_redis_that_answers_errors_falls_back_to_local_buckets() -> None:
    """A Redis that refuses writes (here: one told to act as a read-only replica)
    answers every budget check with an error reply: the budget answers locally."""
    server = RedisServer(persist=False)
    await server.start()
    link = RedisLink(server.url, timeout=1.0)
    try:
        await link.client.execute_command("REPLICAOF", "127.0.0.1", "1")  # read-only now
        budget = Budget(name="t", bucket=Bucket(rate=0.01, burst=2), redis=link)
        assert [await budget.allow("k") for _ in range(3)] == [True, True, False]
        assert budget.local_checks == 3
    finally:
        await link.stop()
        server.close()
