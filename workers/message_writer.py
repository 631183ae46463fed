"""Group commit: every message the service sends (socket and REST) goes through here.

Sends that arrive while a group is being committed wait for the next group: one statement,
one transaction, one WAL flush for all of them (``chat_private.send_chat_messages``). Up to
``pipeline`` groups may be in the database at once, each on its own connection, but a
further group starts beside the ones in flight only once its oldest send has waited
``overlap_after`` seconds: at ordinary load the next group forms while the one before it
commits (larger groups, less of the database's work per message), and a commit that stalls
(a slow WAL flush) holds the sends behind it back for no longer than that. A lone send on
an idle server goes at once: the writer never waits for company.

Each message still runs as its own sender, under RLS, through
``public.send_chat_message``. A group is first tried whole; if it fails, it is tried again
with each message in its own subtransaction, so a bad message fails alone with its own
error and the others commit.

After the commit, ``on_commit`` receives the new messages before the senders' futures
resolve (the relay emits them to their rooms from there). A session's messages reach it in
the order their groups were formed: a group waits for the groups formed before it that
hold a message of one of its sessions. It does not wait for the others: a group slow to
commit holds back only the sessions it writes to, not every send behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from .auth import Principal
from .db import Database
from .errors import ApiError, from_postgres, from_sqlstate
from .messages import NameCache, file_urls, message_payload

log = logging.getLogger(__name__)

_SEND_GROUP = """
select ord, id, seq, session_id, sender_id, type, content, reply_to_message_id, metadata,
  client_message_id, created_at, inserted, error_state, error_message
