"""Bytes stored per user per day are bounded (429 upload_quota_exceeded), the
local store keeps a free-space floor (507 insufficient_storage), orphaned objects of a
crash between storing and the message are swept, and an upload cut off mid-stream
leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from workers.keys import DATABASE, OBJECT_STORE
from workers.storage import InsufficientStorage, NewObject
from workers.storage.local import LocalStore
from workers.storage.signing import UrlSigner
from workers.uploads import accounting, sweeper

from .api_helpers import api_client, bearer, error_of, make_session
from .conftest import Users
from .upload_helpers import file_messages, object_names, spooled_files, stored_files, upload

TEXT = ("The quick brown fox jumps over the lazy dog. " * 30).encode()  # 1,350 bytes
QUOTA = 3_000  # two of TEXT fit, a third does not


@pytest.fixture
async def room(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    client = await users.create("client")
    reader = await users.create("reader")
    return {
        "session": await make_session(superuser, client, reader),
        "client": client,
        "reader": reader,
        "client_h": bearer(users.token(client)),
        "reader_h": bearer(users.token(reader)),
    }


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with api_client(database_url, data_dir=tmp_path, upload_quota_bytes=QUOTA) as client:
        yield client


async def _used_today(superuser: asyncpg.Connection, uid: uuid.UUID) -> int:
    return await superuser.fetchval("select chat_private.uploaded_today($1)", uid)


async def _pending(superuser: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return await superuser.fetchval(
        "select count(*) from chat_private.pending_uploads where storage_path like $1",
        f"{session_id}/%",
    )


# ---------------------------------------------------------------- quota
async def test_daily_upload_quota_refuses_with_429_and_stores_nothing(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    sid = room["session"]
    for _ in range(2):
        resp = await upload(api, room["client_h"], sid, TEXT, content_type="text/plain")
        assert resp.status == 201, await resp.text()
    assert await _used_today(superuser, room["client"]) == 2 * len(TEXT)

    resp = await upload(api, room["client_h"], sid, TEXT, content_type="text/plain")
    err = await error_of(resp, 429)
    assert err["code"] == "upload_quota_exceeded"
    assert str(QUOTA) in err["message"]
    assert len(await object_names(superuser, sid)) == 2
    assert len(stored_files(tmp_path)) == 2 and spooled_files(tmp_path) == []
    assert await file_messages(superuser, sid) == 2
    assert await _used_today(superuser, room["client"]) == 2 * len(TEXT)
    assert await _pending(superuser, sid) == 0

    # Another user of the same session has their own quota.
    resp = await upload(api, room["reader_h"], sid, TEXT, content_type="text/plain")
    assert resp.status == 201


async def test_a_used_up_quota_is_refused_before_the_body_is_read(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    await superuser.execute(
        "insert into chat_private.upload_usage (user_id, day, bytes) "
        "values ($1, (now() at time zone 'utc')::date, $2)",
        room["client"],
        QUOTA,
    )
    resp = await upload(api, room["client_h"], room["session"], TEXT, content_type="text/plain")
    assert (await error_of(resp, 429))["code"] == "upload_quota_exceeded"
    assert spooled_files(tmp_path) == [] and stored_files(tmp_path) == []


async def test_an_upload_that_fails_gives_its_bytes_back(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection
) -> None:
    resp = await upload(
        api,
        room["client_h"],
        room["session"],
        TEXT,
        content_type="text/plain",
        reply_to_message_id=str(uuid.uuid4()),  # the message cannot be written
    )
    await error_of(resp, 422)
    assert await _used_today(superuser, room["client"]) == 0
    assert await _pending(superuser, room["session"]) == 0


# ---------------------------------------------------------------- disk floor
async def test_local_store_below_its_free_space_floor_refuses_with_507(
    database_url: str, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    async with api_client(database_url, data_dir=tmp_path, storage_min_free_bytes=2**60) as api:
        resp = await upload(api, room["client_h"], room["session"], TEXT, content_type="text/plain")
        err = await error_of(resp, 507)
        assert err["code"] == "insufficient_storage"
        store = api.app[OBJECT_STORE]
        # The store itself refuses too (a request that passed the early check).
        source = tmp_path / "tmp" / "upload-direct.part"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(TEXT)
        path = f"{room['session']}/{room['client']}/{uuid.uuid4().hex}-x.txt"
        principal = Users.principal(room["client"])
        with pytest.raises(InsufficientStorage):
            await store.put(principal, NewObject(path, source, len(TEXT), "text/plain", "x.txt"))
    assert await object_names(superuser, room["session"]) == []
    assert stored_files(tmp_path) == []
    assert await file_messages(superuser, room["session"]) == 0


# ---------------------------------------------------------------- orphan sweep
async def _orphan(api: TestClient, room: dict[str, Any], tmp_path: Path) -> str:
    """What a crash between storing and the message leaves: a journaled, stored object
    that no message refers to."""
    db, store = api.app[DATABASE], api.app[OBJECT_STORE]
    source = tmp_path / "tmp" / f"upload-{uuid.uuid4().hex}.part"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(TEXT)
    path = f"{room['session']}/{room['client']}/{uuid.uuid4().hex}-orphan.txt"
    await accounting.begin(db, room["client"], path, len(TEXT), quota=QUOTA)
    await store.put(
        Users.principal(room["client"]),
        NewObject(path, source, len(TEXT), "text/plain", "orphan.txt"),
    )
    return path


async def test_sweep_removes_orphaned_objects_and_old_temp_files_only(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    sid = room["session"]
    await _orphan(api, room, tmp_path)
    resp = await upload(api, room["client_h"], sid, TEXT, content_type="text/plain")
    kept = (await resp.json())["file"]["storage_path"]
    # A message committed but its journal row left open (a crash right after commit).
    await superuser.execute(
        "insert into chat_private.pending_uploads (storage_path, user_id, bytes) "
        "values ($1, $2, $3)",
        kept,
        room["client"],
        len(TEXT),
    )
    spool = tmp_path / "tmp"
    old, fresh = spool / "upload-old.part", spool / "upload-fresh.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    assert await _used_today(superuser, room["client"]) == 2 * len(TEXT)

    result = await sweeper.sweep_once(
        api.app[DATABASE], api.app[OBJECT_STORE], spool_dir=spool, grace_seconds=600
    )
    assert result.purged == 0 and result.temp_files == 1  # the journal rows are too young
    assert not old.exists() and fresh.exists()

    # Once the grace period is over (no grace: the journal rows keep today's date, so the
    # orphan's bytes go back to today's quota even in the first hour of a UTC day).
    result = await sweeper.sweep_once(
        api.app[DATABASE], api.app[OBJECT_STORE], spool_dir=spool, grace_seconds=0
    )
    assert (result.purged, result.settled) == (1, 1)
    assert await object_names(superuser, sid) == [kept]
    assert [p.relative_to(tmp_path / "chat-files").as_posix() for p in stored_files(tmp_path)] == [
        kept
    ]
    assert await _pending(superuser, sid) == 0
    assert await _used_today(superuser, room["client"]) == len(TEXT)  # the orphan's back
    # A second pass finds nothing.
    again = await sweeper.sweep_once(
        api.app[DATABASE], api.app[OBJECT_STORE], spool_dir=spool, grace_seconds=0
    )
    assert (again.purged, again.settled) == (0, 0)


async def test_the_service_sweeps_in_the_background(
    database_url: str, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    async with api_client(
        database_url,
        data_dir=tmp_path,
        upload_quota_bytes=QUOTA,
        orphan_sweep_seconds=0.2,
        orphan_grace_seconds=0,
    ) as api:
        orphan = await _orphan(api, room, tmp_path)
        for _ in range(100):  # the sweep runs every 0.2 s: 10 s at most
            if not await object_names(superuser, room["session"]):
                break
            await asyncio.sleep(0.1)
    assert orphan not in await object_names(superuser, room["session"])
    assert stored_files(tmp_path) == []
    assert await _pending(superuser, room["session"]) == 0


async def test_purge_of_a_name_outside_the_bucket_touches_nothing(db: Any, tmp_path: Path) -> None:
    store = LocalStore(
        root=tmp_path,
        db=db,
        signer=UrlSigner.from_secrets(file_url_secret=None, jwt_secret="x" * 40, public_url=None),
    )
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    await store.purge("../victim.txt")
    assert victim.exists()
