"""Rows written in batches: the audit and monitoring writers share this.

``record()`` only appends to an in-memory queue (never a database round trip on the
request path). A background task writes what waits as one multi-row INSERT (rows passed
as one JSON array to ``jsonb_to_recordset``) under the service role: as soon as
``batch_size`` rows wait, else every ``flush_interval`` seconds. While the database is
away, rows wait and the writer retries with capped back-off. ``stop()`` writes what is
left.

Beyond ``max_queue`` waiting rows, only *sheddable* rows are dropped (oldest first, counted
in ``dropped``): a subclass says which (:meth:`BatchWriter.sheddable`; the audit writer keeps
every row of an authenticated actor). A row that may not be shed is never dropped by the
queue: it waits, and :attr:`overloaded` turns true so that callers refuse new actions
(fail closed) until the backlog is written.

What a crash loses: the rows still in memory, at most one batch (``batch_size`` rows or
``flush_interval`` seconds of events) while the database is reachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import asyncpg

from .db import Database

log = logging.getLogger(__name__)

_MAX_BACKOFF = 30.0
_WRITE_TIMEOUT = 10.0
# Errors in the rows themselves (bad value, constraint, SQL): retrying cannot help.
_DATA_ERRORS = ("22", "23", "42")

Row = dict[str, Any]
_MAX_TEXT = 2000  # characters kept of any one string in a row


def clean(value: Any) -> Any:
    """What PostgreSQL's jsonb accepts: no NUL, no lone surrogates (text decoded with
    surrogateescape), strings capped. Untrusted text (error messages, headers, names)
    must not be able to make a batch fail or bloat an append-only table."""
    if isinstance(value, str):
        text = value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")
        return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "…"
    if isinstance(value, dict):
        return {str(clean(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


class BatchWriter:
    def __init__(
        self,
        *,
        name: str,
        db: Database,
        sql: str,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        """``sql`` takes the batch as ``$1`` (a JSON array of row objects)."""
        self.name = name
        self._db = db
        self._sql = sql
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queue = max(max_queue, batch_size)
        self._on_drop = on_drop
        self._rows: deque[Row] = deque()
        self._kept = 0  # rows in the queue that may not be shed
        self._full = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.dropped = 0
        self.written = 0
        self.batches = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._rows)

    @property
    def overloaded(self) -> bool:
        """True while rows that may not be shed fill the queue: refuse new actions."""
        return self._kept >= self.max_queue

    def sheddable(self, row: Row) -> bool:
        """Whether this row may be dropped when the queue is full (default: yes)."""
        return True

    # ------------------------------------------------------------------ recording
    def append(self, row: Row) -> None:
        """Queue one row; never blocks, never raises."""
        if self._closed:
            self._drop(1)
            return
        row = clean(row)
        shed = self.sheddable(row)
        if len(self._rows) >= self.max_queue:
            if not self._shed_one() and shed:
                self._drop(1)  # the queue holds only rows that must be kept: this one goes
                return
        self._rows.append(row)
        if not shed:
            self._kept += 1
        if len(self._rows) >= self.batch_size:
            self._full.set()

    def _shed_one(self) -> bool:
        """Drop the oldest sheddable row waiting; False when there is none."""
        if self._kept >= len(self._rows):
            return False
        for index, row in enumerate(self._rows):
            if self.sheddable(row):
                del self._rows[index]
                self._drop(1)
                return True
        return False

    def _take(self, count: int) -> list[Row]:
        batch = [self._rows.popleft() for _ in range(min(count, len(self._rows)))]
        self._kept -= sum(1 for row in batch if not self.sheddable(row))
        return batch

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._on_drop is not None:
            with contextlib.suppress(Exception):
                self._on_drop(count)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._closed = False
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-writer")

    async def stop(self, *, grace: float = 5.0) -> None:
        """Let the loop write what waits and return, then write what is left (within
        ``grace`` seconds). The loop is not cancelled in the middle of a write: a batch
        whose COMMIT went through but whose connection release was interrupted would be
        queued again and written twice."""
        self._closed = True
        if self._task is not None:
            self._stopping.set()
            self._full.set()
            try:
                async with asyncio.timeout(grace):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        try:
            async with asyncio.timeout(grace):
                while self._rows:
                    await self.flush()
        except Exception:
            log.warning("%s writer: %d row(s) not written at shutdown", self.name, len(self._rows))
            self._drop(len(self._rows))
            self._rows.clear()
            self._kept = 0

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            if backoff:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), timeout=self.flush_interval)
            self._full.clear()
            try:
                while self._rows:
                    await self.flush()
                backoff = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    return  # stop() makes the last attempt
                backoff = min(max(backoff * 2, 0.5), _MAX_BACKOFF)
                log.warning(
                    "%s writer: write failed (%s); %d row(s) waiting, retrying in %.1fs",
                    self.name,
                    type(exc).__name__,
                    len(self._rows),
                    backoff,
                )
            if self._stopping.is_set() and backoff == 0.0:
                return

    # ------------------------------------------------------------------ writing
    async def flush(self) -> int:
        """Write one batch (at most ``batch_size`` rows, oldest first) in one INSERT.
        On a connection failure the rows go back to the front of the queue and the error
        is raised; rows the database refuses are dropped (logged), never retried."""
        if not self._rows:
            return 0
        batch = self._take(self.batch_size)
        try:
            async with asyncio.timeout(_WRITE_TIMEOUT), self._db.as_service() as conn:
                await conn.execute(self._sql, batch)
        except asyncpg.PostgresError as exc:
            if (exc.sqlstate or "")[:2] in _DATA_ERRORS:
                self.failures += 1
                return await self._write_one_by_one(batch, exc)
            self._requeue(batch)
            raise
        except BaseException:
            self._requeue(batch)
            raise
        self.written += len(batch)
        self.batches += 1
        return len(batch)

    async def _write_one_by_one(self, batch: list[Row], exc: Exception) -> int:
        """A row the database refuses must not take its batch with it: write the rows
        singly and drop only those refused (rare: rows are cleaned when queued)."""
        written = 0
        for index, row in enumerate(batch):
            try:
                async with asyncio.timeout(_WRITE_TIMEOUT), self._db.as_service() as conn:
                    await conn.execute(self._sql, [row])
                written += 1
            except asyncpg.PostgresError as row_exc:
                if (row_exc.sqlstate or "")[:2] not in _DATA_ERRORS:
                    self._requeue(batch[index:])
                    raise
                log.error("%s writer: row refused (%s): %s", self.name, row_exc, exc)
                self._drop(1)
        self.written += written
        self.batches += 1
        return written

    def _requeue(self, batch: list[Row]) -> None:
        """Put a batch that could not be written back in front; beyond ``max_queue``,
        shed its sheddable rows (oldest first), never the others."""
        self.failures += 1
        excess = len(self._rows) + len(batch) - self.max_queue
        keep: list[Row] = []
        for row in batch:
            if excess > 0 and self.sheddable(row):
                excess -= 1
                self._drop(1)
                continue
            keep.append(row)
        self._rows.extendleft(reversed(keep))
        self._kept += sum(1 for row in keep if not self.sheddable(row))

    def stats(self) -> dict[str, int]:
        return {
            "pending": self.pending,
            "written": self.written,
            "batches": self.batches,
            "dropped": self.dropped,
        }
