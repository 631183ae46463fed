"""Typed application keys, shared by the app factory and the handlers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from .auth import TokenVerifier
from .config import Settings
from .db import Database

if TYPE_CHECKING:
    from .relay import Relay

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
VERIFIER = web.AppKey("verifier", TokenVerifier)
# Live counters of the Socket.IO relay for /health; absent until the relay is mounted.
SOCKET_STATS: web.AppKey[Callable[[], dict[str, int]]] = web.AppKey("socket_stats")
RELAY: web.AppKey[Relay] = web.AppKey("relay")
