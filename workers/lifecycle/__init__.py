"""The data lifecycle: erasure follow-up, exports, retention (docs/data-lifecycle.md).

``setup(app)`` (after the object store exists) writes ``ERASURE_MODE`` to the database at
start and adds a :class:`LifecycleWorker` to the app's ``cleanup_ctx``: every relay runs
one; the one holding the lifecycle lock (a PostgreSQL advisory lock, as for webhooks)
removes erased files, finishes erasures, builds exports left behind by a relay that died,
deletes expired archives and runs the retention purge every
``RETENTION_INTERVAL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ..keys import DATABASE, METRICS, OBJECT_STORE, SETTINGS
from ..webhooks.leader import Leadership
from . import erasure, exports, retention
from .metrics import LifecycleMetrics

log = logging.getLogger(__name__)

# pg_try_advisory_lock key of the lifecycle leader ("CHAT" "LIFE").
LOCK_KEY = 0x43484154_4C494645
_MAX_BACKOFF = 60.0


class LifecycleWorker:
    def __init__(self, app: web.Application) -> None:
        self._app = app
        settings = app[SETTINGS]
        self.settings = settings
        self.metrics = LifecycleMetrics(app[METRICS].registry)
        self.exports = exports.Exporter(
            db=app[DATABASE],
            store=app[OBJECT_STORE],
            directory=settings.data_dir / "exports",
            ttl=settings.export_ttl,
            metrics=self.metrics,
        )
        self.leadership = Leadership(
            dsn=settings.database_url,
            lead=self._lead,
            retry=max(0.5, min(2.0, settings.lifecycle_poll_seconds * 2)),
            on_change=lambda leading: self.metrics.leader.set(1 if leading else 0),
            lock_key=LOCK_KEY,
            name="lifecycle",
        )
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def start(self) -> None:
        with contextlib.suppress(Exception):  # the leader writes it again once it can
            await self._write_mode()
        self._task = asyncio.create_task(self.leadership.run(), name="lifecycle-leadership")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.exports.stop()

    def wake(self) -> None:
        """An erasure or an export is waiting: look now rather than at the next poll."""
        self._wake.set()

    async def _write_mode(self) -> None:
        """The settings the database applies on every path: ERASURE_MODE, EDIT_WINDOW_S,
        CONTACT_FILTER and CONTACT_FILTER_ALLOW_DOMAINS."""
        async with self._app[DATABASE].as_service() as conn:
            await conn.execute(
                "select chat_private.set_erasure_mode($1)", self.settings.erasure_mode
            )
            await conn.execute("select chat_private.set_edit_window($1)", self.settings.edit_window)

    async def _lead(self) -> None:
        settings = self.settings
        db = self._app[DATABASE]
        store = self._app[OBJECT_STORE]
        delay = settings.lifecycle_poll_seconds
        next_purge = time.monotonic() + min(60.0, settings.retention_interval)
        mode_written = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            try:
                if not mode_written:
                    await self._write_mode()
                    mode_written = True
                webhooks = bool(settings.webhook_url and settings.webhook_secret)
                done = await erasure.follow_up_once(db, store, webhooks=webhooks)
                await erasure.announce_reports(db, webhooks=webhooks)
                self.metrics.files_removed.labels("erased").inc(done.files_removed)
                self.metrics.erasures.inc(done.erasures_finished)
                await self.exports.resume_abandoned()
                await self.exports.expire()
                if settings.retention_days and time.monotonic() >= next_purge:
                    result = await retention.purge(
                        db,
                        store,
                        days=dict(settings.retention_days),
                        batch=settings.retention_batch,
                        pause_ratio=settings.retention_pause_ratio,
                    )
                    self.metrics.record_purge(result)
                    next_purge = time.monotonic() + settings.retention_interval
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(max(delay, 1.0) * 2, _MAX_BACKOFF)
                log.warning("lifecycle work failed (%r); next try in %.0f s", exc, delay)
                continue
            delay = settings.lifecycle_poll_seconds


LIFECYCLE = web.AppKey("lifecycle", LifecycleWorker)

__all__ = ["LIFECYCLE", "LifecycleWorker", "setup"]


def setup(app: web.Application) -> None:
    app[LIFECYCLE] = LifecycleWorker(app)
    app.cleanup_ctx.append(_worker_ctx)


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = app[LIFECYCLE]
    await worker.start()
    yield
    await worker.stop()
