"""Reading and writing messages for the REST API, through the same SQL functions as the
relay (as the user, so RLS decides); rows become the relay's ``new_message`` shape."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg

from .messages import MESSAGE_COLUMNS, message_payloads


async def page(
    conn: asyncpg.Connection,
    session_id: uuid.UUID,
    *,
    limit: int,
    offset: int,
    before: dt.datetime | None,
    before_id: uuid.UUID | None,
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first; one row more than asked tells whether older ones remain."""
    rows = await conn.fetch(
        f"select {MESSAGE_COLUMNS} from public.get_chat_messages("
        "session_id => $1, max_rows => $2, skip_rows => $3, before => $4, before_id => $5)",
        session_id,
        limit + 1,
        offset,
        before,
        before_id,
    )
    return await message_payloads(conn, list(rows[:limit])), len(rows) > limit


async def send(
    conn: asyncpg.Connection,
    *,
    session_id: uuid.UUID,
    type_: str,
    content: str | None,
    reply_to_message_id: uuid.UUID | None,
    metadata: dict[str, Any],
    client_message_id: str | None,
) -> dict[str, Any]:
    """Insert through ``send_chat_message`` in the caller's transaction (uploads: the file
    and its message commit together); its NOTIFY carries it to the session's sockets
    once the transaction commits."""
    row = await conn.fetchrow(
        f"select {MESSAGE_COLUMNS} from public.send_chat_message("
        "session_id => $1, content => $2, type => $3, reply_to_message_id => $4, "
        "metadata => $5::jsonb, client_message_id => $6)",
        session_id,
        content,
        type_,
        reply_to_message_id,
        metadata,
        client_message_id,
    )
    (message,) = await message_payloads(conn, [row])
    return message


async def mark_read(
    conn: asyncpg.Connection, session_id: uuid.UUID, up_to_message_id: uuid.UUID | None
) -> int:
    """Advance the caller's read cursor; the read-state trigger tells the relay."""
    count = await conn.fetchval(
        "select public.mark_chat_messages_read(session_id => $1, up_to_message_id => $2)",
        session_id,
        up_to_message_id,
    )
    return int(count or 0)
