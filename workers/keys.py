"""Typed application keys, shared by the app factory and the handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from .audit import AuditWriter
from .audit_linker import AuditLinker
from .auth import TokenVerifier
from .config import Settings
from .db import Database
from .metrics import Metrics
from .monitoring import MonitoringWriter
from .storage import ObjectStore, UrlSigner

if TYPE_CHECKING:
    from .relay import Relay

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
VERIFIER = web.AppKey("verifier", TokenVerifier)
RELAY: web.AppKey[Relay] = web.AppKey("relay")
OBJECT_STORE = web.AppKey("object_store", ObjectStore)
URL_SIGNER = web.AppKey("url_signer", UrlSigner)
AUDIT = web.AppKey("audit", AuditWriter)
MONITORING = web.AppKey("monitoring", MonitoringWriter)
METRICS = web.AppKey("metrics", Metrics)
AUDIT_LINKER = web.AppKey("audit_linker", AuditLinker)
