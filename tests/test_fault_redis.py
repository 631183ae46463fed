"""Redis is optional at run time: stopped under traffic, each relay keeps serving its own
sockets (sends, reads, typing, presence, rate limits; nothing answered internal_error),
/health says degraded with 200, and cross-relay typing and presence resume when it
returns. Two relay processes and a redis-server this test owns."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from workers.config import Bucket

from .conftest import Users
from .fault_helpers import RedisServer, RelayProcess, free_port, until
from .relay_helpers import Recorder, make_session, running_relay

pytestmark = [pytest.mark.fault, pytest.mark.timeout(120)]


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer(persist=True)
    await server.start()
    try:
        yield server
    finally:
        server.close()


async def _socket(url: str, token: str, *sessions: uuid.UUID, name: str) -> Recorder:
    recorder = Recorder(name)
    await recorder.connect(url, token)
    for session in sessions:
        ack = await recorder.call("join_session", {"session_id": str(session)})
        assert ack["ok"], ack
    return recorder


async def _send(recorder: Recorder, session: uuid.UUID, content: str) -> dict[str, Any]:
    ack = await recorder.call("send_message", {"session_id": str(session), "content": content})
    assert ack["ok"], (recorder.name, ack)
    return ack["message"]


async def _typed(recorder: Recorder, session: uuid.UUID) -> bool:
    return any(t["session_id"] == str(session) for t in recorder.of("user_typing"))


async def _has_message(recorder: Recorder, message_id: str) -> bool:
    return any(m["id"] == message_id for m in recorder.of("new_message"))


async def test_redis_stopped_and_started_under_traffic(
    redis_server: RedisServer, database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    alice, bob = await users.create("client", "Alice"), await users.create("reader", "Bob")
    carol, dave = await users.create("client", "Carol"), await users.create("reader", "Dave")
    here = await make_session(superuser, alice, bob)  # both on relay one
    there = await make_session(superuser, carol, dave)  # both on relay two
    across = await make_session(superuser, alice, dave)  # one on each relay
    env = {"REDIS_URL": redis_server.url, "PRESENCE_TTL": 30}
    one, two = RelayProcess(database_url, **env), RelayProcess(database_url, **env)
    sockets: list[Recorder] = []
    try:
        await asyncio.gather(one.ready(), two.ready())
        a = await _socket(one.url, users.token(alice), here, across, name="alice@1")
        b = await _socket(one.url, users.token(bob, "reader"), here, name="bob@1")
        c = await _socket(two.url, users.token(carol), there, name="carol@2")
        d = await _socket(two.url, users.token(dave, "reader"), there, across, name="dave@2")
        sockets += [a, b, c, d]
        # Before: typing crosses relays through Redis.
        assert (await a.call("typing_start", {"session_id": str(across)}))["ok"]
        await d.wait_for("user_typing")

        redis_server.stop()
        outage_started = time.monotonic()
        for relay in (one, two):
            status, body = await relay.health()
            assert status == 200, body
            assert body["status"] == "degraded" and body["redis"]["status"] == "down"

        # Each relay serves its own sockets: sends (acked, delivered), reads, typing,
        # presence; rate limits answer from local buckets; nothing is an internal error.
        for sender, receiver, session in ((a, b, here), (c, d, there)):
            for i in range(5):
                message = await _send(sender, session, f"during the outage {i}")
                await until(lambda m=message, r=receiver: _has_message(r, m["id"]), within=5)
            read = await receiver.call("mark_messages_read", {"session_id": str(session)})
            assert read["ok"] and read["read_count"] >= 5, read
            typing = await sender.call("typing_start", {"session_id": str(session)})
            assert typing["ok"], typing
            await until(lambda r=receiver, s=session: _typed(r, s), within=5)
            online = await receiver.call("get_online_users", {"session_id": str(session)})
            assert online["ok"] and online["count"] == 2, online
        # Messages across relays go through the database path, not Redis.
        message = await _send(a, across, "across, while Redis is down")
        await until(lambda: _has_message(d, message["id"]), within=5)
        # Dave leaves the shared session while Redis cannot hear it.
        assert (await d.call("leave_session", {"session_id": str(across)}))["ok"]
        errors = [e for s in sockets for e in s.of("error")]
        assert not errors, errors
        await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - outage_started)))

        await redis_server.start()
        restarted = time.monotonic()

        async def healthy() -> bool:
            results = [await r.health() for r in (one, two)]
            return all(s == 200 and b["status"] == "healthy" for s, b in results)

        await until(healthy, within=10)

        # Presence resyncs: relay two removed Dave's entry it could not remove before.
        async def dave_gone() -> bool:
            online = await a.call("get_online_users", {"session_id": str(across)})
            return online["users"] == [str(alice)]

        await until(dave_gone, within=10)
        # Cross-relay typing resumes (the Socket.IO queue resubscribed).
        assert (await d.call("join_session", {"session_id": str(across)}))["ok"]
        online = await d.call("get_online_users", {"session_id": str(across)})
        assert set(online["users"]) == {str(alice), str(dave)}
        typed_before = len(d.of("user_typing"))

        async def typing_crosses() -> bool:
            await a.call("typing_stop", {"session_id": str(across)})
            await a.call("typing_start", {"session_id": str(across)})
            await asyncio.sleep(0.2)
            return len(d.of("user_typing")) > typed_before

        await until(typing_crosses, within=10, every=0.8)
        recovery = time.monotonic() - restarted
        assert recovery < 10, recovery
        message = await _send(d, across, "after the outage")
        await until(lambda: _has_message(a, message["id"]), within=5)
        # Every message reached its receivers exactly once.
        for recorder in sockets:
            ids = [m["id"] for m in recorder.of("new_message")]
            assert len(ids) == len(set(ids)), recorder.name
    finally:
        for recorder in sockets:
            await recorder.close()
        for relay in (one, two):
            relay.stop()


async def test_relay_starts_and_serves_with_redis_unreachable(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """REDIS_URL names a port where nothing listens: sends, typing and rate limits work
    from local state; /health is 200 degraded; a spent budget is rate_limited, not an
    internal error."""
    client, reader = await users.create("client"), await users.create("reader")
    session = await make_session(superuser, client, reader)
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with running_relay(
        database_url, redis_url=nowhere, message_bucket=Bucket(rate=0.01, burst=3)
    ) as (url, relay):
        sender = await _socket(url, users.token(client), session, name="client")
        receiver = await _socket(url, users.token(reader, "reader"), session, name="reader")
        for i in range(3):
            await _send(sender, session, f"m{i}")
        limited = await sender.call("send_message", {"session_id": str(session), "content": "x"})
        assert limited["error"]["code"] == "rate_limited"
        assert (await sender.call("typing_start", {"session_id": str(session)}))["ok"]
        await receiver.wait_for("user_typing")
        await receiver.wait_for("new_message", 3)
        assert relay.send_limit.local_checks >= 4
        async with aiohttp.ClientSession() as http, http.get(url + "/health") as resp:
            body = await resp.json()
        assert resp.status == 200 and body["status"] == "degraded", body
        assert body["redis"]["status"] == "down"
