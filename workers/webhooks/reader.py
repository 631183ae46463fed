"""What to tell the host platform, read from committed rows (never on the send path).

Each tick of the leader:

1. **Reading ends a period.** A participant whose read cursor reached the first message
   of their open waiting period has read in time: the period ends; messages from others
   still unread after the cursor open a new one (due the delay after the later of that
   message and the read).
2. **Discovery.** In one REPEATABLE READ transaction, the messages whose writing
   transaction (``chat_messages.xact_id``) is not visible in the snapshot stored at the
   previous tick, exactly as the changefeed replays: for each recipient with an unread
   message among them and no socket joined to the session, a waiting period opens (due
   ``NOTIFY_DELAY`` after its first message; ``emergency`` sessions at once). Closing
   messages announce ``chat.session.closed``; sessions created since the stored horizon
   announce ``chat.session.created``. The snapshot and horizon advance in the same
   transaction as the outbox rows: a crash replays the tick, the outbox's dedupe key
   keeps each event to one row.
3. **Due periods.** A pending period whose participant has a socket joined ends (they
   are here); a due one, participant still away, becomes one ``chat.message.waiting``
   (count and newest unread message, computed now) and stays open as ``notified`` until
   reading or joining ends it: one event per period, however many messages follow.

Presence is the relay's: shared through Redis across relays, else this process only.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import asyncpg

from ..db import Database
from . import events
from .events import Event

log = logging.getLogger(__name__)

# (session, candidate users) -> those of them with a socket joined to the session.
Online = Callable[[uuid.UUID, set[uuid.UUID]], Awaitable[set[uuid.UUID]]]

# Unread messages and sessions older than this are not announced (after a long outage,
# or when the feature is switched on again after a while).
MAX_AGE = 24 * 3600.0
_PAGE = 2000  # periods examined per step and tick
# Notified periods (participants away, maybe for days) are checked for reading every this
# many ticks; pending ones (short-lived) at every tick.
_NOTIFIED_EVERY = 10

# Sessions created by a transaction that began before the oldest transaction open at this
# tick (less a margin, for roles that cannot see other sessions' xact_start) are not
# announced: every transaction still able to commit a session began after it.
_HORIZON = """
select least(now(), min(a.xact_start)) - interval '60 seconds'
from pg_catalog.pg_stat_activity as a
where a.datname = current_database() and a.xact_start is not null
"""

_FROM_ELSEWHERE = """
select pg_snapshot_xmax($1::text::pg_snapshot) > pg_snapshot_xmax(pg_current_snapshot())
"""

_FRESH = """
  m.xact_id >= pg_snapshot_xmin($1::text::pg_snapshot)
  and not pg_visible_in_snapshot(m.xact_id, $1::text::pg_snapshot)
  and m.created_at > now() - make_interval(secs => $2)
"""

# (session, recipient) pairs with a newly committed unread message from someone else:
# the first such message, and the recipient's open period if any.
_CANDIDATES = f"""
with fresh as (
  select m.session_id, m.sender_id, m.created_at, m.seq
  from public.chat_messages as m
  where {_FRESH} and m.type <> 'system'
)
select distinct on (f.session_id, p.user_id)
  f.session_id, p.user_id, f.created_at as since_at, f.seq as since_seq, w.status as period
from fresh as f
join public.chat_sessions as s on s.id = f.session_id
cross join lateral unnest(s.participants) as p (user_id)
left join public.chat_read_state as r on r.session_id = f.session_id and r.user_id = p.user_id
left join chat_private.webhook_waiting as w
  on w.session_id = f.session_id and w.user_id = p.user_id
where p.user_id is distinct from f.sender_id
  and (r.user_id is null or (f.created_at, f.seq) > (r.last_read_at, r.last_read_seq))
order by f.session_id, p.user_id, f.created_at, f.seq
"""

# Every close leaves a system message (a trigger on the status change, whatever the path).
_CLOSED = f"""
select s.id, s.type, s.booking_id, s.participants, s.title,
  m.id as closing_message_id, m.sender_id as closed_by, m.created_at as closed_at
