"""Benchmark (not collected by pytest): the message write rate through the SQL send
function, as users under RLS, with the audit trail on (every insert audited in the same
transaction; chained later by the background linker) against a baseline run in the same
process with the audit triggers disabled; then, audit on, with Supabase Realtime
broadcasting (a realtime.messages row per message for topic chat:<session_id>) against it
switched off (chat_private.realtime_settings.broadcast); then the contact filter on
(flag) against off. Each writer is its own connection
and session, one transaction per message, as writers outside the relay (supabase-js, SQL)
do.

    scripts/bench messages                  # makes a throwaway database, then runs this
    python -m tests.bench_messages --database-url postgresql://.../migrated_db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
import uuid

import asyncpg

from workers.auth import principal_from_claims
from workers.db import Database


async def _arrange(conn: asyncpg.Connection, writers: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    pairs = []
    for _ in range(writers):
        sender, other = uuid.uuid4(), uuid.uuid4()
        await conn.executemany(
            "insert into auth.users (id, email, raw_app_meta_data) "
            'values ($1, $2, \'{"role": "client"}\')',
            [(sender, f"{sender.hex[:8]}@bench.test"), (other, f"{other.hex[:8]}@bench.test")],
        )
        session_id = await conn.fetchval(
            "insert into chat_sessions (participants, type, created_by) "
            "values ($1::uuid[], 'support', $2) returning id",
            [sender, other],
            sender,
        )
        pairs.append((sender, session_id))
    return pairs


async def _writer(db: Database, sender: uuid.UUID, session_id: uuid.UUID, count: int) -> None:
    principal = principal_from_claims(
        {"sub": str(sender), "role": "authenticated", "app_metadata": {"role": "client"}}
    )
    for i in range(count):
        async with db.as_user(principal) as conn:
            await conn.execute(
                "select 1 from public.send_chat_message($1, $2)", session_id, f"bench {i}"
            )


async def _run(db: Database, pairs: list[tuple[uuid.UUID, uuid.UUID]], count: int) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(_writer(db, s, sid, count) for s, sid in pairs))
    return len(pairs) * count / (time.perf_counter() - started)


async def _set_audit(conn: asyncpg.Connection, *, enabled: bool) -> None:
    """The one audit trigger a send fires (the session's last_message_at is not audited)."""
    verb = "enable" if enabled else "disable"
    await conn.execute(f"alter table public.chat_messages {verb} trigger chat_messages_audit")


async def _set_broadcast(conn: asyncpg.Connection, *, enabled: bool) -> None:
    await conn.execute("update chat_private.realtime_settings set broadcast = $1", enabled)


async def _set_filter(conn: asyncpg.Connection, mode: str) -> None:
    await conn.execute("select chat_private.set_contact_filter($1, '{}')", mode)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--messages", type=int, default=150, help="per writer and round")
    args = parser.parse_args()

    owner = await asyncpg.connect(args.database_url)
    db = Database(args.database_url, max_size=args.writers)
    await db.open()
    try:
        pairs = await _arrange(owner, args.writers)
        await _run(db, pairs, 20)  # warm-up: connections, plans
        results: dict[str, list[float]] = {
            "audit off (baseline)": [],
            "audit on": [],
            "broadcast off": [],
            "broadcast on": [],
            "contact filter off": [],
            "contact filter flag": [],
        }
        realtime = await owner.fetchval("select chat_private.broadcast_enabled()")
        await _set_broadcast(owner, enabled=False)
        for _ in range(2):  # interleaved rounds, so drift hits both alike
            await _set_audit(owner, enabled=False)
            results["audit off (baseline)"].append(await _run(db, pairs, args.messages))
            await _set_audit(owner, enabled=True)
            results["audit on"].append(await _run(db, pairs, args.messages))
        if realtime:
            for _ in range(2):
                await _set_broadcast(owner, enabled=False)
                results["broadcast off"].append(await _run(db, pairs, args.messages))
                await _set_broadcast(owner, enabled=True)
                results["broadcast on"].append(await _run(db, pairs, args.messages))
        for _ in range(2):  # the contact filter: every message scanned (flag) or not (off)
            await _set_filter(owner, "off")
            results["contact filter off"].append(await _run(db, pairs, args.messages))
            await _set_filter(owner, "flag")
            results["contact filter flag"].append(await _run(db, pairs, args.messages))
    finally:
        await _set_audit(owner, enabled=True)
        await _set_broadcast(owner, enabled=True)
        await db.close()
        await owner.close()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.writers} writers x {args.messages} messages "
        "per round, one transaction each, 2 rounds"
    )
    for name, rates in results.items():
        if not rates:
            continue
        rounds = ", ".join(f"{r:.0f}" for r in rates)
        print(f"{name:22} {max(rates):8.0f} messages/s (rounds: {rounds})")
    base, audited = max(results["audit off (baseline)"]), max(results["audit on"])
    print(f"audit cost: {100 * (1 - audited / base):.0f}% of the baseline write rate")
    if results["broadcast on"]:
        quiet, loud = max(results["broadcast off"]), max(results["broadcast on"])
        print(f"broadcast cost: {100 * (1 - loud / quiet):.0f}% of the write rate without it")
    else:
        print("broadcast: no realtime schema in this database, not measured")
    off, flag = max(results["contact filter off"]), max(results["contact filter flag"])
    print(f"contact filter (flag) cost: {100 * (1 - flag / off):.0f}% of the write rate without it")


if __name__ == "__main__":
    asyncio.run(main())
