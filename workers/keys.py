"""Typed application keys, shared by the app factory and the handlers."""

from __future__ import annotations

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
RELAY: web.AppKey[Relay] = web.AppKey("relay")
