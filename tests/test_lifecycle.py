"""The data lifecycle end to end, on a real relay, a real database and the local store:
a user deleted the way Supabase Auth deletes users (a delete from auth.users as
supabase_auth_admin) loses their sockets, files and name within seconds while the other
participant is told and keeps a tombstone; exports are built, polled and downloaded;
retention purges what is expired and keeps what is held."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from . import file_samples as fs
from .conftest import Users
from .relay_helpers import Recorder, eventually, people, running_relay
from .upload_helpers import form, stored_files

FAST = {"lifecycle_poll_seconds": 0.1}


async def _status(http: Any, url: str, **kwargs: Any) -> int:
    """A GET's status, its response released (read and closed)."""
    async with http.get(url, **kwargs) as resp:
        await resp.read()
        return resp.status


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _delete_as_supabase_auth(superuser: asyncpg.Connection, user_id: uuid.UUID) -> None:
    async with superuser.transaction():
        await superuser.execute("set local role supabase_auth_admin")
        await superuser.execute("delete from auth.users where id = $1", user_id)


async def test_user_deleted_by_supabase_auth_loses_sockets_files_and_name_others_are_told(
    users: Users, superuser: asyncpg.Connection, tmp_path: Path, database_url: str
) -> None:
    p = await people(users, superuser)
    async with (
        running_relay(database_url, data_dir=tmp_path, **FAST) as (url, _relay),
        aiohttp.ClientSession() as http,
    ):
        client_h = _bearer(p["tokens"]["client"])
        reader_h = _bearer(p["tokens"]["reader"])
        resp = await http.post(
            f"{url}/api/chat/upload",
            data=form(p["session"], fs.png(4, 4), filename="face.png", content_type="image/png"),
            headers=client_h,
        )
        assert resp.status == 201, await resp.text()
        file_url = (await resp.json())["message"]["metadata"]["url"]
        resp = await http.post(
            f"{url}/api/chat/messages",
            json={"session_id": str(p["session"]), "content": "Call me on 555 0101"},
            headers=client_h,
        )
        assert resp.status in (200, 201), await resp.text()
        assert len(stored_files(tmp_path)) == 1
        assert await _status(http, f"{url}{file_url}") == 200

        gone, stays = Recorder("client"), Recorder("reader")
        await gone.connect(url, p["tokens"]["client"])
        await stays.connect(url, p["tokens"]["reader"])
        for who in (gone, stays):
            await who.call("join_session", {"session_id": str(p["session"])})

        await _delete_as_supabase_auth(superuser, p["client"])

        errors = await gone.wait_for("error")
        assert errors[-1]["code"] == "user_erased"
        await gone.wait_for("disconnect")
        told = await stays.wait_for("user_erased")
        assert told[0]["user_id"] == str(p["client"])
        assert told[0]["session_id"] == str(p["session"])
        assert told[0]["mode"] == "redact"

        # The file leaves the disk, and its signed URL serves nothing.
        async def files_gone() -> bool:
            return stored_files(tmp_path) == []

        await eventually(files_gone)
        assert await _status(http, f"{url}{file_url}") == 404

        # The reader's history keeps both places, as tombstones of a deleted user.
        resp = await http.get(f"{url}/api/chat/messages/{p['session']}", headers=reader_h)
        assert resp.status == 200, await resp.text()
        history = (await resp.json())["messages"]
        assert [m["deleted"] for m in history] == [True, True]
        assert {m["sender_name"] for m in history} == {"Deleted user"}
        assert all(m["sender_id"] is None and m["content"] is None for m in history)
        assert all(m["metadata"] == {} for m in history)

        # The follow-up finishes: nothing of the user's id is left, the chain verifies.
        async def followed_up() -> bool:
            return bool(
                await superuser.fetchval(
                    "select bool_and(followed_up_at is not null and subject is null) "
                    "from chat_private.erasures where kind = 'user'"
                )
            )

        await eventually(followed_up)
        await superuser.execute("select chat_private.link_audit_chain(100000, false)")
        mentions = await superuser.fetchval(
            "select count(*) from public.chat_audit_logs "
            "where actor_id = $1 or details::text like '%' || $1::text || '%'",
            p["client"],
        )
        assert mentions == 0
        assert await superuser.fetchval("select chat_private.verify_audit_chain()") is None
        # The deleted user's token no longer connects.
        again = Recorder("again")
        try:
            await again.connect(url, p["tokens"]["client"])
            joined = await again.call("join_session", {"session_id": str(p["session"])})
            assert "error" in json.dumps(joined) or joined.get("success") is False
        except Exception:
            pass  # refused outright is as good


