"""Helpers for REST API tests: the app over real HTTP, sessions and messages arranged as
the table owner."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from workers.app import create_app

from .conftest import settings_for


@asynccontextmanager
async def api_client(database_url: str, **overrides: Any) -> AsyncIterator[TestClient]:
    app = create_app(settings_for(database_url, **overrides))
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def error_of(resp: ClientResponse, status: int) -> dict[str, str]:
    """Assert the status and the one error shape; return {"code", "message"}."""
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    return body["error"]


async def make_session(
    superuser: asyncpg.Connection,
    *members: uuid.UUID,
    type_: str = "support",
    booking_id: uuid.UUID | None = None,
    title: str | None = None,
) -> uuid.UUID:
    if type_ == "booking" and booking_id is None:
        booking_id = uuid.uuid4()
    return await superuser.fetchval(
        "insert into public.chat_sessions (participants, type, booking_id, title, created_by) "
        "values ($1::uuid[], $2, $3, $4, $5) returning id",
        list(members),
        type_,
        booking_id,
        title,
        members[0],
    )


async def add_message(
    superuser: asyncpg.Connection,
    session_id: uuid.UUID,
    sender: uuid.UUID,
    content: str = "hello",
    *,
    created_at: dt.datetime | None = None,
) -> uuid.UUID:
    return await superuser.fetchval(
        "insert into public.chat_messages (session_id, sender_id, content, created_at) "
        "values ($1, $2, $3, coalesce($4, clock_timestamp())) returning id",
        session_id,
        sender,
        content,
        created_at,
    )
