"""The outbox queue in ``chat_private.webhook_outbox``: claim due rows, record what each
attempt gave, purge old rows, count what waits."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from ..db import Database
from .sender import Attempt


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    event_type: str
    payload: Any
    attempts: int  # before this attempt
    created_at: dt.datetime
    retry_since: dt.datetime


# A claimed row's next_attempt_at becomes the end of its lease: if the worker dies
# mid-attempt, the row is due again then (at-least-once, same webhook-id).
_CLAIM = """
with due as (
  select o.id
  from chat_private.webhook_outbox as o
  where o.status = 'pending' and o.next_attempt_at <= now()
  order by o.next_attempt_at
  limit $1
  for update skip locked
)
update chat_private.webhook_outbox as o
set next_attempt_at = now() + make_interval(secs => $2)
from due
where o.id = due.id
returning o.id, o.event_type, o.payload, o.attempts, o.created_at, o.retry_since
"""

_DELIVERED = """
update chat_private.webhook_outbox
set status = 'delivered', delivered_at = now(), attempts = attempts + 1,
  last_attempt_at = now(), last_status = $2, last_error = null
where id = $1 and status = 'pending'
returning extract(epoch from delivered_at - created_at)::float8 as latency
"""

# Retried until the window (from enqueue or replay) is over: the last attempt is made at
# its end, after which the row is dead.
_FAILED = """
update chat_private.webhook_outbox
set attempts = attempts + 1, last_attempt_at = now(), last_status = $2, last_error = $3,
  status = case
    when $4::text is not null or now() >= retry_since + make_interval(secs => $6) then 'dead'
    else 'pending' end,
  dead_reason = case
    when $4::text is not null then $4::text
    when now() >= retry_since + make_interval(secs => $6) then 'expired' end,
  next_attempt_at = least(
    now() + make_interval(secs => $5), retry_since + make_interval(secs => $6)
  )
where id = $1 and status = 'pending'
returning status
"""


class Outbox:
    def __init__(self, *, db: Database, window: float) -> None:
        self._db = db
        self._window = window

    async def claim(self, *, limit: int, lease: float) -> list[Claimed]:
        async with self._db.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, limit, lease)
        return [Claimed(**dict(r)) for r in rows]

    async def release(self, row: Claimed) -> None:
        """Give back a claimed row whose attempt was abandoned: due now."""
        async with self._db.pool.acquire() as conn:
            await conn.execute(
                "update chat_private.webhook_outbox set next_attempt_at = now() "
                "where id = $1 and status = 'pending'",
                row.id,
            )

    async def delivered(self, row: Claimed, attempt: Attempt) -> float | None:
        """Record a delivery; the seconds from enqueue, or None if the row had changed."""
        async with self._db.pool.acquire() as conn:
            latency: float | None = await conn.fetchval(_DELIVERED, row.id, attempt.status)
        return latency

    async def failed(self, row: Claimed, attempt: Attempt, delay: float) -> str | None:
        """Record a failed attempt; the row's new status (pending or dead)."""
        async with self._db.pool.acquire() as conn:
            status: str | None = await conn.fetchval(
                _FAILED,
                row.id,
                attempt.status,
                attempt.error,
                attempt.dead_reason,
                delay,
                self._window,
            )
        return status

    async def counts(self) -> dict[str, int]:
        async with self._db.pool.acquire() as conn:
            pending = await conn.fetchval(
                "select count(*) from chat_private.webhook_outbox where status = 'pending'"
            )
            dead = await conn.fetchval(
                "select count(*) from chat_private.webhook_outbox where status = 'dead'"
            )
        return {"pending": pending, "dead": dead}

    async def purge(self, *, older_than_days: float) -> dict[str, int]:
        """Delivered and dead rows, and notified periods, older than the retention."""
        async with self._db.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetchval(
                "with gone as (delete from chat_private.webhook_outbox "
                "where status <> 'pending' "
                "and created_at < now() - make_interval(secs => $1 * 86400) "
                "returning 1) select count(*) from gone",
                older_than_days,
            )
            periods = await conn.fetchval(
                "with gone as (delete from chat_private.webhook_waiting "
                "where status = 'notified' "
                "and created_at < now() - make_interval(secs => $1 * 86400) "
                "returning 1) select count(*) from gone",
                older_than_days,
            )
        return {"deliveries": rows, "periods": periods}
