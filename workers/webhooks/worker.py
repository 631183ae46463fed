"""The webhook worker of one relay: follower until it holds the leader lock, then the
reader (committed rows -> outbox) and the deliverer (outbox -> signed HTTP POSTs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from ..db import Database
from .leader import Leadership
from .metrics import WebhookMetrics
from .outbox import Claimed, Outbox
from .reader import Online, Reader
from .sender import Sender, retry_delay, webhook_id

log = logging.getLogger(__name__)

_BATCH = 16  # attempts in flight at once
_PURGE_EVERY = 3600.0
_MAX_BACKOFF = 30.0


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    url: str
    secret: str
    notify_delay: float
    include_content: bool
    timeout: float
    retry_base: float
    retry_cap: float
    retry_window: float
    poll: float
    retention_days: float


class WebhookWorker:
    def __init__(
        self,
        *,
        config: WorkerConfig,
        dsn: str,
        db: Database,
        online: Online,
        metrics: WebhookMetrics,
    ) -> None:
        self.config = config
        self._metrics = metrics
        self._reader = Reader(
            db=db, online=online, delay=config.notify_delay, include_content=config.include_content
        )
        self._outbox = Outbox(db=db, window=config.retry_window)
        self._sender = Sender(url=config.url, secret=config.secret, timeout=config.timeout)
        self.leadership = Leadership(
            dsn=dsn,
            lead=self._lead,
            retry=max(0.5, min(2.0, config.poll * 2)),
            on_change=lambda leading: metrics.leader.set(1 if leading else 0),
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._sender.open()
        self._task = asyncio.create_task(self.leadership.run(), name="webhooks-leadership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._sender.close()

    def wake(self) -> None:
        """Something is due now (an admin replay): deliver without waiting for the poll."""
        self._wake.set()

    # ------------------------------------------------------------------ leading
    async def _lead(self) -> None:
        tasks = [
            asyncio.create_task(self._read_forever(), name="webhooks-read"),
            asyncio.create_task(self._deliver_forever(), name="webhooks-deliver"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _read_forever(self) -> None:
        backoff = self.config.poll
        purged = 0.0
        while True:
            try:
                enqueued = await self._reader.tick()
                for kind, count in enqueued.items():
                    self._metrics.enqueued.labels(kind).inc(count)
                if enqueued:
                    self._wake.set()
                if time.monotonic() - purged >= _PURGE_EVERY:
                    purged = time.monotonic()
                    gone = await self._outbox.purge(older_than_days=self.config.retention_days)
                    if any(gone.values()):
                        log.info("webhook retention: removed %s", gone)
                counts = await self._outbox.counts()
                self._metrics.pending.set(counts["pending"])
                self._metrics.dead.set(counts["dead"])
                backoff = self.config.poll
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook reader failed; retrying in %.1fs", backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            await asyncio.sleep(backoff)

    async def _deliver_forever(self) -> None:
        backoff = self.config.poll
        lease = self.config.timeout + 5.0
        while True:
            self._wake.clear()  # before claiming: a wake during the claim is not lost
            try:
                claimed = await self._outbox.claim(limit=_BATCH, lease=lease)
                if claimed:
                    await asyncio.gather(*(self._attempt(row) for row in claimed))
                    backoff = self.config.poll
                    continue  # more may be due
                backoff = self.config.poll
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery failed; retrying in %.1fs", backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=backoff)

    async def _attempt(self, row: Claimed) -> None:
        try:
            attempt = await self._sender.send(webhook_id(row.id), row.payload)
        except asyncio.CancelledError:
            # Shutting down or no longer leading: the row is due again at once, not at the
            # end of its lease (a crash leaves it to the lease).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._outbox.release(row), timeout=2)
            raise
        self._metrics.attempts.labels(attempt.result).inc()
        if attempt.outcome == "delivered":
            latency = await self._outbox.delivered(row, attempt)
            self._metrics.outcomes.labels("delivered").inc()
            if latency is not None:
                self._metrics.latency.observe(max(0.0, latency))
            return
        delay = retry_delay(
            row.attempts + 1,
            base=self.config.retry_base,
            cap=self.config.retry_cap,
            retry_after=attempt.retry_after,
        )
        status = await self._outbox.failed(row, attempt, delay)
        if status == "dead":
            self._metrics.outcomes.labels("failed").inc()
            log.warning(
                "webhook %s (%s) dead-lettered after %d attempt(s): %s",
                webhook_id(row.id),
                row.event_type,
                row.attempts + 1,
                attempt.error,
            )
        else:
            self._metrics.outcomes.labels("retry").inc()
