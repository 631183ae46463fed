"""Per-user budgets: every socket event and every REST call draws from
one bucket per user, shared by the user's sockets and, through Redis, by every relay; one
account's many sockets cannot spend what others need."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import asyncpg

from workers.config import Bucket
from workers.relay.ratelimit import Budget
from workers.relay.redis_link import RedisLink

from .api_helpers import bearer
from .conftest import Users
from .fault_helpers import REDIS_URL, free_port
from .relay_helpers import Recorder, make_session, running_relay

Http = aiohttp.ClientSession
# A slow refill: what a test sees is the burst.
TIGHT = {
    "user_event_bucket": Bucket(rate=0.01, burst=12),
    "event_bucket": Bucket(rate=1000, burst=1000),
}


async def _outcomes(sockets: list[Recorder], session: uuid.UUID, rounds: int) -> list[str]:
    codes = []
    for _ in range(rounds):
        for socket in sockets:
            ack = await socket.call("get_online_users", {"session_id": str(session)})
            codes.append("ok" if ack["ok"] else ack["error"]["code"])
    return codes


async def _sockets(url: str, token: str, count: int) -> list[Recorder]:
    made = []
    for _ in range(count):
        recorder = Recorder()
        await recorder.connect(url, token)
        made.append(recorder)
    return made


async def test_socket_events_are_budgeted_per_user_across_sockets(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    greedy, other = await users.create("client"), await users.create("reader")
    session = await make_session(superuser, greedy, other)
    async with running_relay(database_url, **TIGHT) as (url, _):
        mine = await _sockets(url, users.token(greedy), 6)
        codes = await _outcomes(mine, session, rounds=4)  # 24 events, 4 per socket
        assert codes.count("ok") == 12, codes
        assert codes.count("rate_limited") == 12, codes
        # Each socket alone stayed far under the per-socket limit; the user is what's capped.
        (theirs,) = await _sockets(url, users.token(other, "reader"), 1)
        assert (await _outcomes([theirs], session, rounds=5)).count("ok") == 5
        errors = [e for s in mine for e in s.of("error")]
        assert {e["code"] for e in errors} == {"rate_limited"}


async def test_socket_event_budget_holds_across_relays(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    greedy = await users.create("client")
    session = await make_session(superuser, greedy)
    async with AsyncExitStack() as stack:
        urls = [
            (
                await stack.enter_async_context(
                    running_relay(database_url, redis_url=REDIS_URL, **TIGHT)
                )
            )[0]
            for _ in range(2)
        ]
        mine = [s for url in urls for s in await _sockets(url, users.token(greedy), 3)]
        codes = await _outcomes(mine, session, rounds=4)
        assert codes.count("ok") == 12, codes  # one budget for both relays


@asynccontextmanager
async def _http(database_url: str, **settings: Any) -> AsyncIterator[tuple[str, Http]]:
    async with running_relay(database_url, **settings) as (url, _), aiohttp.ClientSession() as http:
        yield url, http


async def test_rest_calls_are_budgeted_per_user(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    greedy, other = await users.create("client"), await users.create("client")
    settings = {"api_bucket": Bucket(rate=0.01, burst=5), "redis_url": REDIS_URL}
    async with (
        _http(database_url, **settings) as (one, http),
        _http(database_url, **settings) as (
            two,
            _,
        ),
    ):
        statuses = []
        for i in range(8):
            url = one if i % 2 else two  # alternate relays: one budget
            async with http.get(
                url + "/api/chat/sessions", headers=bearer(users.token(greedy))
            ) as resp:
                statuses.append(resp.status)
                body = await resp.json()
        assert statuses == [200] * 5 + [429] * 3, statuses
        assert body["error"]["code"] == "rate_limited"
        async with http.get(one + "/api/chat/sessions", headers=bearer(users.token(other))) as resp:
            assert resp.status == 200


async def test_budget_falls_back_to_a_local_bucket_when_redis_is_down() -> None:
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        budget = Budget(name="t", bucket=Bucket(rate=0.01, burst=3), redis=link)
        key = uuid.uuid4()
        assert [await budget.allow(key) for _ in range(5)] == [True] * 3 + [False] * 2
        assert not link.up and budget.local_checks == 5
    finally:
        await link.stop()


async def test_unknown_events_draw_from_the_same_budget(database_url: str, users: Users) -> None:
    uid = await users.create("client")
    async with running_relay(database_url, **TIGHT) as (url, _):
        (socket,) = await _sockets(url, users.token(uid), 1)
        acks = [await socket.call("no_such_event", {}) for _ in range(15)]
        codes = [a["error"]["code"] for a in acks]
        assert codes == ["unknown_event"] * 12 + ["rate_limited"] * 3, codes
        assert len(socket.of("error")) == 12  # refusals beyond the budget emit nothing