async def test_in_retain_mode_the_other_participant_keeps_the_words_and_files_of_a_deleted_user(
    users: Users, superuser: asyncpg.Connection, tmp_path: Path, database_url: str
) -> None:
    p = await people(users, superuser)
    settings = {"erasure_mode": "retain", **FAST}
    async with (
        running_relay(database_url, data_dir=tmp_path, **settings) as (url, _relay),
        aiohttp.ClientSession() as http,
    ):
        client_h = _bearer(p["tokens"]["client"])
        reader_h = _bearer(p["tokens"]["reader"])
        resp = await http.post(
            f"{url}/api/chat/upload",
            data=form(p["session"], fs.png(4, 4), filename="chart.png", content_type="image/png"),
            headers=client_h,
        )
        assert resp.status == 201, await resp.text()
        await _delete_as_supabase_auth(superuser, p["client"])

        async def followed_up() -> bool:
            return bool(
                await superuser.fetchval(
                    "select bool_and(followed_up_at is not null) from chat_private.erasures "
                    "where kind = 'user'"
                )
            )

        await eventually(followed_up)
        resp = await http.get(f"{url}/api/chat/messages/{p['session']}", headers=reader_h)
        (kept,) = (await resp.json())["messages"]
        assert (kept["sender_id"], kept["sender_name"], kept["deleted"]) == (
            None,
            "Deleted user",
            False,
        )
        assert kept["metadata"]["file_name"] == "chart.png"
        assert len(stored_files(tmp_path)) == 1
        assert await _status(http, f"{url}{kept['metadata']['url']}") == 200
        assert (
            await superuser.fetchval("select erasure_mode from chat_private.lifecycle_settings")
            == "retain"
        )


