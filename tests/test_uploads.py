"""POST /api/chat/upload over real HTTP against real PostgreSQL: each allowed type from a
real small file, spoofed content, the 10 MB limit and memory, participation, unsafe
names, malformed forms, atomicity both ways, and delivery to sockets."""

from __future__ import annotations

import io
import re
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from . import file_samples as fs
from .api_helpers import api_client, bearer, error_of, make_session
from .conftest import Users
from .upload_helpers import (
    field,
    file_messages,
    file_part,
    object_names,
    post_raw,
    spooled_files,
    stored_files,
    upload,
)

LIMIT = 10 * 1024 * 1024
FILE_HEAD = 'Content-Disposition: form-data; name="file"'
KEY = re.compile(r"[0-9a-f]{32}-[A-Za-z0-9._-]{1,100}")


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with api_client(database_url, data_dir=tmp_path) as client:
        yield client


@pytest.fixture
async def room(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    client = await users.create("client", "Cora Client")
    reader = await users.create("reader", "Rhea Reader")
    outsider = await users.create("client", "Otto Outsider")
    return {
        "session": await make_session(superuser, client, reader),
        "client": client,
        "reader": reader,
        "client_h": bearer(users.token(client)),
        "reader_h": bearer(users.token(reader, "reader")),
        "outsider_h": bearer(users.token(outsider)),
    }


ALLOWED = [
    # (file, name, declared type, message type, mime type, extra metadata)
    (fs.wav(1500), "voice.wav", "audio/wav", "audio", "audio/wav", {"duration_ms": 1500}),
    (fs.mp3(40), "song.mp3", None, "audio", "audio/mpeg", {"duration_ms": 1042}),
    (
        fs.mp3(40, id3=True),
        "tagged.mp3",
        "audio/mpeg",
        "audio",
        "audio/mpeg",
        {"duration_ms": 1042},
    ),
    (fs.ogg_opus(3000), "note.ogg", "audio/ogg", "audio", "audio/ogg", {"duration_ms": 3000}),
    (fs.webm(), "rec.webm", "audio/webm;codecs=opus", "audio", "audio/webm", {"duration_ms": 2500}),
    (fs.png(13, 7), "chart.png", "image/png", "image", "image/png", {"width": 13, "height": 7}),
    (
        fs.jpeg(640, 480),
        "photo.jpg",
        "image/jpeg",
        "image",
        "image/jpeg",
        {"width": 640, "height": 480},
    ),
    (fs.gif(5, 9), "anim.gif", None, "image", "image/gif", {"width": 5, "height": 9}),
    (
        fs.webp(321, 123),
        "pic.webp",
        "image/webp",
        "image",
        "image/webp",
        {"width": 321, "height": 123},
    ),
    (fs.pdf(), "chart.pdf", "application/pdf", "file", "application/pdf", {}),
    (fs.text(), "notes.txt", "text/plain", "file", "text/plain", {}),
]


@pytest.mark.parametrize(
    ("content", "name", "declared", "kind", "mime", "extra"),
    ALLOWED,
    ids=[case[1] for case in ALLOWED],
)
async def test_each_allowed_type_becomes_a_message_with_its_metadata(
    api: TestClient,
    room: dict[str, Any],
    superuser: asyncpg.Connection,
    tmp_path: Path,
    content: bytes,
    name: str,
    declared: str | None,
    kind: str,
    mime: str,
    extra: dict[str, int],
) -> None:
    sid, uid = room["session"], room["client"]
    resp = await upload(
        api, room["client_h"], sid, content, filename=name, content_type=declared, caption="see"
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    message, meta = body["message"], body["message"]["metadata"]
    assert (message["type"], message["content"], message["sender_id"]) == (kind, "see", str(uid))
    path = meta.pop("storage_path")
    assert meta.pop("url").startswith(f"/api/chat/files/{path}?expires=")
    assert meta == {"file_name": name, "mime_type": mime, "size_bytes": len(content), **extra}
    folder, user, key = path.split("/")
    assert (folder, user) == (str(sid), str(uid)) and KEY.fullmatch(key), path
    assert key.endswith(name)
    assert (tmp_path / "chat-files" / path).read_bytes() == content
    assert spooled_files(tmp_path) == []
    row = await superuser.fetchrow(
        "select owner, owner_id, metadata ->> 'mimetype' as mime, "
        "(metadata ->> 'size')::int as size from storage.objects where name = $1",
        path,
    )
    assert (row["owner"], row["owner_id"]) == (uid, str(uid))
    assert (row["mime"], row["size"]) == (mime, len(content))
    assert body["file"]["storage_path"] == path and body["file"]["url"]


@pytest.mark.parametrize(
    ("content", "name", "declared", "detected"),
    [
        (fs.elf(), "photo.png", "image/png", "application/x-executable"),
        (fs.elf(), "photo.png", None, "application/x-executable"),
        (fs.pe(), "invoice.pdf", "application/pdf", "application/x-msdownload"),
        (fs.png(4, 4), "report.pdf", "application/pdf", "image/png"),
        (fs.text(), "voice.wav", "audio/wav", "text/plain"),
        (fs.webm(video=True), "clip.webm", "audio/webm", "video/webm"),
        (fs.ogg_theora(), "clip.ogg", "audio/ogg", "video/ogg"),
        (b"PK\x03\x04" + b"\x00" * 60, "notes.txt", "text/plain", "application/zip"),
        (bytes(range(256)) * 8, "data.txt", None, "application/octet-stream"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "x.svg", "image/svg+xml", "text/plain"),
    ],
    ids=[
        "elf-as-png",
        "elf-undeclared",
        "exe-as-pdf",
        "png-as-pdf",
        "text-as-wav",
        "video-webm",
        "theora-ogg",
        "zip-as-text",
        "random-bytes",
        "svg",
    ],
)
async def test_spoofed_or_unaccepted_content_is_415_naming_the_detected_type(
    api: TestClient,
    room: dict[str, Any],
    superuser: asyncpg.Connection,
    tmp_path: Path,
    content: bytes,
    name: str,
    declared: str | None,
    detected: str,
) -> None:
    resp = await upload(
        api, room["client_h"], room["session"], content, filename=name, content_type=declared
    )
    error = await error_of(resp, 415)
    assert error["code"] == "unsupported_media_type"
    assert detected in error["message"]
    assert stored_files(tmp_path) == [] and spooled_files(tmp_path) == []
    assert await object_names(superuser, room["session"]) == []
    assert await file_messages(superuser, room["session"]) == 0


async def test_declared_synonyms_and_neutral_types_agree_with_the_content(
    api: TestClient, room: dict[str, Any]
) -> None:
    for content, declared in [
        (fs.wav(100), "audio/x-wav"),
        (fs.webm(), "video/webm"),
        (fs.png(2, 2), "application/octet-stream"),
        (fs.jpeg(3, 3), "image/jpg"),
        (fs.text(), "text/markdown; charset=utf-8"),
    ]:
        resp = await upload(api, room["client_h"], room["session"], content, content_type=declared)
        assert resp.status == 201, (declared, await resp.text())


async def test_ten_megabytes_exactly_is_accepted_one_byte_more_is_413_in_bounded_memory(
    api: TestClient, room: dict[str, Any], superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    exact = tmp_path / "exact.txt"
    exact.write_bytes(b"a" * LIMIT)
    over = tmp_path / "over.txt"
    over.write_bytes(b"a" * (LIMIT + 1))
    growth = {}
    for label, source in (("exact", exact), ("over", over)):
        tracemalloc.start()
        try:
            with source.open("rb") as f:  # the client streams it from disk too
                resp = await upload(api, room["client_h"], room["session"], f, filename=source.name)
                await resp.read()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        growth[label] = peak
        if label == "exact":
            assert resp.status == 201, await resp.text()
            assert (await resp.json())["message"]["metadata"]["size_bytes"] == LIMIT
        else:
            error = await error_of(resp, 413)
            assert error["code"] == "payload_too_large"
    # Server and client share this process: both together stay far below the limit.
    assert max(growth.values()) < LIMIT // 3, growth
    assert len(stored_files(tmp_path)) == 1 and spooled_files(tmp_path) == []
    assert await file_messages(superuser, room["session"]) == 1
    # A declared length far over the limit is refused before reading.
    resp = await api.post(
        "/api/chat/upload",
        data=io.BytesIO(b"x" * (LIMIT + 2 * 1024 * 1024)),
        headers={**room["client_h"], "Content-Type": "multipart/form-data; boundary=x"},
    )
    await error_of(resp, 413)


async def test_non_participants_get_404_and_closed_sessions_409_before_any_file_is_read(
    api: TestClient,
    room: dict[str, Any],
    users: Users,
    superuser: asyncpg.Connection,
    tmp_path: Path,
) -> None:
    sid = room["session"]
    admin = await users.create("admin")
    # Over the limit, but session_id comes first: the check answers before the file.
    big = tmp_path / "big.txt"
    big.write_bytes(b"a" * (LIMIT + 512 * 1024))
    for headers in (room["outsider_h"], bearer(users.token(admin, "admin"))):
        with big.open("rb") as f:
            resp = await upload(api, headers, sid, f)
        assert (await error_of(resp, 404))["message"] == f"chat session {sid} not found"
    resp = await upload(api, room["client_h"], uuid.uuid4(), fs.text())
    await error_of(resp, 404)
    with big.open("rb") as f:
        resp = await upload(api, room["client_h"], sid, f)
    await error_of(resp, 413)
    closed = await make_session(superuser, room["client"], room["reader"])
    await superuser.execute("update chat_sessions set status = 'closed' where id = $1", closed)
    resp = await upload(api, room["client_h"], closed, fs.text())
    await error_of(resp, 409)
    # session_id after the file: checked after spooling, still before storing.
    resp = await post_raw(
        api,
        room["outsider_h"],
        [file_part(fs.text(), 'filename="a.txt"'), field("session_id", str(sid))],
    )
    await error_of(resp, 404)
    assert stored_files(tmp_path) == [] and spooled_files(tmp_path) == []
    assert await object_names(superuser, sid) == []


UNSAFE_NAMES = [
    ('filename="../../etc/passwd"', "passwd.txt"),
    ('filename="..\\\\..\\\\Windows\\\\system32\\\\evil.txt"', "evil.txt"),
    ("filename*=UTF-8''invoice%E2%80%AEtxt.exe", "invoicetxt.exe.txt"),
    ("filename*=UTF-8''a%00b%0D%0Ac.txt", "abc.txt"),
    ('filename="' + "x" * 3000 + '.txt"', "x" * 196 + ".txt"),
    ('filename="...hidden.txt"', "hidden.txt"),
    ('filename=".bashrc"', "bashrc.txt"),
    ("filename*=UTF-8''%EF%BC%8E%EF%BC%8E%EF%BC%8Fup.txt", "up.txt"),
    ("filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt", "日本語.txt"),
    ("filename*=UTF-8''zero%E2%80%8Bwidth.txt", "zerowidth.txt"),
    ('filename=""', "file.txt"),
]


async def test_unsafe_names_are_neutralised_in_metadata_and_on_disk(
    api: TestClient, room: dict[str, Any], tmp_path: Path
) -> None:
    sid, uid = room["session"], room["client"]
    for params, expected in UNSAFE_NAMES:
        resp = await post_raw(
            api, room["client_h"], [field("session_id", str(sid)), file_part(fs.text(), params)]
        )
        assert resp.status == 201, (params, await resp.text())
        meta = (await resp.json())["message"]["metadata"]
        assert meta["file_name"] == expected, params
        folder, user, key = meta["storage_path"].split("/")
        assert (folder, user) == (str(sid), str(uid)) and KEY.fullmatch(key), key
    files = stored_files(tmp_path)
    assert len(files) == len(UNSAFE_NAMES)  # never overwritten, never elsewhere
    assert {f.parent for f in files} == {tmp_path / "chat-files" / str(sid) / str(uid)}
    again = await post_raw(
        api,
        room["client_h"],
        [field("session_id", str(sid)), file_part(fs.text(), UNSAFE_NAMES[0][0])],
    )
    assert again.status == 201 and len(stored_files(tmp_path)) == len(UNSAFE_NAMES) + 1


async def test_malformed_forms_are_4xx_in_the_error_shape(
    api: TestClient, room: dict[str, Any], tmp_path: Path
) -> None:
    h, sid = room["client_h"], str(room["session"])
    resp = await api.post("/api/chat/upload", json={"session_id": sid}, headers=h)
    await error_of(resp, 415)
    resp = await api.post(
        "/api/chat/upload", data=b"--x\r\n", headers={**h, "Content-Type": "multipart/form-data"}
    )
    await error_of(resp, 400)
    for garbage in (
        b"",
        b"no boundary here",
        b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
    ):
        resp = await api.post(
            "/api/chat/upload",
            data=garbage,
            headers={**h, "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert resp.status in (400, 422), (garbage, resp.status)
        await error_of(resp, resp.status)
    cases: list[tuple[list[tuple[str, bytes]], int, str]] = [
        ([field("session_id", sid)], 422, "file: field required"),
        ([file_part(fs.text(), 'filename="a.txt"')], 422, "session_id: field required"),
        (
            [field("session_id", "not-a-uuid"), file_part(fs.text(), "")],
            422,
            "session_id: must be a UUID",
        ),
        ([field("session_id", sid), file_part(b"", 'filename="e.txt"')], 422, "empty"),
        ([field("session_id", sid), file_part(b"a", ""), file_part(b"b", "")], 422, "one file"),
        (
            [field("session_id", sid), field("type", "audio"), file_part(b"a", "")],
            422,
            "unknown field",
        ),
        (
            [field("session_id", sid), field("session_id", sid), file_part(b"a", "")],
            422,
            "more than once",
        ),
        (
            [field("session_id", sid), field("caption", "x" * 10_001), file_part(b"a", "")],
            422,
            "caption",
        ),
        (
            [
                field("session_id", sid),
                ('Content-Disposition: form-data; name="caption"', b"\xff"),
                file_part(b"a", ""),
            ],
            422,
            "UTF-8",
        ),
        (
            [field("session_id", sid), field("reply_to_message_id", "nope"), file_part(b"a", "")],
            422,
            "UUID",
        ),
        (
            [field("session_id", sid), field("caption", "x" * 70_000), file_part(b"a", "")],
            413,
            "caption",
        ),
        (
            [
                field("session_id", sid),
                (
                    FILE_HEAD + "\r\nContent-Transfer-Encoding: base64",
                    b"aGk=",
                ),
            ],
            400,
            "Content-Transfer-Encoding",
        ),
        (
            [
                field("session_id", sid),
                (
                    FILE_HEAD + "\r\nContent-Type: multipart/mixed; boundary=inner",
                    b"--inner\r\n\r\nx\r\n--inner--",
                ),
            ],
            400,
            "nested",
        ),
    ]
    for parts, status, words in cases:
        resp = await post_raw(api, h, parts)
        error = await error_of(resp, status)
        assert words in error["message"], (words, error)
    resp = await upload(api, {}, sid, fs.text())
    await error_of(resp, 401)
    assert stored_files(tmp_path) == [] and spooled_files(tmp_path) == []
