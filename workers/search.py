"""Full-text search over the messages a user may read, and the filtered session list:
the SQL functions ``search_chat_messages`` and ``find_my_chat_sessions``, as the user."""

from __future__ import annotations

import html
import uuid
from typing import Any

import asyncpg

from .messages import MESSAGE_FIELDS, message_payloads

# search_chat_messages marks each hit between these two characters (never in a snippet
# otherwise); the API turns them into <mark> around HTML-escaped text.
_START, _STOP = "\x02", "\x03"


def highlight(snippet: str) -> str:
    """The snippet as safe HTML: escaped text, hits in ``<mark>``."""
    return html.escape(snippet).replace(_START, "<mark>").replace(_STOP, "</mark>")


async def messages(
    conn: asyncpg.Connection,
    *,
    query: str,
    session_id: uuid.UUID | None,
    limit: int,
    before_id: uuid.UUID | None,
) -> tuple[list[dict[str, Any]], bool]:
    """Best match first; one row more than asked tells whether more remain."""
    rows = await conn.fetch(
        f"select {MESSAGE_FIELDS}, rank, snippet from public.search_chat_messages("
        "query => $1, in_session_id => $2, max_rows => $3, before_id => $4)",
        query,
        session_id,
        limit + 1,
        before_id,
    )
    page, more = list(rows[:limit]), len(rows) > limit
    payloads = await message_payloads(conn, page)
    results = [
        {"message": payload, "rank": float(row["rank"]), "snippet": highlight(row["snippet"])}
        for row, payload in zip(page, payloads, strict=True)
    ]
    return results, more