from public.chat_messages as m
join public.chat_sessions as s on s.id = m.session_id
where {_FRESH} and m.type = 'system' and m.metadata ->> 'event' = 'session_closed'
"""

_CREATED = """
select s.id, s.type, s.booking_id, s.participants, s.title, s.created_by, s.created_at
from public.chat_sessions as s
where s.created_at >= $1 and s.created_at > now() - make_interval(secs => $2)
  and not exists (
    select 1 from chat_private.webhook_outbox as o
    where o.dedupe_key = 'chat.session.created:' || s.id::text
  )
"""

_ENQUEUE = """
insert into chat_private.webhook_outbox (event_type, dedupe_key, session_id, user_id, payload)
select k.event_type, k.dedupe_key, k.session_id, k.user_id, k.payload::jsonb
from unnest($1::text[], $2::text[], $3::uuid[], $4::uuid[], $5::text[])
  as k (event_type, dedupe_key, session_id, user_id, payload)
on conflict (dedupe_key) do update set dedupe_key = excluded.dedupe_key
returning id, dedupe_key, event_type, (xmax = 0) as inserted
"""

_DELAY = "make_interval(secs => case when s.type = 'emergency' then 0 else $1 end)"

_OPEN_PERIODS = f"""
insert into chat_private.webhook_waiting (session_id, user_id, since_at, since_seq, due_at)
select k.session_id, k.user_id, k.since_at, k.since_seq, k.since_at + {_DELAY}
from unnest($2::uuid[], $3::uuid[], $4::timestamptz[], $5::bigint[])
  as k (session_id, user_id, since_at, since_seq)
join public.chat_sessions as s on s.id = k.session_id
on conflict (session_id, user_id) do nothing
"""

_END_PERIODS = """
delete from chat_private.webhook_waiting as w
using unnest($1::uuid[], $2::uuid[]) as k (session_id, user_id)
where w.session_id = k.session_id and w.user_id = k.user_id
"""

_END_PENDING = _END_PERIODS + " and w.status = 'pending'"

# Periods whose participant has read up to their first message, and the first message
# from others still unread after the cursor (which opens the next period), if any.
_READ_PERIODS = f"""
select w.session_id, w.user_id, n.created_at as next_at, n.seq as next_seq,
  greatest(n.created_at, r.updated_at) + {_DELAY} as next_due
from chat_private.webhook_waiting as w
join public.chat_read_state as r on r.session_id = w.session_id and r.user_id = w.user_id
join public.chat_sessions as s on s.id = w.session_id
left join lateral (
  select m.created_at, m.seq
  from public.chat_messages as m
  where m.session_id = w.session_id
    and (m.created_at, m.seq) > (r.last_read_at, r.last_read_seq)
    and m.sender_id is distinct from w.user_id and m.type <> 'system'
  order by m.created_at, m.seq
  limit 1
) as n on true
where (r.last_read_at, r.last_read_seq) >= (w.since_at, w.since_seq)
  and (w.status = 'pending' or $3)
limit $2
"""

_REOPEN = """
update chat_private.webhook_waiting as w
set since_at = k.since_at, since_seq = k.since_seq, due_at = k.due_at, status = 'pending',
  event_id = null, created_at = now()
from unnest($1::uuid[], $2::uuid[], $3::timestamptz[], $4::bigint[], $5::timestamptz[])
  as k (session_id, user_id, since_at, since_seq, due_at)
where w.session_id = k.session_id and w.user_id = k.user_id
"""

_PENDING = """
select w.session_id, w.user_id, w.due_at <= now() as due
from chat_private.webhook_waiting as w
where w.status = 'pending'
order by w.due_at
limit $1
"""

_UNREAD = """
  m.session_id = w.session_id
  and (r.user_id is null or (m.created_at, m.seq) > (r.last_read_at, r.last_read_seq))
  and m.sender_id is distinct from w.user_id and m.type <> 'system'
"""

# What a due period tells: the unread count and the newest unread message, now.
_DUE = f"""
select w.session_id, w.user_id, w.since_at, w.since_seq, s.type as session_type, s.booking_id,
  c.unread, n.id as last_id, n.sender_id as last_sender_id, n.type as last_type,
  n.created_at as last_created_at, n.content as last_content
