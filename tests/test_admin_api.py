"""Admin endpoints: the audit log and monitoring, for app_metadata admins only (403 in the
error shape for clients, readers and a user_metadata "admin"), every read audited."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest

from .api_helpers import bearer, error_of, make_session
from .audit_helpers import FAST, audit_where, eventually
from .conftest import SECRET, Users
from .relay_helpers import Recorder, running_relay

ADMIN_PATHS = [
    "/api/chat/audit",
    "/api/chat/audit/verify",
    "/api/chat/monitoring",
    "/api/chat/monitoring/{session}",
]


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
    """The whole app (relay included) on a port, and an HTTP client for it."""
    async with running_relay(database_url, **FAST) as (url, _), aiohttp.ClientSession() as http:
        yield url, http


@pytest.fixture
async def consultation(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    """A session with a question, an answer 90 s later, and a 2048-byte voice message."""
    client = await users.create("client", "Cora Client")
    reader = await users.create("reader", "Rhea Reader")
    session_id = await make_session(superuser, client, reader, type_="booking")
    now = dt.datetime.now(dt.UTC)
    path = f"{session_id}/{client}/voice.ogg"
    await superuser.execute(
        "insert into storage.objects (bucket_id, name, owner_id) values ('chat-files', $1, $2)",
        path,
        str(client),
    )
    for sender, type_, content, metadata, ago in (
        (client, "text", "A question", {}, 300),
        (reader, "text", "An answer", {}, 210),
        (client, "audio", None, {"storage_path": path, "size_bytes": 2048}, 100),
    ):
        await superuser.execute(
            "insert into public.chat_messages (session_id, sender_id, type, content, metadata, "
            "created_at) values ($1, $2, $3, $4, $5::jsonb, $6)",
            session_id,
            sender,
            type_,
            content,
            json.dumps(metadata),
            now - dt.timedelta(seconds=ago),
        )
    return {"session": session_id, "client": client, "reader": reader}


def forged_admin(users: Users, uid: uuid.UUID) -> str:
    """A valid token whose user_metadata (editable by the user) says admin."""
    claims = jwt.decode(
        users.token(uid, "client"), SECRET, algorithms=["HS256"], audience="authenticated"
    )
    claims["user_metadata"] = {"role": "admin"}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_admin_endpoints_refuse_clients_readers_and_user_metadata_admins(
    live: tuple[str, aiohttp.ClientSession],
    users: Users,
    superuser: asyncpg.Connection,
    consultation: dict[str, Any],
) -> None:
    url, http = live
    forger = await users.create("client")
    tokens = {
        "client": users.token(consultation["client"], "client"),
        "reader": users.token(consultation["reader"], "reader"),
        "forged": forged_admin(users, forger),
    }
    for path in ADMIN_PATHS:
        target = url + path.format(session=consultation["session"])
        async with http.get(target) as resp:
            await error_of(resp, 401)
        for who, token in tokens.items():
            async with http.get(target, headers=bearer(token)) as resp:
                error = await error_of(resp, 403)
                assert error["code"] == "forbidden", who
                assert "only admins" in error["message"]
    refused = await eventually(
        lambda: audit_where(superuser, "actor_id = $1 and action = 'admin.refused'", forger)
    )
    assert refused[0]["actor_role"] == "client"
    assert refused[0]["details"]["path"] == "/api/chat/audit"


@pytest.mark.parametrize("role", ["admin", "super_admin"])
async def test_audit_log_filters_pages_and_counts(
    live: tuple[str, aiohttp.ClientSession],
    users: Users,
    superuser: asyncpg.Connection,
    consultation: dict[str, Any],
    role: str,
) -> None:
    url, http = live
    admin = await users.create(role)
    h = bearer(users.token(admin, role))
    session = consultation["session"]

    # The background linker chains committed rows within a fraction of a second.
    await eventually(
        lambda: superuser.fetchval(
            "select count(*) = 5 and bool_and(l.hash is not null) from public.chat_audit_logs a "
            "left join chat_private.audit_links l on l.audit_id = a.id where a.session_id = $1",
            session,
        ),
        within=15,
    )
    async with http.get(f"{url}/api/chat/audit?session_id={session}", headers=h) as resp:
        assert resp.status == 200, await resp.text()
        page = await resp.json()
    assert page["total"] == 5  # the session, its file and its three messages
    assert [log["action"] for log in page["logs"]] == ["message.created"] * 3 + [
        "file.created",
        "session.created",
    ]
    assert all(len(log["hash"]) == 64 for log in page["logs"])

    query = f"session_id={session}&action=message.created&limit=1&offset=1"
    async with http.get(f"{url}/api/chat/audit?{query}", headers=h) as resp:
        page = await resp.json()
    assert (page["total"], len(page["logs"])) == (3, 1)
    assert page["logs"][0]["details"]["sender_id"] == str(consultation["reader"])

    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    async with http.get(
        f"{url}/api/chat/audit", params={"session_id": str(session), "since": future}, headers=h
    ) as resp:
        assert (await resp.json())["total"] == 0
    async with http.get(
        f"{url}/api/chat/audit", params={"user_id": str(admin), "until": future}, headers=h
    ) as resp:
        mine = await resp.json()
    assert [log["action"] for log in mine["logs"]] == ["admin.audit.read"] * 3
    assert mine["logs"][0]["actor_role"] == role

    rows_before = await superuser.fetchval("select count(*) from public.chat_audit_logs")
    async with http.get(f"{url}/api/chat/audit/verify", headers=h) as resp:
        verified = await resp.json()
    assert (verified["valid"], verified["first_broken_id"]) == (True, None)
    # The admin reads just audited may still wait for the background linker.
    assert verified["checked"] >= 5 and verified["unlinked"] >= 0
    assert verified["checked"] + verified["unlinked"] >= rows_before


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=501",
        "limit=ten",
        "offset=-1",
        "session_id=nope",
        "user_id=1",
        "since=yesterday",
        "until=2026-01-01T00:00:00",  # no time zone
        "action=" + "x" * 101,
    ],
)
async def test_bad_audit_parameters_are_400(
    live: tuple[str, aiohttp.ClientSession], users: Users, query: str
) -> None:
    url, http = live
    admin = await users.create("admin")
    async with http.get(
        f"{url}/api/chat/audit?{query}", headers=bearer(users.token(admin, "admin"))
    ) as resp:
        assert (await error_of(resp, 400))["code"] == "invalid_parameter"


async def test_session_monitoring_shows_people_messages_and_presence(
    live: tuple[str, aiohttp.ClientSession],
    users: Users,
    superuser: asyncpg.Connection,
    consultation: dict[str, Any],
) -> None:
    url, http = live
    admin = await users.create("admin")
    h = bearer(users.token(admin, "admin"))
    session = consultation["session"]
    reader_socket = Recorder()
    await reader_socket.connect(url, users.token(consultation["reader"], "reader"))
    assert (await reader_socket.call("join_session", {"session_id": str(session)}))["ok"]

    async with http.get(f"{url}/api/chat/monitoring/{session}", headers=h) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body["session"]["id"] == str(session)
    assert body["online_now"] == [str(consultation["reader"])]
    people = {p["name"]: p for p in body["participants"]}
    assert {
        name: (p["online"], p["messages_sent"], p["unread_count"]) for name, p in people.items()
    } == {
        "Cora Client": (False, 2, 1),
        "Rhea Reader": (True, 1, 2),
    }
    assert people["Rhea Reader"]["app_role"] == "reader"
    assert body["message_counts"] == {"text": 2, "audio": 1, "total": 3}
    assert body["response_time"] == {"responses": 2, "median_seconds": 100.0}  # 90 s, 110 s
    assert body["uploads"] == {"count": 1, "bytes": 2048}
    assert body["first_message"]["type"] == "text" and body["last_message"]["type"] == "audio"
    assert 0 <= body["duration_seconds"] < 60  # open: from creation until now

    read = await audit_where(superuser, "actor_id = $1", admin)
    assert [(a["action"], a["session_id"]) for a in read] == [
        ("admin.monitoring.session.read", session)
    ]
    for missing in (uuid.uuid4(), "not-a-uuid"):
        async with http.get(f"{url}/api/chat/monitoring/{missing}", headers=h) as resp:
            await error_of(resp, 404)


async def test_system_monitoring_has_the_seed_metrics_and_queries(
    live: tuple[str, aiohttp.ClientSession],
    users: Users,
    superuser: asyncpg.Connection,
    consultation: dict[str, Any],
) -> None:
    url, http = live
    admin = await users.create("super_admin")
    socket = Recorder()
    await socket.connect(url, users.token(consultation["client"]))
    await eventually(
        lambda: superuser.fetchval(
            "select count(*) from public.chat_monitoring where user_id = $1",
            consultation["client"],
        )
    )
    async with http.get(
        f"{url}/api/chat/monitoring", headers=bearer(users.token(admin, "super_admin"))
    ) as resp:
        assert resp.status == 200, await resp.text()
        body = await resp.json()
    assert body["active_connections"] == 1
    assert body["message_throughput"]["last_hour"] >= 3
    assert body["uploads"]["last_24_hours"]["count"] >= 1
    assert {"closed", "active", "closed_median_seconds"} <= set(body["session_durations"])
    assert {"events", "errors", "rate", "by_code"} <= set(body["error_rate"])
    connects = [e for e in body["events_last_hour"] if e["event_type"] == "connect"]
    assert connects and connects[0]["unique_users"] >= 1
    today = [d for d in body["sessions_per_day"] if d["type"] == "booking"]
    assert today and today[0]["sessions_created"] >= 1
    assert set(body["event_writers"]) == {"audit", "monitoring"}
    read = await audit_where(superuser, "actor_id = $1", admin)
    assert [a["action"] for a in read] == ["admin.monitoring.read"]


async def test_client_written_metadata_cannot_break_the_figures(
    live: tuple[str, aiohttp.ClientSession], users: Users, superuser: asyncpg.Connection
) -> None:
    """metadata is written by clients (supabase-js): odd size_bytes count as unknown."""
    url, http = live
    client = await users.create("client")
    session_id = await make_session(superuser, client)
    for size in ("lots", 1.5, 1e30, -3, 700):
        await superuser.execute(
            "insert into public.chat_messages (session_id, sender_id, type, metadata) "
            "values ($1, $2, 'file', jsonb_build_object('size_bytes', $3::jsonb))",
            session_id,
            client,
            json.dumps(size),
        )
    admin = await users.create("admin")
    h = bearer(users.token(admin, "admin"))
    async with http.get(f"{url}/api/chat/monitoring/{session_id}", headers=h) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["uploads"] == {"count": 5, "bytes": 700}
    async with http.get(f"{url}/api/chat/monitoring", headers=h) as resp:
        assert resp.status == 200, await resp.text()
