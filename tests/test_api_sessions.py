"""REST: /api/chat/sessions over HTTP against real PostgreSQL, as the users themselves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from .api_helpers import add_message, api_client, bearer, error_of, make_session
from .conftest import Users

SEED_KEYS = {
    "id",
    "participants",
    "type",
    "booking_id",
    "status",
    "title",
    "last_message_at",
    "unread_count",
    "bookings",
}


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[TestClient]:
    async with api_client(database_url) as client:
        yield client


async def test_every_sessions_endpoint_refuses_a_missing_or_bad_token(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client = await users.create("client")
    session_id = await make_session(superuser, client)
    calls = [
        ("GET", "/api/chat/sessions"),
        ("POST", "/api/chat/sessions"),
        ("GET", f"/api/chat/sessions/{session_id}"),
        ("POST", f"/api/chat/sessions/{session_id}/close"),
    ]
    for method, path in calls:
        for headers in ({}, bearer("not-a-jwt"), bearer(users.token(client) + "x")):
            resp = await api.request(method, path, headers=headers, json={})
            await error_of(resp, 401)
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_list_has_the_seed_shape_newest_activity_first(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    older = await make_session(superuser, client, reader, type_="booking", title="Older")
    newer = await make_session(superuser, client, reader)
    await add_message(superuser, older, reader, "first")
    await add_message(superuser, newer, reader, "second")

    resp = await api.get("/api/chat/sessions", headers=bearer(users.token(client)))
    assert resp.status == 200
    body = await resp.json()
    assert body["has_more"] is False
    assert [s["id"] for s in body["sessions"]] == [str(newer), str(older)]
    first = body["sessions"][1]
    assert SEED_KEYS <= set(first)
    assert first["participants"] == [str(client), str(reader)]
    assert (first["type"], first["status"], first["title"]) == ("booking", "active", "Older")
    assert first["unread_count"] == 1
    assert first["bookings"] is None  # no public.bookings table here
    assert first["last_message"]["content"] == "first"


async def test_list_pages_with_limit_and_offset(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client = await users.create("client")
    ids = [await make_session(superuser, client) for _ in range(3)]
    for session_id in ids:  # activity order: ids[2] newest
        await add_message(superuser, session_id, client)
    headers = bearer(users.token(client))

    page1 = await (await api.get("/api/chat/sessions?limit=2", headers=headers)).json()
    page2 = await (await api.get("/api/chat/sessions?limit=2&offset=2", headers=headers)).json()
    assert [s["id"] for s in page1["sessions"]] == [str(ids[2]), str(ids[1])]
    assert page1["has_more"] is True
    assert [s["id"] for s in page2["sessions"]] == [str(ids[0])]
    assert page2["has_more"] is False


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "limit=ten", "offset=-1"])
async def test_list_refuses_bad_parameters(api: TestClient, users: Users, query: str) -> None:
    token = users.token(await users.create("client"))
    resp = await api.get(f"/api/chat/sessions?{query}", headers=bearer(token))
    assert (await error_of(resp, 400))["code"] == "invalid_parameter"


async def test_unread_counts_for_a_reader_and_a_client_in_a_three_participant_session(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client = await users.create("client")
    reader = await users.create("reader")
    second_reader = await users.create("reader")
    session_id = await make_session(superuser, client, reader, second_reader)
    for sender in (client, client, reader, reader, reader, second_reader):
        last = await add_message(superuser, session_id, sender)

    async def unread(uid: uuid.UUID, role: str) -> tuple[int, int]:
        headers = bearer(users.token(uid, role))
        listed = await (await api.get("/api/chat/sessions", headers=headers)).json()
        one = await (await api.get(f"/api/chat/sessions/{session_id}", headers=headers)).json()
        return listed["sessions"][0]["unread_count"], one["session"]["unread_count"]

    assert await unread(client, "client") == (4, 4)  # three from reader, one from the other
    assert await unread(reader, "reader") == (3, 3)  # two from client, one from the other
    resp = await api.put(
        f"/api/chat/messages/{session_id}/read",
        json={"up_to_message_id": str(last)},
        headers=bearer(users.token(reader, "reader")),
    )
    assert await resp.json() == {"read_count": 3}
    assert await unread(reader, "reader") == (0, 0)
    assert await unread(client, "client") == (4, 4)  # one reader's cursor is not another's
    assert await unread(second_reader, "reader") == (5, 5)


async def test_create_returns_201_with_the_session(api: TestClient, users: Users) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    booking = uuid.uuid4()
    resp = await api.post(
        "/api/chat/sessions",
        json={
            "participants": [str(client), str(reader)],
            "type": "booking",
            "booking_id": str(booking),
            "title": "Tarot",
        },
        headers=bearer(users.token(client)),
    )
    assert resp.status == 201
    session = (await resp.json())["session"]
    assert SEED_KEYS <= set(session)
    assert session["participants"] == [str(client), str(reader)]
    assert (session["type"], session["booking_id"], session["title"]) == (
        "booking",
        str(booking),
        "Tarot",
    )
    assert (session["status"], session["unread_count"], session["created_by"]) == (
        "active",
        0,
        str(client),
    )
    # Default type is support.
    resp = await api.post(
        "/api/chat/sessions",
        json={"participants": [str(client)]},
        headers=bearer(users.token(client)),
    )
    assert (await resp.json())["session"]["type"] == "support"


async def test_create_refuses_what_breaks_the_rules(api: TestClient, users: Users) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    headers = bearer(users.token(client))
    resp = await api.post(
        "/api/chat/sessions", json={"participants": [str(reader)]}, headers=headers
    )
    assert (await error_of(resp, 403))["code"] == "forbidden"
    refused = [
        {"participants": [str(client), str(uuid.uuid4())]},  # not a user
        {"participants": [str(client), str(client)]},
        {"participants": []},
        {"participants": [str(client)], "type": "booking"},  # no booking_id
        {"participants": [str(client)], "type": "chat"},
        {"participants": [str(client)], "title": "x" * 201},
        {"participants": "everyone"},
        {"participants": [str(client)], "booking_id": 7},
    ]
    for body in refused:
        resp = await api.post("/api/chat/sessions", json=body, headers=headers)
        assert (await error_of(resp, 422))["code"] == "invalid_value", body


async def test_admin_may_create_a_session_for_others(api: TestClient, users: Users) -> None:
    admin = await users.create("admin")
    client, reader = await users.create("client"), await users.create("reader")
    resp = await api.post(
        "/api/chat/sessions",
        json={"participants": [str(client), str(reader)], "type": "emergency"},
        headers=bearer(users.token(admin, "admin")),
    )
    assert resp.status == 201
    session = (await resp.json())["session"]
    assert session["type"] == "emergency"
    got = await api.get(
        f"/api/chat/sessions/{session['id']}", headers=bearer(users.token(reader, "reader"))
    )
    assert got.status == 200


async def test_get_is_200_for_a_participant_and_404_for_anyone_else(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    outsider, admin = await users.create("client"), await users.create("admin")
    session_id = await make_session(superuser, client, reader, title="Ours")
    resp = await api.get(f"/api/chat/sessions/{session_id}", headers=bearer(users.token(reader)))
    assert resp.status == 200
    session = (await resp.json())["session"]
    assert (session["id"], session["title"]) == (str(session_id), "Ours")
    assert SEED_KEYS <= set(session)

    hidden = [
        (outsider, "client", session_id),
        (admin, "admin", session_id),  # admins reach others' sessions only via admin paths
        (client, "client", uuid.uuid4()),
    ]
    for uid, role, target in hidden:
        resp = await api.get(f"/api/chat/sessions/{target}", headers=bearer(users.token(uid, role)))
        assert (await error_of(resp, 404))["code"] == "not_found"
    resp = await api.get("/api/chat/sessions/not-a-uuid", headers=bearer(users.token(client)))
    assert (await error_of(resp, 404))["code"] == "not_found"


async def test_bookings_carries_service_name_when_the_platform_has_a_bookings_table(
    api: TestClient, users: Users, superuser: asyncpg.Connection
) -> None:
    client = await users.create("client")
    booking = uuid.uuid4()
    session_id = await make_session(superuser, client, type_="booking", booking_id=booking)
    headers = bearer(users.token(client))
    path = f"/api/chat/sessions/{session_id}"
    assert (await (await api.get(path, headers=headers)).json())["session"]["bookings"] is None
    await superuser.execute(
        "create table public.bookings (id uuid primary key, service_name text not null)"
    )
    try:
        await superuser.execute("insert into public.bookings values ($1, 'Tarot reading')", booking)
        await superuser.execute("revoke all on public.bookings from authenticated")
        # A table the caller may not read: no summary, and no error.
        assert (await (await api.get(path, headers=headers)).json())["session"]["bookings"] is None
        await superuser.execute("grant select on public.bookings to authenticated")
        one = await (await api.get(path, headers=headers)).json()
        assert one["session"]["bookings"] == {"service_name": "Tarot reading"}
        listed = await (await api.get("/api/chat/sessions", headers=headers)).json()
        assert listed["sessions"][0]["bookings"] == {"service_name": "Tarot reading"}
    finally:
        await superuser.execute("drop table public.bookings")
