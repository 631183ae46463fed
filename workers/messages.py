"""Messages and sessions as clients see them: one shape for the relay and the REST API."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg

# Columns of a message row, in the order the payload uses them.
MESSAGE_COLUMNS = (
    "id, seq, session_id, sender_id, type, content, reply_to_message_id, metadata, "
    "client_message_id, created_at"
)


def iso(value: dt.datetime | None) -> str | None:
    """UTC ISO-8601 with a Z, millisecond precision kept as stored."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(dt.datetime.now(dt.UTC)) or ""


async def user_names(
    conn: asyncpg.Connection, user_ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    """Display names of users who share a session with the connection's user (RLS-aware
    SQL function); under the service role, of anyone."""
    wanted = sorted({u for u in user_ids if u is not None})
    if not wanted:
        return {}
    rows = await conn.fetch("select user_id, name from public.chat_user_names($1::uuid[])", wanted)
    return {r["user_id"]: r["name"] for r in rows}


def message_payload(row: Mapping[str, Any], names: Mapping[uuid.UUID, str]) -> dict[str, Any]:
    sender = row["sender_id"]
    return {
        "id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "sender_id": str(sender) if sender else None,
        "sender_name": names.get(sender, "System" if row["type"] == "system" else "user")
        if sender
        else ("System" if row["type"] == "system" else None),
        "type": row["type"],
        "content": row["content"],
        "reply_to_message_id": str(row["reply_to_message_id"])
        if row["reply_to_message_id"]
        else None,
        "metadata": row["metadata"] or {},
        "client_message_id": row["client_message_id"],
        "created_at": iso(row["created_at"]),
        "seq": row["seq"],
    }


async def message_payloads(
    conn: asyncpg.Connection, rows: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    names = await user_names(conn, (r["sender_id"] for r in rows))
    return [message_payload(r, names) for r in rows]
