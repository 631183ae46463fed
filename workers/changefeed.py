"""Database changes -> socket events.

One LISTEN connection per relay (asyncpg ``add_listener`` on channel ``chat_events``). The
notification carries ids only; a worker reads the rows (in batches, as the service role:
the room's sockets were authorized by RLS when they joined) and hands them to the relay.

The connection reconnects with capped exponential back-off. On reconnect it replays the
messages committed while it was away, from its last seen position (with slack for
transactions that committed out of sequence order); an LRU of delivered ids keeps each
message to one delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from .db import Database
from .messages import MESSAGE_COLUMNS, message_payloads

log = logging.getLogger(__name__)

CHANNEL = "chat_events"
_CATCH_UP_SLACK = 1000  # seqs re-read on reconnect; duplicates are dropped by the LRU
_CATCH_UP_LIMIT = 5000
_SEEN_LIMIT = 20_000
_KEEPALIVE = 10.0
_MAX_BACKOFF = 30.0

MessageHandler = Callable[[dict[str, Any]], Awaitable[None]]
EventHandler = Callable[[dict[str, Any]], Awaitable[None]]


class Changefeed:
    def __init__(
        self,
        *,
        dsn: str,
        db: Database,
        on_message: MessageHandler,
        on_read: EventHandler,
        on_session: EventHandler,
    ) -> None:
        self._dsn = dsn
        self._db = db
        self._on_message = on_message
        self._on_read = on_read
        self._on_session = on_session
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seen: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._last_seq: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        self.reconnects = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="changefeed-listen"),
            asyncio.create_task(self._work_forever(), name="changefeed-work"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # ------------------------------------------------------------------ listening
    async def _listen_forever(self) -> None:
        backoff = 0.5
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._dsn, server_settings={"application_name": "chat-changefeed"}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                await self._catch_up(first=self._last_seq is None)
                self.connected.set()
                backoff = 0.5
                log.info("changefeed listening on %s", CHANNEL)
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=_KEEPALIVE)
                    if not lost.is_set():
                        await conn.execute("select 1", timeout=_KEEPALIVE)
                raise ConnectionError("listen connection lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                self.reconnects += 1
                log.warning("changefeed disconnected (%s); retrying in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            log.warning("ignoring malformed notification %r", payload[:200])
            return
        self._queue.put_nowait(event)

    async def _catch_up(self, *, first: bool) -> None:
        """First connect: start from now. Reconnect: replay what was committed meanwhile."""
        async with self._db.as_service() as conn:
            if first:
                self._last_seq = await conn.fetchval(
                    "select coalesce(max(seq), 0) from public.chat_messages"
                )
                return
            rows = await conn.fetch(
                f"select {MESSAGE_COLUMNS} from public.chat_messages "
                "where seq > $1 order by seq limit $2",
                max(0, (self._last_seq or 0) - _CATCH_UP_SLACK),
                _CATCH_UP_LIMIT,
            )
        missed = [r for r in rows if r["id"] not in self._seen]
        if missed:
            log.info("changefeed replaying %d message(s) missed while disconnected", len(missed))
            await self._deliver(missed)

    # ------------------------------------------------------------------ delivering
    async def _work_forever(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            try:
                await self._handle(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("changefeed failed to handle %d event(s)", len(batch))

    async def _handle(self, batch: list[dict[str, Any]]) -> None:
        ids = [
            uuid.UUID(e["id"])
            for e in batch
            if e.get("kind") == "message" and uuid.UUID(e["id"]) not in self._seen
        ]
        if ids:
            async with self._db.as_service() as conn:
                rows = await conn.fetch(
                    f"select {MESSAGE_COLUMNS} from public.chat_messages "
                    "where id = any($1::uuid[]) order by created_at, seq",
                    ids,
                )
            await self._deliver(rows)
        for event in batch:
            kind = event.get("kind")
            if kind == "read":
                await self._on_read(event)
            elif kind == "session":
                await self._on_session(event)

    async def _deliver(self, rows: list[asyncpg.Record]) -> None:
        rows = [r for r in rows if r["id"] not in self._seen]
        if not rows:
            return
        async with self._db.as_service() as conn:
            payloads = await message_payloads(conn, rows)
        for row, payload in zip(rows, payloads, strict=True):
            self._remember(row["id"], row["seq"])
            await self._on_message(payload)

    def _remember(self, message_id: uuid.UUID, seq: int) -> None:
        self._seen[message_id] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
        if self._last_seq is None or seq > self._last_seq:
            self._last_seq = seq
