"""Uploads are atomic (a message that cannot be written removes its object; a store that
fails leaves no message), and an upload reaches the session's sockets as new_message."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.app import create_app
from workers.auth import Principal
from workers.keys import OBJECT_STORE
from workers.storage import NewObject, ObjectStore

from . import file_samples as fs
from .api_helpers import api_client, bearer, error_of, make_session
from .conftest import Users, settings_for
from .relay_helpers import Recorder, running_relay
from .upload_helpers import file_messages, object_names, spooled_files, stored_files, upload


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with api_client(database_url, data_dir=tmp_path) as client:
        yield client


@pytest.fixture
async def room(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    client = await users.create("client", "Cora Client")
    reader = await users.create("reader", "Rhea Reader")
    return {
        "session": await make_session(superuser, client, reader),
        "client": client,
        "reader": reader,
        "client_h": bearer(users.token(client)),
    }


async def test_a_message_that_cannot_be_written_removes_the_stored_object(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    sid = room["session"]
    resp = await upload(
        api, room["client_h"], sid, fs.png(3, 3), reply_to_message_id=str(uuid.uuid4())
    )
    assert "reply_to_message_id" in (await error_of(resp, 422))["message"]
    assert stored_files(tmp_path) == [] and await object_names(superuser, sid) == []
    assert await file_messages(superuser, sid) == 0


class _ClosesSessionAfterStoring(ObjectStore):
    """The real store; between storing and sending, the session closes (a race)."""

    def __init__(self, inner: ObjectStore, superuser: asyncpg.Connection) -> None:
        self.inner, self.superuser = inner, superuser
        self.stored: list[str] = []

    async def put(self, principal: Principal, obj: NewObject) -> None:
        await self.inner.put(principal, obj)
        self.stored.append(obj.path)
        await self.superuser.execute(
            "update chat_sessions set status = 'closed' where id = $1", uuid.UUID(obj.path[:36])
        )

    async def remove(self, principal: Principal, path: str) -> None:
        await self.inner.remove(principal, path)

    def stream(self, path: str, *, offset: int, length: int):  # type: ignore[no-untyped-def]
        return self.inner.stream(path, offset=offset, length=length)

    async def signed_urls(self, paths: list[str], ttl: int) -> dict[str, str]:
        return await self.inner.signed_urls(paths, ttl)


async def test_session_closing_between_store_and_send_leaves_no_object(
    database_url: str, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    app = create_app(settings_for(database_url, data_dir=tmp_path))
    racing = app[OBJECT_STORE] = _ClosesSessionAfterStoring(app[OBJECT_STORE], superuser)
    async with TestClient(TestServer(app, host="127.0.0.1")) as api:
        resp = await upload(api, room["client_h"], room["session"], fs.wav(200))
        assert "closed" in (await error_of(resp, 409))["message"]
    assert len(racing.stored) == 1  # it was stored, then removed
    assert stored_files(tmp_path) == [] and await object_names(superuser, room["session"]) == []
    assert await file_messages(superuser, room["session"]) == 0


async def test_a_store_that_fails_leaves_no_message(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    sid = room["session"]
    # The session's folder cannot be made: a file sits where the directory should be.
    (tmp_path / "chat-files").mkdir()
    (tmp_path / "chat-files" / str(sid)).write_bytes(b"in the way")
    resp = await upload(api, room["client_h"], sid, fs.pdf())
    assert (await error_of(resp, 503))["code"] == "storage_unavailable"
    assert await object_names(superuser, sid) == [] and spooled_files(tmp_path) == []
    assert await file_messages(superuser, sid) == 0


async def test_an_upload_reaches_the_sessions_sockets_as_new_message(
    database_url: str, room: dict[str, Any], users: Users, tmp_path: Path
) -> None:
    async with running_relay(database_url, data_dir=tmp_path) as (url, _):
        reader = Recorder("reader")
        await reader.connect(url, users.token(room["reader"], "reader"))
        ack = await reader.call("join_session", {"session_id": str(room["session"])})
        assert ack["ok"], ack
        async with aiohttp.ClientSession() as http:
            data = aiohttp.FormData()
            data.add_field("session_id", str(room["session"]))
            data.add_field("file", fs.wav(750), filename="hello.wav", content_type="audio/wav")
            async with http.post(
                f"{url}/api/chat/upload", data=data, headers=room["client_h"]
            ) as resp:
                assert resp.status == 201, await resp.text()
                sent = (await resp.json())["message"]
        (message,) = await reader.wait_for("new_message")
        assert message["id"] == sent["id"] and message["type"] == "audio"
        assert message["metadata"]["duration_ms"] == 750
        async with (
            aiohttp.ClientSession() as http,
            http.get(url + message["metadata"]["url"]) as got,
        ):
            assert got.status == 200 and await got.read() == fs.wav(750)
