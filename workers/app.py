"""The aiohttp application factory. Tests call it too."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import lifecycle, telemetry, webhooks
from .api import admin, chat, console, files, health, moderation, search
from .api import lifecycle as lifecycle_api
from .api import webhooks as webhook_admin
from .api.errors import error_middleware
from .api.passthrough import passes_websockets
from .audit_linker import AuditLinker
from .auth import TokenVerifier
from .config import Settings
from .db import Database
from .keys import AUDIT_LINKER, DATABASE, RELAY, SETTINGS, VERIFIER
from .relay import Relay, new_relay_id
from .tasks import spawn

log = logging.getLogger(__name__)

# JSON bodies beyond this are refused with 413 before they are read.
MAX_JSON_BODY = 1024 * 1024


def create_app(settings: Settings, *, relay_id: str | None = None) -> web.Application:
    app = web.Application(
        middlewares=[passes_websockets(error_middleware)], client_max_size=MAX_JSON_BODY
    )
    app[SETTINGS] = settings
    app[VERIFIER] = TokenVerifier(
        jwt_secret=settings.jwt_secret, jwks_url=settings.jwks_url, issuer=settings.token_issuer
    )
    app[DATABASE] = Database(
        settings.database_url, max_size=settings.db_pool_max, min_size=settings.db_pool_min
    )
    relay = Relay(
        settings=settings,
        db=app[DATABASE],
        verifier=app[VERIFIER],
        relay_id=relay_id or new_relay_id(),
    )
    relay.sio.attach(app)
    app[RELAY] = relay
    app[AUDIT_LINKER] = AuditLinker(settings.database_url)
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_relay_ctx)
    app.cleanup_ctx.append(_audit_linker_ctx)
    app.on_shutdown.append(_close_sockets)
    health.setup(app)
    chat.setup(app)
    admin.setup(app)
    telemetry.setup(app)
    files.setup(app)
    search.setup(app)
    webhooks.setup(app)  # after telemetry: its metrics join the app's registry
    webhook_admin.setup(app)
    lifecycle.setup(app)  # after files (the object store) and telemetry (metrics)
    lifecycle_api.setup(app)
    moderation.setup(app)
    console.setup(app)  # the web console at / and /assets/
    return app


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[DATABASE].open()
    # Warm before serving when the database is there; otherwise serve (unhealthy) and
    # keep warming in the background.
    warm = spawn(app[DATABASE].warm_up(), name="pool-warm-up")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(warm), timeout=5)
    yield
    warm.cancel()
    await app[DATABASE].close()


async def _close_sockets(app: web.Application) -> None:
    await app[RELAY].disconnect_all()


async def _relay_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[RELAY].start()
    yield
    await app[RELAY].stop()


async def _audit_linker_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[AUDIT_LINKER].start()
    yield
    await app[AUDIT_LINKER].stop()
