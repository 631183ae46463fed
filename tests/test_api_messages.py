"""REST: /api/chat/messages over HTTP against real PostgreSQL, as the users themselves."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.app import create_app
from workers.config import Bucket

from .api_helpers import add_message, api_client, bearer, error_of, make_session
from .conftest import Users, settings_for

MESSAGE_KEYS = {
    "id",
    "session_id",
    "sender_id",
    "sender_name",
    "type",
    "content",
    "reply_to_message_id",
    "metadata",
    "client_message_id",
    "created_at",
    "seq",
    "deleted",
    "deleted_reason",
    "edited_at",
}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[TestClient]:
    async with api_client(database_url) as client:
        yield client


@pytest.fixture
async def pair(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    client = await users.create("client", "Cora Client")
    reader = await users.create("reader", "Rhea Reader")
    return {
        "session": await make_session(superuser, client, reader),
        "client": client,
        "reader": reader,
        "client_h": bearer(users.token(client, "client")),
        "reader_h": bearer(users.token(reader, "reader")),
    }


async def _page(api: TestClient, session_id: uuid.UUID, headers: dict, query: str = "") -> dict:
    resp = await api.get(f"/api/chat/messages/{session_id}?{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _message_elsewhere(superuser: asyncpg.Connection, uid: uuid.UUID) -> uuid.UUID:
    """A message of another session of the same user."""
    return await add_message(superuser, await make_session(superuser, uid), uid)


async def test_every_messages_endpoint_refuses_a_missing_or_bad_token(
    api: TestClient, pair: dict[str, Any]
) -> None:
    sid = pair["session"]
    calls = [
        ("GET", f"/api/chat/messages/{sid}", None),
        ("POST", "/api/chat/messages", {"session_id": str(sid), "content": "hi"}),
        ("PUT", f"/api/chat/messages/{sid}/read", {}),
    ]
    for method, path, body in calls:
        for headers in ({}, bearer("x.y.z"), {"Authorization": "Basic dXNlcjpwYXNz"}):
            resp = await api.request(method, path, json=body, headers=headers)
            await error_of(resp, 401)
            assert "WWW-Authenticate" in resp.headers


async def test_send_returns_201_with_the_new_message_shape(
    api: TestClient, pair: dict[str, Any]
) -> None:
    body = {
        "session_id": str(pair["session"]),
        "type": "text",
        "content": "Hello there",
        "metadata": {"mood": "curious"},
        "client_message_id": "c-1",
    }
    resp = await api.post("/api/chat/messages", json=body, headers=pair["client_h"])
    assert resp.status == 201
    message = (await resp.json())["message"]
    assert set(message) == MESSAGE_KEYS
    assert message["sender_id"] == str(pair["client"])
    assert message["sender_name"] == "Cora Client"
    assert (message["content"], message["metadata"]) == ("Hello there", {"mood": "curious"})
    # A retry with the same client_message_id returns the first message.
    again = await api.post("/api/chat/messages", json=body, headers=pair["client_h"])
    assert (await again.json())["message"]["id"] == message["id"]
    # A reply in the same session.
    reply = await api.post(
        "/api/chat/messages",
        json={
            "session_id": str(pair["session"]),
            "content": "Yes?",
            "reply_to_message_id": message["id"],
        },
        headers=pair["reader_h"],
    )
    assert (await reply.json())["message"]["reply_to_message_id"] == message["id"]


async def test_send_refusals(
    api: TestClient, pair: dict[str, Any], users: Users, superuser: asyncpg.Connection
) -> None:
    sid = str(pair["session"])
    outsider = bearer(users.token(await users.create("client")))
    for headers, target in ((outsider, sid), (pair["client_h"], str(uuid.uuid4()))):
        resp = await api.post(
            "/api/chat/messages", json={"session_id": target, "content": "hi"}, headers=headers
        )
        assert (await error_of(resp, 404))["code"] == "not_found"
    elsewhere = await _message_elsewhere(superuser, pair["client"])
    refused = [
        {"session_id": sid, "content": "   "},  # text needs content
        {"session_id": sid, "type": "system", "content": "I am the system"},
        {"session_id": sid, "type": "audio", "metadata": {}},  # needs an uploaded file
        {"session_id": sid, "content": "x" * 10_001},
        {"session_id": sid, "content": "nul \u0000 byte"},
        {"session_id": sid, "content": "hi", "reply_to_message_id": str(elsewhere)},
        {"session_id": sid, "content": "hi", "metadata": []},
        {"session_id": sid, "content": 5},
        {"session_id": "not-a-uuid", "content": "hi"},
        {"content": "hi"},
    ]
    for body in refused:
        resp = await api.post("/api/chat/messages", json=body, headers=pair["client_h"])
        assert (await error_of(resp, 422))["code"] == "invalid_value", body


async def test_page_is_newest_first_with_limit_offset_and_has_more(
    api: TestClient, pair: dict[str, Any], superuser: asyncpg.Connection
) -> None:
    sid = pair["session"]
    ids = [await add_message(superuser, sid, pair["reader"], f"m{i}") for i in range(5)]
    h = pair["client_h"]
    everything = await _page(api, sid, h)
    assert [m["id"] for m in everything["messages"]] == [str(i) for i in reversed(ids)]
    assert everything["has_more"] is False
    assert set(everything["messages"][0]) == MESSAGE_KEYS
    assert everything["messages"][0]["sender_name"] == "Rhea Reader"

    first = await _page(api, sid, h, "limit=2")
    second = await _page(api, sid, h, "limit=2&offset=2")
    last = await _page(api, sid, h, "limit=2&offset=4")
    assert [m["content"] for m in first["messages"]] == ["m4", "m3"]
    assert [m["content"] for m in second["messages"]] == ["m2", "m1"]
    assert [m["content"] for m in last["messages"]] == ["m0"]
    assert (first["has_more"], second["has_more"], last["has_more"]) == (True, True, False)


async def test_before_and_before_id(
    api: TestClient, pair: dict[str, Any], superuser: asyncpg.Connection
) -> None:
    sid, h = pair["session"], pair["client_h"]
    base = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for i in range(4):
        await add_message(
            superuser, sid, pair["reader"], f"m{i}", created_at=base + dt.timedelta(minutes=i)
        )
    page = await _page(api, sid, h, "before=2030-01-01T00:02:00Z")
    assert [m["content"] for m in page["messages"]] == ["m1", "m0"]
    page = await _page(api, sid, h, "before=2030-01-01T01:02:00%2B01:00")  # same instant
    assert [m["content"] for m in page["messages"]] == ["m1", "m0"]
    everything = (await _page(api, sid, h))["messages"]
    page = await _page(api, sid, h, f"before_id={everything[1]['id']}")
    assert [m["content"] for m in page["messages"]] == ["m1", "m0"]


async def test_keyset_pages_keep_a_stable_order_for_equal_timestamps(
    api: TestClient, pair: dict[str, Any], superuser: asyncpg.Connection
) -> None:
    sid, h = pair["session"], pair["client_h"]
    same = dt.datetime(2031, 6, 1, 12, 0, tzinfo=dt.UTC)
    ids = [
        await add_message(superuser, sid, pair["reader"], f"t{i}", created_at=same)
        for i in range(7)
    ]
    seen: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = await _page(api, sid, h, f"limit=3{cursor}")
        seen += page["messages"]
        if not page["has_more"]:
            break
        cursor = f"&before_id={page['messages'][-1]['id']}"
    assert [m["id"] for m in seen] == [str(i) for i in reversed(ids)]  # seq desc, no repeats
    assert len({m["created_at"] for m in seen}) == 1
    by_offset = [
        m["id"]
        for off in (0, 3, 6)
        for m in (await _page(api, sid, h, f"limit=3&offset={off}"))["messages"]
    ]
    assert by_offset == [m["id"] for m in seen]


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=201",
        "limit=1.5",
        "offset=-1",
        "offset=x",
        "before=yesterday",
        "before=2030-01-01T00:00:00",  # no time zone
        "before=2030-01-01",
        "before=9999-12-31T23:00:00-05:00",  # out of range in UTC
        "before_id=nope",
    ],
)
async def test_page_refuses_bad_parameters(
    api: TestClient, pair: dict[str, Any], query: str
) -> None:
    resp = await api.get(f"/api/chat/messages/{pair['session']}?{query}", headers=pair["client_h"])
    assert (await error_of(resp, 400))["code"] == "invalid_parameter"


async def test_page_refusals(
    api: TestClient, pair: dict[str, Any], users: Users, superuser: asyncpg.Connection
) -> None:
    outsider = bearer(users.token(await users.create("reader"), "reader"))
    for headers, target in (
        (outsider, str(pair["session"])),
        (pair["client_h"], str(uuid.uuid4())),
        (pair["client_h"], "123"),
    ):
        resp = await api.get(f"/api/chat/messages/{target}", headers=headers)
        assert (await error_of(resp, 404))["code"] == "not_found"
    other = await add_message(
        superuser, await make_session(superuser, pair["client"]), pair["client"]
    )
    resp = await api.get(
        f"/api/chat/messages/{pair['session']}?before_id={other}", headers=pair["client_h"]
    )
    assert (await error_of(resp, 422))["code"] == "invalid_value"


async def test_mark_read(
    api: TestClient, pair: dict[str, Any], users: Users, superuser: asyncpg.Connection
) -> None:
    sid = pair["session"]
    first = await add_message(superuser, sid, pair["reader"], "one")
    await add_message(superuser, sid, pair["reader"], "two")
    await add_message(superuser, sid, pair["client"], "mine")
    path = f"/api/chat/messages/{sid}/read"

    resp = await api.put(path, json={"up_to_message_id": str(first)}, headers=pair["client_h"])
    assert (resp.status, await resp.json()) == (200, {"read_count": 1})
    resp = await api.put(path, json={}, headers=pair["client_h"])  # up to the newest
    assert await resp.json() == {"read_count": 1}
    resp = await api.put(path, json={"up_to_message_id": None}, headers=pair["client_h"])
    assert await resp.json() == {"read_count": 0}
    resp = await api.put(path, json={"up_to_message_id": str(first)}, headers=pair["client_h"])
    assert await resp.json() == {"read_count": 0}  # never backwards

    outsider = bearer(users.token(await users.create("client")))
    await error_of(await api.put(path, json={}, headers=outsider), 404)
    other = await add_message(
        superuser, await make_session(superuser, pair["client"]), pair["client"]
    )
    resp = await api.put(path, json={"up_to_message_id": str(other)}, headers=pair["client_h"])
    assert (await error_of(resp, 422))["code"] == "invalid_value"


async def test_rest_sends_share_the_relays_rate_limit(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client_id = await users.create("client")
    reader_id = await users.create("reader")
    session_id = await superuser.fetchval(
        "insert into chat_sessions (participants, type, created_by) "
        "values ($1::uuid[], 'support', $2) returning id",
        [client_id, reader_id],
        client_id,
    )
    app = create_app(settings_for(database_url, message_bucket=Bucket(rate=0.1, burst=2)))
    headers = {"Authorization": f"Bearer {users.token(client_id)}"}
    async with TestClient(TestServer(app)) as http:
        statuses = []
        for i in range(3):
            resp = await http.post(
                "/api/chat/messages",
                json={"session_id": str(session_id), "content": f"m{i}"},
                headers=headers,
            )
            statuses.append(resp.status)
        body = await resp.json()
    assert statuses == [201, 201, 429]
    assert body["error"]["code"] == "rate_limited"
