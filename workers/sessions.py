"""Chat sessions as the REST API shows them: the SQL functions' rows (read as the user, so
RLS decides), with the host platform's booking summary when there is one."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from .errors import ApiError

_COLUMNS = (
    "id, participants, type, booking_id, status, title, created_by, created_at, "
    "updated_at, last_message_at, closed_at"
)
_LIST = (
    f"select {_COLUMNS}, unread_count, last_message "
    "from public.list_my_chat_sessions(max_rows => $1, skip_rows => $2)"
)
_SQL_PAGE_MAX = 200  # list_my_chat_sessions caps max_rows here


async def list_mine(
    conn: asyncpg.Connection, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], bool]:
    """One page of the caller's sessions, newest activity first, and whether more follow.

    One row past the page says whether more follow (no count of every session); the SQL
    function returns at most 200 rows, so a full page of 200 asks for the next row alone."""
    rows = await conn.fetch(_LIST, min(limit + 1, _SQL_PAGE_MAX), offset)
    has_more = len(rows) > limit
    if len(rows) == limit == _SQL_PAGE_MAX:
        has_more = bool(await conn.fetch(_LIST, 1, min(offset + limit, 2**31 - 1)))
    return await _with_bookings(conn, rows[:limit]), has_more


async def find_mine(
    conn: asyncpg.Connection,
    *,
    text: str | None,
    type_: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], bool]:
    """The caller's sessions matching the filters (text in the title or any message, by
    full text; type; status), newest activity first, and whether more follow."""
    rows = await conn.fetch(
        f"select {_COLUMNS}, unread_count, last_message, total_count "
        "from public.find_my_chat_sessions(search => $1, session_type => $2, "
        "session_status => $3, max_rows => $4, skip_rows => $5)",
        text,
        type_,
        status,
        limit,
        offset,
    )
    total = rows[0]["total_count"] if rows else 0
    return await _with_bookings(conn, rows), offset + len(rows) < total


async def get_mine(conn: asyncpg.Connection, session_id: uuid.UUID) -> dict[str, Any]:
    """A session the caller takes part in; 404 for anyone else, existing or not."""
    row = await conn.fetchrow(
        f"select {_COLUMNS}, unread_count, last_message "
        "from public.get_chat_session(session_id => $1)",
        session_id,
    )
    if row is None:
        raise ApiError(404, "not_found", f"chat session {session_id} not found")
    (session,) = await _with_bookings(conn, [row])
    return session


async def create(
    conn: asyncpg.Connection,
    *,
    participants: Sequence[uuid.UUID],
    type_: str,
    booking_id: uuid.UUID | None,
    title: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"select {_COLUMNS} from public.create_chat_session("
        "participants => $1::uuid[], type => $2, booking_id => $3, title => $4)",
        list(participants),
        type_,
        booking_id,
        title,
    )
    (session,) = await _with_bookings(conn, [row])
    return session


async def close(
    conn: asyncpg.Connection, session_id: uuid.UUID, *, as_admin: bool
) -> dict[str, Any]:
    """Close a session: participants through ``close_chat_session``; admins through the
    audited ``admin_close_chat_session``, which reaches sessions they are not in."""
    function = "admin_close_chat_session" if as_admin else "close_chat_session"
    closed = await conn.fetchrow(
        f"select {_COLUMNS} from public.{function}(session_id => $1)", session_id
    )
    # Participants see the session as GET does (unread count, the closing message);
    # an admin outside it gets the bare row.
    row = await conn.fetchrow(
        f"select {_COLUMNS}, unread_count, last_message "
        "from public.get_chat_session(session_id => $1)",
        session_id,
    )
    (session,) = await _with_bookings(conn, [row if row is not None else closed])
    return session


async def _with_bookings(
    conn: asyncpg.Connection, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    booking_ids = sorted({r["booking_id"] for r in rows if r["booking_id"] is not None})
    summaries: dict[str, Any] = {}
    if booking_ids:
        summaries = await conn.fetchval(
            "select public.chat_booking_summaries($1::uuid[])", booking_ids
        )
    sessions = []
    for row in rows:
        session = dict(row)
        session.setdefault("unread_count", 0)
        session.setdefault("last_message", None)
        key = str(row["booking_id"]) if row["booking_id"] is not None else None
        session["bookings"] = (
            {"service_name": summaries[key]} if key is not None and key in summaries else None
        )
        sessions.append(session)
    return sessions