from chat_private.send_chat_messages(
  $1::text[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::jsonb[], $7::text[], $8
)
"""

CommitHandler = Callable[[list[dict[str, Any]]], Awaitable[None]]
# After a group is emitted, in seconds: how long its oldest send waited for the group to
# start, the group's start to its commit's end, and its commit's end to its emission (the
# wait for earlier groups of the same sessions).
GroupObserver = Callable[[float, float, float], None]


@dataclass(slots=True)
class _Send:
    principal: Principal
    session_id: uuid.UUID
    type: str
    content: str | None
    reply_to_message_id: uuid.UUID | None
    metadata: dict[str, Any]
    client_message_id: str | None
    future: asyncio.Future[dict[str, Any]] = field(repr=False)
    arrived: float = 0.0  # loop time


class MessageWriter:
    def __init__(
        self,
        db: Database,
        *,
        names: NameCache,
        max_group: int = 256,
        pipeline: int = 2,
        overlap_after: float = 0.0,
        on_commit: CommitHandler | None = None,
        on_group: GroupObserver | None = None,
    ) -> None:
        self._db = db
        self._names = names
        self._max_group = max_group
        self._on_commit = on_commit
        self._on_group = on_group
        self._pending: list[_Send] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Groups in the database at once, each on its own pooled connection: a second
        # group commits while the first one's WAL flush is under way.
        self._slots = asyncio.Semaphore(pipeline)
        self._overlap_after = overlap_after
        self._in_flight = 0  # groups between their start and their commit's end
        self._waiter: asyncio.Future[None] | None = None  # resolved when a commit ends
        self._groups_running: set[asyncio.Task[None]] = set()
        # Groups formed and not yet emitted: each one's sessions, by its emitted future.
        self._unemitted: dict[asyncio.Future[None], frozenset[uuid.UUID]] = {}
        # Figures for /metrics and the benchmark.
        self.groups = 0
        self.messages = 0
        self.isolated_groups = 0

    def set_commit_handler(self, handler: CommitHandler) -> None:
        self._on_commit = handler

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="message-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._groups_running):
            task.cancel()
        for task in list(self._groups_running):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for item in self._pending:
            if not item.future.done():
                item.future.set_exception(
                    ApiError(503, "unavailable", "the service is shutting down")
                )
        self._pending.clear()

    async def send(
        self,
        principal: Principal,
        *,
        session_id: uuid.UUID,
        type_: str,
        content: str | None,
        reply_to_message_id: uuid.UUID | None,
        metadata: dict[str, Any],
        client_message_id: str | None,
    ) -> dict[str, Any]:
        """Send one message as ``principal``; returns it as clients see it once committed
        (and emitted), or raises :class:`ApiError` with this message's own error."""
        if self._task is None:
            raise ApiError(503, "unavailable", "the message writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append(
            _Send(
                principal=principal,
                session_id=session_id,
                type=type_,
                content=content,
                reply_to_message_id=reply_to_message_id,
                metadata=metadata,
                client_message_id=client_message_id,
                future=future,
                arrived=loop.time(),
            )
        )
        self._wake.set()
        if self._waiter is not None and len(self._pending) >= self._max_group:
            _resolve(self._waiter)  # a full group does not wait
        return await future

    @property
    def waiting(self) -> int:
        """Sends not yet in a group."""
        return len(self._pending)

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                if self._in_flight and len(self._pending) < self._max_group:
                    # A group is committing: the sends wait for its end, or until the
                    # oldest of them has waited ``overlap_after``.
                    delay = self._pending[0].arrived + self._overlap_after - loop.time()
                    if delay > 0:
                        await self._commit_or_timeout(loop, delay)
                        continue
                await self._slots.acquire()  # at most ``pipeline`` groups in the database
                group = self._pending[: self._max_group]
                del self._pending[: self._max_group]
                if not group:
                    self._slots.release()
                    break
                self._in_flight += 1
                sessions = frozenset(item.session_id for item in group)
                before = [f for f, s in self._unemitted.items() if not s.isdisjoint(sessions)]
                emitted: asyncio.Future[None] = loop.create_future()
                self._unemitted[emitted] = sessions
                task = asyncio.create_task(self._group(group, before, emitted, loop.time()))
                self._groups_running.add(task)
                task.add_done_callback(self._groups_running.discard)

    async def _commit_or_timeout(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(delay, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _group(
        self,
        group: list[_Send],
        before: list[asyncio.Future[None]],
        emitted: asyncio.Future[None],
        started: float,
    ) -> None:
        """Commit one group; then, once the groups formed before it that share a session
        with it have been emitted, emit and answer its senders."""
        try:
            loop = asyncio.get_running_loop()
            try:
                rows = await self._commit(group)
            finally:
                committed = loop.time()
                self._slots.release()
                self._in_flight -= 1
                if self._waiter is not None:
                    _resolve(self._waiter)
            for earlier in before:
                await asyncio.shield(earlier)
            if rows is not None:
                held = loop.time() - committed
                await self._finish(group, rows)
                if self._on_group is not None:
                    waited = started - group[0].arrived
                    self._on_group(waited, committed - started, held)
        except asyncio.CancelledError:
            _fail(group, ApiError(503, "unavailable", "the service is shutting down"))
            raise
        except Exception:  # never let one group stop the writer
            log.exception("message group of %d failed", len(group))
            _fail(group, ApiError(500, "internal_error", "internal error"))
        finally:
            self._unemitted.pop(emitted, None)
            if not emitted.done():
                emitted.set_result(None)

    async def _commit(self, group: list[_Send]) -> list[asyncpg.Record] | None:
        args = _arguments(group)
        try:
            async with self._db.pool.acquire(timeout=5) as conn:
                try:
                    rows = await conn.fetch(_SEND_GROUP, *args, False)
                except asyncpg.PostgresError as exc:
                    if _is_connection_error(exc):
                        raise
                    if len(group) == 1:
                        _fail(group, from_postgres(exc))
                        return None
                    # One (or more) bad message aborted the group: each alone this time.
                    self.isolated_groups += 1
                    rows = await conn.fetch(_SEND_GROUP, *args, True)
        except (
            OSError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            TimeoutError,
            asyncpg.PostgresError,
        ) as exc:
            # Lost connection, database down, or a server-side failure of the whole
            # statement: nobody knows whether it committed; the client may retry with its
            # client_message_id (idempotent), and the changefeed replays what committed.
            log.warning("message group of %d not sent: %s", len(group), exc)
            _fail(group, ApiError(503, "unavailable", "the database is unavailable"))
            return None
        self.groups += 1
        self.messages += len(group)
        return rows

    async def _finish(self, group: list[_Send], rows: list[asyncpg.Record]) -> None:
        ok = [r for r in rows if r["error_state"] is None and r["id"] is not None]
        names = await self._names.get(r["sender_id"] for r in ok)
        urls = await file_urls(ok)
        payloads: dict[int, dict[str, Any]] = {}
        fresh: list[dict[str, Any]] = []
        emitted: set[str] = set()
        for r in ok:
            payload = message_payload(r, names, urls)
            payloads[r["ord"]] = payload
            # A retry in the same group returns the same row: emitted once.
            if r["inserted"] and payload["id"] not in emitted:
                emitted.add(payload["id"])
                fresh.append(payload)
        if fresh and self._on_commit is not None:
            try:
                await self._on_commit(fresh)
            except Exception:  # committed is committed: the changefeed replays it
                log.exception("emitting %d committed message(s) failed", len(fresh))
        for r in rows:
            item = group[r["ord"] - 1]
            if item.future.done():
                continue
            if r["error_state"] is not None:
                item.future.set_exception(from_sqlstate(r["error_state"], r["error_message"] or ""))
            else:
                item.future.set_result(payloads[r["ord"]])
        _fail(group, ApiError(500, "internal_error", "internal error"))  # none left over


def _arguments(group: list[_Send]) -> tuple[list[Any], ...]:
    return (
        [g.principal.claims_json() for g in group],
        [g.session_id for g in group],
        [g.content for g in group],
        [g.type for g in group],
        [g.reply_to_message_id for g in group],
        [g.metadata for g in group],
        [g.client_message_id for g in group],
    )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _fail(group: list[_Send], error: ApiError) -> None:
    for item in group:
        if not item.future.done():
            item.future.set_exception(error)


def _is_connection_error(exc: asyncpg.PostgresError) -> bool:
    sqlstate = getattr(exc, "sqlstate", "") or ""
    # 08: connection exceptions; 57P: operator intervention (shutdown, terminated); 53:
    # insufficient resources. Not a bad message: retrying in isolation would not help.
    return sqlstate.startswith(("08", "57P", "53"))