async def test_export_of_a_user_holds_every_message_they_can_read_and_links_to_their_files(
    users: Users, superuser: asyncpg.Connection, tmp_path: Path, database_url: str
) -> None:
    p = await people(users, superuser)
    admin = await users.create("admin", "Ada Admin")
    admin_h = _bearer(users.token(admin, "admin"))
    async with (
        running_relay(database_url, data_dir=tmp_path, **FAST) as (url, _relay),
        aiohttp.ClientSession() as http,
    ):
        client_h = _bearer(p["tokens"]["client"])
        reader_h = _bearer(p["tokens"]["reader"])
        outsider_h = _bearer(p["tokens"]["outsider"])
        resp = await http.post(
            f"{url}/api/chat/upload",
            data=form(p["session"], fs.png(4, 4), filename="card.png", content_type="image/png"),
            headers=client_h,
        )
        assert resp.status == 201, await resp.text()
        for i in range(30):
            headers = client_h if i % 2 else reader_h
            resp = await http.post(
                f"{url}/api/chat/messages",
                json={"session_id": str(p["session"]), "content": f"line {i}"},
                headers=headers,
            )
            assert resp.status in (200, 201)

        resp = await http.post(f"{url}/api/chat/me/export", headers=client_h)
        assert resp.status == 202, await resp.text()
        export = (await resp.json())["export"]
        assert export["status"] in ("pending", "running", "ready")

        async def ready() -> dict[str, Any] | None:
            r = await http.get(f"{url}/api/chat/me/export/{export['id']}", headers=client_h)
            body = (await r.json())["export"]
            assert body["status"] != "failed", body
            return body if body["status"] == "ready" else None

        done = await eventually(ready, within=30)
        assert (done["sessions"], done["messages"], done["files"]) == (1, 31, 1)
        # Someone else's export is not there for them.
        assert (
            await _status(http, f"{url}/api/chat/me/export/{export['id']}", headers=outsider_h)
            == 404
        )
        assert await _status(http, f"{url}{done['download_url']}", headers=outsider_h) == 404

        r = await http.get(f"{url}{done['download_url']}", headers=client_h)
        assert r.status == 200 and r.headers["Content-Type"] == "application/zip"
        archive = zipfile.ZipFile(io.BytesIO(await r.read()))
        assert sorted(archive.namelist()) == [
            "README.txt",
            "export.json",
            "files.json",
            "messages.jsonl",
            "sessions.json",
        ]
        lines = [json.loads(x) for x in archive.read("messages.jsonl").decode().splitlines()]
        assert len(lines) == 31
        assert {m["sender_name"] for m in lines} == {"Cora Client", "Rhea Reader"}
        assert set(lines[1]) >= {
            "id", "session_id", "sender_id", "sender_name", "type", "content",
            "reply_to_message_id", "created_at", "deleted",
        }  # fmt: skip
        files = json.loads(archive.read("files.json"))
        assert len(files) == 1 and files[0]["file_name"] == "card.png"
        assert await _status(http, f"{url}{files[0]['url']}") == 200

        # One export at a time.
        await superuser.execute(
            "insert into chat_private.exports (user_id, requested_by, status) "
            "values ($1, $1, 'running')",
            p["reader"],
        )
        r = await http.post(f"{url}/api/chat/me/export", headers=reader_h)
        assert r.status == 409 and (await r.json())["error"]["code"] == "conflict"

        # Admins may export anyone (audited); others may not.
        r = await http.post(f"{url}/api/chat/admin/users/{p['client']}/export", headers=client_h)
        assert r.status == 403
        r = await http.post(f"{url}/api/chat/admin/users/{p['client']}/export", headers=admin_h)
        assert r.status == 202, await r.text()
        admin_export = (await r.json())["export"]

        async def admin_ready() -> bool:
            r = await http.get(f"{url}/api/chat/me/export/{admin_export['id']}", headers=admin_h)
            return (await r.json())["export"]["status"] == "ready"

        await eventually(admin_ready, within=30)
        archive_url = f"{url}/api/chat/me/export/{admin_export['id']}/archive"
        assert await _status(http, archive_url, headers=admin_h) == 200
        audited = await superuser.fetchval(
            "select count(*) from public.chat_audit_logs "
            "where action = 'admin.export.requested' and actor_id = $1",
            admin,
        )
        assert audited == 1

        # Past its expiry the archive is deleted and no longer served.
        await superuser.execute(
            "update chat_private.exports set expires_at = now() - interval '1 second' "
            "where id = $1",
            uuid.UUID(export["id"]),
        )
        archive_file = tmp_path / "exports" / f"{export['id']}.zip"

        async def expired() -> bool:
            return not archive_file.exists()

        await eventually(expired, within=30)
        r = await http.get(f"{url}{done['download_url']}", headers=client_h)
        assert r.status == 409 and "expired" in (await r.json())["error"]["message"]


