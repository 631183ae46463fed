"""The batched audit and monitoring writers: one INSERT per batch, flushed by size and by
time, bounded while the database is away, flushed on stop; monitoring retention."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg

from workers.audit import AuditWriter
from workers.db import Database
from workers.monitoring import MonitoringWriter

from .audit_helpers import eventually, link_audit_chain
from .relay_process import free_port


async def _count(superuser: asyncpg.Connection, marker: str) -> int:
    return await superuser.fetchval(
        "select count(*) from public.chat_monitoring where details ->> 'marker' = $1", marker
    )


async def test_a_full_batch_is_written_at_once_in_one_insert(
    db: Database, superuser: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    writer = MonitoringWriter(db=db, batch_size=5, flush_interval=60, retention_days=0)
    await writer.start()
    try:
        for i in range(4):
            writer.record("connect", details={"marker": marker, "i": i})
        await asyncio.sleep(0.2)
        assert await _count(superuser, marker) == 0  # below the batch size, before the timer
        writer.record("connect", details={"marker": marker, "i": 4})
        await eventually(lambda: _count(superuser, marker))
        assert await _count(superuser, marker) == 5
        assert (writer.batches, writer.written) == (1, 5)  # one INSERT for the five rows
    finally:
        await writer.stop()


async def test_a_partial_batch_is_written_when_the_interval_ends(
    db: Database, superuser: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    writer = MonitoringWriter(db=db, batch_size=1000, flush_interval=0.3, retention_days=0)
    await writer.start()
    try:
        user, session = uuid.uuid4(), uuid.uuid4()
        writer.record("join", user_id=user, session_id=session, details={"marker": marker})
        writer.record("leave", user_id=user, session_id=session, details={"marker": marker})
        await eventually(lambda: _count(superuser, marker), within=2)
        rows = await superuser.fetch(
            "select event_type, user_id, session_id from public.chat_monitoring "
            "where details ->> 'marker' = $1 order by id",
            marker,
        )
        assert [tuple(r) for r in rows] == [("join", user, session), ("leave", user, session)]
        assert writer.batches == 1
    finally:
        await writer.stop()


async def test_audit_rows_keep_their_order_and_join_the_chain(
    db: Database, superuser: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    writer = AuditWriter(db=db, batch_size=100, flush_interval=60)
    await writer.start()
    for i in range(3):
        writer.record(
            "socket.connected",
            actor_role="anon",
            session_id="not-a-uuid",  # client input that is not a UUID is simply dropped
            details={"marker": marker, "i": i},
        )
    await writer.stop()  # stop writes what is left
    await link_audit_chain(superuser)
    rows = await superuser.fetch(
        "select a.actor_role, a.session_id, a.details ->> 'i' as i, l.hash "
        "from public.chat_audit_logs a left join chat_private.audit_links l on l.audit_id = a.id "
        "where a.details ->> 'marker' = $1 order by a.id",
        marker,
    )
    assert [(r["actor_role"], r["session_id"], r["i"]) for r in rows] == [
        ("anon", None, "0"),
        ("anon", None, "1"),
        ("anon", None, "2"),
    ]
    assert all(r["hash"] for r in rows)
    assert await superuser.fetchval("select chat_private.verify_audit_chain()") is None


async def test_while_the_database_is_away_the_oldest_rows_are_dropped_and_counted() -> None:
    away = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", max_size=1)
    await away.open()
    dropped: list[int] = []
    writer = MonitoringWriter(
        db=away,
        batch_size=2,
        flush_interval=0.05,
        max_queue=3,
        retention_days=0,
        on_drop=dropped.append,
    )
    await writer.start()
    try:
        for i in range(5):
            writer.record("connect", details={"i": i})
        await asyncio.sleep(0.3)  # failed writes put the rows back
        assert writer.pending == 3
        assert writer.dropped == 2 == sum(dropped)
        assert [row["details"]["i"] for row in writer._rows] == [2, 3, 4]  # the newest kept
        assert writer.failures >= 1
    finally:
        await writer.stop(grace=0.5)
        await away.close()
    assert writer.dropped == 5  # what could not be written at shutdown is counted too


async def test_rows_the_database_refuses_are_dropped_not_retried(
    db: Database, superuser: asyncpg.Connection
) -> None:
    writer = MonitoringWriter(db=db, batch_size=10, flush_interval=60, retention_days=0)
    writer.append({"event_type": "", "details": {}})  # violates the event_type check
    assert await writer.flush() == 0
    assert (writer.pending, writer.dropped) == (0, 1)


async def test_one_refused_row_does_not_take_its_batch_with_it(
    db: Database, superuser: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    writer = MonitoringWriter(db=db, batch_size=10, flush_interval=60, retention_days=0)
    writer.record("connect", details={"marker": marker, "i": 0})
    writer.append({"event_type": "", "details": {}})  # violates the event_type check
    writer.record("connect", details={"marker": marker, "i": 2})
    assert await writer.flush() == 2
    assert await _count(superuser, marker) == 2
    assert (writer.pending, writer.dropped) == (0, 1)


async def test_untrusted_text_is_cleaned_before_it_is_queued(
    db: Database, superuser: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    writer = MonitoringWriter(db=db, batch_size=10, flush_interval=60, retention_days=0)
    writer.record(
        "error",
        details={"marker": marker, "lone": "image/p\udcffng", "nul": "a\x00b", "big": "x" * 10**6},
    )
    assert await writer.flush() == 1
    details = await superuser.fetchval(
        "select details from public.chat_monitoring where details ->> 'marker' = $1", marker
    )
    details = json.loads(details) if isinstance(details, str) else details
    assert details["lone"] == "image/p?ng"
    assert details["nul"] == "ab"
    assert len(details["big"]) <= 2001


async def test_retention_deletes_only_events_older_than_the_age(
    db: Database, superuser: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    await superuser.execute(
        "insert into public.chat_monitoring (event_type, details, timestamp) "
        "values ('connect', $1, now() - interval '3 days'), ('connect', $1, now())",
        json.dumps({"marker": marker}),
    )
    writer = MonitoringWriter(db=db, retention_days=2)
    assert await writer.purge() >= 1
    ages = await superuser.fetch(
        "select timestamp > now() - interval '1 day' as recent from public.chat_monitoring "
        "where details ->> 'marker' = $1",
        marker,
    )
    assert [r["recent"] for r in ages] == [True]
