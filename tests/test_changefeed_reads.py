"""The changefeed reads the messages it delivers by id through the primary key, even when
its prepared statement was first planned while chat_messages was nearly empty (a new
deployment's first minute, before autovacuum analyzes the growing table): there the
cheapest plan is a sequential scan, and a connection would keep it as its generic plan,
a full scan at every read as the table grows."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from workers.changefeed import read_messages
from workers.db import Database

from .conftest import database_from_template


async def eventually_value(probe: Any, *, within: float) -> Any:
    """The probe's first answer that is not None, polled until ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        value = await probe()
        if value is not None:
            return value
        assert asyncio.get_running_loop().time() < deadline, "no answer in time"
        await asyncio.sleep(0.2)


async def test_reads_by_id_keep_to_the_primary_key_on_a_nearly_empty_table(
    template_url: str,
) -> None:
    async with database_from_template(template_url, "chat_reads") as url:
        owner = await asyncpg.connect(url)
        db = Database(url, max_size=1, min_size=1)  # one connection: every read on it
        await db.open()
        try:
            # A handful of messages, written without their triggers (only the table's
            # size matters here), and the table analyzed at that size.
            await owner.execute("set session_replication_role = replica")
            user = await owner.fetchval(
                "insert into auth.users (id, email) values (gen_random_uuid(), 'r@x.test') "
                "returning id"
            )
            session = await owner.fetchval(
                "insert into public.chat_sessions (type, participants, created_by) "
                "values ('support', array[$1::uuid], $1) returning id",
                user,
            )
            ids = [
                r["id"]
                for r in await owner.fetch(
                    "insert into public.chat_messages "
                    "(session_id, sender_id, type, content, client_message_id) "
                    "select $1, $2, 'text', 'm' || n, 'c' || n from generate_series(1, 8) as n "
                    "returning id",
                    session,
                    user,
                )
            ]
            await owner.execute("analyze public.chat_messages")

            # More reads than PostgreSQL makes custom plans for before it settles on a
            # generic one; they come back oldest first.
            for n in range(8):
                async with db.as_service(keyed=True) as conn:
                    rows = await read_messages(conn, [ids[n % 8], ids[(n + 3) % 8]])
                assert [r["content"] for r in rows] == sorted(
                    (f"m{n % 8 + 1}", f"m{(n + 3) % 8 + 1}"), key=lambda c: int(c[1:])
                )

            # How those reads scanned the table, from the statistics their backend
            # reports (flushed as it goes idle).
            async with db.pool.acquire() as conn:
                await conn.execute("select pg_stat_force_next_flush()")
                await conn.execute("select 1")

            async def scans() -> dict[str, int] | None:
                counts = {
                    r["name"]: r["n"]
                    for r in await owner.fetch(
                        "select 'sequential' as name, coalesce(seq_scan, 0) as n "
                        "from pg_stat_user_tables where relid = 'public.chat_messages'::regclass "
                        "union all select indexrelname, coalesce(idx_scan, 0) "
                        "from pg_stat_user_indexes where relid = 'public.chat_messages'::regclass"
                    )
                }
                return counts if sum(counts.values()) >= 8 else None

            counted = await eventually_value(scans, within=15)
            # Only indexes that lead with the id: the primary key, or the unique key on
            # (id, session_id); no sequential scan, no index scanned whole in another order.
            by_id = ("chat_messages_pkey", "chat_messages_id_session_key")
            assert sum(counted[name] for name in by_id) >= 8, counted
            assert all(n == 0 for name, n in counted.items() if name not in by_id), counted
        finally:
            await db.close()
            await owner.close()
