"""Fault: an upload cut off mid-stream (the client vanishes while the file is arriving)
leaves no object, no message, no journal row and no temporary file, and the service
keeps serving. A real server on a real port; the client is a raw TCP socket."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from .api_helpers import bearer, make_session
from .conftest import Users
from .relay_helpers import running_relay
from .upload_helpers import BOUNDARY, file_messages, object_names, spooled_files, stored_files

pytestmark = [pytest.mark.fault, pytest.mark.timeout(30)]


def _head(port: int, token: str, session_id: str, declared: int) -> bytes:
    preamble = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="session_id"\r\n\r\n'
        f"{session_id}\r\n"
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    headers = (
        "POST /api/chat/upload HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    return headers + preamble


@pytest.mark.parametrize("how", ["fin", "reset"])
async def test_upload_cut_off_mid_stream_leaves_nothing(
    database_url: str,
    users: Users,
    superuser: asyncpg.Connection,
    tmp_path: Path,
    how: str,
) -> None:
    client = await users.create("client")
    session_id = await make_session(superuser, client)
    token = users.token(client)
    async with running_relay(database_url, data_dir=tmp_path) as (url, _relay):
        port = int(url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_head(port, token, str(session_id), declared=8 * 1024 * 1024))
        chunk = b"All work and no play makes Jack a dull boy.\n" * 1024  # 45 kB
        for _ in range(40):  # about 1.8 MB of the 8 MB announced
            writer.write(chunk)
            await writer.drain()
        # The server is spooling: a temporary file exists now.
        for _ in range(50):
            if spooled_files(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert spooled_files(tmp_path), "the upload should be in progress"
        if how == "reset":  # RST instead of FIN
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()
        reader.feed_eof()

        # Everything the upload started is cleaned up within a few seconds.
        for _ in range(100):
            if not spooled_files(tmp_path):
                break
            await asyncio.sleep(0.05)
        assert spooled_files(tmp_path) == []
        assert stored_files(tmp_path) == []
        assert await object_names(superuser, session_id) == []
        assert await file_messages(superuser, session_id) == 0
        pending = await superuser.fetchval(
            "select count(*) from chat_private.pending_uploads where storage_path like $1",
            f"{session_id}/%",
        )
        assert pending == 0
        assert await superuser.fetchval("select chat_private.uploaded_today($1)", client) == 0

        # The service is unaffected: the same user uploads at once.
        async with aiohttp.ClientSession() as http:
            form = aiohttp.FormData()
            form.add_field("session_id", str(session_id))
            form.add_field("file", b"hello again\n", filename="a.txt", content_type="text/plain")
            async with http.post(f"{url}/api/chat/upload", data=form, headers=bearer(token)) as r:
                body: Any = await r.json()
                assert r.status == 201, body
        assert len(await object_names(superuser, session_id)) == 1
