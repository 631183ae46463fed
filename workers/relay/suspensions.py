"""Whether a user is suspended from chat, as the relay asks before a join or a typing
event (sends are refused by the database itself). Answers are kept ``ttl`` seconds; a
suspension's notification (``Relay._db_suspended``) forgets the user's at once."""

from __future__ import annotations

import datetime as dt
import time
import uuid

from ..db import Database
from ..errors import ApiError
from ..messages import iso


class Suspensions:
    def __init__(self, db: Database, *, ttl: float = 10.0, limit: int = 100_000) -> None:
        self._db = db
        self._ttl = ttl
        self._limit = limit
        self._known: dict[uuid.UUID, tuple[dt.datetime | None, float]] = {}

    def forget(self, user_id: uuid.UUID) -> None:
        self._known.pop(user_id, None)

    async def until(self, user_id: uuid.UUID) -> dt.datetime | None:
        """When the user's suspension ends (datetime.max: until lifted), or None."""
        hit = self._known.get(user_id)
        now = time.monotonic()
        if hit is not None and hit[1] > now:
            return hit[0]
        async with self._db.as_service() as conn:
            until = await conn.fetchval("select chat_private.suspended_until($1)", user_id)
        if len(self._known) >= self._limit:
            self._known.clear()
        self._known[user_id] = (until, now + self._ttl)
        return until

    async def refuse(self, user_id: uuid.UUID) -> None:
        """Raise ``suspended`` (403) while the user is suspended."""
        until = await self.until(user_id)
        if until is None:
            return
        if until.year >= 9999:  # 'infinity' comes back as datetime.max
            raise ApiError(403, "suspended", "you are suspended from chat")
        raise ApiError(403, "suspended", f"you are suspended from chat until {iso(until)}")
