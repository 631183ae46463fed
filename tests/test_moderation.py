"""Moderation end to end on a real relay and database: a sender edits and deletes their
message within the window and every participant's socket hears it once; admins redact,
read the history, suspend and freeze; suspension and freeze hold on the socket, over REST
and in direct SQL as the user."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from . import file_samples as fs
from .conftest import Users
from .relay_helpers import Recorder, people, running_relay
from .upload_helpers import form, stored_files


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _send(http: aiohttp.ClientSession, url: str, token: str, sid: Any, text: str) -> Any:
    return await http.post(
        f"{url}/api/chat/messages",
        json={"session_id": str(sid), "content": text},
        headers=_h(token),
    )


async def test_sender_edits_and_deletes_within_the_window_and_the_room_hears_it_once(
    users: Users, superuser: asyncpg.Connection, tmp_path: Path, database_url: str
) -> None:
    p = await people(users, superuser)
    sid = p["session"]
    async with (
        running_relay(database_url, data_dir=tmp_path) as (url, _relay),
        aiohttp.ClientSession() as http,
    ):
        client_t, reader_t = p["tokens"]["client"], p["tokens"]["reader"]
        listeners = [Recorder("client"), Recorder("reader")]
        for who, token in zip(listeners, (client_t, reader_t), strict=True):
            await who.connect(url, token)
            await who.call("join_session", {"session_id": str(sid)})
        resp = await _send(http, url, client_t, sid, "My first words")
        mid = (await resp.json())["message"]["id"]

        resp = await http.patch(
            f"{url}/api/chat/messages/{sid}/{mid}", json={"content": "My better words"},
            headers=_h(client_t),
        )  # fmt: skip
        assert resp.status == 200, await resp.text()
        edited = (await resp.json())["message"]
        assert edited["content"] == "My better words" and edited["edited_at"]
        for who in listeners:
            (update,) = await who.wait_for("message_updated")
            assert update == {
                "session_id": str(sid),
                "message_id": mid,
                "content": "My better words",
                "edited_at": update["edited_at"],
            }

        # The other participant and an outsider cannot touch it.
        for token in (reader_t, p["tokens"]["outsider"]):
            resp = await http.delete(f"{url}/api/chat/messages/{sid}/{mid}", headers=_h(token))
            assert resp.status == 404

        upload = await http.post(
            f"{url}/api/chat/upload",
            data=form(sid, fs.png(4, 4), filename="oops.png", content_type="image/png"),
            headers=_h(client_t),
        )
        assert upload.status == 201
        file_id = (await upload.json())["message"]["id"]
        assert len(stored_files(tmp_path)) == 1
        resp = await http.delete(f"{url}/api/chat/messages/{sid}/{file_id}", headers=_h(client_t))
        assert resp.status == 200, await resp.text()
        tomb = (await resp.json())["message"]
        assert (tomb["deleted"], tomb["deleted_reason"], tomb["content"], tomb["metadata"]) == (
            True,
            "sender",
            None,
            {},
        )
        assert tomb["sender_id"] == str(p["client"])
        for who in listeners:
            (gone,) = await who.wait_for("message_deleted")
            assert (gone["message_id"], gone["reason"]) == (file_id, "sender")
        await asyncio.sleep(0.3)
        assert all(len(who.of("message_updated")) == 1 for who in listeners)

        # History shows the tombstone in its place; the file leaves the disk.
        resp = await http.get(f"{url}/api/chat/messages/{sid}", headers=_h(reader_t))
        page = {m["id"]: m for m in (await resp.json())["messages"]}
        assert page[file_id]["deleted"] and page[file_id]["content"] is None
        assert page[mid]["content"] == "My better words"
        for _ in range(200):
            if not stored_files(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert stored_files(tmp_path) == []

        # After the window (here shut to 0 s): refused.
        await superuser.execute("select chat_private.set_edit_window(0)")
        resp = await http.patch(
            f"{url}/api/chat/messages/{sid}/{mid}", json={"content": "too late"},
            headers=_h(client_t),
        )  # fmt: skip
        await superuser.execute("select chat_private.set_edit_window(900)")
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "edit_window_closed"


async def test_admin_redacts_reads_the_history_and_others_cannot(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    admin = await users.create("admin", "Ada Admin")
    admin_t = users.token(admin, "admin")
    sid = p["session"]
    async with running_relay(database_url) as (url, _relay), aiohttp.ClientSession() as http:
        reader = Recorder("reader")
        await reader.connect(url, p["tokens"]["reader"])
        await reader.call("join_session", {"session_id": str(sid)})
        resp = await _send(http, url, p["tokens"]["client"], sid, "call me at 555 0101")
        mid = (await resp.json())["message"]["id"]
        path = f"{url}/api/chat/messages/{sid}/{mid}"
        resp = await http.post(
            f"{path}/redaction", json={"reason": "phone number"}, headers=_h(p["tokens"]["reader"])
        )
        assert resp.status == 403
        resp = await http.post(
            f"{path}/redaction", json={"reason": "phone number"}, headers=_h(admin_t)
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["message"]["deleted_reason"] == "moderator"
        (gone,) = await reader.wait_for("message_deleted")
        assert gone["reason"] == "moderator"
        resp = await http.get(f"{path}/history", headers=_h(admin_t))
        history = (await resp.json())["history"]
        assert [(h["kind"], h["content"], h["reason"]) for h in history] == [
            ("redacted", "call me at 555 0101", "phone number")
        ]
        resp = await http.get(f"{path}/history", headers=_h(p["tokens"]["client"]))
        assert resp.status == 403
        assert (
            await superuser.fetchval(
                "select count(*) from chat_audit_logs where action = 'admin.message.redacted' "
                "and message_id = $1",
                uuid.UUID(mid),
            )
            == 1
        )


@pytest.mark.parametrize("kind", ["suspension", "freeze"])
async def test_suspension_and_freeze_hold_on_every_path_until_lifted(
    kind: str, users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    admin = await users.create("admin", "Ada Admin")
    admin_h = _h(users.token(admin, "admin"))
    sid = p["session"]
    code = "suspended" if kind == "suspension" else "session_frozen"
    async with running_relay(database_url) as (url, _relay), aiohttp.ClientSession() as http:
        client = Recorder("client")
        await client.connect(url, p["tokens"]["client"])
        await client.call("join_session", {"session_id": str(sid)})
        if kind == "suspension":
            on = http.post(
                f"{url}/api/chat/users/{p['client']}/suspension",
                json={"until": None, "reason": "harassment"},
                headers=admin_h,
            )
            off = f"{url}/api/chat/users/{p['client']}/suspension"
        else:
            on = http.post(f"{url}/api/chat/sessions/{sid}/freeze", headers=admin_h)
            off = f"{url}/api/chat/sessions/{sid}/freeze"
        resp = await on
        assert resp.status == 200, await resp.text()
        if kind == "suspension":
            told = await client.wait_for("error")
            assert told[-1]["code"] == "suspended"
        else:
            (update,) = await client.wait_for("session_updated")
            assert update["frozen"] is True

        ack = await client.call("send_message", {"session_id": str(sid), "content": "still here"})
        assert ack["ok"] is False and ack["error"]["code"] == code, ack
        resp = await _send(http, url, p["tokens"]["client"], sid, "over REST")
        assert resp.status in (403, 409) and (await resp.json())["error"]["code"] == code
        with pytest.raises(asyncpg.PostgresError) as refused:
            async with superuser.transaction():
                await superuser.execute("set local role authenticated")
                await superuser.execute(
                    "select set_config('request.jwt.claims', $1, true)",
                    json.dumps({"sub": str(p["client"]), "role": "authenticated"}),
                )
                await superuser.execute(
                    "insert into chat_messages (session_id, content) values ($1, 'direct')", sid
                )
        assert refused.value.sqlstate == ("CHSUS" if kind == "suspension" else "CHFRZ")
        # Reading stays allowed.
        resp = await http.get(f"{url}/api/chat/messages/{sid}", headers=_h(p["tokens"]["client"]))
        assert resp.status == 200

        resp = await http.delete(off, headers=admin_h)
        assert resp.status == 200, await resp.text()
        await asyncio.sleep(0.1)
        resp = await _send(http, url, p["tokens"]["client"], sid, "back again")
        assert resp.status == 201, await resp.text()


async def test_reports_go_to_the_admin_queue_and_are_resolved_once(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    admin = await users.create("admin", "Ada Admin")
    admin_h = _h(users.token(admin, "admin"))
    sid = p["session"]
    async with running_relay(database_url) as (url, _relay), aiohttp.ClientSession() as http:
        resp = await _send(http, url, p["tokens"]["client"], sid, "Pay me on the side, 555 0101")
        mid = (await resp.json())["message"]["id"]
        reports = f"{url}/api/chat/messages/{sid}/{mid}/reports"
        body = {"category": "off_platform_contact", "note": "asks to pay outside"}
        resp = await http.post(reports, json=body, headers=_h(p["tokens"]["reader"]))
        assert resp.status == 201, await resp.text()
        report = (await resp.json())["report"]
        assert (report["status"], report["category"]) == ("open", "off_platform_contact")
        resp = await http.post(reports, json=body, headers=_h(p["tokens"]["reader"]))
        assert resp.status == 409
        resp = await http.post(reports, json=body, headers=_h(p["tokens"]["outsider"]))
        assert resp.status == 404
        resp = await http.post(reports, json=body, headers=_h(p["tokens"]["client"]))
        assert resp.status == 422
        resp = await http.post(
            reports, json={"category": "boring"}, headers=_h(p["tokens"]["reader"])
        )
        assert resp.status == 422

        resp = await http.get(f"{url}/api/chat/reports", headers=_h(p["tokens"]["reader"]))
        assert resp.status == 403
        resp = await http.get(f"{url}/api/chat/reports?status=open", headers=admin_h)
        queue = await resp.json()
        mine = [r for r in queue["reports"] if r["id"] == report["id"]]
        assert mine and mine[0]["message"]["content"] == "Pay me on the side, 555 0101"

        resolve = f"{url}/api/chat/reports/{report['id']}/resolve"
        resp = await http.post(
            resolve, json={"action": "redact", "note": "off-platform"}, headers=admin_h
        )
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["report"]["action"] == "redact"
        resp = await http.get(f"{url}/api/chat/messages/{sid}", headers=_h(p["tokens"]["reader"]))
        (gone,) = [m for m in (await resp.json())["messages"] if m["id"] == mid]
        assert (gone["deleted"], gone["deleted_reason"]) == (True, "moderator")
        resp = await http.post(resolve, json={"action": "dismiss"}, headers=admin_h)
        assert resp.status == 409
        actions = await superuser.fetch(
            "select action from chat_audit_logs where message_id = $1 order by id", uuid.UUID(mid)
        )
        assert {"message.reported", "admin.message.redacted", "admin.report.resolved"} <= {
            a["action"] for a in actions
        }


async def test_an_edit_and_a_deletion_reach_participants_on_either_relay_once(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    sid = p["session"]
    async with (
        running_relay(database_url) as (url_a, _a),
        running_relay(database_url) as (url_b, _b),
        aiohttp.ClientSession() as http,
    ):
        on_a, on_b = Recorder("client on A"), Recorder("reader on B")
        await on_a.connect(url_a, p["tokens"]["client"])
        await on_b.connect(url_b, p["tokens"]["reader"])
        for who in (on_a, on_b):
            await who.call("join_session", {"session_id": str(sid)})
        resp = await _send(http, url_a, p["tokens"]["client"], sid, "first draft")
        mid = (await resp.json())["message"]["id"]
        resp = await http.patch(
            f"{url_b}/api/chat/messages/{sid}/{mid}", json={"content": "second draft"},
            headers=_h(p["tokens"]["client"]),
        )  # fmt: skip
        assert resp.status == 200
        resp = await http.delete(
            f"{url_a}/api/chat/messages/{sid}/{mid}", headers=_h(p["tokens"]["client"])
        )
        assert resp.status == 200
        for who in (on_a, on_b):
            await who.wait_for("message_deleted")
        await asyncio.sleep(0.5)
        for who in (on_a, on_b):
            assert [e["content"] for e in who.of("message_updated")] == ["second draft"]
            assert [e["message_id"] for e in who.of("message_deleted")] == [mid]


async def test_a_client_that_was_away_hears_the_edits_and_deletions_it_missed(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    sid = p["session"]
    async with running_relay(database_url) as (url, _relay), aiohttp.ClientSession() as http:
        client_t = p["tokens"]["client"]
        ids = []
        for text in ("one", "two", "three"):
            resp = await _send(http, url, client_t, sid, text)
            ids.append((await resp.json())["message"]["id"])
        # The reader had everything up to "three", then went away; meanwhile:
        resp = await http.patch(
            f"{url}/api/chat/messages/{sid}/{ids[0]}", json={"content": "one, edited"},
            headers=_h(client_t),
        )  # fmt: skip
        assert resp.status == 200
        resp = await http.delete(f"{url}/api/chat/messages/{sid}/{ids[1]}", headers=_h(client_t))
        assert resp.status == 200
        back = Recorder("reader back")
        await back.connect(url, p["tokens"]["reader"])
        ack = await back.call("join_session", {"session_id": str(sid), "last_message_id": ids[2]})
        assert ack["ok"] is True and ack["missed"] == 0
        (updated,) = await back.wait_for("message_updated")
        (deleted,) = await back.wait_for("message_deleted")
        assert (updated["message_id"], updated["content"]) == (ids[0], "one, edited")
        assert (deleted["message_id"], deleted["reason"]) == (ids[1], "sender")
