"""Supabase Realtime topics chat:<session_id> beside the Socket.IO relay, on a real relay
and database (the local stand-in's realtime schema): a message sent on the socket or over
REST is broadcast once, as the socket event; typing written to the topic the way a
supabase-js client writes it reaches Socket.IO participants; a Socket.IO user's typing and
presence reach the topic, without an echo."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from typing import Any

import aiohttp
import asyncpg

from .conftest import Users
from .relay_helpers import Recorder, eventually, people, running_relay


async def _topic_rows(
    superuser: asyncpg.Connection, session_id: uuid.UUID, event: str
) -> list[dict[str, Any]]:
    rows = await superuser.fetch(
        "select payload, private, extension from realtime.messages "
        "where topic = $1 and event = $2 order by inserted_at",
        f"chat:{session_id}",
        event,
    )
    return [
        {
            **(json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]),
            "_private": r["private"],
            "_extension": r["extension"],
        }
        for r in rows
    ]


async def test_socket_and_rest_sends_are_broadcast_once_as_the_socket_event(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    async with running_relay(database_url) as (url, _relay), aiohttp.ClientSession() as http:
        client = Recorder("client")
        await client.connect(url, p["tokens"]["client"])
        await client.call("join_session", {"session_id": str(p["session"])})
        ack = await client.call(
            "send_message", {"session_id": str(p["session"]), "content": "over the socket"}
        )
        assert ack["ok"] is True, ack
        resp = await http.post(
            f"{url}/api/chat/messages",
            json={"session_id": str(p["session"]), "content": "over REST"},
            headers={"Authorization": f"Bearer {p['tokens']['reader']}"},
        )
        assert resp.status == 201, await resp.text()
        emitted = await client.wait_for("new_message", 2)
        broadcast = await _topic_rows(superuser, p["session"], "new_message")
        assert [b["content"] for b in broadcast] == ["over the socket", "over REST"]
        for event, row in zip(emitted, broadcast, strict=True):
            assert row.pop("_private") is True and row.pop("_extension") == "broadcast"
            assert set(row) == set(event)
            for key in ("id", "session_id", "sender_id", "sender_name", "type", "content", "seq"):
                assert row[key] == event[key], key
            assert dt.datetime.fromisoformat(row["created_at"]) == dt.datetime.fromisoformat(
                event["created_at"]
            )


async def test_typing_written_to_the_topic_reaches_socket_participants(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    async with running_relay(database_url) as (url, _relay):
        reader = Recorder("reader")
        await reader.connect(url, p["tokens"]["reader"])
        await reader.call("join_session", {"session_id": str(p["session"])})
        # The client types from supabase-js, through the database, as PostgREST would run it.
        async with superuser.transaction():
            await superuser.execute("set local role authenticated")
            await superuser.execute(
                "select set_config('request.jwt.claims', $1, true)",
                json.dumps({"sub": str(p["client"]), "role": "authenticated", "app_metadata": {}}),
            )
            await superuser.execute(
                "select set_config('realtime.topic', $1, true)", f"chat:{p['session']}"
            )
            await superuser.execute(
                "insert into realtime.messages (topic, extension, event, payload, private) "
                "values ($1, 'broadcast', 'typing_start', $2::jsonb, true)",
                f"chat:{p['session']}",
                json.dumps({"user_id": str(p["client"])}),
            )
        (typing,) = await reader.wait_for("user_typing")
        assert typing["user_id"] == str(p["client"])
        assert typing["user_name"] == "Cora Client"
        assert typing["session_id"] == str(p["session"])


async def test_socket_typing_and_presence_reach_the_topic_without_an_echo(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    async with running_relay(database_url) as (url, _relay):
        client, reader = Recorder("client"), Recorder("reader")
        await client.connect(url, p["tokens"]["client"])
        await reader.connect(url, p["tokens"]["reader"])
        await reader.call("join_session", {"session_id": str(p["session"])})
        await client.call("join_session", {"session_id": str(p["session"])})
        await client.call("typing_start", {"session_id": str(p["session"])})
        await client.call("typing_stop", {"session_id": str(p["session"])})

        async def all_sent() -> bool:
            started = await _topic_rows(superuser, p["session"], "typing_start")
            stopped = await _topic_rows(superuser, p["session"], "typing_stop")
            joined = await _topic_rows(superuser, p["session"], "user_joined")
            return bool(started and stopped and len(joined) == 2)

        await eventually(all_sent)
        (started,) = await _topic_rows(superuser, p["session"], "typing_start")
        assert started["user_id"] == str(p["client"]) and started["origin"] == "relay"
        assert started["_private"] is True
        await asyncio.sleep(0.5)
        # The relay's own typing row is not told back to the room a second time.
        assert len(reader.of("user_typing")) == 1
