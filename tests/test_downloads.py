"""GET /api/chat/files/{path}: participants only (as the user, under the storage
policies), streamed with the right headers, one Range, and signed URLs that need no
token but expire and resist tampering."""

from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from workers.keys import URL_SIGNER
from workers.storage.signing import UrlSigner

from . import file_samples as fs
from .api_helpers import api_client, bearer, error_of, make_session
from .conftest import SECRET, Users
from .upload_helpers import upload


@pytest.fixture
async def api(database_url: str, tmp_path: Path) -> AsyncIterator[TestClient]:
    async with api_client(database_url, data_dir=tmp_path) as client:
        yield client


@pytest.fixture
async def shared(api: TestClient, users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    """A session with a voice note, a picture, a PDF and a text file from the client."""
    client = await users.create("client")
    reader = await users.create("reader")
    outsider = await users.create("client")
    sid = await make_session(superuser, client, reader)
    client_h = bearer(users.token(client))
    files = {}
    for key, content, name in [
        ("voice", fs.wav(2000), "voice note.wav"),
        ("image", fs.png(8, 6), "chart.png"),
        ("pdf", fs.pdf(), "Reading résumé.pdf"),
        ("text", fs.text(), 'notes "final".txt'),
    ]:
        resp = await upload(api, client_h, sid, content, filename=name)
        assert resp.status == 201, await resp.text()
        files[key] = {"content": content, **(await resp.json())["file"]}
    return {
        "session": sid,
        "files": files,
        "client_h": client_h,
        "reader_h": bearer(users.token(reader, "reader")),
        "outsider_h": bearer(users.token(outsider)),
    }


def _url(path: str) -> str:
    return "/api/chat/files/" + urllib.parse.quote(path, safe="/")


async def test_participants_download_with_type_length_and_disposition(
    api: TestClient, shared: dict[str, Any]
) -> None:
    expected = {
        "voice": ("audio/wav", 'inline; filename="voice note.wav"'),
        "image": ("image/png", 'inline; filename="chart.png"'),
        "pdf": ("application/pdf", 'attachment; filename="Reading resume.pdf"'),
        "text": ("text/plain; charset=utf-8", 'attachment; filename="notes _final_.txt"'),
    }
    for key, (content_type, disposition) in expected.items():
        item = shared["files"][key]
        for headers in (shared["client_h"], shared["reader_h"]):
            resp = await api.get(_url(item["storage_path"]), headers=headers)
            assert resp.status == 200, await resp.text()
            assert await resp.read() == item["content"]
            assert resp.headers["Content-Type"] == content_type
            assert resp.headers["Content-Length"] == str(len(item["content"]))
            assert resp.headers["Content-Disposition"].startswith(disposition)
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Accept-Ranges"] == "bytes"
    pdf = await api.get(_url(shared["files"]["pdf"]["storage_path"]), headers=shared["reader_h"])
    await pdf.read()
    assert "filename*=UTF-8''Reading%20r%C3%A9sum%C3%A9.pdf" in pdf.headers["Content-Disposition"]


async def test_outsiders_and_strangers_cannot_download(
    api: TestClient, shared: dict[str, Any]
) -> None:
    path = shared["files"]["voice"]["storage_path"]
    resp = await api.get(_url(path), headers=shared["outsider_h"])
    assert (await error_of(resp, 404))["code"] == "not_found"
    resp = await api.get(_url(path))
    await error_of(resp, 401)
    sid = shared["session"]
    for raw in (
        f"{sid}/{uuid.uuid4()}/missing.wav",
        f"{sid}/..%2F..%2Fetc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        f"{sid}/%2E%2E/%2E%2E/etc/passwd",
        f"{sid}//x.wav",
        f"{sid}/a%00b/c.txt",
        "x" * 2000,
    ):
        resp = await api.get(
            URL("/api/chat/files/" + raw, encoded=True), headers=shared["reader_h"]
        )
        await error_of(resp, 404)


async def test_range_requests_serve_206_and_416(api: TestClient, shared: dict[str, Any]) -> None:
    item = shared["files"]["voice"]
    content, size, url = item["content"], len(item["content"]), _url(item["storage_path"])
    h = shared["reader_h"]
    for header, (first, last) in {
        "bytes=0-99": (0, 99),
        "bytes=100-": (100, size - 1),
        "bytes=-10": (size - 10, size - 1),
        f"bytes=40-{size + 500}": (40, size - 1),
    }.items():
        resp = await api.get(url, headers={**h, "Range": header})
        assert resp.status == 206, header
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert resp.headers["Content-Length"] == str(last - first + 1)
        assert await resp.read() == content[first : last + 1]
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
        resp = await api.get(url, headers={**h, "Range": header})
        assert (await error_of(resp, 416))["code"] == "range_not_satisfiable"
        assert resp.headers["Content-Range"] == f"bytes */{size}"
    for header in ("bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc"):
        resp = await api.get(url, headers={**h, "Range": header})
        assert resp.status == 200 and await resp.read() == content, header
    etag = resp.headers["ETag"]
    resp = await api.get(url, headers={**h, "Range": "bytes=0-3", "If-Range": etag})
    assert resp.status == 206
    resp = await api.get(url, headers={**h, "Range": "bytes=0-3", "If-Range": '"stale"'})
    assert resp.status == 200


async def test_signed_urls_work_without_a_token_until_they_expire(
    api: TestClient, shared: dict[str, Any]
) -> None:
    item = shared["files"]["image"]
    resp = await api.get(item["url"])  # no Authorization
    assert resp.status == 200 and await resp.read() == item["content"]
    resp = await api.get(item["url"], headers={"Range": "bytes=0-7"})
    assert resp.status == 206 and await resp.read() == item["content"][:8]

    url = URL(item["url"])
    signature, expires = url.query["signature"], int(url.query["expires"])
    tampered = [
        url.update_query(signature=signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")),
        url.update_query(expires=expires + 60),
        URL(_url(shared["files"]["pdf"]["storage_path"])).with_query(url.query),
        url.with_query({"expires": str(expires)}),
        url.with_query({"signature": signature}),
    ]
    for bad in tampered:
        resp = await api.get(bad)
        assert (await error_of(resp, 403))["code"] == "invalid_signature", bad

    path = item["storage_path"]
    signer: UrlSigner = api.server.app[URL_SIGNER]
    assert signer.url(path, 60).startswith(f"/api/chat/files/{path}?")
    expired = UrlSigner(SECRET.encode(), clock=lambda: time.time() - 3600).url(path, 60)
    resp = await api.get(expired)
    assert (await error_of(resp, 403))["code"] == "url_expired"
    resp = await api.get(url.with_query({"expires": "soon", "signature": signature}))
    await error_of(resp, 400)


async def test_message_payloads_carry_a_fresh_signed_url(
    api: TestClient, shared: dict[str, Any]
) -> None:
    resp = await api.get(f"/api/chat/messages/{shared['session']}", headers=shared["reader_h"])
    messages = (await resp.json())["messages"]
    assert {m["type"] for m in messages} == {"audio", "image", "file"}
    for message in messages:
        meta = message["metadata"]
        got = await api.get(meta["url"])
        assert got.status == 200
        assert got.headers["Content-Length"] == str(meta["size_bytes"])
