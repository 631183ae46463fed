"""Database changes -> socket events.

One LISTEN connection per relay (asyncpg ``add_listener`` on channel ``chat_events``). The
notification carries ids only; a worker reads the rows (in batches, as the service role:
the room's sockets were authorized by RLS when they joined) and hands them to the relay.

Nothing committed is lost to a connected participant. The feed keeps a snapshot
(``pg_current_snapshot()``) taken on the listening connection, advanced every few seconds
once every notification before it has been handled. After a lost connection (or a batch
that failed), it replays the messages whose writing transaction (``xact_id``) is not
visible in that snapshot: exactly those committed since, whatever their seq or
created_at. An LRU of delivered ids keeps each message to one delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from .db import Database
from .messages import MESSAGE_COLUMNS, message_payloads

log = logging.getLogger(__name__)

CHANNEL = "chat_events"
_CATCH_UP_PAGE = 1000
_SEEN_LIMIT = 20_000
_KEEPALIVE = 5.0  # also how often the snapshot advances
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
        on_delivered: EventHandler | None = None,
    ) -> None:
        self._dsn = dsn
        self._db = db
        self._on_message = on_message
        self._on_read = on_read
        self._on_session = on_session
        self._on_delivered = on_delivered
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seen: OrderedDict[uuid.UUID, None] = OrderedDict()
        # Everything visible in this snapshot has been delivered (or was there at start).
        self._snapshot: str | None = None
        self._resync = False  # a batch failed: replay from the snapshot at the next tick
        self._busy = False  # a batch is being handled
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
                # Listening first, then the snapshot: what commits after it is notified.
                await self._advance(conn, replay=self._snapshot is not None)
                self.connected.set()
                backoff = 0.5
                log.info("changefeed listening on %s", CHANNEL)
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=_KEEPALIVE)
                    if not lost.is_set():  # keepalive, and the snapshot moves on
                        await self._advance(conn, replay=self._resync)
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

    async def _advance(self, conn: asyncpg.Connection, *, replay: bool) -> None:
        """Take a new snapshot; replay what committed since the old one when asked to (after
        a reconnect or a failed batch); keep the new one only when nothing is pending."""
        fresh = await conn.fetchval("select pg_current_snapshot()::text", timeout=_KEEPALIVE)
        if replay and self._snapshot is not None:
            self._resync = False
            await self._replay_since(self._snapshot)
        # Notifications of commits before `fresh` were queued before this query returned;
        # advance only when all of them have been handled.
        idle = self._queue.empty() and not self._busy and not self._resync
        if self._snapshot is None or idle:
            self._snapshot = fresh

    async def _replay_since(self, snapshot: str) -> None:
        """Deliver, oldest first and page by page, the messages committed after
        ``snapshot`` that have not been delivered yet."""
        after: tuple[Any, int] = (datetime.min.replace(tzinfo=UTC), 0)
        replayed = 0
        while True:
            async with self._db.as_service() as conn:
                rows = await conn.fetch(
                    f"select {MESSAGE_COLUMNS} from public.chat_messages "
                    "where xact_id >= pg_snapshot_xmin($1::text::pg_snapshot) "
                    "and not pg_visible_in_snapshot(xact_id, $1::text::pg_snapshot) "
                    "and (created_at, seq) > ($2, $3) "
                    "order by created_at, seq limit $4",
                    snapshot,
                    after[0],
                    after[1],
                    _CATCH_UP_PAGE,
                )
            missed = [r for r in rows if r["id"] not in self._seen]
            if missed:
                replayed += len(missed)
                await self._deliver(missed)
            if len(rows) < _CATCH_UP_PAGE:
                break
            after = (rows[-1]["created_at"], rows[-1]["seq"])
        if replayed:
            log.info("changefeed replayed %d message(s) committed while away", replayed)

    # ------------------------------------------------------------------ delivering
    async def _work_forever(self) -> None:
        while True:
            first = await self._queue.get()
            batch = [first]
            while not self._queue.empty() and len(batch) < 500:
                batch.append(self._queue.get_nowait())
            self._busy = True
            try:
                await self._handle(batch)
            except asyncio.CancelledError:
                raise
            except Exception:
                self._resync = True  # the next tick replays from the last snapshot
                log.exception("changefeed failed to handle %d event(s)", len(batch))
            finally:
                self._busy = False

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
            elif kind == "delivered" and self._on_delivered is not None:
                await self._on_delivered(event)

    async def _deliver(self, rows: list[asyncpg.Record]) -> None:
        rows = [r for r in rows if r["id"] not in self._seen]
        if not rows:
            return
        async with self._db.as_service() as conn:
            payloads = await message_payloads(conn, rows)
        for row, payload in zip(rows, payloads, strict=True):
            self._remember(row["id"])
            await self._on_message(payload)

    def _remember(self, message_id: uuid.UUID) -> None:
        self._seen[message_id] = None
        if len(self._seen) > _SEEN_LIMIT:
            self._seen.popitem(last=False)
