"""Operational events (chat_monitoring), written in batches by the service role, and the
retention task that deletes old ones (public.purge_chat_monitoring).

Event types: connect, disconnect, join, leave, message, upload, error; each with the user
and, where there is one, the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import uuid
from typing import Any

from .audit import as_uuid
from .batching import BatchWriter

log = logging.getLogger(__name__)

INSERT_MONITORING = """
insert into public.chat_monitoring (event_type, user_id, session_id, details, timestamp)
select r.event_type, r.user_id, r.session_id, coalesce(r.details, '{}'::jsonb),
  coalesce(r.happened_at, now())
from rows from (
  jsonb_to_recordset($1::jsonb) as (
    event_type text, user_id uuid, session_id uuid, details jsonb, happened_at timestamptz
  )
) with ordinality as r (event_type, user_id, session_id, details, happened_at, n)
order by r.n
"""

RETENTION_EVERY = 3600.0  # seconds between purges


class MonitoringWriter(BatchWriter):
    def __init__(
        self, *, retention_days: float = 30.0, purge_every: float = RETENTION_EVERY, **kwargs: Any
    ) -> None:
        """``retention_days`` 0 keeps events forever."""
        super().__init__(name="monitoring", sql=INSERT_MONITORING, **kwargs)
        self.retention_days = retention_days
        self.purge_every = purge_every
        self.purged = 0
        self._purger: asyncio.Task[None] | None = None

    def record(
        self,
        event_type: str,
        *,
        user_id: uuid.UUID | str | None = None,
        session_id: uuid.UUID | str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.append(
            {
                "event_type": event_type[:64],
                "user_id": as_uuid(user_id),
                "session_id": as_uuid(session_id),
                "details": details or {},
                "happened_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )

    async def start(self) -> None:
        await super().start()
        if self.retention_days > 0:
            self._purger = asyncio.create_task(self._purge_forever(), name="monitoring-retention")

    async def stop(self, *, grace: float = 5.0) -> None:
        if self._purger is not None:
            self._purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._purger
            self._purger = None
        await super().stop(grace=grace)

    async def purge(self) -> int:
        """Delete events older than the retention age; returns how many."""
        async with self._db.as_service() as conn:
            deleted = await conn.fetchval(
                "select public.purge_chat_monitoring(make_interval(secs => $1))",
                self.retention_days * 86400.0,
            )
        self.purged += deleted
        return int(deleted)

    async def _purge_forever(self) -> None:
        while True:
            try:
                deleted = await self.purge()
                if deleted:
                    log.info("monitoring retention: deleted %d event(s)", deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("monitoring retention failed (%s); next try later", exc)
            await asyncio.sleep(self.purge_every)
