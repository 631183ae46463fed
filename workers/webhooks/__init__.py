"""Webhooks to the host platform (Standard Webhooks), off unless ``WEBHOOK_URL`` is set.

``setup(app)`` (after the relay and the metrics exist) adds the worker to the app's
``cleanup_ctx``, like the changefeed: every relay runs one, the one holding the leader
lock does the work. See docs/operations.md, "Webhooks to the host platform".
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator

from aiohttp import web

from ..keys import DATABASE, METRICS, RELAY, SETTINGS
from .metrics import WebhookMetrics
from .worker import WebhookWorker, WorkerConfig

log = logging.getLogger(__name__)

WEBHOOKS = web.AppKey("webhooks", WebhookWorker)

__all__ = ["WEBHOOKS", "WebhookWorker", "setup"]


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    if not settings.webhook_url or not settings.webhook_secret:
        return
    relay = app[RELAY]
    presence = relay.presence

    async def online(session_id: uuid.UUID, user_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``user_ids`` with a socket joined to the session, on any relay (Redis);
        if Redis is away, on this relay: a spurious notification beats a missed one."""
        try:
            return set(await presence.online(session_id)) & user_ids
        except Exception:
            log.warning("presence unavailable; using this relay's sockets only", exc_info=True)
            return {u for u in user_ids if presence.local_sids(session_id, u)}

    config = WorkerConfig(
        url=settings.webhook_url,
        secret=settings.webhook_secret,
        notify_delay=settings.notify_delay,
        include_content=settings.webhook_include_content,
        timeout=settings.webhook_timeout,
        retry_base=settings.webhook_retry_base,
        retry_cap=settings.webhook_retry_cap,
        retry_window=settings.webhook_retry_window,
        poll=settings.webhook_poll_seconds,
        retention_days=settings.webhook_retention_days,
    )
    app[WEBHOOKS] = WebhookWorker(
        config=config,
        dsn=settings.database_url,
        db=app[DATABASE],
        online=online,
        metrics=WebhookMetrics(app[METRICS].registry),
    )
    app.cleanup_ctx.append(_worker_ctx)


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = app[WEBHOOKS]
    await worker.start()
    yield
    await worker.stop()
