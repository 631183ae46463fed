"""The message path: group commit (a bad message fails alone), fan-out from the sending
relay, the changefeed's replay of what a relay committed but never emitted (a relay that
died between commit and emit), and the background audit linker's leadership."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import jwt
import pytest

from workers.audit_linker import AuditLinker
from workers.auth import principal_from_claims
from workers.config import NO_LIMIT
from workers.errors import ApiError

from .audit_helpers import eventually
from .bench_suite import metric_values
from .conftest import Users
from .relay_helpers import Recorder, make_session, people, running_relay
from .test_relay_cluster import RelayProcess

UNLIMITED = {"message_bucket": NO_LIMIT, "event_bucket": NO_LIMIT, "user_event_bucket": NO_LIMIT}


async def test_a_bad_message_in_a_group_fails_alone(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await people(users, superuser)
    session = world["session"]
    async with running_relay(database_url, **UNLIMITED, send_pipeline=1) as (url, relay):
        reader = Recorder("reader")
        await reader.connect(url, world["tokens"]["reader"])
        assert (await reader.call("join_session", {"session_id": str(session)}))["ok"]
        senders = [Recorder(f"client{i}") for i in range(8)]
        for sender in senders:
            await sender.connect(url, world["tokens"]["client"])
        outsider = Recorder("outsider")
        await outsider.connect(url, world["tokens"]["outsider"])

        # Hold the session row: the first send waits on its foreign-key check, so every
        # other send queues up behind it and goes in one group, the outsider's among them.
        lock = await asyncpg.connect(database_url)
        held = lock.transaction()
        await held.start()
        await lock.execute("select 1 from chat_sessions where id = $1 for update", session)
        groups_before = relay.writer.groups
        isolated_before = relay.writer.isolated_groups
        first = asyncio.ensure_future(
            senders[0].call("send_message", {"session_id": str(session), "content": "first"})
        )
        await asyncio.sleep(0.3)
        calls = [
            sender.call("send_message", {"session_id": str(session), "content": f"m{i}"})
            for i, sender in enumerate(senders[1:])
        ]
        calls.append(outsider.call("send_message", {"session_id": str(session), "content": "x"}))
        pending = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0.3)
        await held.rollback()
        await lock.close()
        acks = [await first, *await asyncio.gather(*pending)]

        assert all(a["ok"] for a in acks[:-1]), acks
        assert acks[-1]["error"]["code"] == "not_found"
        assert relay.writer.groups - groups_before == 2  # the first, then all the others
        assert relay.writer.isolated_groups - isolated_before == 1
        stored = await reader.wait_for("new_message", 8)
        await asyncio.sleep(0.3)  # a duplicate would have arrived by now
        ids = [m["id"] for m in reader.of("new_message")]
        assert len(ids) == 8 and len(set(ids)) == 8
        assert {m["content"] for m in stored} == {"first", *(f"m{i}" for i in range(7))}
        assert {m["sender_name"] for m in stored} == {"Cora Client"}


async def test_sends_behind_a_committing_group_wait_for_it_until_the_overlap_delay(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """While a group commits, the sends behind it wait for it, and go as one group when it
    ends (less of the database's work per message); a commit held up longer than
    ``SEND_OVERLAP_AFTER_MS`` lets another group start beside it, so one stalled commit
    does not hold every sender back."""
    world = await people(users, superuser)
    session = world["session"]
    settings = {"send_pipeline": 2, "send_overlap_after_ms": 1000}
    async with running_relay(database_url, **UNLIMITED, **settings) as (url, relay):
        senders = [Recorder(f"client{i}") for i in range(4)]
        for sender in senders:
            await sender.connect(url, world["tokens"]["client"])

        def send(i: int) -> asyncio.Future[dict[str, object]]:
            call = senders[i].call("send_message", {"session_id": str(session), "content": f"m{i}"})
            return asyncio.ensure_future(call)

        # Hold the session row: a group's insert waits on its foreign-key check.
        lock = await asyncpg.connect(database_url)
        held = lock.transaction()
        await held.start()
        await lock.execute("select 1 from chat_sessions where id = $1 for update", session)
        groups_before = relay.writer.groups
        acks = [send(0)]
        await eventually(lambda: _groups_waiting(superuser, 1), within=5)
        acks.append(send(1))
        await asyncio.sleep(0.4)
        assert await _groups_waiting(superuser, 1), "a second group started at once"
        await eventually(lambda: _groups_waiting(superuser, 2), within=5)
        acks += [send(2), send(3)]  # both slots are taken: these wait together
        await eventually(lambda: _async(relay.writer.waiting == 2), within=5)
        released = asyncio.get_running_loop().time()
        await held.rollback()
        await lock.close()
        done = await asyncio.gather(*acks)
        took = asyncio.get_running_loop().time() - released
        assert all(a["ok"] for a in done), done
        assert relay.writer.groups - groups_before == 3
        # The last two went as soon as the commits before them ended, not after the delay.
        assert took < 0.8, took


async def test_a_full_group_does_not_wait_for_the_overlap_delay(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await people(users, superuser)
    session = world["session"]
    settings = {"send_pipeline": 2, "send_overlap_after_ms": 1000, "send_group_max": 2}
    async with running_relay(database_url, **UNLIMITED, **settings) as (url, relay):
        senders = [Recorder(f"client{i}") for i in range(3)]
        for sender in senders:
            await sender.connect(url, world["tokens"]["client"])
        lock = await asyncpg.connect(database_url)
        held = lock.transaction()
        await held.start()
        await lock.execute("select 1 from chat_sessions where id = $1 for update", session)
        acks = [
            asyncio.ensure_future(
                senders[0].call("send_message", {"session_id": str(session), "content": "a"})
            )
        ]
        await eventually(lambda: _groups_waiting(superuser, 1), within=5)
        acks.append(
            asyncio.ensure_future(
                senders[1].call("send_message", {"session_id": str(session), "content": "b"})
            )
        )
        await eventually(lambda: _async(relay.writer.waiting == 1), within=5)
        await asyncio.sleep(0.1)  # the writer is waiting for the group in flight
        acks.append(
            asyncio.ensure_future(
                senders[2].call("send_message", {"session_id": str(session), "content": "c"})
            )
        )
        # Two sends fill a group (SEND_GROUP_MAX=2): it starts beside the first at once.
        await eventually(lambda: _groups_waiting(superuser, 2), within=0.5)
        await held.rollback()
        await lock.close()
        assert all(a["ok"] for a in await asyncio.gather(*acks))


async def test_a_group_slow_to_commit_holds_back_only_its_own_sessions(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """A group emits once the groups formed before it that write to one of its sessions
    have emitted: a session's messages arrive in order, and a group stuck in its commit
    does not hold back the messages of other sessions committed beside it."""
    world = await people(users, superuser)
    stuck, free = world["session"], await make_session(superuser, world["client"], world["reader"])
    settings = {"send_pipeline": 2, "send_overlap_after_ms": 50}
    async with running_relay(database_url, **UNLIMITED, **settings) as (url, _relay):
        reader = Recorder("reader")
        await reader.connect(url, world["tokens"]["reader"])
        for session in (stuck, free):
            assert (await reader.call("join_session", {"session_id": str(session)}))["ok"]
        senders = [Recorder(f"client{i}") for i in range(3)]
        for sender in senders:
            await sender.connect(url, world["tokens"]["client"])

        def send(i: int, session: uuid.UUID, content: str) -> asyncio.Future[dict[str, object]]:
            call = senders[i].call("send_message", {"session_id": str(session), "content": content})
            return asyncio.ensure_future(call)

        # Hold one session's row: a group's insert into it waits on its foreign-key check.
        lock = await asyncpg.connect(database_url)
        held = lock.transaction()
        await held.start()
        await lock.execute("select 1 from chat_sessions where id = $1 for update", stuck)
        first = send(0, stuck, "first")
        await eventually(lambda: _groups_waiting(superuser, 1), within=5)
        # Another session's message commits beside it, and reaches its room at once.
        other = await asyncio.wait_for(send(1, free, "elsewhere"), 5)
        assert other["ok"], other
        await reader.wait_for("new_message", 1)
        assert [m["content"] for m in reader.of("new_message")] == ["elsewhere"]
        assert not first.done()
        # A later group of the held session commits beside the first one (the lock lets
        # either go first) but reaches the room after it.
        second = send(2, stuck, "second")
        await eventually(lambda: _groups_waiting(superuser, 2), within=5)
        await asyncio.sleep(0.3)
        await held.rollback()
        await lock.close()
        assert all(a["ok"] for a in await asyncio.gather(first, second))
        await reader.wait_for("new_message", 3)
        assert [m["content"] for m in reader.of("new_message")] == ["elsewhere", "first", "second"]
        # /metrics has each group's stages: the held session's commits took the lock's time.
        values = await asyncio.to_thread(metric_values, f"{url}/metrics")
        for stage in ("wait", "commit", "held"):
            assert values[f"chat_send_{stage}_seconds_count"] == 3, stage
        assert values["chat_send_commit_seconds_sum"] >= 0.6


async def test_stopping_the_writer_answers_every_send_it_holds(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """Whenever the writer stops (the relay shutting down), each send it holds is answered:
    stored, or refused with 503. Stopping after 0 to 5 turns of the event loop catches the
    writer at each point of a send's way: waiting, taken into a group whose task has not
    yet run, and committing. A group's task cancelled before its first step would never
    reach its own error handling; stop() awaits the writer's loop before cancelling the
    groups, which lets every group already made take that step."""
    world = await people(users, superuser)
    claims = jwt.decode(world["tokens"]["client"], options={"verify_signature": False})
    principal = principal_from_claims(claims)
    async with running_relay(database_url, **UNLIMITED) as (_url, relay):
        writer = relay.writer
        for turns in range(6):
            send = asyncio.ensure_future(
                writer.send(
                    principal,
                    session_id=world["session"],
                    type_="text",
                    content=f"sent {turns} turns before the writer stops",
                    reply_to_message_id=None,
                    metadata={},
                    client_message_id=None,
                )
            )
            for _ in range(turns):
                await asyncio.sleep(0)
            await writer.stop()
            done, _ = await asyncio.wait([send], timeout=2)
            assert send in done, f"a send made {turns} turns before stop() was never answered"
            error = send.exception()
            assert error is None or (isinstance(error, ApiError) and error.status == 503)
            await writer.start()


async def _groups_waiting(superuser: asyncpg.Connection, n: int) -> bool:
    """Exactly ``n`` group commits of this database are in PostgreSQL."""
    count = await superuser.fetchval(
        "select count(*) from pg_stat_activity "
        "where datname = current_database() and pid <> pg_backend_pid() "
        "and state = 'active' and query like '%send_chat_messages%'"
    )
    return bool(count == n)


async def test_a_relay_write_nobody_emitted_is_replayed_within_a_second(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """The state a relay leaves when it dies between commit and emit: a committed row
    marked as relay-written (no NOTIFY) that no relay has emitted."""
    world = await people(users, superuser)
    session = world["session"]
    async with running_relay(database_url) as (url, relay):
        reader = Recorder("reader")
        await reader.connect(url, world["tokens"]["reader"])
        assert (await reader.call("join_session", {"session_id": str(session)}))["ok"]
        replayed = relay.changefeed.replayed
        loop = asyncio.get_running_loop()
        async with superuser.transaction():
            await superuser.execute("select set_config('chat.relay_write', 'on', true)")
            message_id = await superuser.fetchval(
                "insert into chat_messages (session_id, sender_id, content) "
                "values ($1, $2, 'orphan') returning id",
                session,
                world["client"],
            )
        committed = loop.time()
        (message,) = await reader.wait_for("new_message", within=5)
        waited = loop.time() - committed
        assert message["id"] == str(message_id)
        assert message["sender_name"] == "Cora Client"
        assert relay.changefeed.replayed == replayed + 1
        assert waited < 1.5, waited
        await asyncio.sleep(1.2)  # the next windows do not deliver it again
        assert len(reader.of("new_message")) == 1


async def test_the_linker_moves_to_another_relay_when_its_leader_dies(
    database_url: str, superuser: asyncpg.Connection
) -> None:
    linkers = [AuditLinker(database_url, interval=0.05, retry=0.2) for _ in range(2)]
    for linker in linkers:
        await linker.start()
    try:
        await eventually(lambda: _async(any(x.is_leader for x in linkers)), within=10)
        leader = next(x for x in linkers if x.is_leader)
        other = next(x for x in linkers if x is not leader)
        assert not other.is_leader
        marker = uuid.uuid4().hex
        await _audit(superuser, marker, 1)
        await eventually(lambda: _linked(superuser, marker, 1), within=10)

        # Its session dies (as when its relay is killed): the lock goes with it.
        await superuser.execute(
            "select pg_terminate_backend(l.pid) from pg_locks as l "
            "join pg_stat_activity as a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted "
            "and a.application_name = 'chat-audit-linker' and a.datname = current_database()"
        )
        await eventually(lambda: _async(other.is_leader), within=10)
        await _audit(superuser, marker, 2)
        await eventually(lambda: _linked(superuser, marker, 2), within=10)
        assert await superuser.fetchval("select chat_private.verify_audit_chain()") is None
    finally:
        for linker in linkers:
            with contextlib.suppress(Exception):
                await linker.stop()


async def _async(value: bool) -> bool:
    return value


async def _audit(superuser: asyncpg.Connection, marker: str, n: int) -> None:
    await superuser.execute(
        "insert into chat_audit_logs (actor_role, action, details) "
        "values ('service_role', 'test.linker', "
        "jsonb_build_object('marker', $1::text, 'n', $2::int))",
        marker,
        n,
    )


async def _linked(superuser: asyncpg.Connection, marker: str, n: int) -> bool:
    return bool(
        await superuser.fetchval(
            "select count(*) = $2 and bool_and(l.hash is not null) from chat_audit_logs a "
            "left join chat_private.audit_links l on l.audit_id = a.id "
            "where a.details ->> 'marker' = $1",
            marker,
            n,
        )
    )


async def test_sessions_touched_once_per_group_keep_the_list_order(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    older = await make_session(superuser, client, reader)
    newer = await make_session(superuser, client, reader)
    async with running_relay(database_url, **UNLIMITED) as (url, _relay):
        socket = Recorder()
        await socket.connect(url, users.token(client))
        for session in (newer, older):
            ack = await socket.call("send_message", {"session_id": str(session), "content": "hi"})
            assert ack["ok"], ack
        rows = await superuser.fetch(
            "select s.id, s.last_message_at, max(m.created_at) as newest "
            "from chat_sessions as s join chat_messages as m on m.session_id = s.id "
            "where s.id = any($1::uuid[]) group by s.id",
            [older, newer],
        )
        assert all(r["last_message_at"] == r["newest"] for r in rows)
        async with running_relay(database_url) as (_url, relay2):
            async with relay2.db.as_user(users.principal(client)) as conn:
                listed = await conn.fetch("select id from public.list_my_chat_sessions()")
        assert [r["id"] for r in listed][:2] == [older, newer]


@pytest.mark.fault
async def test_killing_the_sending_relay_loses_no_committed_message(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """Two relays on Redis; the client's relay is SIGKILLed in the middle of a burst of
    sends. Whatever committed (acknowledged or not, emitted or not) reaches the reader on
    the other relay exactly once."""
    world = await people(users, superuser)
    session = world["session"]
    unlimited = {"MESSAGE_RATE": "0", "EVENT_RATE": "0", "USER_EVENT_RATE": "0"}
    one, two = RelayProcess(database_url, **unlimited), RelayProcess(database_url, **unlimited)
    client, reader = Recorder("client@1"), Recorder("reader@2")
    try:
        await asyncio.gather(one.ready(), two.ready())
        await reader.connect(two.url, world["tokens"]["reader"])
        assert (await reader.call("join_session", {"session_id": str(session)}))["ok"]
        await client.connect(one.url, world["tokens"]["client"])
        assert (await client.call("join_session", {"session_id": str(session)}))["ok"]

        async def send(i: int) -> None:
            with contextlib.suppress(Exception):  # the relay goes away mid-burst
                await client.client.emit(
                    "send_message",
                    {"session_id": str(session), "content": f"m{i}", "client_message_id": f"k{i}"},
                )

        for i in range(50):  # acknowledged before the kill
            ack = await client.call(
                "send_message", {"session_id": str(session), "content": f"a{i}"}
            )
            assert ack["ok"], ack
        for i in range(400):  # in flight when it dies: some commit, some do not
            await send(i)
            await asyncio.sleep(0.002)
            if i == 200:
                one.kill()
        committed = {
            str(r["id"])
            for r in await superuser.fetch(
                "select id from chat_messages where session_id = $1", session
            )
        }
        assert committed, "nothing committed before the kill"

        async def all_arrived() -> bool:
            return {m["id"] for m in reader.of("new_message")} >= committed

        await eventually(all_arrived, within=10)
        await asyncio.sleep(1.5)  # a duplicate would have arrived by now
        ids = [m["id"] for m in reader.of("new_message")]
        assert len(ids) == len(set(ids)) == len(committed)
    finally:
        await client.close()
        await reader.close()
        one.stop()
        two.stop()


async def test_a_message_from_outside_the_relay_does_not_wait_for_its_sessions_row(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """A user's insert (supabase-js, PostgREST) moves last_message_at only when no other
    transaction is moving it: it never queues on the session's row."""
    client, reader = await users.create("client"), await users.create("reader")
    session = await make_session(superuser, client, reader)
    claims = users.principal(client).claims_json()
    holder = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(database_url)
    insert = (
        "begin; select set_config('role', 'authenticated', true), "
        f"set_config('request.jwt.claims', '{claims}', true); "
        "insert into public.chat_messages (session_id, content) values ('SESSION', 'TEXT'); "
        "commit;"
    ).replace("SESSION", str(session))
    try:
        # Another transaction is moving the session's row (as a concurrent touch would).
        tx = holder.transaction()
        await tx.start()
        await holder.execute("select 1 from chat_sessions where id = $1 for no key update", session)
        await asyncio.wait_for(writer.execute(insert.replace("TEXT", "while held")), timeout=5)
        assert (
            await superuser.fetchval(
                "select last_message_at from chat_sessions where id = $1", session
            )
            is None
        )
        await tx.commit()
        # Once nobody holds it, the next message moves it to that message's time.
        await writer.execute(insert.replace("TEXT", "after"))
        row = await superuser.fetchrow(
            "select s.last_message_at, max(m.created_at) as newest from chat_sessions as s "
            "join chat_messages as m on m.session_id = s.id where s.id = $1 "
            "group by s.last_message_at",
            session,
        )
        assert row["last_message_at"] == row["newest"]
    finally:
        await holder.close()
        await writer.close()