async def test_retention_purges_expired_closed_sessions_with_their_files_and_keeps_held_ones(
    users: Users, superuser: asyncpg.Connection, tmp_path: Path, database_url: str
) -> None:
    p = await people(users, superuser)
    admin = await users.create("admin", "Ada Admin")
    admin_h = _bearer(users.token(admin, "admin"))
    held = await superuser.fetchval(
        "insert into chat_sessions (participants, type, created_by) "
        "values ($1::uuid[], 'support', $2) returning id",
        [p["client"], p["reader"]],
        p["client"],
    )
    days = {"retention_days": (("support", 30.0),), **FAST}
    # First a relay whose purge is not due for a minute: the holds and the dry run.
    async with (
        running_relay(database_url, data_dir=tmp_path, **days) as (url, _relay),
        aiohttp.ClientSession() as http,
    ):
        client_h = _bearer(p["tokens"]["client"])
        resp = await http.post(
            f"{url}/api/chat/upload",
            data=form(p["session"], fs.png(4, 4), filename="old.png", content_type="image/png"),
            headers=client_h,
        )
        assert resp.status == 201
        await http.post(
            f"{url}/api/chat/messages",
            json={"session_id": str(held), "content": "keep me"},
            headers=client_h,
        )
        await superuser.execute(
            "update chat_sessions set status = 'closed' where id = any($1::uuid[])",
            [p["session"], held],
        )
        await superuser.execute(
            "update chat_sessions set closed_at = now() - interval '31 days' "
            "where id = any($1::uuid[])",
            [p["session"], held],
        )
        r = await http.put(
            f"{url}/api/chat/admin/sessions/{held}/legal-hold",
            json={"reason": "payment dispute"},
            headers=admin_h,
        )
        assert r.status == 200, await r.text()
        assert (await r.json())["legal_hold"] is True
        r = await http.put(
            f"{url}/api/chat/admin/sessions/{held}/legal-hold",
            json={"reason": "x"},
            headers=client_h,
        )
        assert r.status == 403
        r = await http.get(f"{url}/api/chat/admin/retention", headers=admin_h)
        assert r.status == 200, await r.text()
        preview = await r.json()
        assert preview["retention_days"] == {"support": 30.0}
        assert (preview["sessions"], preview["messages"]) == (1, 2) and preview["held"] >= 1

    # Then one whose purge runs a second after it starts.
    async with (
        running_relay(database_url, data_dir=tmp_path, retention_interval=1.0, **days) as (
            url,
            _relay,
        ),
        aiohttp.ClientSession() as http,
    ):

        async def purged() -> bool:
            return not await superuser.fetchval(
                "select exists (select 1 from chat_sessions where id = $1)", p["session"]
            )

        await eventually(purged, within=15)

        async def files_gone() -> bool:
            return stored_files(tmp_path) == []

        await eventually(files_gone)
        assert await superuser.fetchval(
            "select exists (select 1 from chat_sessions where id = $1)", held
        )
        assert (
            await superuser.fetchval(
                "select count(*) from chat_messages where session_id = $1", held
            )
            == 2  # its message and the closing notice
        )

        # The purge counts what it did once it has finished, after its last batch and
        # its files: the rows and files can be gone a moment before the metric moves.
        async def counted() -> bool:
            async with http.get(f"{url}/metrics") as response:
                return 'chat_retention_purged_total{kind="sessions"}' in await response.text()

        await eventually(counted, within=10)
        r = await http.delete(f"{url}/api/chat/admin/sessions/{held}/legal-hold", headers=admin_h)
        assert r.status == 200 and (await r.json())["legal_hold"] is False


async def test_a_deleted_users_sockets_close_on_every_relay(
    users: Users, superuser: asyncpg.Connection, database_url: str
) -> None:
    p = await people(users, superuser)
    async with (
        running_relay(database_url, **FAST) as (url_a, _a),
        running_relay(database_url, **FAST) as (url_b, _b),
    ):
        on_a, on_b = Recorder("client on A"), Recorder("client on B")
        reader_b = Recorder("reader on B")
        await on_a.connect(url_a, p["tokens"]["client"])
        await on_b.connect(url_b, p["tokens"]["client"])
        await reader_b.connect(url_b, p["tokens"]["reader"])
        for who in (on_a, on_b, reader_b):
            await who.call("join_session", {"session_id": str(p["session"])})
        await _delete_as_supabase_auth(superuser, p["client"])
        for who in (on_a, on_b):
            await who.wait_for("disconnect")
            assert who.of("error")[-1]["code"] == "user_erased"
        (told,) = await reader_b.wait_for("user_erased")
        assert told["user_id"] == str(p["client"])
