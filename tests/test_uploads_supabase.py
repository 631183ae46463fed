"""STORAGE_BACKEND=supabase: the same uploads and downloads through storage3 against a
FAKE Supabase Storage server (tests/fake_supabase_storage.py) that checks every request
against the documented API. Hosted Storage cannot run here; the database is real."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.keys import OBJECT_STORE

from . import file_samples as fs
from .api_helpers import api_client, bearer, error_of, make_session
from .conftest import Users
from .fake_supabase_storage import FakeSupabaseStorage, new_key
from .upload_helpers import file_messages, object_names, spooled_files, upload


@pytest.fixture
async def fake(superuser: asyncpg.Connection) -> AsyncIterator[tuple[FakeSupabaseStorage, str]]:
    storage = FakeSupabaseStorage(service_key=new_key(), db=superuser)
    server = TestServer(storage.app(), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield storage, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()
    assert storage.violations == []


@pytest.fixture
async def api(
    database_url: str, fake: tuple[FakeSupabaseStorage, str], tmp_path: Path
) -> AsyncIterator[TestClient]:
    storage, url = fake
    async with api_client(
        database_url,
        storage_backend="supabase",
        supabase_url=url,
        supabase_service_role_key=storage.service_key,
        # The test tokens' issuer (the CLI's local Auth), not the fake storage's URL.
        jwt_issuer="http://127.0.0.1:54321/auth/v1",
        data_dir=tmp_path,
        lifecycle_poll_seconds=0.1,
    ) as client:
        yield client


@pytest.fixture
async def room(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    client, reader = await users.create("client"), await users.create("reader")
    return {
        "session": await make_session(superuser, client, reader),
        "client": client,
        "client_h": bearer(users.token(client)),
        "reader_h": bearer(users.token(reader, "reader")),
        "outsider_h": bearer(users.token(await users.create("client"))),
    }


async def test_upload_sign_and_download_go_through_the_storage_api(
    api: TestClient, fake: tuple[FakeSupabaseStorage, str], room: dict[str, Any], tmp_path: Path
) -> None:
    storage, base = fake
    voice = fs.wav(1200)
    resp = await upload(api, room["client_h"], room["session"], voice, filename="hi.wav")
    assert resp.status == 201, await resp.text()
    meta = (await resp.json())["message"]["metadata"]
    path = meta["storage_path"]
    assert (meta["duration_ms"], meta["mime_type"]) == (1200, "audio/wav")

    stored = storage.objects[("chat-files", path)]
    assert (stored.content, stored.content_type) == (voice, "audio/wav")
    assert stored.user_metadata == {"file_name": "hi.wav"}
    assert ("POST", f"/storage/v1/object/chat-files/{path}") in storage.requests
    assert spooled_files(tmp_path) == []  # the spooled file is gone

    # metadata.url is Supabase's signed URL: it works with no header at all.
    assert meta["url"].startswith(f"{base}/storage/v1/object/sign/chat-files/{path}?token=")
    async with aiohttp.ClientSession() as http, http.get(meta["url"]) as got:
        assert got.status == 200 and await got.read() == voice

    # Our download endpoint: the policy check in the database, the bytes from Storage.
    resp = await api.get(
        f"/api/chat/files/{path}", headers={**room["reader_h"], "Range": "bytes=4-11"}
    )
    assert resp.status == 206 and await resp.read() == voice[4:12]
    assert resp.headers["Content-Range"] == f"bytes 4-11/{len(voice)}"
    assert ("GET", f"/storage/v1/object/authenticated/chat-files/{path}") in storage.requests
    resp = await api.get(f"/api/chat/files/{path}", headers=room["outsider_h"])
    await error_of(resp, 404)

    # Signed URLs are cached: a page of messages (or a fan-out) does not sign again...
    second = await upload(api, room["client_h"], room["session"], fs.png(2, 2))
    assert second.status == 201
    png_path = (await second.json())["file"]["storage_path"]
    storage.requests.clear()
    resp = await api.get(f"/api/chat/messages/{room['session']}", headers=room["reader_h"])
    urls = [m["metadata"]["url"] for m in (await resp.json())["messages"]]
    assert len(urls) == 2 and all(u.startswith(base) for u in urls)
    assert storage.requests == []
    # ...until they are half-way to expiry; then several are signed in one request.
    fresh = await api.server.app[OBJECT_STORE].signed_urls([path, png_path], 24 * 3600)
    assert set(fresh) == {path, png_path}
    assert storage.requests == [("POST", "/storage/v1/object/sign/chat-files")]


async def test_a_failed_message_deletes_the_object_through_the_api(
    api: TestClient,
    fake: tuple[FakeSupabaseStorage, str],
    room: dict[str, Any],
    superuser: asyncpg.Connection,
) -> None:
    storage, _ = fake
    resp = await upload(
        api, room["client_h"], room["session"], fs.pdf(), reply_to_message_id=str(uuid.uuid4())
    )
    await error_of(resp, 422)
    (upload_call,) = [r for r in storage.requests if r[0] == "POST"]
    path = upload_call[1].removeprefix("/storage/v1/object/chat-files/")
    assert ("DELETE", "/storage/v1/object/chat-files") in storage.requests
    assert storage.objects == {} and await object_names(superuser, room["session"]) == []
    assert await file_messages(superuser, room["session"]) == 0
    assert path.startswith(f"{room['session']}/{room['client']}/")


async def test_a_storage_failure_leaves_no_message(
    api: TestClient,
    fake: tuple[FakeSupabaseStorage, str],
    room: dict[str, Any],
    superuser: asyncpg.Connection,
) -> None:
    storage, _ = fake
    storage.fail_uploads = True
    resp = await upload(api, room["client_h"], room["session"], fs.text())
    assert (await error_of(resp, 503))["code"] == "storage_unavailable"
    assert await file_messages(superuser, room["session"]) == 0
    assert storage.objects == {} and await object_names(superuser, room["session"]) == []


async def test_the_fake_refuses_requests_the_documented_api_would(
    fake: tuple[FakeSupabaseStorage, str],
) -> None:
    storage, base = fake
    good = {"Authorization": f"Bearer {storage.service_key}", "apikey": storage.service_key}
    async with aiohttp.ClientSession() as http:
        for method, path, headers, body in [
            (
                "POST",
                "/storage/v1/object/sign/chat-files/a/b/c",
                {"apikey": storage.service_key},
                {"expiresIn": 60},
            ),
            ("POST", "/storage/v1/object/sign/chat-files/a/b/c", good, {"expires": 60}),
            ("DELETE", "/storage/v1/object/chat-files", good, {"paths": ["a/b/c"]}),
            ("PUT", "/storage/v1/object/chat-files/a/b/c", good, {}),
        ]:
            async with http.request(
                method,
                base + path,
                headers=headers,
                data=json.dumps(body),
            ) as resp:
                assert resp.status in (400, 405), (method, path)
    assert len(storage.violations) == 3
    storage.violations.clear()


async def test_a_deleted_users_files_are_removed_through_the_storage_api(
    api: TestClient,
    fake: tuple[FakeSupabaseStorage, str],
    room: dict[str, Any],
    superuser: asyncpg.Connection,
) -> None:
    storage, _ = fake
    resp = await upload(api, room["client_h"], room["session"], fs.wav(800), filename="v.wav")
    assert resp.status == 201, await resp.text()
    path = (await resp.json())["message"]["metadata"]["storage_path"]
    assert ("chat-files", path) in storage.objects
    async with superuser.transaction():
        await superuser.execute("set local role supabase_auth_admin")
        await superuser.execute("delete from auth.users where id = $1", room["client"])

    for _ in range(200):  # the lifecycle leader removes it within a poll or two
        if ("chat-files", path) not in storage.objects:
            break
        await asyncio.sleep(0.05)
    assert ("chat-files", path) not in storage.objects
    assert ("DELETE", "/storage/v1/object/chat-files") in storage.requests
    # The fake deletes the storage.objects row on the same connection as this test: wait
    # until it is done with it.
    names: list[str] | None = None
    for _ in range(100):
        try:
            names = await object_names(superuser, room["session"])
        except asyncpg.InterfaceError:  # the fake is still using the connection
            await asyncio.sleep(0.05)
            continue
        if not names:
            break
        await asyncio.sleep(0.05)
    assert names == []
