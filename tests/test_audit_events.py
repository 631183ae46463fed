"""Service events: what only the service sees is audited and monitored by the batched
writers (connections, refusals with their reason, rate limits), and the writers flush on
shutdown."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import jwt
import pytest

from workers.config import Bucket

from .api_helpers import api_client, bearer, make_session
from .audit_helpers import FAST, audit_where, eventually, monitoring_where
from .conftest import SECRET, Users
from .relay_helpers import Recorder, running_relay


async def _last_audit_id(superuser: asyncpg.Connection) -> int:
    return await superuser.fetchval("select coalesce(max(id), 0) from public.chat_audit_logs")


async def test_a_socket_lifetime_is_audited_and_monitored(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client, reader)
    async with running_relay(database_url, **FAST) as (url, _):
        socket = Recorder()
        await socket.connect(url, users.token(client))
        assert (await socket.call("join_session", {"session_id": str(session_id)}))["ok"]
        sent = await socket.call("send_message", {"session_id": str(session_id), "content": "x"})
        assert (await socket.call("leave_session", {"session_id": str(session_id)}))["ok"]
        await socket.close()
        events = await eventually(lambda: _events_when(superuser, client, "disconnect"), within=5)
    assert [(e["event_type"], e["session_id"]) for e in events] == [
        ("connect", None),
        ("join", session_id),
        ("message", session_id),
        ("leave", session_id),
        ("disconnect", None),
    ]
    assert events[2]["details"]["message_id"] == sent["message"]["id"]
    audit = await audit_where(superuser, "actor_id = $1 and action like 'socket.%'", client)
    assert [(a["action"], a["actor_role"]) for a in audit] == [
        ("socket.connected", "client"),
        ("socket.disconnected", "client"),
    ]
    assert audit[1]["details"]["sessions"] == []  # it had left before disconnecting


async def _events_when(superuser: asyncpg.Connection, user: uuid.UUID, last: str) -> list | None:
    events = await monitoring_where(superuser, "user_id = $1", user)
    return events if events and events[-1]["event_type"] == last else None


async def test_refused_connections_are_audited_with_the_reason(
    database_url: str, superuser: asyncpg.Connection
) -> None:
    before = await _last_audit_id(superuser)
    stale_user = uuid.uuid4()
    expired = jwt.encode(
        {"sub": str(stale_user), "aud": "authenticated", "exp": int(time.time()) - 60}, SECRET
    )
    async with running_relay(database_url, **FAST) as (url, _):
        for token in (None, "garbage", expired):
            socket = Recorder()
            with pytest.raises(Exception, match="failed to connect"):
                await socket.connect(url, token)
        refused = await eventually(lambda: _refused_after(superuser, before, 3), within=5)
    codes = [(r["details"]["code"], r["actor_role"], r["actor_id"]) for r in refused]
    assert codes == [
        ("missing_token", "anon", None),
        ("invalid_token", "anon", None),
        ("token_expired", "anon", None),
    ]
    assert refused[2]["details"]["claimed_user_id"] == str(stale_user)
    assert refused[2]["details"]["reason"]


async def _refused_after(superuser: asyncpg.Connection, before: int, count: int) -> list | None:
    rows = await audit_where(superuser, "id > $1 and action = 'socket.refused'", before)
    return rows if len(rows) >= count else None


async def test_refused_joins_sends_and_rate_limits_are_audited(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client, outsider = await users.create("client"), await users.create("client")
    session_id = await make_session(superuser, client)
    elsewhere = await make_session(superuser, outsider)
    settings = {**FAST, "message_bucket": Bucket(rate=0.01, burst=1)}
    async with running_relay(database_url, **settings) as (url, _):
        socket = Recorder()
        await socket.connect(url, users.token(client))
        join = await socket.call("join_session", {"session_id": str(elsewhere)})
        assert join["error"]["code"] == "not_found"
        bad = await socket.call("send_message", {"session_id": "not-a-uuid", "content": "x"})
        assert bad["error"]["code"] == "invalid_payload"
        first = await socket.call("send_message", {"session_id": str(session_id), "content": "1"})
        assert first["ok"]
        limited = await socket.call("send_message", {"session_id": str(session_id), "content": "2"})
        assert limited["error"]["code"] == "rate_limited"
        audit = await eventually(
            lambda: _audit_count(
                superuser, client, "action like any (array['%.refused', 'rate_limited'])", 3
            )
        )
    assert [(a["action"], a["session_id"], a["details"]["code"]) for a in audit] == [
        ("join.refused", elsewhere, "not_found"),
        ("send.refused", None, "invalid_payload"),
        ("rate_limited", session_id, "rate_limited"),
    ]
    assert all(a["actor_role"] == "client" and a["details"]["reason"] for a in audit)
    errors = await eventually(
        lambda: _monitored_count(superuser, client, "event_type = 'error'", 3)
    )
    assert [(e["details"]["event"], e["details"]["code"]) for e in errors] == [
        ("join_session", "not_found"),
        ("send_message", "invalid_payload"),
        ("send_message", "rate_limited"),
    ]


async def _audit_count(
    superuser: asyncpg.Connection, user: uuid.UUID, condition: str, count: int
) -> list | None:
    rows = await audit_where(superuser, f"actor_id = $1 and {condition}", user)
    return rows if len(rows) >= count else None


async def _monitored_count(
    superuser: asyncpg.Connection, user: uuid.UUID, condition: str, count: int
) -> list | None:
    rows = await monitoring_where(superuser, f"user_id = $1 and {condition}", user)
    return rows if len(rows) >= count else None


async def test_rest_messages_and_refused_uploads_are_recorded(
    database_url: str, users: Users, superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    client, outsider = await users.create("client"), await users.create("client")
    session_id = await make_session(superuser, client)
    async with api_client(database_url, data_dir=tmp_path, **FAST) as api:
        resp = await api.post(
            "/api/chat/messages",
            json={"session_id": str(session_id), "content": "over REST"},
            headers=bearer(users.token(client)),
        )
        assert resp.status == 201
        has_upload = "uploadFile" in api.app.router.named_resources()
        if has_upload:
            form = aiohttp.FormData()
            form.add_field("session_id", str(session_id))
            form.add_field("file", b"hi\n", filename="a.txt", content_type="text/plain")
            refused = await api.post(
                "/api/chat/upload", data=form, headers=bearer(users.token(outsider))
            )
            assert refused.status == 404
            form = aiohttp.FormData()
            form.add_field("session_id", str(session_id))
            form.add_field("file", b"hello\n", filename="b.txt", content_type="text/plain")
            stored = await api.post(
                "/api/chat/upload", data=form, headers=bearer(users.token(client))
            )
            assert stored.status == 201
            uploads = await eventually(
                lambda: monitoring_where(
                    superuser, "user_id = $1 and event_type = 'upload'", client
                )
            )
            assert uploads[0]["session_id"] == session_id
            assert uploads[0]["details"]["size_bytes"] == 6
            assert uploads[0]["details"]["mime_type"].startswith("text/plain")
        messages = await eventually(
            lambda: monitoring_where(superuser, "user_id = $1 and event_type = 'message'", client)
        )
        assert (messages[0]["session_id"], messages[0]["details"]["via"]) == (session_id, "rest")
        if not has_upload:
            pytest.skip("no upload endpoint in this build")
        audit = await eventually(lambda: audit_where(superuser, "actor_id = $1", outsider))
    assert [(a["action"], a["actor_role"], a["details"]["code"]) for a in audit] == [
        ("upload.refused", "client", "not_found")
    ]
    assert audit[0]["details"]["status"] == 404 and audit[0]["details"]["message"]


async def test_writers_flush_what_is_left_on_shutdown(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client = await users.create("client")
    # A long interval and a big batch: nothing is written before shutdown.
    settings = {"event_flush_seconds": 60, "event_batch_size": 1000}
    async with running_relay(database_url, **settings) as (url, relay):
        socket = Recorder()
        await socket.connect(url, users.token(client))
        assert not await audit_where(superuser, "actor_id = $1", client)
        assert relay.hooks is not None
    audit = await audit_where(superuser, "actor_id = $1", client)
    assert [a["action"] for a in audit] == ["socket.connected", "socket.disconnected"]
