"""Webhooks to the host platform, end to end: the real service (database, relay, worker)
posts to a real HTTP receiver started here, which verifies every signature with the
``standardwebhooks`` library. Delays are short (NOTIFY_DELAY 1 s, back-off from 0.2 s);
the meaning of each case is the issue's."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from workers.webhooks.sender import Sender

from .conftest import Users
from .relay_helpers import Recorder, running_relay
from .webhook_helpers import Env, Receiver, new_secret, open_env, receiver, wait_until

WAITING = "chat.message.waiting"
CREATED = "chat.session.created"
CLOSED = "chat.session.closed"

FAST = {
    "notify_delay": 1.0,
    "webhook_poll_seconds": 0.1,
    "webhook_retry_base": 0.2,
    "webhook_retry_cap": 0.5,
    "webhook_timeout": 2.0,
}


@pytest.fixture
async def env(template_url: str) -> AsyncIterator[Env]:
    async with open_env(template_url) as made:
        yield made


def hooked(hook: Receiver, **overrides: Any) -> dict[str, Any]:
    return {"webhook_url": hook.url, "webhook_secret": hook.secret, **FAST, **overrides}


async def worker_ready(env: Env) -> None:
    """The leader has read once: events from now on are seen."""
    await wait_until(
        lambda: env.conn.fetchval("select count(*) = 1 from chat_private.webhook_cursor")
    )


async def session(env: Env, *members: uuid.UUID, type_: str = "support") -> uuid.UUID:
    async with env.db.as_user(Users.principal(members[0])) as conn:
        return await conn.fetchval(
            "select id from public.create_chat_session($1::uuid[], $2, "
            "case when $2 = 'booking' then gen_random_uuid() end)",
            list(members),
            type_,
        )


async def send(env: Env, sender: uuid.UUID, session_id: uuid.UUID, text: str) -> asyncpg.Record:
    async with env.db.as_user(Users.principal(sender)) as conn:
        return await conn.fetchrow(
            "select id, created_at from public.send_chat_message(session_id => $1, content => $2)",
            session_id,
            text,
        )


async def mark_read(env: Env, reader: uuid.UUID, session_id: uuid.UUID) -> int:
    async with env.db.as_user(Users.principal(reader, "reader")) as conn:
        return await conn.fetchval("select public.mark_chat_messages_read($1)", session_id)


async def pair(env: Env) -> tuple[uuid.UUID, uuid.UUID]:
    return await env.users.create("client"), await env.users.create("reader")


async def outbox(env: Env) -> list[asyncpg.Record]:
    return await env.conn.fetch(
        "select * from chat_private.webhook_outbox order by created_at, event_type"
    )


# ---------------------------------------------------------------- waiting


async def test_offline_participant_gets_exactly_one_event_for_a_burst(env: Env) -> None:
    async with receiver() as hook, running_relay(env.url, **hooked(hook)):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        burst = [await send(env, client, sid, f"message {i}") for i in range(5)]
        await hook.wait_for(lambda: bool(hook.about(WAITING, sid)), within=20)
        arrived = time.time()
        await asyncio.sleep(2.0)  # a second event would be here by now

        events = hook.about(WAITING, sid)
        assert len(events) == 1, [e.payload for e in events]
        data = events[0].payload["data"]
        assert data["user_id"] == str(reader)
        assert data["unread_count"] == 5
        assert data["last_message"]["id"] == str(burst[-1]["id"])
        assert data["last_message"]["sender_id"] == str(client)
        assert "content" not in data["last_message"]  # privacy by default
        assert data["session_type"] == "support"
        first = burst[0]["created_at"].timestamp()
        assert arrived - first >= 1.0  # not before NOTIFY_DELAY
        # The sender has nothing unread: no event for them.
        assert all(e.payload["data"]["user_id"] != str(client) for e in hook.delivered(WAITING))
        assert len(hook.about(CREATED, sid)) == 1
        after_last = arrived - burst[-1]["created_at"].timestamp()
        print(
            f"\nlast unread message -> delivery: {after_last:.2f} s (NOTIFY_DELAY 1 s)"
            f"\nheaders: {events[0].headers}\nbody: {events[0].body}"
        )


async def test_online_participant_gets_no_event(env: Env) -> None:
    async with receiver() as hook, running_relay(env.url, **hooked(hook)) as (url, _relay):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        watcher = Recorder("reader")
        await watcher.connect(url, Users.token(reader, "reader"))
        assert (await watcher.call("join_session", {"session_id": str(sid)}))["ok"]
        for i in range(3):
            await send(env, client, sid, f"hello {i}")
        await watcher.wait_for("new_message", count=3)
        await asyncio.sleep(2.5)  # well past NOTIFY_DELAY
        assert hook.about(WAITING, sid) == []
        assert await env.conn.fetchval("select count(*) from chat_private.webhook_waiting") == 0
        assert len(hook.about(CREATED, sid)) == 1  # the worker was running all along


async def test_reading_before_the_delay_cancels_the_event(env: Env) -> None:
    async with receiver() as hook, running_relay(env.url, **hooked(hook, notify_delay=2.0)):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        await send(env, client, sid, "are you there?")
        # The period opened (the reader is away)...
        await wait_until(
            lambda: env.conn.fetchval(
                "select count(*) = 1 from chat_private.webhook_waiting "
                "where session_id = $1 and user_id = $2 and status = 'pending'",
                sid,
                reader,
            )
        )
        assert await mark_read(env, reader, sid) == 1  # ... and reading ends it in time
        await wait_until(
            lambda: env.conn.fetchval(
                "select count(*) = 0 from chat_private.webhook_waiting where session_id = $1", sid
            )
        )
        await asyncio.sleep(2.5)
        assert hook.about(WAITING, sid) == []

        # A new message after the read opens a new period, which is notified.
        later = await send(env, client, sid, "one more thing")
        await hook.wait_for(lambda: bool(hook.about(WAITING, sid)), within=20)
        data = hook.about(WAITING, sid)[0].payload["data"]
        assert data["unread_count"] == 1
        assert data["last_message"]["id"] == str(later["id"])


async def test_one_event_per_period_until_the_participant_reads(env: Env) -> None:
    async with receiver() as hook, running_relay(env.url, **hooked(hook)):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        await send(env, client, sid, "first")
        await hook.wait_for(lambda: len(hook.about(WAITING, sid)) == 1, within=20)
        # Still away: more messages belong to the same period, no new event.
        await send(env, client, sid, "second")
        await send(env, client, sid, "third")
        await asyncio.sleep(2.5)
        assert len(hook.about(WAITING, sid)) == 1
        # Reading ends it; the next message starts a new period and a new event.
        assert await mark_read(env, reader, sid) == 3
        await wait_until(
            lambda: env.conn.fetchval(
                "select count(*) = 0 from chat_private.webhook_waiting where session_id = $1", sid
            ),
            within=20,
        )
        latest = await send(env, client, sid, "fourth")
        await hook.wait_for(lambda: len(hook.about(WAITING, sid)) == 2, within=20)
        second = hook.about(WAITING, sid)[1].payload["data"]
        assert second["unread_count"] == 1
        assert second["last_message"]["id"] == str(latest["id"])


async def test_a_cursor_from_another_database_starts_over_from_now(env: Env) -> None:
    async with receiver() as hook, running_relay(env.url, **hooked(hook)):
        await worker_ready(env)
        # As if the database had been restored elsewhere: a snapshot far in the future.
        await env.conn.execute(
            "update chat_private.webhook_cursor set snapshot = '9000000000:9000000000:'"
        )
        await wait_until(
            lambda: env.conn.fetchval(
                "select pg_snapshot_xmax(snapshot) < '9000000000'::xid8 "
                "from chat_private.webhook_cursor"
            )
        )
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        await send(env, client, sid, "still heard")
        await hook.wait_for(lambda: bool(hook.about(WAITING, sid)), within=20)


async def test_emergency_session_notifies_at_once(env: Env) -> None:
    async with (
        receiver() as hook,
        running_relay(env.url, **hooked(hook, notify_delay=30.0, webhook_include_content=True)),
    ):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader, type_="emergency")
        sent = await send(env, client, sid, "please call me now")
        await hook.wait_for(lambda: bool(hook.about(WAITING, sid)), within=10)
        took = hook.about(WAITING, sid)[0].at - sent["created_at"].timestamp()
        assert took < 3.0, took  # not the 30 s NOTIFY_DELAY
        print(f"\nemergency message -> delivery: {took:.2f} s")
        data = hook.about(WAITING, sid)[0].payload["data"]
        assert data["session_type"] == "emergency"
        assert data["last_message"]["content"] == "please call me now"  # WEBHOOK_INCLUDE_CONTENT


async def test_session_created_and_closed_are_announced(env: Env) -> None:
    async with receiver() as hook, running_relay(env.url, **hooked(hook)):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader, type_="booking")
        async with env.db.as_user(Users.principal(reader, "reader")) as conn:
            await conn.execute("select public.close_chat_session($1)", sid)
        await hook.wait_for(lambda: bool(hook.about(CLOSED, sid)), within=10)
        created = hook.about(CREATED, sid)[0].payload["data"]
        closed = hook.about(CLOSED, sid)[0].payload["data"]
        assert created["participants"] == [str(client), str(reader)]
        assert created["created_by"] == str(client)
        assert created["booking_id"] is not None
        assert "title" not in created
        assert closed["closed_by"] == str(reader)
        await asyncio.sleep(1.0)
        assert hook.about(WAITING, sid) == []  # the closing notice is not a waiting message


# ---------------------------------------------------------------- delivery


async def test_receiver_failing_then_recovering_gets_the_event_once_with_one_id(
    env: Env,
) -> None:
    async with receiver() as hook:
        failing_until = time.monotonic() + 3.0  # the "500 for 20 s", shortened
        hook.respond = lambda _n: 500 if time.monotonic() < failing_until else 200
        async with running_relay(env.url, **hooked(hook)):
            await worker_ready(env)
            client, reader = await pair(env)
            sid = await session(env, client, reader)
            await hook.wait_for(lambda: bool(hook.about(CREATED, sid)), within=20)
            await asyncio.sleep(1.0)
        attempts = [
            r for r in hook.requests if r.payload and r.payload["data"]["session_id"] == str(sid)
        ]
        assert len(attempts) >= 4, len(attempts)
        assert {r.status for r in attempts[:-1]} == {500}
        assert len(hook.about(CREATED, sid)) == 1  # delivered once
        assert len({r.headers["webhook-id"] for r in attempts}) == 1  # one id throughout
        assert len({r.body for r in attempts}) == 1  # the same body every time
        row = await env.conn.fetchrow(
            "select * from chat_private.webhook_outbox where session_id = $1", sid
        )
        assert row["status"] == "delivered"
        assert row["attempts"] == len(attempts)
        assert "msg_" + row["id"].hex == attempts[0].headers["webhook-id"]


async def test_restart_while_pending_loses_nothing(env: Env) -> None:
    """Deliveries failing when the service stops, a waiting period not yet due, and
    messages written while no service runs: all delivered once after the restart."""
    async with receiver() as hook:
        hook.respond = lambda _n: 503
        settings = hooked(hook, notify_delay=3.0)
        client, reader = await pair(env)
        async with running_relay(env.url, **settings):
            await worker_ready(env)
            s1 = await session(env, client, reader, type_="emergency")  # due at once
            await send(env, client, s1, "first session")
            await hook.wait_for(lambda: len(hook.requests) >= 3, within=20)  # attempted, failed
            s2 = await session(env, client, reader)
            await send(env, client, s2, "due in three seconds")
            await wait_until(
                lambda: env.conn.fetchval(
                    "select count(*) = 1 from chat_private.webhook_waiting "
                    "where session_id = $1 and status = 'pending'",
                    s2,
                )
            )
        # The service is down: a third session, with a message.
        s3 = await session(env, client, reader)
        await send(env, client, s3, "while nobody was there")
        tried = {r.headers["webhook-id"] for r in hook.requests}
        pending = await env.conn.fetchval(
            "select count(*) from chat_private.webhook_outbox where status = 'pending'"
        )
        assert pending >= 2  # s1's created and waiting events, at least
        assert (
            await env.conn.fetchval(
                "select status from chat_private.webhook_waiting where session_id = $1", s2
            )
            == "pending"
        )

        hook.respond = lambda _n: 200
        async with running_relay(env.url, **settings):
            for sid in (s1, s2, s3):
                await hook.wait_for(lambda sid=sid: bool(hook.about(WAITING, sid)), within=20)
                await hook.wait_for(lambda sid=sid: bool(hook.about(CREATED, sid)), within=20)
            await asyncio.sleep(1.5)
        for sid in (s1, s2, s3):
            assert len(hook.about(WAITING, sid)) == 1
            assert len(hook.about(CREATED, sid)) == 1
        delivered_ids = {r.headers["webhook-id"] for r in hook.delivered()}
        assert tried <= delivered_ids  # what failed before the restart went out, same id
        assert (
            await env.conn.fetchval(
                "select count(*) from chat_private.webhook_outbox where status <> 'delivered'"
            )
            == 0
        )


async def test_joining_before_the_delay_cancels_the_event(env: Env) -> None:
    async with (
        receiver() as hook,
        running_relay(env.url, **hooked(hook, notify_delay=2.0)) as (url, _relay),
    ):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        await send(env, client, sid, "are you around?")
        await wait_until(
            lambda: env.conn.fetchval(
                "select count(*) = 1 from chat_private.webhook_waiting "
                "where session_id = $1 and status = 'pending'",
                sid,
            )
        )
        watcher = Recorder("reader")
        await watcher.connect(url, Users.token(reader, "reader"))
        assert (await watcher.call("join_session", {"session_id": str(sid)}))["ok"]
        await wait_until(
            lambda: env.conn.fetchval(
                "select count(*) = 0 from chat_private.webhook_waiting where session_id = $1", sid
            )
        )
        await watcher.close()  # gone again, without reading: the period has ended all the same
        await asyncio.sleep(3.0)
        assert hook.about(WAITING, sid) == []


async def test_gone_stops_at_once_and_dead_letters_can_be_replayed(env: Env) -> None:
    async with receiver() as hook:
        hook.respond = lambda _n: 410
        async with running_relay(env.url, **hooked(hook)) as (url, _relay):
            await worker_ready(env)
            client, reader = await pair(env)
            admin = await env.users.create("admin")
            sid = await session(env, client, reader)
            await wait_until(
                lambda: env.conn.fetchval(
                    "select status = 'dead' from chat_private.webhook_outbox where session_id = $1",
                    sid,
                )
            )
            await asyncio.sleep(0.8)
            assert len(hook.requests) == 1  # 410: no retry

            api = url + "/api/chat/webhooks/deliveries"
            as_admin = {"Authorization": "Bearer " + Users.token(admin, "admin")}
            as_client = {"Authorization": "Bearer " + Users.token(client, "client")}
            async with aiohttp.ClientSession() as http:
                async with http.get(api + "?status=dead", headers=as_client) as resp:
                    assert resp.status == 403
                    assert (await resp.json())["error"]["code"] == "forbidden"
                async with http.get(api + "?status=dead", headers=as_admin) as resp:
                    assert resp.status == 200
                    page = await resp.json()
                assert page["total"] == 1 and page["enabled"] is True
                dead = page["deliveries"][0]
                assert dead["dead_reason"] == "gone" and dead["last_status"] == 410
                assert dead["attempts"] == 1
                async with http.get(api + "?status=bogus", headers=as_admin) as resp:
                    assert resp.status == 400

                hook.respond = lambda _n: 200
                replay = f"{api}/{dead['id']}/replay"
                async with http.post(replay, headers=as_client) as resp:
                    assert resp.status == 403
                async with http.post(replay, headers=as_admin) as resp:
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["delivery"]["status"] == "pending"
                await hook.wait_for(lambda: bool(hook.about(CREATED, sid)), within=10)
                async with http.post(f"{api}/{uuid.uuid4()}/replay", headers=as_admin) as resp:
                    assert resp.status == 404
        assert hook.about(CREATED, sid)[0].headers["webhook-id"] == dead["webhook_id"]
        actions = await env.conn.fetch(
            "select action, actor_id from public.chat_audit_logs "
            "where action like 'admin.webhooks.%' order by id"
        )
        assert [a["action"] for a in actions] == ["admin.webhooks.read", "admin.webhooks.replay"]
        assert {a["actor_id"] for a in actions} == {admin}
        refused = await env.conn.fetchval(
            "select count(*) from public.chat_audit_logs where action = 'admin.refused' "
            "and actor_id = $1",
            client,
        )
        assert refused == 2  # the client's list and replay attempts


async def test_retries_end_in_the_dead_letter_state(env: Env) -> None:
    async with receiver() as hook:
        hook.respond = lambda _n: 500
        async with running_relay(env.url, **hooked(hook, webhook_retry_window=1.5)):
            await worker_ready(env)
            client, reader = await pair(env)
            sid = await session(env, client, reader)
            await wait_until(
                lambda: env.conn.fetchval(
                    "select status = 'dead' from chat_private.webhook_outbox where session_id = $1",
                    sid,
                ),
                within=20,
            )
        row = await env.conn.fetchrow(
            "select * from chat_private.webhook_outbox where session_id = $1", sid
        )
        assert row["dead_reason"] == "expired"
        assert row["attempts"] >= 3
        assert row["last_status"] == 500
        assert row["last_attempt_at"] - row["created_at"] >= dt.timedelta(seconds=1.4)


async def test_redirects_are_not_followed(env: Env) -> None:
    async with receiver() as hook:
        hook.respond = lambda _n: 307
        async with running_relay(env.url, **hooked(hook)):
            await worker_ready(env)
            client, reader = await pair(env)
            sid = await session(env, client, reader)
            await wait_until(
                lambda: env.conn.fetchval(
                    "select status = 'dead' from chat_private.webhook_outbox where session_id = $1",
                    sid,
                )
            )
            await asyncio.sleep(0.5)
        assert len(hook.requests) == 1  # neither followed nor retried
        row = await env.conn.fetchrow(
            "select * from chat_private.webhook_outbox where session_id = $1", sid
        )
        assert (row["dead_reason"], row["last_status"]) == ("rejected", 307)


async def test_a_slow_receiver_times_out_and_is_retried(env: Env) -> None:
    async with receiver() as hook:
        hook.stall = lambda n: 3.0 if n < 2 else 0.0  # the first two answers come too late
        async with running_relay(env.url, **hooked(hook, webhook_timeout=0.5)):
            await worker_ready(env)
            client, reader = await pair(env)
            sid = await session(env, client, reader)
            await wait_until(
                lambda: env.conn.fetchval(
                    "select status = 'delivered' from chat_private.webhook_outbox "
                    "where session_id = $1",
                    sid,
                ),
                within=20,
            )
        assert len(hook.requests) == 3
        assert len({r.headers["webhook-id"] for r in hook.requests}) == 1
        row = await env.conn.fetchrow(
            "select * from chat_private.webhook_outbox where session_id = $1", sid
        )
        assert row["attempts"] == 3
        gaps = [b.at - a.at for a, b in itertools.pairwise(hook.requests)]
        assert all(gap < 2.0 for gap in gaps), gaps  # gave up at 0.5 s, not after 3 s


# ---------------------------------------------------------------- signatures


async def test_forged_or_stale_signatures_are_refused_by_the_reference_receiver() -> None:
    async with receiver() as hook, aiohttp.ClientSession() as http:
        body = '{"type":"chat.session.created","timestamp":"2026-11-30T00:00:00Z","data":{}}'
        real = Sender(url=hook.url, secret=hook.secret, timeout=2)
        forger = Sender(url=hook.url, secret=new_secret(), timeout=2)
        stale = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6)
        cases = {
            "signed with another secret": (forger.headers("msg_1", body), body),
            "stale timestamp": (real.headers("msg_2", body, now=stale), body),
            "body changed after signing": (real.headers("msg_3", body), body + " "),
            "no signature": ({"webhook-id": "msg_4", "webhook-timestamp": "1"}, body),
            "genuine": (real.headers("msg_5", body), body),
        }
        answers = {}
        for name, (headers, data) in cases.items():
            async with http.post(hook.url, data=data.encode(), headers=headers) as resp:
                answers[name] = resp.status
        assert answers == {
            "signed with another secret": 401,
            "stale timestamp": 401,
            "body changed after signing": 401,
            "no signature": 401,
            "genuine": 200,
        }


# ---------------------------------------------------------------- off by default


async def test_without_webhook_url_nothing_is_recorded(env: Env) -> None:
    async with running_relay(env.url) as (url, _relay):
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        await send(env, client, sid, "nobody is listening")
        await asyncio.sleep(0.5)
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
            assert "chat_webhook_leader" not in await resp.text()
    for table in ("webhook_outbox", "webhook_waiting", "webhook_cursor"):
        assert await env.conn.fetchval(f"select count(*) from chat_private.{table}") == 0


# ---------------------------------------------------------------- erasure


async def test_a_deleted_user_is_announced_once_and_no_later_event_names_them(env: Env) -> None:
    ERASED = "chat.user.erased"
    async with (
        receiver() as hook,
        running_relay(env.url, lifecycle_poll_seconds=0.1, **hooked(hook)),
    ):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        await send(env, client, sid, "hello")
        async with env.conn.transaction():
            await env.conn.execute("set local role supabase_auth_admin")
            await env.conn.execute("delete from auth.users where id = $1", client)
        await hook.wait_for(lambda: bool(hook.delivered(ERASED)), within=10)
        erased = hook.delivered(ERASED)
        assert len(erased) == 1 and erased[0].verified
        data = erased[0].payload["data"]
        assert data["user_id"] == str(client)
        assert (data["mode"], data["sessions_left"], data["messages"]) == ("redact", 1, 1)
        # Closing the session afterwards announces it without the deleted user.
        async with env.db.as_user(Users.principal(reader, "reader")) as conn:
            await conn.execute("select public.close_chat_session($1)", sid)
        await hook.wait_for(lambda: bool(hook.about(CLOSED, sid)), within=10)
        after = [r for r in hook.delivered() if r.at >= erased[0].at and r is not erased[0]]
        assert after and all(str(client) not in r.body for r in after)
        assert hook.about(CLOSED, sid)[0].payload["data"]["participants"] == [str(reader)]
        await asyncio.sleep(0.5)
        assert len(hook.delivered(ERASED)) == 1


async def test_a_report_is_announced_to_the_host_platform_without_the_content(env: Env) -> None:
    REPORTED = "chat.message.reported"
    async with (
        receiver() as hook,
        running_relay(env.url, lifecycle_poll_seconds=0.1, **hooked(hook)),
    ):
        await worker_ready(env)
        client, reader = await pair(env)
        sid = await session(env, client, reader)
        message = await send(env, client, sid, "meet me elsewhere")
        async with env.db.as_user(Users.principal(reader, "reader")) as conn:
            report = await conn.fetchval(
                "select public.report_chat_message($1, 'off_platform_contact', 'see this')",
                message["id"],
            )
        await hook.wait_for(lambda: bool(hook.delivered(REPORTED)), within=10)
        (sent,) = hook.delivered(REPORTED)
        data = sent.payload["data"]
        assert data == {
            "report_id": report["id"],
            "session_id": str(sid),
            "message_id": str(message["id"]),
            "reporter_id": str(reader),
            "category": "off_platform_contact",
        }
        assert "meet me elsewhere" not in sent.body
