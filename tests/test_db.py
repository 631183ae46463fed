"""db.as_user really enforces RLS (as PostgREST would); db.as_service bypasses it."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from workers.db import Database
from workers.errors import from_postgres

from .conftest import Users


async def _session(db: Database, users: Users, *members: uuid.UUID) -> uuid.UUID:
    async with db.as_user(users.principal(members[0])) as conn:
        row = await conn.fetchrow(
            "select * from public.create_chat_session($1::uuid[], 'support')", list(members)
        )
    return row["id"]


async def test_as_user_sets_role_and_claims(db: Database, users: Users) -> None:
    uid = await users.create("reader")
    async with db.as_user(users.principal(uid, "reader")) as conn:
        row = await conn.fetchrow(
            "select current_user, auth.uid() as uid, auth.role() as role, "
            "chat_private.app_role() as app_role"
        )
    assert row["current_user"] == "authenticated"
    assert row["uid"] == uid
    assert row["role"] == "authenticated"
    assert row["app_role"] == "reader"


async def test_settings_do_not_leak_to_the_next_transaction(db: Database, users: Users) -> None:
    uid = await users.create()
    async with db.as_user(users.principal(uid)):
        pass
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "select current_user, current_setting('request.jwt.claims', true) as claims"
        )
    assert row["current_user"] != "authenticated"
    assert row["claims"] in ("", None)


async def test_participant_sees_session_outsider_does_not(db: Database, users: Users) -> None:
    client, reader, outsider = (
        await users.create("client"),
        await users.create("reader"),
        await users.create("client"),
    )
    session_id = await _session(db, users, client, reader)
    async with db.as_user(users.principal(reader, "reader")) as conn:
        assert (
            await conn.fetchval("select count(*) from chat_sessions where id = $1", session_id) == 1
        )
    async with db.as_user(users.principal(outsider)) as conn:
        assert (
            await conn.fetchval("select count(*) from chat_sessions where id = $1", session_id) == 0
        )
        assert (
            await conn.fetchval(
                "select count(*) from chat_messages where session_id = $1", session_id
            )
            == 0
        )


async def test_outsider_cannot_send_and_gets_not_found(db: Database, users: Users) -> None:
    client, reader, outsider = (
        await users.create("client"),
        await users.create("reader"),
        await users.create("client"),
    )
    session_id = await _session(db, users, client, reader)
    with pytest.raises(asyncpg.PostgresError) as info:
        async with db.as_user(users.principal(outsider)) as conn:
            await conn.fetchrow("select * from send_chat_message($1, 'hi')", session_id)
    err = from_postgres(info.value)
    assert (err.status, err.code) == (404, "not_found")


async def test_direct_insert_as_other_sender_is_refused(db: Database, users: Users) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await _session(db, users, client, reader)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
        async with db.as_user(users.principal(client)) as conn:
            await conn.execute(
                "insert into chat_messages (session_id, sender_id, content) values ($1, $2, 'x')",
                session_id,
                reader,
            )


async def test_send_and_read_through_functions(db: Database, users: Users) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await _session(db, users, client, reader)
    async with db.as_user(users.principal(client)) as conn:
        msg = await conn.fetchrow(
            "select * from send_chat_message($1, 'hello', metadata => $2::jsonb)",
            session_id,
            {"lang": "en"},
        )
    assert msg["sender_id"] == client
    assert msg["metadata"] == {"lang": "en"}
    async with db.as_user(users.principal(reader, "reader")) as conn:
        listed = await conn.fetchrow(
            "select * from list_my_chat_sessions() where id = $1", session_id
        )
        assert listed["unread_count"] == 1
        assert (
            await conn.fetchval("select mark_chat_messages_read($1, $2)", session_id, msg["id"])
            == 1
        )
        listed = await conn.fetchrow(
            "select * from list_my_chat_sessions() where id = $1", session_id
        )
        assert listed["unread_count"] == 0


async def test_audit_is_service_only_and_append_only(
    db: Database, users: Users, superuser: asyncpg.Connection
) -> None:
    uid = await users.create("admin")
    async with db.as_service() as conn:
        assert await conn.fetchval("select current_user") == "service_role"
        row_id = await conn.fetchval(
            "insert into chat_audit_logs (actor_id, actor_role, action) "
            "values ($1, 'service_role', 'test') returning id",
            uid,
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        async with db.as_service() as conn:
            await conn.execute("delete from chat_audit_logs where id = $1", row_id)
    # Even the table owner is stopped by the trigger.
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: DELETE"):
        await superuser.execute("delete from chat_audit_logs where id = $1", row_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only: UPDATE"):
        await superuser.execute("update chat_audit_logs set action = 'x' where id = $1", row_id)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        async with db.as_user(users.principal(uid, "admin")) as conn:
            await conn.fetch("select * from chat_audit_logs")
