"""Helpers for audit and monitoring tests: polling for rows the batched writers flush."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

# Writers flush this often in tests, so rows appear within a few tens of milliseconds.
FAST = {"event_flush_seconds": 0.05}


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 5.0) -> Any:
    """Poll until ``check`` returns something truthy; return it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise TimeoutError(f"nothing after {within} s")
        await asyncio.sleep(0.02)


async def audit_where(
    superuser: asyncpg.Connection, condition: str, *args: Any
) -> list[dict[str, Any]]:
    rows = await superuser.fetch(
        "select action, actor_id, actor_role, session_id, details from public.chat_audit_logs "
        f"where {condition} order by id",
        *args,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def monitoring_where(
    superuser: asyncpg.Connection, condition: str, *args: Any
) -> list[dict[str, Any]]:
    rows = await superuser.fetch(
        "select event_type, user_id, session_id, details from public.chat_monitoring "
        f"where {condition} order by id",
        *args,
    )
    return [{**dict(r), "details": json.loads(r["details"])} for r in rows]


async def link_audit_chain(superuser: asyncpg.Connection, within: float = 15.0) -> None:
    """Run the audit linker (as the service's background linker does) until every row
    of this database is chained. Rows wait for every older transaction of the cluster to
    end, so this polls."""

    async def all_linked() -> bool:
        await superuser.fetchval("select linked from chat_private.link_audit_chain()")
        return not await superuser.fetchval(
            "select (chat_private.audit_chain_status() ->> 'unlinked')::bigint"
        )

    await eventually(all_linked, within=within)
