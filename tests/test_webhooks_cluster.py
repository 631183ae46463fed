"""Two relay processes on one database, sharing Redis, both with WEBHOOK_URL: one leader
(advisory lock) delivers, each event reaches the receiver once, presence on the other
relay counts, and when the leader is killed with SIGKILL the other takes over."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from . import fault_helpers
from .conftest import Users
from .fault_helpers import REDIS_URL, redis_available
from .relay_helpers import Recorder
from .test_webhooks import CREATED, WAITING, pair, send, session
from .webhook_helpers import Env, Receiver, open_env, receiver, wait_until

ROOT = Path(__file__).resolve().parent.parent


class HookedRelay(fault_helpers.RelayProcess):
    """A relay process on Redis that sends webhooks to ``hook``, quickly."""

    def __init__(self, database_url: str, hook: Receiver) -> None:
        super().__init__(
            database_url,
            REDIS_URL=REDIS_URL,
            PRESENCE_TTL="3",
            WEBHOOK_URL=hook.url,
            WEBHOOK_SECRET=hook.secret,
            NOTIFY_DELAY="1",
            WEBHOOK_POLL_SECONDS="0.1",
            WEBHOOK_RETRY_BASE="0.2",
            WEBHOOK_RETRY_CAP="0.5",
        )

    async def leading(self) -> bool:
        async with aiohttp.ClientSession() as http, http.get(self.url + "/metrics") as resp:
            text = await resp.text()
        found = re.search(r"^chat_webhook_leader (\S+)$", text, re.M)
        return found is not None and float(found.group(1)) == 1.0


@pytest.fixture
async def env(template_url: str) -> AsyncIterator[Env]:
    async with open_env(template_url) as made:
        yield made


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver() as made:
        yield made


async def _leader(relays: list[HookedRelay]) -> HookedRelay:
    async def one() -> HookedRelay | None:
        found = [r for r in relays if r.proc.poll() is None and await r.leading()]
        assert len(found) <= 1, "two leaders"
        return found[0] if found else None

    leader: HookedRelay = await wait_until(one, within=15, every=0.1)
    return leader


async def test_two_relays_deliver_each_event_once_and_fail_over(env: Env, hook: Receiver) -> None:
    if not await redis_available():
        pytest.fail(f"Redis is needed at {REDIS_URL} (scripts/test starts it)")
    relays = [HookedRelay(env.url, hook), HookedRelay(env.url, hook)]
    watcher = Recorder("reader online on the follower")
    try:
        await asyncio.gather(*(r.ready() for r in relays))
        leader = await _leader(relays)
        follower = next(r for r in relays if r is not leader)
        # The webhook leader's lock (the audit linker holds one of its own).
        locks = await env.conn.fetchval(
            "select count(*) from pg_locks as l join pg_stat_activity as a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted "
            "and a.application_name = 'chat-webhooks-leader' "
            "and l.database = (select oid from pg_database where datname = current_database())"
        )
        assert locks == 1
        await wait_until(
            lambda: env.conn.fetchval("select count(*) = 1 from chat_private.webhook_cursor")
        )

        # Three sessions; in the third the reader has a socket joined on the follower.
        people = [await pair(env) for _ in range(3)]
        sessions = [await session(env, c, r) for c, r in people]
        await watcher.connect(follower.url, Users.token(people[2][1], "reader"))
        assert (await watcher.call("join_session", {"session_id": str(sessions[2])}))["ok"]
        for (client, _reader), sid in zip(people, sessions, strict=True):
            for i in range(3):
                await send(env, client, sid, f"burst {i}")
        for sid in sessions[:2]:
            await hook.wait_for(lambda sid=sid: bool(hook.about(WAITING, sid)), within=20)
        await asyncio.sleep(2.0)
        for sid in sessions[:2]:
            assert len(hook.about(WAITING, sid)) == 1
        assert hook.about(WAITING, sessions[2]) == []  # online through Redis presence
        for sid in sessions:
            assert len(hook.about(CREATED, sid)) == 1
        ids = [r.headers["webhook-id"] for r in hook.delivered()]
        assert len(ids) == len(set(ids)) == 5

        # The leader dies; the follower takes over and nothing is sent twice.
        await watcher.close()
        leader.kill()
        assert await _leader(relays) is follower
        client, reader = await pair(env)
        after = await session(env, client, reader)
        await send(env, client, after, "after the failover")
        await hook.wait_for(lambda: bool(hook.about(WAITING, after)), within=20)
        await asyncio.sleep(1.5)
        assert len(hook.about(WAITING, after)) == 1
        assert len(hook.about(CREATED, after)) == 1
        ids = [r.headers["webhook-id"] for r in hook.delivered()]
        assert len(ids) == len(set(ids)) == 7
    except BaseException:
        for relay in relays:
            print(relay.output())
        raise
    finally:
        await watcher.close()
        for relay in relays:
            relay.stop()
