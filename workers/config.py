"""Settings from the environment, read once at start-up.

A bad or missing value stops start-up with a message naming the variable. Modules receive
values from a :class:`Settings` object; none reads the environment itself.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/chat_dev"
MIN_JWT_SECRET_LENGTH = 32
# The secret scripts/dev uses when JWT_SECRET is unset. Never accepted implicitly by the
# relay: only scripts/dev and `python -m workers token` fall back to it.
DEV_JWT_SECRET = "local-development-secret-not-for-production-0000"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """``10.0.0.1, 10.1.0.0/16`` -> networks; ValueError names the bad entry."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {item!r}") from None
    return tuple(networks)


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    port: int = 5001
    host: str = "0.0.0.0"
    database_url: str = DEFAULT_DATABASE_URL
    jwt_secret: str | None = None
    supabase_url: str | None = None
    supabase_service_role_key: str | None = None
    redis_url: str | None = None
    cors_origins: tuple[str, ...] = ("*",)
    storage_backend: str = "local"
    data_dir: Path = Path(".data")
    upload_max_bytes: int = 10 * 1024 * 1024
    file_url_ttl: int = 900
    file_url_secret: str | None = None
    public_url: str | None = None
    db_pool_max: int = 10
    db_pool_min: int = 4
    send_group_max: int = 256
    send_pipeline: int = 2
    typing_timeout: float = 5.0
    message_rate: float = 5.0
    message_burst: int = 20
    typing_rate: float = 5.0
    typing_burst: int = 10
    event_rate: float = 20.0
    event_burst: int = 60
    max_content_length: int = 10_000
    max_packet_bytes: int = 1_000_000
    presence_ttl: int = 15
    log_level: str = "INFO"
    event_batch_size: int = 200
    event_flush_seconds: float = 1.0
    event_queue_limit: int = 10_000
    monitoring_retention_days: float = 30.0
    console_dir: Path | None = None  # None: the repository's web/dist
    # Webhooks to the host platform (workers/webhooks): off without webhook_url.
    webhook_url: str | None = None
    webhook_secret: str | None = None
    notify_delay: float = 30.0
    webhook_include_content: bool = False
    webhook_timeout: float = 10.0
    webhook_retry_base: float = 5.0
    webhook_retry_cap: float = 3600.0
    webhook_retry_window: float = 86400.0
    webhook_poll_seconds: float = 1.0
    webhook_retention_days: float = 7.0
    # Hardening: token issuer, session creation, upload quota, disk floor, sweep.
    jwt_issuer: str | None = None
    session_create_rate: float = 0.1
    session_create_burst: int = 20
    upload_quota_bytes: int = 300 * 1024 * 1024
    storage_min_free_bytes: int = 1024 * 1024 * 1024
    orphan_sweep_seconds: float = 600.0
    orphan_grace_seconds: float = 900.0
    user_event_rate: float = 30.0
    user_event_burst: int = 100
    api_rate: float = 20.0
    api_burst: int = 60
    max_connections: int = 10_000
    max_connections_per_ip: int = 200
    max_connections_per_user: int = 20
    connect_timeout: float = 5.0
    connect_rate_per_ip: float = 5.0
    connect_burst_per_ip: int = 50
    max_queued_packets: int = 1_000
    trusted_proxies: tuple[Network, ...] = ()
    refusal_audit_per_minute: int = 10
    # Data lifecycle (workers/lifecycle): erasure, export, retention.
    erasure_mode: str = "redact"
    retention_days: tuple[tuple[str, float], ...] = ()
    retention_interval: float = 86_400.0
    retention_batch: int = 5_000
    retention_pause_ratio: float = 1.0
    lifecycle_poll_seconds: float = 2.0
    export_ttl: float = 86_400.0
    # Moderation: how long a sender may edit or delete a message.
    edit_window: int = 900
    contact_filter: str = "flag"
    contact_allow_domains: tuple[str, ...] = ()

    @property
    def jwks_url(self) -> str | None:
        if not self.supabase_url:
            return None
        return self.supabase_url.rstrip("/") + "/auth/v1/.well-known/jwks.json"

    @property
    def token_issuer(self) -> str | None:
        """The ``iss`` every token must carry: ``JWT_ISSUER``, else ``SUPABASE_URL/auth/v1``
        (what Supabase Auth issues), else none is checked (``JWT_SECRET`` alone)."""
        if self.jwt_issuer:
            return self.jwt_issuer
        if self.supabase_url:
            return self.supabase_url.rstrip("/") + "/auth/v1"
        return None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        get = _Reader(env)
        settings = cls(
            port=get.integer("PORT", 5001, low=1, high=65535),
            host=get.text("HOST", "0.0.0.0"),
            database_url=get.postgres_url("DATABASE_URL", DEFAULT_DATABASE_URL),
            jwt_secret=get.optional("JWT_SECRET"),
            supabase_url=get.http_url("SUPABASE_URL"),
            supabase_service_role_key=get.optional("SUPABASE_SERVICE_ROLE_KEY"),
            redis_url=get.redis_url("REDIS_URL"),
            cors_origins=get.origins("CORS_ORIGINS", ("*",)),
            storage_backend=get.choice("STORAGE_BACKEND", "local", ("local", "supabase")),
            data_dir=Path(get.text("DATA_DIR", ".data")),
            upload_max_bytes=get.integer(
                "UPLOAD_MAX_BYTES", 10 * 1024 * 1024, low=1, high=10 * 1024 * 1024
            ),
            file_url_ttl=get.integer("FILE_URL_TTL", 900, low=10, high=7 * 24 * 3600),
            file_url_secret=get.optional("FILE_URL_SECRET"),
            public_url=get.http_url("PUBLIC_URL"),
            db_pool_max=get.integer("DB_POOL_MAX", 10, low=2, high=1000),
            db_pool_min=get.integer("DB_POOL_MIN", 4, low=1, high=1000),
            send_group_max=get.integer("SEND_GROUP_MAX", 256, low=1, high=10_000),
            send_pipeline=get.integer("SEND_PIPELINE", 2, low=1, high=64),
            console_dir=_optional_path(get.optional("CONSOLE_DIR")),
            typing_timeout=get.number("TYPING_TIMEOUT", 5.0, low=0.1, high=600),
            message_rate=get.number("MESSAGE_RATE", 5.0, low=0, high=10_000),
            message_burst=get.integer("MESSAGE_BURST", 20, low=1, high=100_000),
            typing_rate=get.number("TYPING_RATE", 5.0, low=0, high=10_000),
            typing_burst=get.integer("TYPING_BURST", 10, low=1, high=100_000),
            event_rate=get.number("EVENT_RATE", 20.0, low=0, high=100_000),
            event_burst=get.integer("EVENT_BURST", 60, low=1, high=1_000_000),
            max_content_length=get.integer("MAX_CONTENT_LENGTH", 10_000, low=1, high=10_000),
            max_packet_bytes=get.integer("MAX_PACKET_BYTES", 1_000_000, low=1024, high=100_000_000),
            presence_ttl=get.integer("PRESENCE_TTL", 15, low=2, high=300),
            log_level=get.choice(
                "LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True
            ),
            event_batch_size=get.integer("EVENT_BATCH_SIZE", 200, low=1, high=10_000),
            event_flush_seconds=get.number("EVENT_FLUSH_SECONDS", 1.0, low=0.01, high=60),
            event_queue_limit=get.integer("EVENT_QUEUE_LIMIT", 10_000, low=1, high=10_000_000),
            monitoring_retention_days=get.number(
                "MONITORING_RETENTION_DAYS", 30.0, low=0, high=36_500
            ),
            **_webhook_settings(get),
            jwt_issuer=get.optional("JWT_ISSUER"),
            session_create_rate=get.number("SESSION_CREATE_RATE", 0.1, low=0, high=10_000),
            session_create_burst=get.integer("SESSION_CREATE_BURST", 20, low=1, high=100_000),
            upload_quota_bytes=get.integer(
                "UPLOAD_QUOTA_BYTES", 300 * 1024 * 1024, low=0, high=2**50
            ),
            storage_min_free_bytes=get.integer(
                "STORAGE_MIN_FREE_BYTES", 1024 * 1024 * 1024, low=0, high=2**60
            ),
            orphan_sweep_seconds=get.number("ORPHAN_SWEEP_SECONDS", 600.0, low=0, high=86_400),
            orphan_grace_seconds=get.number("ORPHAN_GRACE_SECONDS", 900.0, low=60, high=604_800),
            user_event_rate=get.number("USER_EVENT_RATE", 30.0, low=0, high=100_000),
            user_event_burst=get.integer("USER_EVENT_BURST", 100, low=1, high=1_000_000),
            api_rate=get.number("API_RATE", 20.0, low=0, high=100_000),
            api_burst=get.integer("API_BURST", 60, low=1, high=1_000_000),
            max_connections=get.integer("MAX_CONNECTIONS", 10_000, low=1, high=1_000_000),
            max_connections_per_ip=get.integer(
                "MAX_CONNECTIONS_PER_IP", 200, low=1, high=1_000_000
            ),
            max_connections_per_user=get.integer(
                "MAX_CONNECTIONS_PER_USER", 20, low=1, high=100_000
            ),
            connect_timeout=get.number("CONNECT_TIMEOUT", 5.0, low=0.1, high=300),
            connect_rate_per_ip=get.number("CONNECT_RATE_PER_IP", 5.0, low=0, high=100_000),
            connect_burst_per_ip=get.integer("CONNECT_BURST_PER_IP", 50, low=1, high=1_000_000),
            max_queued_packets=get.integer("MAX_QUEUED_PACKETS", 1_000, low=10, high=1_000_000),
            trusted_proxies=get.networks("TRUSTED_PROXIES"),
            refusal_audit_per_minute=get.integer(
                "REFUSAL_AUDIT_PER_MINUTE", 10, low=0, high=100_000
            ),
            erasure_mode=get.choice("ERASURE_MODE", "redact", ("redact", "retain", "delete")),
            retention_days=get.retention("RETENTION_DAYS"),
            retention_interval=get.number(
                "RETENTION_INTERVAL_SECONDS", 86_400.0, low=1, high=7 * 86_400
            ),
            retention_batch=get.integer("RETENTION_BATCH", 5_000, low=1, high=100_000),
            retention_pause_ratio=get.number("RETENTION_PAUSE_RATIO", 1.0, low=0, high=100),
            lifecycle_poll_seconds=get.number("LIFECYCLE_POLL_SECONDS", 2.0, low=0.05, high=600),
            export_ttl=get.number("EXPORT_TTL_SECONDS", 86_400.0, low=60, high=30 * 86_400),
            edit_window=get.integer("EDIT_WINDOW_S", 900, low=0, high=604_800),
            contact_filter=get.choice("CONTACT_FILTER", "flag", ("off", "flag", "mask", "block")),
            contact_allow_domains=tuple(
                d.strip().lower()
                for d in (get.optional("CONTACT_FILTER_ALLOW_DOMAINS") or "").split(",")
                if d.strip()
            ),
        )
        settings._check()
        return settings

    def warnings(self) -> list[str]:
        """Legal but unwise values, logged at start-up."""
        found = []
        if self.jwt_secret is not None and len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH:
            found.append(
                f"JWT_SECRET is shorter than {MIN_JWT_SECRET_LENGTH} characters: tokens signed "
                "with it are easy to forge (Supabase's secrets are 40 or more)"
            )
        if self.jwt_secret == DEV_JWT_SECRET:
            found.append("JWT_SECRET is the development secret of scripts/dev: not for production")
        return found

    def _check(self) -> None:
        if not self.jwt_secret and not self.supabase_url:
            raise SettingsError(
                "JWT_SECRET: set it to the project's JWT secret (or set SUPABASE_URL to "
                "verify tokens with the project's signing keys)"
            )
        if self.file_url_secret is not None and len(self.file_url_secret) < 32:
            raise SettingsError("FILE_URL_SECRET: must be at least 32 characters")
        self._check_webhooks()
        if self.storage_backend == "supabase":
            if not self.supabase_url:
                raise SettingsError("SUPABASE_URL: required when STORAGE_BACKEND=supabase")
            if not self.supabase_service_role_key:
                raise SettingsError(
                    "SUPABASE_SERVICE_ROLE_KEY: required when STORAGE_BACKEND=supabase"
                )

    def _check_webhooks(self) -> None:
        if self.webhook_url and not self.webhook_secret:
            raise SettingsError("WEBHOOK_SECRET: required when WEBHOOK_URL is set (whsec_...)")
        if self.webhook_secret is not None:
            _check_webhook_secret(self.webhook_secret)


