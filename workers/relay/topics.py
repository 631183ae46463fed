"""The relay's side of Supabase Realtime topics ``chat:<session_id>`` (Broadcast from the
database; docs/realtime.md).

Everything the database writes is broadcast by its own triggers. What only the relay knows,
its sockets' typing and presence, it sends to the session's topic here, through
``chat_private.broadcast()`` (a row in ``realtime.messages``, which Realtime delivers to
supabase-js subscribers), marked ``origin: "relay"`` so the database does not echo it back.
Typing that supabase-js clients write through the database comes the other way, on the
changefeed (``Relay._db_typing``).

Best effort, like typing itself: sends run in the background, at most ``max_in_flight`` at
once (beyond, they are dropped and counted), and nothing is sent while the database says
broadcasting is off or there is no ``realtime`` schema (checked every ``recheck`` seconds).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from ..auth import Principal
from ..db import Database
from ..messages import now_iso
from ..tasks import spawn

log = logging.getLogger(__name__)


class RealtimeTopics:
    def __init__(self, db: Database, *, max_in_flight: int = 64, recheck: float = 60.0) -> None:
        self._db = db
        self._max = max_in_flight
        self._recheck = recheck
        self._enabled: bool | None = None
        self._checked = 0.0
        self._in_flight = 0
        self.sent = 0
        self.dropped = 0

    async def enabled(self) -> bool:
        now = time.monotonic()
        if self._enabled is None or now - self._checked >= self._recheck:
            self._checked = now
            try:
                async with self._db.as_service() as conn:
                    self._enabled = bool(
                        await conn.fetchval("select chat_private.broadcast_enabled()")
                    )
            except Exception:
                log.warning("could not read whether Realtime broadcasting is on", exc_info=True)
                self._enabled = False
        return self._enabled

    def typing(self, principal: Principal, session_id: uuid.UUID, typing: bool) -> None:
        self._send(principal, session_id, "typing_start" if typing else "typing_stop")

    def presence(self, principal: Principal, session_id: uuid.UUID, online: bool) -> None:
        self._send(principal, session_id, "user_joined" if online else "user_left")

    def _send(self, principal: Principal, session_id: uuid.UUID, event: str) -> None:
        if self._enabled is False and time.monotonic() - self._checked < self._recheck:
            return
        if self._in_flight >= self._max:
            self.dropped += 1
            return
        payload = {
            "user_id": str(principal.user_id),
            "user_name": principal.name,
            "session_id": str(session_id),
            "timestamp": now_iso(),
            "origin": "relay",
        }
        self._in_flight += 1
        spawn(self._write(payload, event, session_id), name="realtime-topic-send")

    async def _write(self, payload: dict[str, Any], event: str, session_id: uuid.UUID) -> None:
        try:
            if not await self.enabled():
                return
            async with self._db.as_service() as conn:
                await asyncio.wait_for(
                    conn.execute(
                        "select chat_private.broadcast($1::jsonb, $2, $3)",
                        payload,
                        event,
                        session_id,
                    ),
                    timeout=5,
                )
            self.sent += 1
        except Exception as exc:  # best effort: a typing indicator is not worth an error
            self.dropped += 1
            log.debug("realtime topic send failed: %r", exc)
        finally:
            self._in_flight -= 1
