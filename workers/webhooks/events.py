"""The events sent to the host platform, in the Standard Webhooks envelope
``{type, timestamp, data}``. Free text written by users (message content, session titles)
is included only with ``WEBHOOK_INCLUDE_CONTENT``."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

WAITING = "chat.message.waiting"
SESSION_CREATED = "chat.session.created"
SESSION_CLOSED = "chat.session.closed"


@dataclass(frozen=True, slots=True)
class Event:
    """One outbox row to insert: ``dedupe_key`` names what it is about, so the same thing
    is never enqueued twice."""

    type: str
    dedupe_key: str
    session_id: uuid.UUID
    user_id: uuid.UUID | None
    payload: dict[str, Any]


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _id(value: Any) -> str | None:
    return None if value is None else str(value)


def _envelope(kind: str, at: dt.datetime, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "timestamp": iso(at), "data": data}


def waiting(row: Mapping[str, Any], *, include_content: bool, now: dt.datetime) -> Event:
    """A participant has had unread messages from others for the delay, with no socket
    joined. ``row``: session_id, user_id, session_type, booking_id, since_seq,
    since_at, unread, and the newest unread message (last_id, last_sender_id, last_type,
    last_created_at, last_content)."""
    last: dict[str, Any] = {
        "id": _id(row["last_id"]),
        "sender_id": _id(row["last_sender_id"]),
        "type": row["last_type"],
        "created_at": iso(row["last_created_at"]),
    }
    if include_content:
        last["content"] = row["last_content"]
    data = {
        "session_id": str(row["session_id"]),
        "session_type": row["session_type"],
        "booking_id": _id(row["booking_id"]),
        "user_id": str(row["user_id"]),
        "unread_count": row["unread"],
        "first_unread_at": iso(row["since_at"]),
        "last_message": last,
    }
    key = f"{WAITING}:{row['session_id']}:{row['user_id']}:{row['since_seq']}"
    return Event(WAITING, key, row["session_id"], row["user_id"], _envelope(WAITING, now, data))


def _session_data(row: Mapping[str, Any], include_content: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "session_id": str(row["id"]),
        "session_type": row["type"],
        "booking_id": _id(row["booking_id"]),
        "participants": [str(p) for p in row["participants"]],
    }
    if include_content:
        data["title"] = row["title"]
    return data


def session_created(row: Mapping[str, Any], *, include_content: bool) -> Event:
    data = _session_data(row, include_content)
    data["created_by"] = _id(row["created_by"])
    data["created_at"] = iso(row["created_at"])
    key = f"{SESSION_CREATED}:{row['id']}"
    return Event(
        SESSION_CREATED, key, row["id"], None, _envelope(SESSION_CREATED, row["created_at"], data)
    )


def session_closed(row: Mapping[str, Any], *, include_content: bool) -> Event:
    """``row``: the session, with ``closed_by`` and ``closed_at`` from the closing system
    message (one per close: a reopened session that closes again is announced again)."""
    data = _session_data(row, include_content)
    data["closed_by"] = _id(row["closed_by"])
    data["closed_at"] = iso(row["closed_at"])
    key = f"{SESSION_CLOSED}:{row['id']}:{row['closing_message_id']}"
    return Event(
        SESSION_CLOSED, key, row["id"], None, _envelope(SESSION_CLOSED, row["closed_at"], data)
    )