from chat_private.webhook_waiting as w
join unnest($1::uuid[], $2::uuid[]) as k (session_id, user_id)
  on w.session_id = k.session_id and w.user_id = k.user_id
join public.chat_sessions as s on s.id = w.session_id
left join public.chat_read_state as r on r.session_id = w.session_id and r.user_id = w.user_id
cross join lateral (
  select count(*) as unread from public.chat_messages as m where {_UNREAD}
) as c
left join lateral (
  select m.id, m.sender_id, m.type, m.created_at, m.content
  from public.chat_messages as m
  where {_UNREAD}
  order by m.created_at desc, m.seq desc
  limit 1
) as n on true
where w.status = 'pending' and w.due_at <= now()
for update of w
"""

_NOTIFIED = """
update chat_private.webhook_waiting as w
set status = 'notified', event_id = k.event_id
from unnest($1::uuid[], $2::uuid[], $3::uuid[]) as k (session_id, user_id, event_id)
where w.session_id = k.session_id and w.user_id = k.user_id
"""


class Reader:
    def __init__(
        self, *, db: Database, online: Online, delay: float, include_content: bool
    ) -> None:
        self._db = db
        self._online = online
        self._delay = delay
        self._include_content = include_content
        self._ticks = 0

    async def tick(self) -> collections.Counter[str]:
        """One pass; returns the events enqueued, by type."""
        enqueued: collections.Counter[str] = collections.Counter()
        self._ticks += 1
        await self._end_read_periods(notified_too=self._ticks % _NOTIFIED_EVERY == 1)
        enqueued.update(await self._discover())
        enqueued.update(await self._notify_due())
        return enqueued

    # ------------------------------------------------------------------ 1. reading
    async def _end_read_periods(self, *, notified_too: bool) -> None:
        async with self._db.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_READ_PERIODS, self._delay, _PAGE, notified_too)
            reopen = [r for r in rows if r["next_at"] is not None]
            ended = [r for r in rows if r["next_at"] is None]
            if reopen:
                await conn.execute(
                    _REOPEN,
                    [r["session_id"] for r in reopen],
                    [r["user_id"] for r in reopen],
                    [r["next_at"] for r in reopen],
                    [r["next_seq"] for r in reopen],
                    [r["next_due"] for r in reopen],
                )
            if ended:
                await conn.execute(_END_PERIODS, *_keys(ended))

    # ------------------------------------------------------------------ 2. discovery
    async def _discover(self) -> collections.Counter[str]:
        async with self._db.pool.acquire() as conn:
            horizon = await conn.fetchval(_HORIZON)
            async with conn.transaction(isolation="repeatable_read"):
                cursor = await conn.fetchrow(
                    "select snapshot::text as snapshot, horizon "
                    "from chat_private.webhook_cursor where id for update"
                )
                if cursor is None:  # first start: from now on
                    await conn.execute(
                        "insert into chat_private.webhook_cursor (snapshot, horizon) "
                        "values (pg_current_snapshot(), now()) on conflict (id) do nothing"
                    )
                    return collections.Counter()
                snapshot = cursor["snapshot"]
                if await conn.fetchval(_FROM_ELSEWHERE, snapshot):
                    # A snapshot from the future: the database was restored or replaced.
                    log.warning("webhook cursor is ahead of this database; starting from now")
                    await conn.execute(
                        "update chat_private.webhook_cursor set snapshot = pg_current_snapshot(), "
                        "horizon = now(), updated_at = now() where id"
                    )
                    return collections.Counter()
                candidates = await conn.fetch(_CANDIDATES, snapshot, MAX_AGE)
                await self._open_periods(conn, candidates)
                include = self._include_content
                found = [
                    events.session_closed(r, include_content=include)
                    for r in await conn.fetch(_CLOSED, snapshot, MAX_AGE)
                ]
                found += [
                    events.session_created(r, include_content=include)
                    for r in await conn.fetch(_CREATED, cursor["horizon"], MAX_AGE)
                ]
                inserted = await enqueue(conn, found)
                await conn.execute(
                    "update chat_private.webhook_cursor set snapshot = pg_current_snapshot(), "
                    "horizon = greatest(horizon, $1), updated_at = now() where id",
                    horizon,
                )
        return collections.Counter(r["event_type"] for r in inserted if r["inserted"])

    async def _open_periods(
        self, conn: asyncpg.Connection, candidates: Sequence[asyncpg.Record]
    ) -> None:
        online = await self._who_is_online(candidates)
        here = [c for c in candidates if (c["session_id"], c["user_id"]) in online]
        away = [
            c
            for c in candidates
            if c["period"] is None and (c["session_id"], c["user_id"]) not in online
        ]
        if here:  # joined: any open period of theirs ends
            await conn.execute(_END_PERIODS, *_keys(here))
        if away:
            await conn.execute(
                _OPEN_PERIODS,
                self._delay,
                *_keys(away),
                [c["since_at"] for c in away],
                [c["since_seq"] for c in away],
            )

    # ------------------------------------------------------------------ 3. due periods
    async def _notify_due(self) -> collections.Counter[str]:
        async with self._db.pool.acquire() as conn:
            pending = await conn.fetch(_PENDING, _PAGE)
        if not pending:
            return collections.Counter()
        online = await self._who_is_online(pending)
        here = [p for p in pending if (p["session_id"], p["user_id"]) in online]
        due = [p for p in pending if p["due"] and (p["session_id"], p["user_id"]) not in online]
        inserted: list[asyncpg.Record] = []
        async with self._db.pool.acquire() as conn, conn.transaction():
            if here:
                await conn.execute(_END_PENDING, *_keys(here))
            if due:
                inserted = await self._notify(conn, due)
        return collections.Counter(r["event_type"] for r in inserted if r["inserted"])

    async def _notify(
        self, conn: asyncpg.Connection, due: Sequence[asyncpg.Record]
    ) -> list[asyncpg.Record]:
        rows = await conn.fetch(_DUE, *_keys(due))
        now = dt.datetime.now(dt.UTC)
        unread = [r for r in rows if r["unread"] > 0 and r["last_id"] is not None]
        nothing = [r for r in rows if not (r["unread"] > 0 and r["last_id"] is not None)]
        if nothing:  # read or removed meanwhile
            await conn.execute(_END_PERIODS, *_keys(nothing))
        found = [events.waiting(r, include_content=self._include_content, now=now) for r in unread]
        inserted = await enqueue(conn, found)
        ids = {r["dedupe_key"]: r["id"] for r in inserted}
        await conn.execute(
            _NOTIFIED,
            [e.session_id for e in found],
            [e.user_id for e in found],
            [ids[e.dedupe_key] for e in found],
        )
        return inserted

    # ------------------------------------------------------------------ presence
    async def _who_is_online(
        self, rows: Iterable[asyncpg.Record]
    ) -> set[tuple[uuid.UUID, uuid.UUID]]:
        """The (session, user) pairs among ``rows`` with a socket joined to the session."""
        by_session: dict[uuid.UUID, set[uuid.UUID]] = collections.defaultdict(set)
        for row in rows:
            by_session[row["session_id"]].add(row["user_id"])
        here: set[tuple[uuid.UUID, uuid.UUID]] = set()
        for session_id, user_ids in by_session.items():
            online = await self._online(session_id, user_ids)
            here.update((session_id, u) for u in user_ids & online)
        return here


async def enqueue(conn: asyncpg.Connection, found: Sequence[Event]) -> list[asyncpg.Record]:
    """Insert outbox rows; one per dedupe key (an existing row is returned, not doubled)."""
    if not found:
        return []
    return list(
        await conn.fetch(
            _ENQUEUE,
            [e.type for e in found],
            [e.dedupe_key for e in found],
            [e.session_id for e in found],
            [e.user_id for e in found],
            [json.dumps(e.payload) for e in found],
        )
    )


def _keys(rows: Iterable[Any]) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    rows = list(rows)
    return [r["session_id"] for r in rows], [r["user_id"] for r in rows]
