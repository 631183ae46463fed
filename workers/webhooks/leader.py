"""One worker per database (webhooks, the data lifecycle): the relay holding a PostgreSQL
advisory lock.

The lock is taken with ``pg_try_advisory_lock`` on a dedicated connection and held as long
as that connection lives. When the leader's process dies, PostgreSQL ends its session and
releases the lock; another relay's next try takes it over. The leader checks its
connection every few seconds and stops leading as soon as it is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# hashtextextended('chat_private.webhooks', 0) would do too; a constant reads better in
# pg_locks (objid 0x57484b = "WHK").
LOCK_KEY = 0x43484154_0057484B
_MAX_BACKOFF = 30.0


class Leadership:
    """Runs ``lead()`` while this process holds the lock; ``lead`` is cancelled when the
    lock's connection is lost, and tried again later."""

    def __init__(
        self,
        *,
        dsn: str,
        lead: Callable[[], Coroutine[Any, Any, None]],
        retry: float = 2.0,
        on_change: Callable[[bool], None] = lambda _leading: None,
        lock_key: int = LOCK_KEY,
        name: str = "webhooks",
    ) -> None:
        self._dsn = dsn
        self._lock_key = lock_key
        self._name = name
        self._lead = lead
        self._retry = retry
        self._on_change = on_change
        self.leading = False

    async def run(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": f"chat-{self._name}-leader"}
                )
                await self._take_lock(conn)
                backoff = 0.5
                await self._while_held(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s leadership lost or unavailable (%s); retrying", self._name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                self._set(False)
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)

    async def _take_lock(self, conn: asyncpg.Connection) -> None:
        """Wait, as a follower, until the lock is ours (a lost connection raises)."""
        while True:
            if await conn.fetchval("select pg_try_advisory_lock($1)", self._lock_key):
                return
            await asyncio.sleep(self._retry)

    async def _while_held(self, conn: asyncpg.Connection) -> None:
        log.info("this relay is the %s leader", self._name)
        self._set(True)
        work = asyncio.create_task(self._lead(), name=f"{self._name}-lead")
        try:
            while not work.done():
                done, _ = await asyncio.wait({work}, timeout=self._retry)
                if not done:  # still ours? a lost connection raises here
                    await conn.fetchval("select 1", timeout=max(self._retry, 1.0))
            work.result()  # the work ended: re-raise its failure
            raise RuntimeError(f"{self._name} work ended")
        finally:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work

    def _set(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            self._on_change(leading)
