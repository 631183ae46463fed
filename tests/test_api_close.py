"""REST: closing a session (participants; admins any, audited)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

from workers.db import Database

from .api_helpers import add_message, api_client, bearer, error_of, make_session
from .conftest import SECRET, Users


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[TestClient]:
    async with api_client(database_url) as client:
        yield client


async def _messages(api: TestClient, session_id: uuid.UUID, token: str) -> list[dict]:
    resp = await api.get(f"/api/chat/messages/{session_id}", headers=bearer(token))
    assert resp.status == 200
    return (await resp.json())["messages"]


async def test_participant_closes_a_session_and_later_sends_are_409(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client, reader)
    await add_message(superuser, session_id, client, "before closing")
    reader_token = users.token(reader, "reader")

    resp = await api.post(f"/api/chat/sessions/{session_id}/close", headers=bearer(reader_token))
    assert resp.status == 200
    session = (await resp.json())["session"]
    assert (session["id"], session["status"]) == (str(session_id), "closed")
    assert session["closed_at"] is not None
    assert session["last_message"]["type"] == "system"

    newest = (await _messages(api, session_id, users.token(client)))[0]
    assert (newest["type"], newest["content"]) == ("system", "Session closed")
    assert newest["metadata"] == {"event": "session_closed"}

    resp = await api.post(
        "/api/chat/messages",
        json={"session_id": str(session_id), "content": "too late"},
        headers=bearer(users.token(client)),
    )
    assert (await error_of(resp, 409))["code"] == "conflict"

    # Closing again is not an error and adds no second system message.
    resp = await api.post(
        f"/api/chat/sessions/{session_id}/close", headers=bearer(users.token(client))
    )
    assert resp.status == 200
    kinds = [m["type"] for m in await _messages(api, session_id, users.token(client))]
    assert kinds.count("system") == 1


async def test_outsider_cannot_close_and_learns_nothing(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client, outsider = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client)
    for target in (session_id, uuid.uuid4()):
        resp = await api.post(
            f"/api/chat/sessions/{target}/close", headers=bearer(users.token(outsider, "reader"))
        )
        assert (await error_of(resp, 404))["code"] == "not_found"
    status = await superuser.fetchval(
        "select status from public.chat_sessions where id = $1", session_id
    )
    assert status == "active"


@pytest.mark.parametrize("role", ["admin", "super_admin"])
async def test_admin_closes_a_session_they_are_not_in_and_it_is_audited(
    api: TestClient, users: Users, superuser: asyncpg.Connection, role: str
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    admin = await users.create(role)
    session_id = await make_session(superuser, client, reader)

    resp = await api.post(
        f"/api/chat/sessions/{session_id}/close", headers=bearer(users.token(admin, role))
    )
    assert resp.status == 200
    session = (await resp.json())["session"]
    assert (session["status"], session["unread_count"]) == ("closed", 0)

    audit = await superuser.fetch(
        "select actor_id, actor_role, action, details from public.chat_audit_logs "
        "where session_id = $1 and action = 'admin_close_session'",
        session_id,
    )
    assert [(a["actor_id"], a["actor_role"], a["action"]) for a in audit] == [
        (admin, role, "admin_close_session")
    ]
    assert json.loads(audit[0]["details"]) == {"previous_status": "active", "participant": False}
    newest = (await _messages(api, session_id, users.token(client)))[0]
    assert (newest["type"], newest["sender_name"]) == ("system", "System")
    assert session["last_message_at"] == newest["created_at"]


async def test_admin_role_from_user_metadata_grants_nothing(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client, pretender = await users.create("client"), await users.create("client")
    session_id = await make_session(superuser, client)
    # user_metadata is editable by users: a "role" there must grant nothing.
    claims = jwt.decode(
        users.token(pretender, "client"), SECRET, algorithms=["HS256"], audience="authenticated"
    )
    claims["user_metadata"] = {"role": "admin"}
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    resp = await api.post(f"/api/chat/sessions/{session_id}/close", headers=bearer(token))
    await error_of(resp, 404)


async def test_non_admin_calling_the_admin_function_directly_is_403(
    db: Database, users: Users, superuser: asyncpg.Connection
) -> None:
    """The SQL path supabase-js would use: RLS and the role check, not the Python code."""
    client = await users.create("client")
    session_id = await make_session(superuser, client)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="only admins"):
        async with db.as_user(users.principal(client, "client")) as conn:
            await conn.fetchrow("select * from public.admin_close_chat_session($1)", session_id)
