"""Helpers for upload tests: multipart bodies (built by aiohttp, or byte by byte when a
test needs names and headers a well-behaved client would not send), and what is on disk
and in storage.objects afterwards."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

BOUNDARY = "----chat-test-boundary-7MA4YWxkTrZu0gW"


def form(
    session_id: uuid.UUID | str | None,
    content: Any,
    *,
    filename: str = "upload.bin",
    content_type: str | None = None,
    **fields: str,
) -> aiohttp.FormData:
    data = aiohttp.FormData(quote_fields=False)  # names as browsers send them
    if session_id is not None:
        data.add_field("session_id", str(session_id))
    for name, value in fields.items():
        data.add_field(name, value)
    data.add_field("file", content, filename=filename, content_type=content_type)
    return data


async def upload(
    api: TestClient,
    headers: dict[str, str],
    session_id: uuid.UUID | str | None,
    content: Any,
    **kwargs: Any,
) -> ClientResponse:
    return await api.post(
        "/api/chat/upload", data=form(session_id, content, **kwargs), headers=headers
    )


def raw_multipart(parts: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """A body from (raw part headers, content) pairs, exactly as given."""
    body = b""
    for head, content in parts:
        body += f"--{BOUNDARY}\r\n".encode() + head.encode("utf-8", "surrogatepass")
        body += b"\r\n\r\n" + content + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, f"multipart/form-data; boundary={BOUNDARY}"


def field(name: str, value: str) -> tuple[str, bytes]:
    return f'Content-Disposition: form-data; name="{name}"', value.encode()


def file_part(
    content: bytes, disposition_params: str, content_type: str | None = None
) -> tuple[str, bytes]:
    head = 'Content-Disposition: form-data; name="file"'
    if disposition_params:
        head += f"; {disposition_params}"
    if content_type:
        head += f"\r\nContent-Type: {content_type}"
    return head, content


async def post_raw(
    api: TestClient, headers: dict[str, str], parts: list[tuple[str, bytes]]
) -> ClientResponse:
    body, content_type = raw_multipart(parts)
    return await api.post(
        "/api/chat/upload", data=body, headers={**headers, "Content-Type": content_type}
    )


def stored_files(data_dir: Path) -> list[Path]:
    """Files in the bucket directory (not the spool)."""
    bucket = data_dir / "chat-files"
    return sorted(p for p in bucket.rglob("*") if p.is_file()) if bucket.exists() else []


def spooled_files(data_dir: Path) -> list[Path]:
    spool = data_dir / "tmp"
    return sorted(spool.iterdir()) if spool.exists() else []


async def object_names(superuser: asyncpg.Connection, session_id: uuid.UUID) -> list[str]:
    rows = await superuser.fetch(
        "select name from storage.objects where bucket_id = 'chat-files' and name like $1 "
        "order by name",
        f"{session_id}/%",
    )
    return [r["name"] for r in rows]


async def file_messages(superuser: asyncpg.Connection, session_id: uuid.UUID) -> int:
    return await superuser.fetchval(
        "select count(*) from public.chat_messages where session_id = $1 "
        "and type in ('audio', 'image', 'file')",
        session_id,
    )
