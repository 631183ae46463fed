"""One message path: whatever writes the row (psql as a user, a lost LISTEN connection),
joined sockets get it once. Also token expiry, refresh, and rate limits."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from tests.bench_suite import metric_values
from workers.config import Bucket

from .conftest import Users
from .relay_helpers import Recorder, eventually, make_session, people, running_relay


@pytest.fixture
async def world(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    return await people(users, superuser)


@pytest.fixture
async def clients() -> AsyncIterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for recorder in made:
        await recorder.close()


async def join(clients: list[Recorder], url: str, token: str, session_id: uuid.UUID) -> Recorder:
    recorder = Recorder()
    clients.append(recorder)
    await recorder.connect(url, token)
    ack = await recorder.call("join_session", {"session_id": str(session_id)})
    assert ack["ok"], ack
    return recorder


def _psql_as(database_url: str, user_id: uuid.UUID, sql: str) -> None:
    claims = json.dumps({"sub": str(user_id), "role": "authenticated", "aud": "authenticated"})
    script = (
        "begin;\n"
        "set local role authenticated;\n"
        f"select set_config('request.jwt.claims', '{claims}', true);\n"
        f"{sql}\n"
        "commit;\n"
    )
    subprocess.run(
        ["psql", database_url, "-v", "ON_ERROR_STOP=1", "-q"],
        input=script,
        text=True,
        check=True,
        capture_output=True,
        timeout=30,
    )


async def test_message_inserted_with_psql_as_participant_reaches_sockets(
    database_url: str, world: dict[str, Any], clients: list[Recorder]
) -> None:
    async with running_relay(database_url) as (url, _):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        _psql_as(
            database_url,
            world["reader"],
            f"insert into public.chat_messages (session_id, sender_id, content) "
            f"values ('{world['session']}', '{world['reader']}', 'typed in psql');",
        )
        (message,) = await client.wait_for("new_message")
        assert message["content"] == "typed in psql"
        assert message["sender_id"] == str(world["reader"])
        assert message["sender_name"] == "Rhea Reader"


async def test_lost_listen_connection_misses_nothing(
    database_url: str,
    world: dict[str, Any],
    clients: list[Recorder],
    db: Any,
    users: Users,
    superuser: asyncpg.Connection,
) -> None:
    async with running_relay(database_url) as (url, relay):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        reconnects = relay.changefeed.reconnects
        killed = await superuser.fetchval(
            "select count(pg_terminate_backend(pid)) from pg_stat_activity "
            "where application_name = 'chat-changefeed' and datname = current_database()"
        )
        assert killed == 1
        # Committed while the relay is not listening.
        async with db.as_user(users.principal(world["reader"], "reader")) as conn:
            for i in range(3):
                await conn.execute(
                    "select 1 from public.send_chat_message($1, $2)",
                    world["session"],
                    f"during outage {i}",
                )
        messages = await client.wait_for("new_message", 3, within=15)
        assert [m["content"] for m in messages] == [f"during outage {i}" for i in range(3)]
        assert relay.changefeed.reconnects > reconnects
        # After the reconnect, live delivery works and nothing came twice.
        async with db.as_user(users.principal(world["reader"], "reader")) as conn:
            await conn.execute(
                "select 1 from public.send_chat_message($1, 'after')", world["session"]
            )
        messages = await client.wait_for("new_message", 4)
        await asyncio.sleep(0.3)
        ids = [m["id"] for m in client.of("new_message")]
        assert len(ids) == len(set(ids)) == 4


async def test_late_committing_transaction_is_replayed_after_reconnect(
    database_url: str,
    world: dict[str, Any],
    clients: list[Recorder],
    db: Any,
    users: Users,
    superuser: asyncpg.Connection,
) -> None:
    """A transaction that wrote first but commits last, while the feed is away, is found by
    the snapshot catch-up (its seq and created_at are older than what was delivered)."""
    # Two sessions: writers to one session queue on its row (last_message_at).
    other_session = await make_session(superuser, world["client"], world["reader"])
    async with running_relay(database_url) as (url, _relay):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        ack = await client.call("join_session", {"session_id": str(other_session)})
        assert ack["ok"]
        slow = await asyncpg.connect(database_url)
        try:
            tx = slow.transaction()
            await tx.start()
            await slow.execute(
                "select set_config('role', 'authenticated', true), "
                "set_config('request.jwt.claims', $1, true)",
                users.principal(world["reader"], "reader").claims_json(),
            )
            await slow.execute(
                "select 1 from public.send_chat_message($1, 'written first, committed last')",
                other_session,
            )
            async with db.as_user(users.principal(world["reader"], "reader")) as conn:
                await conn.execute(
                    "select 1 from public.send_chat_message($1, 'committed first')",
                    world["session"],
                )
            (first,) = await client.wait_for("new_message")
            assert first["content"] == "committed first"
            await asyncio.sleep(5.5)  # the feed's snapshot moves past "committed first"
            await superuser.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name = 'chat-changefeed' and datname = current_database()"
            )
            await tx.commit()
        finally:
            await slow.close()
        messages = await client.wait_for("new_message", 2, within=15)
        assert [m["content"] for m in messages] == [
            "committed first",
            "written first, committed last",
        ]
        assert messages[1]["seq"] < messages[0]["seq"]
        assert messages[1]["session_id"] == str(other_session)


async def test_failed_fetches_are_replayed_while_listening(
    database_url: str,
    world: dict[str, Any],
    clients: list[Recorder],
    superuser: asyncpg.Connection,
    users: Users,
) -> None:
    """The relay's pooled connections die while it reads the rows of notifications: the
    batches that failed are replayed from the snapshot, with the LISTEN connection intact."""
    async with running_relay(database_url) as (url, relay):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        writer = await asyncpg.connect(database_url)
        stop = asyncio.Event()

        async def sabotage() -> None:
            while not stop.is_set():
                await superuser.execute(
                    "select pg_terminate_backend(pid) from pg_stat_activity "
                    "where application_name = 'chat-workers' and datname = current_database()"
                )
                await asyncio.sleep(0.01)

        saboteur = asyncio.create_task(sabotage())
        try:
            claims = users.principal(world["reader"], "reader").claims_json()
            for i in range(60):
                async with writer.transaction():
                    await writer.execute(
                        "select set_config('role', 'authenticated', true), "
                        "set_config('request.jwt.claims', $1, true)",
                        claims,
                    )
                    await writer.execute(
                        "select 1 from public.send_chat_message($1, $2)", world["session"], f"n{i}"
                    )
                await asyncio.sleep(0.005)
        finally:
            stop.set()
            await saboteur
            await writer.close()
        messages = await client.wait_for("new_message", 60, within=20)
        assert sorted(m["content"] for m in messages) == sorted(f"n{i}" for i in range(60))
        assert len({m["id"] for m in messages}) == 60
        assert relay.changefeed.reconnects == 0  # recovered without losing LISTEN


async def _insert_as(
    conn: asyncpg.Connection, claims: str, session_id: uuid.UUID, text: str
) -> None:
    """One message inserted the way supabase-js does it: its own transaction, as the user."""
    async with conn.transaction():
        await conn.execute(
            "select set_config('role', 'authenticated', true), "
            "set_config('request.jwt.claims', $1, true)",
            claims,
        )
        await conn.execute(
            "insert into public.chat_messages (session_id, sender_id, content) "
            "values ($1, ($2::jsonb ->> 'sub')::uuid, $3)",
            session_id,
            claims,
            text,
        )


async def test_busy_writers_outside_the_relay_are_polled_not_notified(
    database_url: str,
    world: dict[str, Any],
    clients: list[Recorder],
    users: Users,
    superuser: asyncpg.Connection,
) -> None:
    """The first message written outside the relay notifies; the relay starts polling, and
    while it polls the next ones go through the poll table without a NOTIFY each (those
    transactions would otherwise commit one at a time). Every message arrives once, in
    order; once the writers stop, polling ends and a message notifies again."""
    notified: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener(
        "chat_events",
        lambda _c, _p, _ch, payload: notified.append(json.loads(payload).get("kind")),
    )
    claims = users.principal(world["reader"], "reader").claims_json()
    writers = [await asyncpg.connect(database_url) for _ in range(4)]

    async def idle() -> bool:  # no relay polls (an earlier test's spell has run out)
        return bool(
            await superuser.fetchval(
                "select polling_until < clock_timestamp() from chat_private.changefeed_state"
            )
        )

    async def notifications(count: int) -> bool:
        return notified.count("message") == count

    try:
        async with running_relay(database_url) as (url, relay):
            client = await join(clients, url, world["tokens"]["client"], world["session"])
            await eventually(idle, within=5)
            await _insert_as(writers[0], claims, world["session"], "wake up")
            await client.wait_for("new_message")
            await eventually(lambda: notifications(1), within=2)

            async def write(conn: asyncpg.Connection, start: int) -> None:
                for i in range(start, 80, len(writers)):
                    await _insert_as(conn, claims, world["session"], f"busy {i:02d}")

            await asyncio.gather(*(write(conn, n) for n, conn in enumerate(writers)))
            messages = await client.wait_for("new_message", 81, within=15)
            await asyncio.sleep(0.3)
            assert len(client.of("new_message")) == 81  # nothing twice
            assert sorted(m["content"] for m in messages[1:]) == [
                f"busy {i:02d}" for i in range(80)
            ]
            # Each writer's messages arrive in the order it committed them (concurrent
            # transactions commit in any order, here as with NOTIFY).
            for n in range(len(writers)):
                mine = [
                    int(m["content"][5:])
                    for m in messages[1:]
                    if int(m["content"][5:]) % len(writers) == n
                ]
                assert mine == sorted(mine)
            assert relay.changefeed.polled >= 70, relay.changefeed.polled
            # /metrics shows the polls and what they found (their ratio: messages a poll).
            values = await asyncio.to_thread(metric_values, f"{url}/metrics")
            assert values["chat_changefeed_polled_messages_total"] == relay.changefeed.polled
            assert values["chat_changefeed_polls_total"] >= 1
            assert "poll" in notified  # the bare wake-ups of one transaction at a time
            assert notified.count("message") <= 1 + 80 - relay.changefeed.polled
            assert (
                await superuser.fetchval(
                    "select count(*) from chat_private.changefeed_messages "
                    "where id = any($1::uuid[])",
                    [uuid.UUID(m["id"]) for m in messages],
                )
                == relay.changefeed.polled
            )

            # The writers stop: within about a second the relay stops polling, and the
            # next message notifies again.
            await eventually(idle, within=5)
            await asyncio.sleep(0.4)  # past the quarter second polls go on for
            settled = relay.changefeed.polls
            await asyncio.sleep(0.3)
            assert relay.changefeed.polls == settled  # idle: no polling
            before = notified.count("message")
            await _insert_as(writers[0], claims, world["session"], "after the burst")
            await client.wait_for("new_message", 82)
            await eventually(lambda: notifications(before + 1), within=2)
    finally:
        for conn in writers:
            await conn.close()
        await listener.close()


async def test_relay_joins_polling_started_by_another_relay(
    database_url: str,
    world: dict[str, Any],
    clients: list[Recorder],
    users: Users,
    superuser: asyncpg.Connection,
) -> None:
    """While other relays poll, messages written outside the relay do not notify: a relay
    that is not polling (it has just started, or its poll failed) sees polling_until in the
    future at its next snapshot tick and polls too, instead of waiting for its replay."""
    claims = users.principal(world["reader"], "reader").claims_json()
    writer = await asyncpg.connect(database_url)
    try:
        async with running_relay(database_url) as (url, relay):
            client = await join(clients, url, world["tokens"]["client"], world["session"])
            # Another relay's spell, as its polls leave it.
            await superuser.execute(
                "update chat_private.changefeed_state "
                "set polling_until = clock_timestamp() + interval '5 seconds'"
            )
            for i in range(3):
                await _insert_as(writer, claims, world["session"], f"while others poll {i}")
            messages = await client.wait_for("new_message", 3, within=5)
            assert [m["content"] for m in messages] == [f"while others poll {i}" for i in range(3)]
            assert relay.changefeed.polled >= 3  # found by its polls, not its replay
            await asyncio.sleep(0.3)
            assert len(client.of("new_message")) == 3
    finally:
        await writer.close()
        await superuser.execute(
            "update chat_private.changefeed_state set polling_until = '-infinity'"
        )


async def test_expired_token_disconnects_unless_refreshed(
    database_url: str, world: dict[str, Any], clients: list[Recorder], users: Users
) -> None:
    async with running_relay(database_url) as (url, _):
        short = users.token(world["client"], "client", expires_in=2)
        stays = Recorder("stays")
        goes = Recorder("goes")
        clients.extend([stays, goes])
        await stays.connect(url, short)
        await goes.connect(url, short)
        fresh = users.token(world["client"], "client", expires_in=600)
        ack = await stays.call("refresh_token", {"token": fresh})
        assert ack["ok"] and ack["expires_at"] > 0
        other_user = await stays.call("refresh_token", {"token": world["tokens"]["reader"]})
        assert other_user["error"]["code"] == "forbidden"
        (error,) = await goes.wait_for("error", within=20)
        assert error["code"] == "token_expired"
        await goes.wait_for("disconnect", within=5)
        assert not goes.client.connected
        assert stays.client.connected
        ack = await stays.call("join_session", {"session_id": str(world["session"])})
        assert ack["ok"]


async def test_send_rate_limit(
    database_url: str, world: dict[str, Any], clients: list[Recorder]
) -> None:
    async with running_relay(database_url, message_bucket=Bucket(rate=0.1, burst=3)) as (url, _):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        session = str(world["session"])
        acks = [
            await client.call("send_message", {"session_id": session, "content": f"n{i}"})
            for i in range(4)
        ]
        assert [a["ok"] for a in acks] == [True, True, True, False]
        assert acks[3]["error"]["code"] == "rate_limited"
        (error,) = await client.wait_for("error")
        assert error == acks[3]["error"]


async def test_typing_rate_limit(
    database_url: str, world: dict[str, Any], clients: list[Recorder]
) -> None:
    async with running_relay(database_url, typing_bucket=Bucket(rate=0.1, burst=2)) as (url, _):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        session = {"session_id": str(world["session"])}
        acks = [await client.call("typing_start", session) for _ in range(3)]
        assert [a["ok"] for a in acks] == [True, True, False]
        assert acks[2]["error"]["code"] == "rate_limited"


async def test_closed_session_refuses_messages(
    database_url: str, world: dict[str, Any], clients: list[Recorder], db: Any, users: Users
) -> None:
    async with running_relay(database_url) as (url, _):
        client = await join(clients, url, world["tokens"]["client"], world["session"])
        async with db.as_user(users.principal(world["reader"], "reader")) as conn:
            await conn.execute("select 1 from public.close_chat_session($1)", world["session"])
        (notice,) = await client.wait_for("new_message")
        assert notice["type"] == "system"
        (update,) = await client.wait_for("session_updated")
        assert update["status"] == "closed"
        ack = await client.call(
            "send_message", {"session_id": str(world["session"]), "content": "x"}
        )
        assert ack["error"]["code"] == "conflict"


async def test_any_event_flood_is_limited_per_socket_and_audited_once(
    database_url: str, world: dict[str, Any], clients: list[Recorder], superuser: asyncpg.Connection
) -> None:
    async with running_relay(database_url, event_bucket=Bucket(rate=0.1, burst=5)) as (url, _):
        client = await join(clients, url, world["tokens"]["client"], world["session"])  # 1 event
        session = {"session_id": str(world["session"])}
        acks = [await client.call("get_online_users", session) for _ in range(8)]
        assert [a["ok"] for a in acks] == [True] * 4 + [False] * 4
        assert {a["error"]["code"] for a in acks[4:]} == {"rate_limited"}
        await asyncio.sleep(1.5)  # the audit writer flushes every second
    audited = await superuser.fetchval(
        "select count(*) from public.chat_audit_logs "
        "where action = 'rate_limited' and actor_id = $1",
        world["client"],
    )
    assert audited == 1
