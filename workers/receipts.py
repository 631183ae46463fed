"""Delivery receipts and per-participant cursors (``chat_delivery_state`` beside
``chat_read_state``), read and written as the user, so RLS decides."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from .messages import iso


async def mark_delivered(
    conn: asyncpg.Connection, session_id: uuid.UUID, up_to_message_id: uuid.UUID | None
) -> bool:
    """Advance the caller's delivery cursor; True when it moved (then the room is told)."""
    moved = await conn.fetchval(
        "select public.mark_chat_messages_delivered(session_id => $1, up_to_message_id => $2)",
        session_id,
        up_to_message_id,
    )
    return bool(moved)


async def cursors(conn: asyncpg.Connection, session_id: uuid.UUID) -> list[dict[str, Any]]:
    """Every participant's delivery cursor (a read counts as delivered) and read cursor."""
    rows = await conn.fetch(
        "select user_id, delivered_message_id, delivered_at, delivered_seq, "
        "read_message_id, read_at, read_seq from public.get_chat_receipts(session_id => $1)",
        session_id,
    )
    return [
        {
            "user_id": str(r["user_id"]),
            "delivered": _cursor(r["delivered_message_id"], r["delivered_at"], r["delivered_seq"]),
            "read": _cursor(r["read_message_id"], r["read_at"], r["read_seq"]),
        }
        for r in rows
    ]


def _cursor(message_id: Any, at: Any, seq: Any) -> dict[str, Any] | None:
    if message_id is None:
        return None
    return {"message_id": str(message_id), "created_at": iso(at), "seq": seq}
