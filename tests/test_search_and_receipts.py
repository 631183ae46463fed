"""Delivery receipts (socket event, broadcast, REST) and full-text search (REST, session
list filters), against the real database and a relay on a real port; the console served
at / with its headers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg

from .api_helpers import add_message, api_client, bearer, error_of, make_session
from .conftest import Users
from .relay_helpers import Recorder, people, running_relay


async def _world(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    return await people(users, superuser)


async def test_messages_delivered_moves_the_cursor_and_tells_the_room(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await _world(users, superuser)
    first = await add_message(superuser, world["session"], world["client"], "one")
    second = await add_message(superuser, world["session"], world["client"], "two")
    async with running_relay(database_url) as (url, _relay):
        client, reader, outsider = Recorder("client"), Recorder("reader"), Recorder("outsider")
        await client.connect(url, world["tokens"]["client"])
        await reader.connect(url, world["tokens"]["reader"])
        await outsider.connect(url, world["tokens"]["outsider"])
        session = str(world["session"])
        assert (await client.call("join_session", {"session_id": session}))["ok"]
        assert (await reader.call("join_session", {"session_id": session}))["ok"]

        ack = await reader.call(
            "messages_delivered", {"session_id": session, "up_to_message_id": str(second)}
        )
        assert ack == {"ok": True, "session_id": session, "moved": True}
        (event,) = await client.wait_for("messages_delivered")
        assert set(event) == {"user_id", "up_to_message_id", "session_id", "timestamp"}
        assert event["user_id"] == str(world["reader"])
        assert event["up_to_message_id"] == str(second)

        # Never backwards: an older message is not an error, and moves (and tells) nothing.
        ack = await reader.call(
            "messages_delivered", {"session_id": session, "up_to_message_id": str(first)}
        )
        assert ack["ok"] and ack["moved"] is False
        await asyncio.sleep(0.5)
        assert len(client.of("messages_delivered")) == 1

        refused = await outsider.call("messages_delivered", {"session_id": session})
        assert refused["ok"] is False and refused["error"]["code"] == "not_found"
        bad = await reader.call("messages_delivered", {"session_id": "nope"})
        assert bad["ok"] is False and bad["error"]["code"] == "invalid_payload"


async def test_receipts_api_shows_every_participants_cursors(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await _world(users, superuser)
    message = await add_message(superuser, world["session"], world["client"], "hello")
    session = world["session"]
    async with api_client(database_url) as http:
        reader = bearer(world["tokens"]["reader"])
        resp = await http.put(f"/api/chat/messages/{session}/delivered", json={}, headers=reader)
        assert resp.status == 200 and await resp.json() == {"moved": True}
        resp = await http.get(
            f"/api/chat/sessions/{session}/receipts", headers=bearer(world["tokens"]["client"])
        )
        body = await resp.json()
        assert resp.status == 200
        by_user = {p["user_id"]: p for p in body["participants"]}
        assert set(by_user) == {str(world["client"]), str(world["reader"])}
        delivered = by_user[str(world["reader"])]["delivered"]
        assert delivered["message_id"] == str(message) and delivered["seq"] > 0
        assert by_user[str(world["reader"])]["read"] is None

        outsider = bearer(world["tokens"]["outsider"])
        receipts = f"/api/chat/sessions/{session}/receipts"
        await error_of(await http.get(receipts, headers=outsider), 404)
        await error_of(
            await http.put(f"/api/chat/messages/{session}/delivered", json={}, headers=outsider),
            404,
        )
        other = await make_session(superuser, world["outsider"], world["reader"])
        elsewhere = await add_message(superuser, other, world["outsider"], "elsewhere")
        err = await error_of(
            await http.put(
                f"/api/chat/messages/{session}/delivered",
                json={"up_to_message_id": str(elsewhere)},
                headers=reader,
            ),
            422,
        )
        assert "up_to_message_id" in err["message"]


async def test_search_is_ranked_highlighted_escaped_and_private(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await _world(users, superuser)
    session = world["session"]
    await add_message(superuser, session, world["client"], "A <b>comet</b> tonight")
    best = await add_message(superuser, session, world["reader"], "comet comet comet")
    async with api_client(database_url) as http:
        client = bearer(world["tokens"]["client"])
        resp = await http.get("/api/chat/search", params={"q": "comet"}, headers=client)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["results"][0]["message"]["id"] == str(best)
        snippets = [r["snippet"] for r in body["results"]]
        assert "A &lt;b&gt;<mark>comet</mark>&lt;/b&gt; tonight" in snippets
        assert body["has_more"] is False

        one = {"q": "comet", "limit": "1"}
        page = await http.get("/api/chat/search", params=one, headers=client)
        first = await page.json()
        assert len(first["results"]) == 1 and first["has_more"] is True
        after = await http.get(
            "/api/chat/search",
            params={"q": "comet", "limit": "1", "before_id": first["results"][0]["message"]["id"]},
            headers=client,
        )
        rest = await after.json()
        assert [r["message"]["id"] for r in rest["results"]] != [
            r["message"]["id"] for r in first["results"]
        ]

        outsider = bearer(world["tokens"]["outsider"])
        nothing = await http.get("/api/chat/search", params={"q": "comet"}, headers=outsider)
        assert (await nothing.json())["results"] == []
        await error_of(await http.get("/api/chat/search", params={"q": ""}, headers=client), 400)
        await error_of(await http.get("/api/chat/search", params={"q": "   "}, headers=client), 422)
        await error_of(await http.get("/api/chat/search", params={"q": "x"}), 401)


async def test_session_list_filters_by_text_type_and_status(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await _world(users, superuser)
    urgent = await make_session(
        superuser, world["client"], world["reader"], type_="emergency", title="Urgent 100%"
    )
    await add_message(superuser, urgent, world["reader"], "lighthouse")
    await superuser.execute(
        "update public.chat_sessions set status = 'closed', closed_at = now() where id = $1", urgent
    )
    async with api_client(database_url) as http:
        client = bearer(world["tokens"]["client"])

        async def ids(**params: str) -> list[str]:
            resp = await http.get("/api/chat/sessions", params=params, headers=client)
            assert resp.status == 200, await resp.text()
            return [s["id"] for s in (await resp.json())["sessions"]]

        assert set(await ids()) == {str(world["session"]), str(urgent)}
        assert await ids(q="lighthouse") == [str(urgent)]
        assert await ids(q="100%") == [str(urgent)]  # a literal %, not a wildcard
        assert await ids(q="0%") == [str(urgent)]
        assert await ids(q="nowhere") == []
        assert await ids(type="emergency", status="closed") == [str(urgent)]
        assert await ids(status="active") == [str(world["session"])]
        await error_of(
            await http.get("/api/chat/sessions", params={"type": "party"}, headers=client), 400
        )


async def test_console_is_served_with_a_strict_policy(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "assets").mkdir()
    page_html = '<script type="module" src="/assets/app-1a2b.js"></script>'
    (tmp_path / "index.html").write_text(page_html)
    (tmp_path / "assets" / "app-1a2b.js").write_text("console.log(1)")
    async with api_client(database_url, console_dir=tmp_path) as http:
        page = await http.get("/")
        assert page.status == 200
        assert page.headers["Cache-Control"] == "no-cache"
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe" not in policy
        asset = await http.get("/assets/app-1a2b.js")
        assert asset.status == 200
        assert "immutable" in asset.headers["Cache-Control"]
        assert "max-age=31536000" in asset.headers["Cache-Control"]
        for bad in ("/assets/..%2Findex.html", "/assets/.hidden", "/assets/missing.js"):
            await error_of(await http.get(bad), 404)
    empty = tmp_path / "empty"
    empty.mkdir()
    async with api_client(database_url, console_dir=empty) as http:
        err = await error_of(await http.get("/"), 404)
        assert err["code"] == "console_not_built"
