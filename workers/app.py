"""The aiohttp application factory. Tests call it too."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from .api import health
from .api.errors import error_middleware
from .auth import TokenVerifier
from .config import Settings
from .db import Database
from .keys import DATABASE, SETTINGS, VERIFIER

log = logging.getLogger(__name__)

# JSON bodies beyond this are refused with 413 before they are read.
MAX_JSON_BODY = 1024 * 1024


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=MAX_JSON_BODY)
    app[SETTINGS] = settings
    app[VERIFIER] = TokenVerifier(jwt_secret=settings.jwt_secret, jwks_url=settings.jwks_url)
    app.cleanup_ctx.append(_database_ctx)
    health.setup(app)
    return app


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[SETTINGS].database_url, max_size=app[SETTINGS].db_pool_max)
    await db.open()
    app[DATABASE] = db
    yield
    await db.close()
