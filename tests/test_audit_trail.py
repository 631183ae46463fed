"""Data changes leave one audit row each, whatever path made them (REST, socket, upload,
SQL as a participant), with the actor from the token; concurrent writers build one valid
hash chain."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from workers.db import Database

from .api_helpers import api_client, bearer, make_session
from .audit_helpers import link_audit_chain
from .conftest import Users
from .relay_helpers import Recorder, running_relay


async def audit_of(
    superuser: asyncpg.Connection, session_id: uuid.UUID
) -> list[tuple[str, uuid.UUID | None, str]]:
    rows = await superuser.fetch(
        "select action, actor_id, actor_role from public.chat_audit_logs "
        "where session_id = $1 order by id",
        session_id,
    )
    return [(r["action"], r["actor_id"], r["actor_role"]) for r in rows]


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with api_client(database_url, data_dir=tmp_path) as client:
        yield client


async def test_rest_changes_are_audited_with_the_caller_as_actor(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    as_client, as_reader = bearer(users.token(client)), bearer(users.token(reader, "reader"))
    resp = await api.post(
        "/api/chat/sessions",
        json={"participants": [str(client), str(reader)], "type": "support", "title": "T"},
        headers=as_client,
    )
    session_id = uuid.UUID((await resp.json())["session"]["id"])
    resp = await api.post(
        "/api/chat/messages",
        json={"session_id": str(session_id), "content": "hello"},
        headers=as_client,
    )
    message_id = uuid.UUID((await resp.json())["message"]["id"])
    await api.put(f"/api/chat/messages/{session_id}/read", json={}, headers=as_reader)
    await api.post(f"/api/chat/sessions/{session_id}/close", headers=as_reader)

    assert await audit_of(superuser, session_id) == [
        ("session.created", client, "client"),
        ("message.created", client, "client"),
        ("read_state.advanced", reader, "reader"),
        ("session.closed", reader, "reader"),
        ("message.created", reader, "reader"),  # the "Session closed" system message
    ]
    named = await superuser.fetchval(
        "select message_id from public.chat_audit_logs "
        "where session_id = $1 and action = 'message.created' order by id limit 1",
        session_id,
    )
    assert named == message_id


async def test_socket_changes_are_audited_with_the_sockets_user_as_actor(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client, reader)
    async with running_relay(database_url) as (url, _):
        socket = Recorder()
        await socket.connect(url, users.token(reader, "reader"))
        sent = await socket.call("send_message", {"session_id": str(session_id), "content": "hi"})
        assert sent["ok"], sent
        read = await socket.call("mark_messages_read", {"session_id": str(session_id)})
        assert read["ok"], read
        # The reader's own message is their newest: nothing from others became read, but
        # the cursor moved, and that is what the audit records.
    assert await audit_of(superuser, session_id) == [
        ("session.created", None, "postgres"),  # arranged by the test as the table owner
        ("message.created", reader, "reader"),
        ("read_state.advanced", reader, "reader"),
    ]


async def test_sql_as_a_participant_is_audited_like_supabase_js(
    db: Database, users: Users, superuser: asyncpg.Connection
) -> None:
    """supabase-js goes through PostgREST: plain table writes under RLS, claims set."""
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client, reader)
    async with db.as_user(users.principal(reader, "reader")) as conn:
        await conn.execute(
            "insert into public.chat_messages (session_id, sender_id, content) "
            "values ($1, $2, 'direct')",
            session_id,
            reader,
        )
        await conn.execute(
            "update public.chat_sessions set title = 'Renamed' where id = $1", session_id
        )
    async with db.as_service() as conn:
        await conn.execute(
            "update public.chat_sessions set status = 'closed' where id = $1", session_id
        )
    assert await audit_of(superuser, session_id) == [
        ("session.created", None, "postgres"),
        ("message.created", reader, "reader"),
        ("session.updated", reader, "reader"),
        ("session.closed", None, "service_role"),
        ("message.created", None, "service_role"),
    ]


async def test_an_upload_audits_the_file_and_its_message(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    if "uploadFile" not in api.app.router.named_resources():
        pytest.skip("no upload endpoint in this build")
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client, reader)
    form = aiohttp.FormData()
    form.add_field("session_id", str(session_id))
    form.add_field(
        "file", b"notes, in plain text\n", filename="notes.txt", content_type="text/plain"
    )
    resp = await api.post("/api/chat/upload", data=form, headers=bearer(users.token(client)))
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    audit = await audit_of(superuser, session_id)
    assert audit[1:] == [
        ("file.created", client, "client"),
        ("message.created", client, "client"),
    ]
    file_row = await superuser.fetchrow(
        "select details from public.chat_audit_logs "
        "where session_id = $1 and action = 'file.created'",
        session_id,
    )
    details = json.loads(file_row["details"])
    assert details["name"] == body["message"]["metadata"]["storage_path"]


async def test_concurrent_writers_build_one_valid_chain(
    db: Database, users: Users, superuser: asyncpg.Connection
) -> None:
    members = [await users.create("client") for _ in range(4)]
    session_id = await make_session(superuser, *members)
    before = await superuser.fetchval("select last_seq from chat_private.audit_chain_head")

    async def send(who: uuid.UUID, n: int) -> None:
        async with db.as_user(users.principal(who)) as conn:
            await conn.fetchval(
                "select id from public.send_chat_message($1, $2)", session_id, f"m{n}"
            )

    async def service_event(n: int) -> None:
        async with db.as_service() as conn:
            await conn.execute(
                "insert into public.chat_audit_logs (actor_role, action, details) "
                "values ('service_role', 'test.concurrent', jsonb_build_object('n', $1::int))",
                n,
            )

    jobs: list[Any] = []
    for n in range(40):
        jobs.append(send(members[n % 4], n) if n % 2 else service_event(n))
    await asyncio.gather(*jobs)
    await link_audit_chain(superuser)

    seqs = await superuser.fetch(
        "select chain_seq from chat_private.audit_links where chain_seq > $1 order by chain_seq",
        before,
    )
    assert [r["chain_seq"] for r in seqs] == list(range(before + 1, before + 1 + len(seqs)))
    assert len(seqs) >= 40
    assert await superuser.fetchval("select chat_private.verify_audit_chain()") is None


async def test_an_idle_linker_takes_no_transaction_id(superuser: asyncpg.Connection) -> None:
    # The linker calls link_audit_chain every 0.2 s. With nothing to link it must not lock
    # the chain head: a lock takes a transaction id, and its commit writes and flushes WAL.
    await link_audit_chain(superuser)  # whatever waits, linked
    async with superuser.transaction():
        row = await superuser.fetchrow("select * from chat_private.link_audit_chain()")
        assert row["linked"] == 0
        assert await superuser.fetchval("select pg_current_xact_id_if_assigned()") is None
    await superuser.execute(
        "insert into public.chat_audit_logs (actor_role, action, details) "
        "values ('service_role', 'test.idle_linker', '{}')"
    )
    async with superuser.transaction():
        row = await superuser.fetchrow("select * from chat_private.link_audit_chain()")
        assert row["linked"] == 1  # a row waiting: linked, under the head's lock
        assert await superuser.fetchval("select pg_current_xact_id_if_assigned()") is not None


async def test_rows_of_an_older_transaction_that_commits_later_are_linked(
    database_url: str, superuser: asyncpg.Connection
) -> None:
    # The linker reads on from a position in (xact_id, id) order and links only rows of
    # transactions older than every one still running. A transaction that links its own
    # rows (include_own_transaction) must not move that position past an older
    # transaction still running, or that one's rows would never be linked.
    await link_audit_chain(superuser)
    older = await asyncpg.connect(database_url)
    newer = await asyncpg.connect(database_url)
    insert = (
        "insert into public.chat_audit_logs (actor_role, action, details) "
        "values ('service_role', $1, '{}') returning id"
    )
    try:
        older_tx = older.transaction()
        await older_tx.start()
        first = await older.fetchval(insert, "test.older")
        async with newer.transaction():
            own = await newer.fetchval(insert, "test.newer")
            linked = await newer.fetchval(
                "select linked from chat_private.link_audit_chain(include_own_transaction => true)"
            )
            assert linked == 1  # its own row only: the older transaction's is not visible
        # Still running, the older transaction blocks every row after it.
        assert await superuser.fetchval("select linked from chat_private.link_audit_chain()") == 0
        second = await older.fetchval(insert, "test.older")
        await older_tx.commit()
        await link_audit_chain(superuser)
        seqs = {
            r["audit_id"]: r["chain_seq"]
            for r in await superuser.fetch(
                "select audit_id, chain_seq from chat_private.audit_links "
                "where audit_id = any($1::bigint[])",
                [first, second, own],
            )
        }
        assert set(seqs) == {first, second, own}
        assert seqs[own] < seqs[first] < seqs[second]
        assert await superuser.fetchval("select chat_private.verify_audit_chain()") is None
    finally:
        await older.close()
        await newer.close()
