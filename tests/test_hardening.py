"""Hardening, against the real service: tokens, /health, undecodable packets, the session
list's cost, session creation."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import jwt
import pytest
from aiohttp.test_utils import TestClient

from workers.auth import TokenVerifier
from workers.config import Bucket, Settings
from workers.errors import AuthError, from_postgres

from .api_helpers import api_client, bearer, error_of
from .conftest import SECRET, Users
from .relay_helpers import running_relay

ISSUER = "https://project-ref.supabase.co/auth/v1"


def _claims(uid: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(uid),
        "aud": "authenticated",
        "role": "authenticated",
        "iss": ISSUER,
        "iat": now,
        "exp": now + 600,
        "app_metadata": {"role": "client"},
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[TestClient]:
    async with api_client(database_url) as client:
        yield client


# ---------------------------------------------------------------- tokens
async def test_token_without_role_claim_is_refused(api: TestClient, users: Users) -> None:
    uid = await users.create("client")
    token = jwt.encode(_claims(uid, role=None), SECRET, algorithm="HS256")
    err = await error_of(await api.get("/api/chat/sessions", headers=bearer(token)), 401)
    assert err["code"] == "invalid_token"
    assert "role" in err["message"]
    # The same user with the role claim is served.
    good = jwt.encode(_claims(uid), SECRET, algorithm="HS256")
    assert (await api.get("/api/chat/sessions", headers=bearer(good))).status == 200


async def test_issuer_is_checked_when_one_is_configured() -> None:
    uid = uuid.uuid4()
    verifier = TokenVerifier(jwt_secret=SECRET, jwks_url=None, issuer=ISSUER)
    assert (await verifier.verify(jwt.encode(_claims(uid), SECRET))).user_id == uid
    for bad in ("https://other.supabase.co/auth/v1", None):
        with pytest.raises(AuthError) as caught:
            await verifier.verify(jwt.encode(_claims(uid, iss=bad), SECRET))
        assert caught.value.status == 401


def test_issuer_defaults_to_supabase_url_and_can_be_overridden() -> None:
    env = {"JWT_SECRET": SECRET, "SUPABASE_URL": "https://project-ref.supabase.co/"}
    assert Settings.from_env(env).token_issuer == ISSUER
    assert Settings.from_env({**env, "JWT_ISSUER": "https://auth.example.com"}).token_issuer == (
        "https://auth.example.com"
    )
    assert Settings.from_env({"JWT_SECRET": SECRET}).token_issuer is None


async def test_service_refuses_a_token_from_another_issuer(database_url: str, users: Users) -> None:
    uid = await users.create("client")
    async with api_client(database_url, jwt_issuer=ISSUER) as client:
        other = jwt.encode(_claims(uid, iss="https://evil.example/auth/v1"), SECRET)
        err = await error_of(await client.get("/api/chat/sessions", headers=bearer(other)), 401)
        assert "issuer" in err["message"]
        ours = jwt.encode(_claims(uid), SECRET)
        assert (await client.get("/api/chat/sessions", headers=bearer(ours))).status == 200


# ---------------------------------------------------------------- /health
async def test_health_shows_no_version_to_anyone(
    api: TestClient, superuser: asyncpg.Connection
) -> None:
    version = await superuser.fetchval("select current_setting('server_version')")
    full = await superuser.fetchval("select version()")
    resp = await api.get("/health")
    assert resp.status == 200
    text = await resp.text()
    assert version not in text and full not in text
    assert "version" not in text


# ---------------------------------------------------------------- packets
async def _engineio_socket(
    session: aiohttp.ClientSession, url: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{url}/socket.io/?EIO=4&transport=websocket")
    opened = await ws.receive(timeout=5)
    assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0")
    return ws


@pytest.mark.parametrize(
    "packet",
    [
        "42" + "[" * 50_000 + "]" * 50_000,  # RecursionError in json
        '42["send_message"',  # truncated JSON
        "49hello",  # unknown Socket.IO packet type
        "9hello",  # unknown Engine.IO packet type
        "",  # empty Engine.IO packet
        "x",  # Engine.IO packet type that is not a number
        "4" + "[" * 50_000 + "]" * 50_000,  # RecursionError in Engine.IO's json
        '451-["x",{"_placeholder":true,"num":7}]',  # binary event before CONNECT
    ],
    ids=[
        "deeply-nested",
        "truncated",
        "unknown-type",
        "binary-unconnected",
        "unknown-engineio-type",
        "empty-engineio",
        "not-a-number-engineio",
        "deeply-nested-engineio",
    ],
)
async def test_undecodable_packet_closes_its_connection_with_one_log_line(
    database_url: str, caplog: pytest.LogCaptureFixture, packet: str
) -> None:
    async with running_relay(database_url) as (url, relay):
        caplog.clear()
        caplog.set_level(logging.DEBUG)
        async with aiohttp.ClientSession() as session:
            ws = await _engineio_socket(session, url)
            bystander = await _engineio_socket(session, url)
            await ws.send_str(packet)
            async with asyncio.timeout(5):
                while True:
                    msg = await ws.receive()
                    if msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING,
                    ):
                        break
                    # Engine.IO may say goodbye with a close packet ("1") first.
                    if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "1":
                        break
            # Another connection is unaffected: its CONNECT (without a token) is answered.
            await bystander.send_str("40")
            reply = await bystander.receive(timeout=5)
            assert reply.type == aiohttp.WSMsgType.TEXT and reply.data.startswith("44")
            await bystander.close()
            await ws.close()
        assert relay.sio.undecodable_packets == 1
        lines = [r for r in caplog.records if "undecodable" in r.getMessage()]
        assert len(lines) == 1
        assert all(r.exc_info is None for r in caplog.records), "no traceback is logged"
        assert all(len(r.getMessage()) < 300 for r in caplog.records)


# ---------------------------------------------------------------- session list
async def _list_buffers(
    superuser: asyncpg.Connection, uid: uuid.UUID, limit: int = 1
) -> tuple[int, list[str]]:
    """Shared buffers one call of the session list touches (the second of two calls, so
    plan caching is not counted), and the ids it returned."""
    claims = json.dumps({"sub": str(uid), "role": "authenticated", "aud": "authenticated"})
    async with superuser.transaction():
        await superuser.execute(
            "select set_config('role', 'authenticated', true), "
            "set_config('request.jwt.claims', $1, true)",
            claims,
        )
        for _ in range(2):
            plan = await superuser.fetchval(
                "explain (analyze, buffers, format json) "
                f"select * from public.list_my_chat_sessions({limit}, 0)"
            )
        ids = [
            str(r["id"])
            for r in await superuser.fetch(
                f"select id from public.list_my_chat_sessions({limit}, 0)"
            )
        ]
        await superuser.execute("reset role")
    top = (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]
    return top["Shared Hit Blocks"] + top["Shared Read Blocks"], ids


async def _add_sessions(superuser: asyncpg.Connection, uid: uuid.UUID, other: uuid.UUID, n: int):
    await superuser.execute(
        "with s as ("
        "  insert into public.chat_sessions (participants, type, created_by) "
        "  select array[$1, $2]::uuid[], 'support', $1 from generate_series(1, $3) "
        "  returning id) "
        "insert into public.chat_messages (session_id, sender_id, content) "
        "select s.id, $2, 'hello ' || g from s, generate_series(1, 2) as g",
        uid,
        other,
        n,
    )
    await superuser.execute("analyze public.chat_sessions, public.chat_messages")


async def test_session_list_cost_does_not_grow_with_every_session(
    users: Users, superuser: asyncpg.Connection
) -> None:
    """GET /api/chat/sessions?limit=1 used to compute all 3,000 sessions' activity.
    Now a page costs its own sessions' activity, plus reading the user's session rows to
    order them (far less than one buffer per session): the marginal cost of 2,700 more
    sessions stays under a third of a buffer each (before: hundreds each)."""
    uid, other = await users.create("client"), await users.create("reader")
    await _add_sessions(superuser, uid, other, 300)
    small, _ = await _list_buffers(superuser, uid)
    await _add_sessions(superuser, uid, other, 2_700)
    large, ids = await _list_buffers(superuser, uid)
    assert len(ids) == 1
    assert large - small < 2_700 / 3, (small, large)
    # The page's activity is still right: two unread messages from the other participant.
    claims = json.dumps({"sub": str(uid), "role": "authenticated", "aud": "authenticated"})
    async with superuser.transaction():
        await superuser.execute(
            "select set_config('role', 'authenticated', true), "
            "set_config('request.jwt.claims', $1, true)",
            claims,
        )
        page = await superuser.fetchrow("select * from public.list_my_chat_sessions(1, 0)")
        await superuser.execute("reset role")
    last = page["last_message"]
    last = json.loads(last) if isinstance(last, str) else last
    assert page["unread_count"] == 2
    assert last["content"].startswith("hello ")


async def test_session_list_pages_and_says_when_more_follow(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    uid, other = await users.create("client"), await users.create("reader")
    await _add_sessions(superuser, uid, other, 5)
    token = users.token(uid)
    seen: list[str] = []
    for offset in range(0, 6, 2):
        resp = await api.get(f"/api/chat/sessions?limit=2&offset={offset}", headers=bearer(token))
        body = await resp.json()
        seen += [s["id"] for s in body["sessions"]]
        assert body["has_more"] is (offset + 2 < 5)
    assert len(seen) == len(set(seen)) == 5


async def test_session_creation_is_limited_per_user(database_url: str, users: Users) -> None:
    uid, other = await users.create("client"), await users.create("reader")
    async with api_client(database_url, session_create_bucket=Bucket(rate=0.001, burst=3)) as api:
        statuses = []
        for _ in range(5):
            resp = await api.post(
                "/api/chat/sessions",
                headers=bearer(users.token(uid)),
                json={"participants": [str(uid), str(other)], "type": "support"},
            )
            statuses.append(resp.status)
            if resp.status == 429:
                err = await error_of(resp, 429)
                assert err["code"] == "rate_limited"
        assert statuses == [201, 201, 201, 429, 429]
        # Another user has their own budget.
        resp = await api.post(
            "/api/chat/sessions",
            headers=bearer(users.token(other)),
            json={"participants": [str(other)], "type": "support"},
        )
        assert resp.status == 201


async def test_database_limits_session_creation_on_every_path(
    db: Any, users: Users, superuser: asyncpg.Connection
) -> None:
    """Direct inserts (supabase-js) bypass the service's bucket; the database's hourly
    limit (chat.session_create_limit) still holds, and maps to 429."""
    uid = await users.create("client")
    principal = Users.principal(uid)
    async with db.as_user(principal) as conn:
        await conn.execute("select set_config('chat.session_create_limit', '2', true)")
        for _ in range(2):
            await conn.execute(
                "insert into public.chat_sessions (participants, type) "
                "values (array[$1]::uuid[], 'support')",
                uid,
            )
        with pytest.raises(asyncpg.PostgresError) as caught:
            await conn.execute(
                "insert into public.chat_sessions (participants, type) "
                "values (array[$1]::uuid[], 'support')",
                uid,
            )
    mapped = from_postgres(caught.value)
    assert (mapped.status, mapped.code) == (429, "rate_limited")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SESSION_CREATE_RATE", "fast"),
        ("SESSION_CREATE_BURST", "0"),
        ("UPLOAD_QUOTA_BYTES", "-1"),
        ("STORAGE_MIN_FREE_BYTES", "lots"),
        ("ORPHAN_SWEEP_SECONDS", "-5"),
        ("ORPHAN_GRACE_SECONDS", "1"),
    ],
)
def test_hardening_settings_name_the_bad_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({"JWT_SECRET": SECRET, variable: value})