# Standard Webhooks secrets: "whsec_" and the base64 of 24 to 64 random bytes.
_WEBHOOK_SECRET_BYTES = (24, 64)


def _check_webhook_secret(secret: str) -> None:
    raw = secret.removeprefix("whsec_")
    try:
        padded = raw + "=" * (-len(raw) % 4)
        key = base64.b64decode(padded, validate=True) if raw != secret else b""
    except ValueError:
        key = b""
    low, high = _WEBHOOK_SECRET_BYTES
    if not low <= len(key) <= high:
        raise SettingsError(
            f"WEBHOOK_SECRET: expected whsec_ followed by the base64 of {low} to {high} "
            "random bytes (for example whsec_ + `openssl rand -base64 32`)"
        )


def _webhook_settings(get: _Reader) -> dict[str, Any]:
    """The webhook variables (docs/operations.md, Webhooks to the host platform)."""
    return {
        "webhook_url": get.http_url("WEBHOOK_URL"),
        "webhook_secret": get.optional("WEBHOOK_SECRET"),
        "notify_delay": get.number("NOTIFY_DELAY", 30.0, low=0, high=86_400),
        "webhook_include_content": get.boolean("WEBHOOK_INCLUDE_CONTENT", False),
        "webhook_timeout": get.number("WEBHOOK_TIMEOUT", 10.0, low=0.1, high=60),
        "webhook_retry_base": get.number("WEBHOOK_RETRY_BASE", 5.0, low=0.01, high=3600),
        "webhook_retry_cap": get.number("WEBHOOK_RETRY_CAP", 3600.0, low=0.01, high=86_400),
        "webhook_retry_window": get.number(
            "WEBHOOK_RETRY_WINDOW", 86_400.0, low=0.1, high=7 * 86_400
        ),
        "webhook_poll_seconds": get.number("WEBHOOK_POLL_SECONDS", 1.0, low=0.05, high=60),
        "webhook_retention_days": get.number("WEBHOOK_RETENTION_DAYS", 7.0, low=1, high=3650),
    }


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name}: must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{name}: expected a number, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(f"{name}: must be between {low} and {high}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{name}: expected true or false, got {raw!r}")

    def choice(
        self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False
    ) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise SettingsError(f"{name}: must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    def _url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        parts = urllib.parse.urlsplit(raw)
        if parts.scheme not in schemes or (not parts.hostname and not parts.path):
            raise SettingsError(
                f"{name}: expected a URL starting with {' or '.join(s + '://' for s in schemes)}"
            )
        return raw

    def postgres_url(self, name: str, default: str) -> str:
        return self._url(name, ("postgres", "postgresql")) or default

    def http_url(self, name: str) -> str | None:
        url = self._url(name, ("http", "https"))
        if url is not None and not urllib.parse.urlsplit(url).hostname:
            raise SettingsError(f"{name}: expected a URL with a host, got {url!r}")
        return url

    def redis_url(self, name: str) -> str | None:
        return self._url(name, ("redis", "rediss", "unix"))

    def retention(self, name: str) -> tuple[tuple[str, float], ...]:
        """``365`` (every session type) or ``booking=365,support=90`` (the others are kept
        forever) -> ((type, days), ...)."""
        raw = self.optional(name)
        if raw is None:
            return ()
        types = ("booking", "support", "emergency")
        pairs: dict[str, float] = {}
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            kind, sep, days_text = item.rpartition("=")
            kind = kind.strip().lower()
            if sep and kind not in types:
                raise SettingsError(f"{name}: {kind!r} is not a session type ({', '.join(types)})")
            try:
                days = float(days_text)
            except ValueError:
                raise SettingsError(f"{name}: expected days or type=days, got {item!r}") from None
            if not 1 <= days <= 36_500:
                raise SettingsError(f"{name}: days must be between 1 and 36500, got {item!r}")
            for target in (kind,) if sep else types:
                pairs[target] = days
        return tuple(sorted(pairs.items()))

    def networks(self, name: str) -> tuple[Network, ...]:
        raw = self.optional(name)
        if raw is None:
            return ()
        try:
            return parse_networks(raw)
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None

    def origins(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.optional(name)
        if raw is None:
            return default
        origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        for origin in origins:
            if origin != "*" and urllib.parse.urlsplit(origin).scheme not in ("http", "https"):
                raise SettingsError(
                    f"{name}: each origin must be * or start with http:// or https://, "
                    f"got {origin!r}"
                )
        return origins or default


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
