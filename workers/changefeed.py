"""Database changes -> socket events.

Messages written by a relay (group commit) are emitted by that relay itself, to every
relay through the Socket.IO manager; they do not NOTIFY. Everything else (supabase-js,
PostgREST, SQL, uploads, read cursors, session changes) notifies: one LISTEN connection
per relay (asyncpg ``add_listener`` on channel ``chat_events``); the notification carries
ids only; a worker reads the rows (in batches, as the service role: the room's sockets
were authorized by RLS when they joined) and hands them to the relay.

Nothing committed is lost to a connected participant, even when the relay that wrote a
message died between its commit and its emit, or a notification was lost. Every
``REPLAY_INTERVAL`` the feed takes a snapshot (``pg_current_snapshot()``) on the listening
connection and replays the messages that committed between the two snapshots before it
(their writing transaction, ``xact_id``, is visible in the newer one and not in the older
one), skipping what it already delivered or saw relayed: one interval of grace for the
writing relay's own emit to arrive, so a dead relay's messages arrive within about two
intervals. After a lost connection (or a failed replay) the window simply stays open from
the last snapshot whose messages were all handled. An LRU of ids keeps each message to
one delivery.

Messages written outside the relay notify only while they are rare. PostgreSQL commits the
transactions that called NOTIFY one at a time, WAL flush included, so a few hundred such
inserts a second would queue behind each other. When a message notification arrives, the
feed starts polling (``chat_private.changefeed_poll``, every ``POLL_INTERVAL``): while it
polls, the message trigger writes ids to an unlogged table instead of notifying, and each
poll returns the ids committed since the previous one. One of those transactions at a time
also sends a bare wake-up (kind ``poll``), on which the feed polls at once. Polls that
find messages keep the spell going; a second without any ends it, and the next message
notifies again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from .db import Database
from .messages import MESSAGE_COLUMNS, NameCache, file_urls, message_payload
from .recent_ids import RecentIds

log = logging.getLogger(__name__)

CHANNEL = "chat_events"
_CATCH_UP_PAGE = 1000
# Ids of messages this relay's sockets have had, kept for SEEN_SECONDS (the replay window
# is about a second; the margin covers a catch-up after a short outage) and at most
# _SEEN_LIMIT of them (about 9 MB): memory stays flat however long the relay runs.
SEEN_SECONDS = 120.0
_SEEN_LIMIT = 100_000
REPLAY_INTERVAL = 0.5  # seconds between snapshots: the grace, and half the worst delay
# Seconds between polls while messages written outside the relay keep coming: at most this
# much is added to their delivery, and an idle relay never polls.
POLL_INTERVAL = 0.01
POLL_HOLD = timedelta(seconds=1)  # how long one find keeps every relay polling
_POLL = "select snapshot, ids, polling from chat_private.changefeed_poll($1, $2, $3)"
_MAX_BACKOFF = 30.0

# Messages by id. No ORDER BY: sorted here, so that the only plan left with sequential
# scans priced out is the primary key's (an index in created_at order would otherwise
# serve the ORDER BY, scanned whole and filtered on the ids).
_READ = f"select {MESSAGE_COLUMNS} from public.chat_messages where id = any($1::uuid[])"


async def read_messages(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[asyncpg.Record]:
    """The rows of these messages, oldest first, on a connection in a transaction of
    ``Database.as_service(keyed=True)``: through an index that leads with the id, whatever
    the size of the table when the statement was first planned there."""
    rows = await conn.fetch(_READ, ids)
    return sorted(rows, key=lambda r: (r["created_at"], r["seq"]))


# One page of the replay: messages whose transaction is visible in $2 and not in $1, that
# is at or past $1's xmax or in progress in $1. Two index scans on xact_id: "at or past
# $1's xmin and not visible in $1" means the same, but reads every row written since the
# oldest transaction still open began, for as long as it stays open; and an OR of the two
# lets the generic plan of this prepared statement scan the whole table in created_at order.
_REPLAY_PAGE = """
select m.id, m.created_at, m.seq from (
  select c.id, c.created_at, c.seq, c.xact_id from public.chat_messages as c
  where c.xact_id >= pg_snapshot_xmax($1::text::pg_snapshot)
    and c.xact_id < pg_snapshot_xmax($2::text::pg_snapshot)
  union all
  select c.id, c.created_at, c.seq, c.xact_id from public.chat_messages as c
  where c.xact_id = any(array(select pg_snapshot_xip($1::text::pg_snapshot)))
) as m
where pg_visible_in_snapshot(m.xact_id, $2::text::pg_snapshot) and (m.created_at, m.seq) > ($3, $4)
order by m.created_at, m.seq
limit $5
"""

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
        replay_interval: float = REPLAY_INTERVAL,
        poll_interval: float = POLL_INTERVAL,
        on_delivered: EventHandler | None = None,
        names: NameCache | None = None,
        on_erased: EventHandler | None = None,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_typing: EventHandler | None = None,
        on_kind: dict[str, EventHandler] | None = None,
    ) -> None:
        self._dsn = dsn
        self._db = db
        self._on_message = on_message
        self._on_read = on_read
        self._on_session = on_session
        self._replay_interval = replay_interval
        self._poll_interval = poll_interval
        self._poll_wanted = asyncio.Event()  # a message notification arrived: start polling
        self._poll_now = asyncio.Event()  # a commit while polling: do not wait for the tick
        self._in_spell = False
        self._on_delivered = on_delivered
        self._on_erased = on_erased
        self._on_connected = on_connected
        self._on_typing = on_typing
        self._on_kind = dict(on_kind or {})  # further notification kinds, by name
        # Senders' names, read once per sender rather than once per batch (the relay
        # shares its own cache).
        self._names = names if names is not None else NameCache(db)
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seen = RecentIds(keep=SEEN_SECONDS, limit=_SEEN_LIMIT)
        # Everything visible in this snapshot has been delivered (or was there at start).
        self._snapshot: str | None = None
        # The newest snapshot, waiting one interval before what committed up to it is
        # replayed (the writing relay's own emit arrives first).
        self._pending: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.replayed = 0  # messages delivered by a replay (a lost notification or emit)
        self.polls = 0  # polls made (each a round trip), and messages they found
        self.polled = 0

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="changefeed-listen"),
            asyncio.create_task(self._work_forever(), name="changefeed-work"),
            asyncio.create_task(self._poll_forever(), name="changefeed-poll"),
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
                # Listening first, then the snapshot: what commits after it is notified
                # (or emitted by its relay), and replayed from the window in any case.
                await self._advance(conn, catch_up=True)
                self.connected.set()
                if self._on_connected is not None:
                    # What a lost notification may have hidden (a user erased meanwhile).
                    try:
                        await self._on_connected()
                    except Exception:
                        log.exception("changefeed reconnect check failed")
                backoff = 0.5
                log.info("changefeed listening on %s", CHANNEL)
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=self._replay_interval)
                    if not lost.is_set():  # keepalive, and the window moves on
                        await self._advance(conn, catch_up=False)
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
        kind = event.get("kind") if isinstance(event, dict) else None
        if kind == "poll":  # a commit while relays poll: poll now, not at the next tick
            self._poll_now.set()
            self._poll_wanted.set()
            return
        self._queue.put_nowait(event)
        if kind == "message":
            self._poll_wanted.set()

    # ------------------------------------------------------------------ polling
    async def _poll_forever(self) -> None:
        while True:
            await self._poll_wanted.wait()
            self._poll_wanted.clear()
            self._in_spell = True
            try:
                await self._poll_spell()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the replay delivers what a failed poll would have
                log.warning("changefeed poll failed (%s); the replay covers its messages", exc)
                await asyncio.sleep(self._replay_interval)
            finally:
                self._in_spell = False

    async def _poll_spell(self) -> None:
        """Poll until no relay has found a message written outside the relay for a
        while. The first poll looks back to the last snapshot the replay handled, so a
        message that went to the table before this relay started polling is found too."""
        since = self._snapshot
        extend = True
        while True:
            # A message notified before this poll is covered by it: only one notified
            # after the spell's last poll starts another spell. One notified during the
            # spell means the hold ran out while messages keep coming: hold again.
            if self._poll_wanted.is_set():
                extend = True
            self._poll_wanted.clear()
            self._poll_now.clear()
            async with self._db.pool.acquire(timeout=5) as conn:
                row = await conn.fetchrow(_POLL, since, extend, POLL_HOLD, timeout=5)
            self.polls += 1
            assert row is not None
            ids = row["ids"]
            if ids:
                self.polled += len(ids)
                for message_id in ids:
                    if message_id not in self._seen:
                        self._queue.put_nowait({"kind": "message", "id": str(message_id)})
            since = row["snapshot"]
            extend = bool(ids)
            if not row["polling"]:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poll_now.wait(), timeout=self._poll_interval)

    async def _advance(self, conn: asyncpg.Connection, *, catch_up: bool) -> None:
        """Take a new snapshot; replay what committed between the last handled snapshot
        and the previous one (one interval of grace), or, to catch up after a (re)connect,
        everything up to the new one."""
        row = await conn.fetchrow(
            "select pg_current_snapshot()::text as snapshot, "
            "chat_private.changefeed_polling() as polling",
            timeout=max(5.0, self._replay_interval),
        )
        assert row is not None
        fresh = row["snapshot"]
        if row["polling"] and not self._in_spell:
            # The other relays poll, so messages written outside the relay do not notify:
            # this one (just started, or its poll failed) joins them.
            self._poll_wanted.set()
        if self._snapshot is None:
            self._snapshot = fresh  # start: what is already there is not news
            return
        upto = fresh if catch_up else self._pending
        self._pending = None if catch_up else fresh
        if upto is None:
            return
        try:
            await self._replay(since=self._snapshot, upto=upto)
        except asyncio.CancelledError:
            raise
        except Exception:
            # The window stays open from the last snapshot handled in full.
            log.exception("changefeed replay failed; retrying at the next tick")
            return
        self._snapshot = upto

    async def _replay(self, *, since: str, upto: str) -> None:
        """Deliver, oldest first and page by page, the messages whose transaction is
        visible in ``upto`` and not in ``since``, unless already delivered or relayed."""
        after: tuple[Any, int] = (datetime.min.replace(tzinfo=UTC), 0)
        replayed = 0
        async with self._db.as_service(keyed=True) as conn:
            while True:
                rows = await conn.fetch(
                    _REPLAY_PAGE,
                    since,
                    upto,
                    after[0],
                    after[1],
                    _CATCH_UP_PAGE,
                )
                missed = [r["id"] for r in rows if r["id"] not in self._seen]
                if missed:
                    delivered = await self._deliver(await read_messages(conn, missed))
                    self.replayed += delivered
                    replayed += delivered
                if len(rows) < _CATCH_UP_PAGE:
                    break
                after = (rows[-1]["created_at"], rows[-1]["seq"])
        if replayed:
            log.info("changefeed replayed %d message(s) nobody had emitted here", replayed)

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
            except Exception:  # the messages among them come back with the window replay
                log.exception("changefeed failed to handle %d event(s)", len(batch))

    async def _handle(self, batch: list[dict[str, Any]]) -> None:
        ids = [
            uuid.UUID(e["id"])
            for e in batch
            if e.get("kind") == "message" and e["id"] not in self._seen
        ]
        if ids:
            async with self._db.as_service(keyed=True) as conn:
                rows = await read_messages(conn, ids)
            await self._deliver(rows)
        for event in batch:
            kind = event.get("kind")
            if kind == "read":
                await self._on_read(event)
            elif kind == "session":
                await self._on_session(event)
            elif kind == "delivered" and self._on_delivered is not None:
                await self._on_delivered(event)
            elif kind == "erased" and self._on_erased is not None:
                await self._on_erased(event)
            elif kind == "typing" and self._on_typing is not None:
                await self._on_typing(event)
            elif isinstance(kind, str) and kind in self._on_kind:
                await self._on_kind[kind](event)

    async def _deliver(self, rows: list[asyncpg.Record]) -> int:
        rows = [r for r in rows if r["id"] not in self._seen]
        if not rows:
            return 0
        names = await self._names.get(r["sender_id"] for r in rows)
        urls = await file_urls(rows)
        payloads = [message_payload(r, names, urls) for r in rows]
        delivered = 0
        for row, payload in zip(rows, payloads, strict=True):
            if row["id"] in self._seen:  # emitted or relayed meanwhile
                continue
            self.remember(row["id"])
            await self._on_message(payload)
            delivered += 1
        return delivered

    def seen(self, message_id: uuid.UUID | str | None) -> bool:
        return message_id in self._seen

    def remember(self, message_id: uuid.UUID | str | None) -> None:
        """A message this relay's sockets have had (emitted here, or relayed from another
        relay through the Socket.IO manager): never deliver it again."""
        self._seen.add(message_id)
