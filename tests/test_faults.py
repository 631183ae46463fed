"""Faults, with real processes (marked ``fault``, each bounded in time): PostgreSQL
restarted under traffic (a cluster of the test's own), the sending relay killed mid-burst
(tests/test_message_path.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from workers.auth import make_dev_token
from workers.config import NO_LIMIT

from .conftest import SECRET
from .pg_cluster import ThrowawayCluster
from .relay_helpers import Recorder, running_relay

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


@pytest.fixture
async def cluster() -> AsyncIterator[ThrowawayCluster]:
    made = ThrowawayCluster()
    try:
        await asyncio.to_thread(made.init)
        yield made
    finally:
        await asyncio.to_thread(made.destroy)


async def _pair(url: str) -> tuple[uuid.UUID, dict[str, str]]:
    conn = await asyncpg.connect(url)
    try:
        client, reader = uuid.uuid4(), uuid.uuid4()
        for uid, role in ((client, "client"), (reader, "reader")):
            await conn.execute(
                "insert into auth.users (id, email, raw_app_meta_data) values ($1, $2, $3::jsonb)",
                uid,
                f"{uid.hex[:8]}@fault.test",
                json.dumps({"role": role}),
            )
        session = await conn.fetchval(
            "insert into chat_sessions (participants, type, created_by) "
            "values ($1::uuid[], 'support', $2) returning id",
            [client, reader],
            client,
        )
    finally:
        await conn.close()
    tokens = {
        name: make_dev_token(secret=SECRET, user_id=str(uid), role=role)
        for name, uid, role in (("client", client, "client"), ("reader", reader, "reader"))
    }
    return session, tokens


async def test_postgres_restarted_under_traffic_loses_and_duplicates_nothing(
    cluster: ThrowawayCluster,
) -> None:
    session, tokens = await _pair(cluster.url)
    async with running_relay(
        cluster.url, message_bucket=NO_LIMIT, event_bucket=NO_LIMIT, user_event_bucket=NO_LIMIT
    ) as (
        url,
        _relay,
    ):
        reader, client = Recorder("reader"), Recorder("client")
        await reader.connect(url, tokens["reader"])
        assert (await reader.call("join_session", {"session_id": str(session)}))["ok"]
        await client.connect(url, tokens["client"])
        assert (await client.call("join_session", {"session_id": str(session)}))["ok"]

        acked: dict[str, str] = {}
        refusals: list[str] = []
        first_failure: list[float] = []
        recovered: list[float] = []

        async def sender() -> None:
            # A client with an outbox: each message retried with its client_message_id
            # until acknowledged.
            for i in range(150):
                while True:
                    ack: Any = await client.call(
                        "send_message",
                        {
                            "session_id": str(session),
                            "content": f"m{i}",
                            "client_message_id": f"k{i}",
                        },
                    )
                    if ack.get("ok"):
                        acked[f"k{i}"] = ack["message"]["id"]
                        if first_failure and not recovered:
                            recovered.append(time.monotonic())
                        break
                    refusals.append(ack["error"]["code"])
                    if not first_failure:
                        first_failure.append(time.monotonic())
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.01)

        task = asyncio.create_task(sender())
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.stop, "fast")
        await asyncio.sleep(3)
        await asyncio.to_thread(cluster.start)
        await asyncio.wait_for(task, timeout=60)

        async def everything_arrived() -> bool:
            return set(acked.values()) <= {m["id"] for m in reader.of("new_message")}

        deadline = time.monotonic() + 15
        while not await everything_arrived():
            assert time.monotonic() < deadline, "acknowledged messages missing at the reader"
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # a duplicate would have arrived by now

    ids = [m["id"] for m in reader.of("new_message")]
    assert len(ids) == len(set(ids)) == 150, "each message exactly once"
    assert refusals, "the outage was not noticed"
    assert set(refusals) <= {"unavailable"}, refusals  # never internal_error
    conn = await asyncpg.connect(cluster.url)
    try:
        stored = await conn.fetchval(
            "select count(*) from chat_messages where session_id = $1", session
        )
    finally:
        await conn.close()
    assert stored == 150, "a retried send stored twice"
    outage = recovered[0] - first_failure[0]
    print(f"\nPostgreSQL down 3 s: sends refused for {outage:.1f} s, {len(refusals)} refusals")
    assert outage < 15
    with contextlib.suppress(Exception):
        await client.close()
