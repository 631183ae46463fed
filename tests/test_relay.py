"""The relay with real sockets and a real PostgreSQL: the original service's events, fields,
refusals."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import jwt
import pytest

from workers.relay import Relay

from .conftest import SECRET, Users
from .relay_helpers import Recorder, people, running_relay

PERSON_FIELDS = {"user_id", "user_name", "timestamp", "session_id"}
MESSAGE_FIELDS = {
    "id",
    "session_id",
    "sender_id",
    "sender_name",
    "type",
    "content",
    "reply_to_message_id",
    "metadata",
    "created_at",
    "client_message_id",
}


@pytest.fixture
async def relay(database_url: str) -> AsyncIterator[tuple[str, Relay]]:
    async with running_relay(database_url, typing_timeout=0.6) as running:
        yield running


@pytest.fixture
async def world(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    return await people(users, superuser)


@pytest.fixture
async def clients() -> AsyncIterator[list[Recorder]]:
    made: list[Recorder] = []
    yield made
    for recorder in made:
        await recorder.close()


async def connected(
    clients: list[Recorder],
    url: str,
    token: str | None,
    name: str = "c",
    transport: str = "websocket",
) -> Recorder:
    recorder = Recorder(name)
    clients.append(recorder)
    await recorder.connect(url, token, transport)
    return recorder


async def joined(
    clients: list[Recorder], url: str, world: dict[str, Any], who: str, transport: str = "websocket"
) -> Recorder:
    recorder = await connected(clients, url, world["tokens"][who], who, transport)
    ack = await recorder.call("join_session", {"session_id": str(world["session"])})
    assert ack["ok"], ack
    return recorder


# ---------------------------------------------------------------- connection


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "missing_token"),
        ("garbage", "invalid_token"),
        (
            jwt.encode(
                {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) - 60},
                SECRET,
            ),
            "token_expired",
        ),
        (
            jwt.encode(
                {"sub": str(uuid.uuid4()), "aud": "authenticated", "exp": int(time.time()) + 60},
                "not-the-secret-not-the-secret-0123456789",
            ),
            "invalid_token",
        ),
    ],
    ids=["no-token", "garbage", "expired", "wrong-secret"],
)
async def test_connection_refused_with_a_reason(
    relay: tuple[str, Relay], clients: list[Recorder], token: str | None, code: str
) -> None:
    url, _ = relay
    recorder = Recorder()
    clients.append(recorder)
    with pytest.raises(Exception, match="failed to connect"):
        await recorder.connect(url, token)
    assert recorder.connect_error["data"]["code"] == code
    assert recorder.connect_error["message"]


async def test_authorization_header_is_accepted(
    relay: tuple[str, Relay], world: dict[str, Any]
) -> None:
    url, _ = relay
    client = Recorder()
    await client.client.connect(
        url,
        headers={"Authorization": f"Bearer {world['tokens']['client']}"},
        transports=["websocket"],
        wait_timeout=5,
    )
    try:
        ack = await client.call("join_session", {"session_id": str(world["session"])})
        assert ack["ok"]
    finally:
        await client.close()


# ---------------------------------------------------------------- rooms and presence


async def test_join_emits_session_joined_and_user_joined(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    (first,) = await client.wait_for("session_joined")
    assert first == {
        "session_id": str(world["session"]),
        "participants_online": [str(world["client"])],
    }
    reader = await joined(clients, url, world, "reader")
    (second,) = await reader.wait_for("session_joined")
    assert set(second["participants_online"]) == {str(world["client"]), str(world["reader"])}
    (announced,) = await client.wait_for("user_joined")
    assert set(announced) >= PERSON_FIELDS
    assert announced["user_id"] == str(world["reader"])
    assert announced["user_name"] == "Rhea Reader"
    assert reader.of("user_joined") == []  # not told about themselves


async def test_outsider_cannot_join_send_type_or_list(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    outsider = await connected(clients, url, world["tokens"]["outsider"], "outsider")
    session = {"session_id": str(world["session"])}
    for event, data in [
        ("join_session", session),
        ("send_message", {**session, "content": "let me in"}),
        ("typing_start", session),
        ("get_online_users", session),
        ("mark_messages_read", session),
    ]:
        ack = await outsider.call(event, data)
        assert ack["ok"] is False
        assert ack["error"]["code"] == "not_found", (event, ack)
    errors = await outsider.wait_for("error", 5)
    assert [e["event"] for e in errors] == [
        "join_session",
        "send_message",
        "typing_start",
        "get_online_users",
        "mark_messages_read",
    ]
    assert all(set(e) == {"code", "message", "event"} for e in errors)


async def test_user_left_only_when_the_last_socket_leaves(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    tab1 = await joined(clients, url, world, "reader")
    tab2 = await joined(clients, url, world, "reader")
    assert len(await client.wait_for("user_joined")) == 1
    await tab1.call("leave_session", {"session_id": str(world["session"])})
    online = await client.call("get_online_users", {"session_id": str(world["session"])})
    assert set(online["users"]) == {str(world["client"]), str(world["reader"])}
    assert client.of("user_left") == []
    await tab2.close()
    (left,) = await client.wait_for("user_left")
    assert left["user_id"] == str(world["reader"])
    assert set(left) >= PERSON_FIELDS
    online = await client.call("get_online_users", {"session_id": str(world["session"])})
    assert online["users"] == [str(world["client"])]
    assert online["count"] == 1


async def test_get_online_users_payload(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    await client.call("get_online_users", {"session_id": str(world["session"])})
    (body,) = await client.wait_for("online_users")
    assert body == {
        "session_id": str(world["session"]),
        "users": [str(world["client"])],
        "count": 1,
    }


# ---------------------------------------------------------------- messages


async def test_send_message_reaches_everyone_once_with_every_field(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    reader = await joined(clients, url, world, "reader", transport="polling")
    ack = await client.call(
        "send_message",
        {
            "session_id": str(world["session"]),
            "type": "text",
            "content": "Hello world!",
            "metadata": {"lang": "en"},
            "client_message_id": "tab-1-0001",
        },
    )
    assert ack["ok"], ack
    stored = ack["message"]
    for recorder in (client, reader):
        (message,) = await recorder.wait_for("new_message")
        assert set(message) >= MESSAGE_FIELDS
        assert message["id"] == stored["id"]
        assert message["sender_id"] == str(world["client"])
        assert message["sender_name"] == "Cora Client"
        assert message["content"] == "Hello world!"
        assert message["metadata"] == {"lang": "en"}
        assert message["client_message_id"] == "tab-1-0001"
        assert message["reply_to_message_id"] is None
        assert message["created_at"].endswith("Z")

    # A retried send with the same client_message_id stores and delivers nothing new.
    again = await client.call(
        "send_message",
        {
            "session_id": str(world["session"]),
            "content": "Hello world!",
            "client_message_id": "tab-1-0001",
        },
    )
    assert again["message"]["id"] == stored["id"]
    reply = await reader.call(
        "send_message",
        {
            "session_id": str(world["session"]),
            "content": "Hi!",
            "reply_to_message_id": stored["id"],
        },
    )
    assert reply["message"]["reply_to_message_id"] == stored["id"]
    messages = await client.wait_for("new_message", 2)
    assert [m["content"] for m in messages] == ["Hello world!", "Hi!"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("a string", "JSON object"),
        ({}, "session_id"),
        ({"session_id": "not-a-uuid"}, "session_id"),
        ({"session_id": "SESSION", "content": 42}, "content"),
        ({"session_id": "SESSION", "type": "system", "content": "x"}, "type"),
        ({"session_id": "SESSION", "content": "   "}, "non-empty"),
        ({"session_id": "SESSION", "content": "x" * 10_001}, "10000"),
        ({"session_id": "SESSION", "content": "x", "metadata": []}, "metadata"),
        (
            {"session_id": "SESSION", "content": "x", "reply_to_message_id": str(uuid.uuid4())},
            "reply",
        ),
    ],
    ids=[
        "not-object",
        "no-session",
        "bad-uuid",
        "content-not-string",
        "system-type",
        "blank",
        "too-long",
        "metadata-array",
        "foreign-reply",
    ],
)
async def test_bad_send_message_gets_an_error_event(
    relay: tuple[str, Relay],
    world: dict[str, Any],
    clients: list[Recorder],
    payload: Any,
    fragment: str,
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    if isinstance(payload, dict) and payload.get("session_id") == "SESSION":
        payload = {**payload, "session_id": str(world["session"])}
    ack = await client.call("send_message", payload)
    assert ack["ok"] is False
    (error,) = await client.wait_for("error")
    assert error["event"] == "send_message"
    assert error["code"] in {"invalid_payload", "invalid_value"}
    assert fragment in error["message"]
    assert client.of("new_message") == []


async def test_every_event_validates_its_payload(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await connected(clients, url, world["tokens"]["client"])
    events = [
        "join_session",
        "leave_session",
        "send_message",
        "mark_messages_read",
        "typing_start",
        "typing_stop",
        "get_online_users",
        "refresh_token",
    ]
    for event in events:
        for bad in (None, 7, ["x"], {"session_id": 7}):
            ack = await client.call(event, bad)
            assert ack["ok"] is False, (event, bad)
            assert ack["error"]["code"] == "invalid_payload"
    assert client.client.connected


async def test_mark_messages_read_broadcasts_messages_read(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    reader = await joined(clients, url, world, "reader")
    session = str(world["session"])
    first = (await client.call("send_message", {"session_id": session, "content": "one"}))[
        "message"
    ]
    second = (await client.call("send_message", {"session_id": session, "content": "two"}))[
        "message"
    ]
    ack = await reader.call(
        "mark_messages_read", {"session_id": session, "up_to_message_id": first["id"]}
    )
    assert ack["read_count"] == 1
    ack = await reader.call(
        "mark_messages_read", {"session_id": session, "up_to_message_id": second["id"]}
    )
    assert ack["read_count"] == 1
    receipts = await client.wait_for("messages_read", 2)
    assert set(receipts[0]) >= {
        "user_id",
        "user_name",
        "up_to_message_id",
        "read_count",
        "timestamp",
    }
    assert [(r["up_to_message_id"], r["read_count"]) for r in receipts] == [
        (first["id"], 1),
        (second["id"], 1),
    ]
    assert receipts[0]["user_id"] == str(world["reader"])
    assert receipts[0]["user_name"] == "Rhea Reader"
    # Marking again changes nothing and announces nothing.
    again = await reader.call("mark_messages_read", {"session_id": session})
    assert again["read_count"] == 0
    await asyncio.sleep(0.3)
    assert len(client.of("messages_read")) == 2


async def test_catch_up_from_last_message_id(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    session = str(world["session"])
    client = await joined(clients, url, world, "client")
    sent = [
        (await client.call("send_message", {"session_id": session, "content": f"m{i}"}))["message"]
        for i in range(4)
    ]
    await client.wait_for("new_message", 4)  # live delivery done before the late join
    late = await connected(clients, url, world["tokens"]["reader"], "late")
    ack = await late.call("join_session", {"session_id": session, "last_message_id": sent[0]["id"]})
    assert ack["missed"] == 3
    missed = await late.wait_for("new_message", 3)
    assert [m["content"] for m in missed] == ["m1", "m2", "m3"]
    assert late.events[0][0] == "session_joined"  # joined first, then the backlog, oldest first


# ---------------------------------------------------------------- typing


async def test_typing_is_coalesced_and_not_echoed(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    reader = await joined(clients, url, world, "reader")
    session = {"session_id": str(world["session"])}
    for _ in range(3):
        await client.call("typing_start", session)
    (typing,) = await reader.wait_for("user_typing")
    assert set(typing) >= PERSON_FIELDS
    assert typing["user_id"] == str(world["client"])
    await client.call("typing_stop", session)
    (stopped,) = await reader.wait_for("user_stopped_typing")
    assert stopped["user_name"] == "Cora Client"
    assert len(reader.of("user_typing")) == 1
    assert client.of("user_typing") == [] and client.of("user_stopped_typing") == []


async def test_typing_times_out_on_the_server(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, server = relay
    client = await joined(clients, url, world, "client")
    reader = await joined(clients, url, world, "reader")
    await client.call("typing_start", {"session_id": str(world["session"])})
    await reader.wait_for("user_typing")
    assert server.stats()["typing_sessions"] == 1
    (stopped,) = await reader.wait_for("user_stopped_typing", within=3)  # timeout is 0.6 s here
    assert stopped["user_id"] == str(world["client"])
    assert server.stats()["typing_sessions"] == 0


async def test_disconnect_stops_typing(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await joined(clients, url, world, "client")
    reader = await joined(clients, url, world, "reader")
    await client.call("typing_start", {"session_id": str(world["session"])})
    await reader.wait_for("user_typing")
    await client.close()
    await reader.wait_for("user_stopped_typing", within=0.5)
    await reader.wait_for("user_left")


# ---------------------------------------------------------------- health


async def test_health_counters_are_live(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, server = relay
    before = server.stats()["total_socket_connections"]
    await joined(clients, url, world, "client")
    await joined(clients, url, world, "reader")
    stats = server.stats()
    assert stats["active_connections"] == 2
    assert stats["active_sessions"] == 1
    assert stats["total_socket_connections"] == before + 2


async def test_unknown_event_gets_an_error_event(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    client = await connected(clients, url, world["tokens"]["client"])
    ack = await client.call("delete_everything", {"session_id": str(world["session"])})
    assert ack["ok"] is False
    (error,) = await client.wait_for("error")
    assert error == {
        "code": "unknown_event",
        "message": "unknown event 'delete_everything'",
        "event": "delete_everything",
    }
    assert client.client.connected


async def test_creator_who_is_not_a_participant_cannot_join(
    relay: tuple[str, Relay],
    users: Users,
    superuser: asyncpg.Connection,
    clients: list[Recorder],
    db: Any,
) -> None:
    """An admin may create a session for others; that does not make them a participant
    (the creator may read the session row, but joining needs participation)."""
    url, _ = relay
    admin = await users.create("admin", "Ada Admin")
    client = await users.create("client")
    reader = await users.create("reader")
    async with db.as_user(users.principal(admin, "admin")) as conn:
        session_id = await conn.fetchval(
            "select id from public.create_chat_session($1::uuid[], 'support')", [client, reader]
        )
    watcher = await connected(clients, url, users.token(admin, "admin"))
    session = {"session_id": str(session_id)}
    for event in ("join_session", "typing_start", "get_online_users"):
        ack = await watcher.call(event, session)
        assert ack["ok"] is False and ack["error"]["code"] == "not_found", (event, ack)


async def test_typing_stops_when_the_typing_tab_closes_and_another_stays(
    relay: tuple[str, Relay], world: dict[str, Any], clients: list[Recorder]
) -> None:
    url, _ = relay
    tab_a = await joined(clients, url, world, "client")
    await joined(clients, url, world, "client")  # tab B stays
    reader = await joined(clients, url, world, "reader")
    await tab_a.call("typing_start", {"session_id": str(world["session"])})
    await reader.wait_for("user_typing")
    await tab_a.close()
    (stopped,) = await reader.wait_for("user_stopped_typing", within=3)  # timeout: 0.6 s
    assert stopped["user_id"] == str(world["client"])
