"""The audit hash chain, linked in the background, one linker per database.

Audit rows are written in the same transaction as the change they record (nothing audited
can be lost) but no longer chained at commit under one locked row: that serialized every
commit. Instead, every relay runs an :class:`AuditLinker`; the one holding a PostgreSQL
advisory lock (on a connection of its own) is the leader and calls
``chat_private.link_audit_chain()`` every ``interval`` seconds, which chains the committed
rows whose transaction precedes its snapshot's xmin, in (xact_id, id) order. When the
leader dies its connection closes, the lock is released, and another relay's linker takes
over within ``retry`` seconds.

The link delay (linked_at - created_at) is bounded by the interval plus the longest
transaction running at the time; it is reported (``max_delay_ms``, Prometheus) and logged
when it exceeds ``warn_after`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# pg_try_advisory_lock key: 'chatlink' as a bigint (any constant shared by all relays).
LOCK_KEY = int.from_bytes(b"chatlink", "big") & 0x7FFF_FFFF_FFFF_FFFF
_MAX_BACKOFF = 30.0


class AuditLinker:
    def __init__(
        self,
        dsn: str,
        *,
        interval: float = 0.2,
        retry: float = 2.0,
        batch: int = 5000,
        warn_after: float = 10.0,
    ) -> None:
        self._dsn = dsn
        self._interval = interval
        self._retry = retry
        self._batch = batch
        self._warn_after = warn_after
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        self.linked = 0
        self.last_delay_ms = 0.0
        self.max_delay_ms = 0.0
        self.observers: list[Any] = []  # callables(delay_ms) for metrics

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-linker")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.is_leader = False

    def stats(self) -> dict[str, Any]:
        return {
            "leader": self.is_leader,
            "linked": self.linked,
            "last_delay_ms": round(self.last_delay_ms, 1),
            "max_delay_ms": round(self.max_delay_ms, 1),
        }

    async def _run(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "chat-audit-linker"}
                )
                await self._wait_for_lead(conn)
                self.is_leader = True
                backoff = 0.5
                log.info("audit linker: leading")
                while True:
                    scanned = await self.link_once(conn)
                    if scanned < self._batch:
                        await asyncio.sleep(self._interval)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.is_leader:
                    log.warning("audit linker lost its connection (%s)", exc)
                self.is_leader = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                self.is_leader = False
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)

    async def _wait_for_lead(self, conn: asyncpg.Connection) -> None:
        """Until this connection holds the linker's advisory lock (the leader's session
        ends: its lock goes with it)."""
        while True:
            if await conn.fetchval("select pg_try_advisory_lock($1)", LOCK_KEY):
                return
            await asyncio.sleep(self._retry)

    async def link_once(self, conn: asyncpg.Connection) -> int:
        """Link what waits, up to one batch; the rows read (a full batch: call again now)."""
        row = await conn.fetchrow(
            "select linked, max_delay_ms, scanned from chat_private.link_audit_chain($1)",
            self._batch,
        )
        linked = int(row["linked"]) if row else 0
        if linked:
            delay = float(row["max_delay_ms"] or 0.0)
            self.linked += linked
            self.last_delay_ms = delay
            self.max_delay_ms = max(self.max_delay_ms, delay)
            for observe in self.observers:
                observe(delay)
            if delay > self._warn_after * 1000:
                log.warning(
                    "audit rows waited %.1f s to be linked (a long transaction holds back the "
                    "linker's xmin)",
                    delay / 1000,
                )
        return int(row["scanned"]) if row else 0
