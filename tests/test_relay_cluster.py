"""Two relay processes on two ports sharing Redis: messages, receipts, typing and presence
cross between them, nothing arrives twice, and a relay killed with SIGKILL drops out of
online_users within the presence TTL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from . import fault_helpers
from .conftest import Users
from .relay_helpers import Recorder, people

ROOT = Path(__file__).resolve().parent.parent
PRESENCE_TTL = 3


class RelayProcess(fault_helpers.RelayProcess):
    """``python -m workers relay`` in its own process, on Redis, with a short presence TTL."""

    def __init__(self, database_url: str, **extra_env: str) -> None:
        super().__init__(
            database_url,
            REDIS_URL=fault_helpers.REDIS_URL,
            PRESENCE_TTL=str(PRESENCE_TTL),
            **extra_env,
        )


@pytest.fixture
async def relays(database_url: str) -> AsyncIterator[list[RelayProcess]]:
    if not await fault_helpers.redis_available():
        pytest.fail(f"Redis is needed at {fault_helpers.REDIS_URL} (scripts/test starts it)")
    started = [RelayProcess(database_url), RelayProcess(database_url)]
    try:
        await asyncio.gather(*(r.ready() for r in started))
        yield started
    finally:
        for relay in started:
            relay.stop()


@pytest.fixture
def clients() -> Iterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made


async def _close(clients: list[Recorder]) -> None:
    for recorder in clients:
        await recorder.close()


async def _join(
    clients: list[Recorder], relay: RelayProcess, token: str, session: Any, name: str
) -> Recorder:
    recorder = Recorder(name)
    clients.append(recorder)
    await recorder.connect(relay.url, token)
    ack = await recorder.call("join_session", {"session_id": str(session)})
    assert ack["ok"], ack
    return recorder


async def test_events_cross_relays_exactly_once(
    relays: list[RelayProcess],
    users: Users,
    superuser: asyncpg.Connection,
    clients: list[Recorder],
) -> None:
    world = await people(users, superuser)
    one, two = relays
    session = world["session"]
    try:
        client = await _join(clients, one, world["tokens"]["client"], session, "client@1")
        reader = await _join(clients, two, world["tokens"]["reader"], session, "reader@2")
        # Presence is shared: the client on relay 1 sees the reader join relay 2.
        (joined,) = await client.wait_for("user_joined")
        assert joined["user_id"] == str(world["reader"])
        online = await client.call("get_online_users", {"session_id": str(session)})
        assert set(online["users"]) == {str(world["client"]), str(world["reader"])}

        await client.call("typing_start", {"session_id": str(session)})
        (typing,) = await reader.wait_for("user_typing")
        assert typing["user_id"] == str(world["client"])

        for i in range(3):
            ack = await client.call(
                "send_message", {"session_id": str(session), "content": f"x{i}"}
            )
            assert ack["ok"], ack
        ack = await reader.call("send_message", {"session_id": str(session), "content": "back"})
        assert ack["ok"]
        for recorder in (client, reader):
            await recorder.wait_for("new_message", 4)
        await reader.call("mark_messages_read", {"session_id": str(session)})
        (receipt,) = await client.wait_for("messages_read")
        assert receipt["user_id"] == str(world["reader"]) and receipt["read_count"] == 3

        await asyncio.sleep(0.5)  # anything duplicated would have arrived by now
        for recorder in (client, reader):
            ids = [m["id"] for m in recorder.of("new_message")]
            assert len(ids) == 4 and len(set(ids)) == 4, recorder.name
        assert len(client.of("messages_read")) == 1
        assert len(reader.of("user_typing")) == 1
    finally:
        await _close(clients)


async def test_killed_relay_users_leave_online_users(
    relays: list[RelayProcess],
    users: Users,
    superuser: asyncpg.Connection,
    clients: list[Recorder],
) -> None:
    world = await people(users, superuser)
    one, two = relays
    session = world["session"]
    try:
        await _join(clients, one, world["tokens"]["client"], session, "client@1")
        reader = await _join(clients, two, world["tokens"]["reader"], session, "reader@2")
        online = await reader.call("get_online_users", {"session_id": str(session)})
        assert online["count"] == 2
        one.kill()
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            online = await reader.call("get_online_users", {"session_id": str(session)})
            if online["users"] == [str(world["reader"])]:
                break
            assert loop.time() - started < 30, "killed relay's user still online after 30 s"
            await asyncio.sleep(0.5)
        assert loop.time() - started <= PRESENCE_TTL + 2
    finally:
        await _close(clients)
