"""Settings from the environment, read once at start-up.

A bad or missing value stops start-up with a message naming the variable. Modules receive
values from a :class:`Settings` object; none reads the environment itself.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import textwrap
import typing
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

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
class Bucket:
    """A token bucket's setting: ``rate`` tokens a second refill it, at most ``burst`` are
    saved (the most taken at once after a pause). A rate of 0 turns the limit off."""

    rate: float
    burst: int


NO_LIMIT = Bucket(rate=0.0, burst=1)


@dataclass(frozen=True, slots=True)
class Var:
    """How one setting is read from the environment and documented: its variable, how it
    is parsed (``kind``: a method of the reader), its bounds or choices, and what it means.
    The default is the field's. ``.env.example`` and the configuration table of
    docs/operations.md are generated from these (``python -m workers settings-docs``)."""

    env: str
    kind: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    upper: bool = False
    row: str | None = None  # documented in the same table row as this variable
    burst: str | None = None  # a bucket's second variable, its burst (integer, 1..burst_high)
    burst_high: int = 0
    shown: str | None = None  # the default as the docs show it, when not the value itself
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Settings:
    port: Annotated[
        int,
        Var(
            "PORT",
            "integer",
            low=1,
            high=65535,
            doc="HTTP and Socket.IO port",
        ),
    ] = 5001
    host: Annotated[
        str,
        Var(
            "HOST",
            "text",
            doc="listen address",
        ),
    ] = "0.0.0.0"
    database_url: Annotated[
        str,
        Var(
            "DATABASE_URL",
            "postgres_url",
            doc=(
                "PostgreSQL; on hosted Supabase the direct or session-pooler string "
                "(LISTEN/NOTIFY needs it)"
            ),
        ),
    ] = DEFAULT_DATABASE_URL
    jwt_secret: Annotated[
        str | None,
        Var(
            "JWT_SECRET",
            "optional",
            shown="dev secret in `scripts/dev`",
            doc=(
                "HS256 secret (Supabase's legacy JWT secret); shorter than 32 characters "
                "starts with a warning"
            ),
        ),
    ] = None
    supabase_url: Annotated[
        str | None,
        Var(
            "SUPABASE_URL",
            "http_url",
            doc=(
                "when set, ES256/RS256 tokens are verified with "
                "`SUPABASE_URL/auth/v1/.well-known/jwks.json` (keys cached 10 min)"
            ),
        ),
    ] = None
    supabase_service_role_key: Annotated[
        str | None,
        Var(
            "SUPABASE_SERVICE_ROLE_KEY",
            "optional",
            doc="only for `STORAGE_BACKEND=supabase`; never sent to browsers",
        ),
    ] = None
    redis_url: Annotated[
        str | None,
        Var(
            "REDIS_URL",
            "redis_url",
            doc=(
                "several relays: Socket.IO message queue, presence, shared budgets; unset: "
                "one relay, in memory. Optional at run time: while it is down each relay "
                "serves its own sockets with local state (see [Limits and Redis "
                "outages](protocol.md#limits-and-redis-outages))"
            ),
        ),
    ] = None
    cors_origins: Annotated[
        tuple[str, ...],
        Var(
            "CORS_ORIGINS",
            "origins",
            doc="comma-separated allowed browser origins",
        ),
    ] = ("*",)
    storage_backend: Annotated[
        str,
        Var(
            "STORAGE_BACKEND",
            "choice",
            choices=("local", "supabase"),
            doc="`local` (files under `DATA_DIR`) or `supabase` (Supabase Storage)",
        ),
    ] = "local"
    data_dir: Annotated[
        Path,
        Var(
            "DATA_DIR",
            "path",
            doc=(
                "local files: `chat-files/` (objects of the `local` store) and `tmp/` "
                "(uploads in progress, either store)"
            ),
        ),
    ] = Path(".data")
    upload_max_bytes: Annotated[
        int,
        Var(
            "UPLOAD_MAX_BYTES",
            "integer",
            low=1,
            high=10 * 1024 * 1024,
            doc="largest accepted file (10 MB, the bucket's limit; may only be lowered)",
        ),
    ] = 10 * 1024 * 1024
    file_url_ttl: Annotated[
        int,
        Var(
            "FILE_URL_TTL",
            "integer",
            low=10,
            high=7 * 24 * 3600,
            doc="seconds a signed file URL (`metadata.url`) stays valid",
        ),
    ] = 900
    file_url_secret: Annotated[
        str | None,
        Var(
            "FILE_URL_SECRET",
            "optional",
            doc=(
                "key for signed file URLs (at least 32 characters); unset: derived from "
                "`JWT_SECRET`"
            ),
        ),
    ] = None
    public_url: Annotated[
        str | None,
        Var(
            "PUBLIC_URL",
            "http_url",
            doc=(
                "the service's public origin, e.g. `https://chat.example.com`; makes signed"
                " file URLs absolute"
            ),
        ),
    ] = None
    db_pool_max: Annotated[
        int,
        Var(
            "DB_POOL_MAX",
            "integer",
            low=2,
            high=1000,
            doc="asyncpg pool size",
        ),
    ] = 10
    db_pool_min: Annotated[
        int,
        Var(
            "DB_POOL_MIN",
            "integer",
            low=1,
            high=1000,
            doc=(
                "connections opened (types introspected) before the service serves; kept "
                "open while idle"
            ),
        ),
    ] = 4
    send_group_max: Annotated[
        int,
        Var(
            "SEND_GROUP_MAX",
            "integer",
            low=1,
            high=10_000,
            doc="most messages in one group commit",
        ),
    ] = 256
    send_pipeline: Annotated[
        int,
        Var(
            "SEND_PIPELINE",
            "integer",
            low=1,
            high=64,
            doc=(
                "most group commits in the database at once (each on its own connection); "
                "a further one starts only when those in flight have kept its sends "
                "waiting `SEND_OVERLAP_AFTER_MS`"
            ),
        ),
    ] = 2
    send_overlap_after_ms: Annotated[
        float,
        Var(
            "SEND_OVERLAP_AFTER_MS",
            "number",
            low=0,
            high=1000,
            doc=(
                "milliseconds the sends behind a committing group wait for it to end (then "
                "they go together, in one larger group) before another group starts beside "
                "it; 0: at once, as long as `SEND_PIPELINE` allows"
            ),
        ),
    ] = 3.0
    typing_timeout: Annotated[
        float,
        Var(
            "TYPING_TIMEOUT",
            "number",
            low=0.1,
            high=600,
            doc="seconds before the relay emits `user_stopped_typing` itself",
        ),
    ] = 5.0
    message_bucket: Annotated[
        Bucket,
        Var(
            "MESSAGE_RATE",
            "bucket",
            low=0,
            high=10_000,
            burst="MESSAGE_BURST",
            burst_high=100_000,
            doc=(
                "per-user token bucket for `send_message` (tokens per second, bucket size);"
                " shared through Redis"
            ),
        ),
    ] = Bucket(rate=5.0, burst=20)
    typing_bucket: Annotated[
        Bucket,
        Var(
            "TYPING_RATE",
            "bucket",
            low=0,
            high=10_000,
            burst="TYPING_BURST",
            burst_high=100_000,
            doc="the same for `typing_start`",
        ),
    ] = Bucket(rate=5.0, burst=10)
    event_bucket: Annotated[
        Bucket,
        Var(
            "EVENT_RATE",
            "bucket",
            low=0,
            high=100_000,
            burst="EVENT_BURST",
            burst_high=1_000_000,
            doc=(
                "per-socket bucket for every client event (a floor under each handler's "
                "cost); a flood's refusals are audited once per 10 s per socket"
            ),
        ),
    ] = Bucket(rate=20.0, burst=60)
    max_content_length: Annotated[
        int,
        Var(
            "MAX_CONTENT_LENGTH",
            "integer",
            low=1,
            high=10_000,
            doc="longest text message, in characters (the database allows at most 10 000)",
        ),
    ] = 10_000
    max_packet_bytes: Annotated[
        int,
        Var(
            "MAX_PACKET_BYTES",
            "integer",
            low=1024,
            high=100_000_000,
            doc="Engine.IO's largest accepted packet",
        ),
    ] = 1_000_000
    presence_ttl: Annotated[
        int,
        Var(
            "PRESENCE_TTL",
            "integer",
            low=2,
            high=300,
            doc="seconds after which a silent (crashed) relay's users leave `online_users`",
        ),
    ] = 15
    log_level: Annotated[
        str,
        Var(
            "LOG_LEVEL",
            "choice",
            choices=("DEBUG", "INFO", "WARNING", "ERROR"),
            upper=True,
            doc="`DEBUG`, `INFO`, `WARNING`, `ERROR`",
        ),
    ] = "INFO"
    event_batch_size: Annotated[
        int,
        Var(
            "EVENT_BATCH_SIZE",
            "integer",
            low=1,
            high=10_000,
            doc=("audit and monitoring writers: rows per INSERT; a full batch is written at once"),
        ),
    ] = 200
    event_flush_seconds: Annotated[
        float,
        Var(
            "EVENT_FLUSH_SECONDS",
            "number",
            low=0.01,
            high=60,
            doc="longest wait before queued audit and monitoring rows are written",
        ),
    ] = 1.0
    event_queue_limit: Annotated[
        int,
        Var(
            "EVENT_QUEUE_LIMIT",
            "integer",
            low=1,
            high=10_000_000,
            doc=(
                "rows each writer keeps while the database is away; beyond, the oldest "
                "*sheddable* rows are dropped and counted (monitoring rows; audit rows "
                "without an authenticated actor). Audit rows of authenticated actors are "
                "never dropped: when that many wait, new socket events, connections and "
                "REST calls are refused with `unavailable` until they are written"
            ),
        ),
    ] = 10_000
    monitoring_retention_days: Annotated[
        float,
        Var(
            "MONITORING_RETENTION_DAYS",
            "number",
            low=0,
            high=36_500,
            doc="monitoring events older than this are deleted hourly; `0` keeps them",
        ),
    ] = 30.0
    console_dir: Annotated[
        Path | None,
        Var(
            "CONSOLE_DIR",
            "optional_path",
            shown="the repository's `web/dist`",
            doc="the built web console served at `/` (`scripts/dev` builds it)",
        ),
    ] = None
    # Webhooks to the host platform (workers/webhooks): off without webhook_url.
    webhook_url: Annotated[
        str | None,
        Var(
            "WEBHOOK_URL",
            "http_url",
            doc=(
                "where [webhooks](#webhooks-to-the-host-platform) go (`http(s)://...`); "
                "unset: webhooks off"
            ),
        ),
    ] = None
    webhook_secret: Annotated[
        str | None,
        Var(
            "WEBHOOK_SECRET",
            "optional",
            doc=(
                "required with `WEBHOOK_URL`: `whsec_` + base64 of 24 to 64 random bytes "
                "(`whsec_$(openssl rand -base64 32)`)"
            ),
        ),
    ] = None
    notify_delay: Annotated[
        float,
        Var(
            "NOTIFY_DELAY",
            "number",
            low=0,
            high=86_400,
            doc=(
                "seconds a participant's unread messages wait (no socket joined) before "
                "`chat.message.waiting`; `emergency` sessions: at once"
            ),
        ),
    ] = 30.0
    webhook_include_content: Annotated[
        bool,
        Var(
            "WEBHOOK_INCLUDE_CONTENT",
            "boolean",
            doc="`true`: events carry message text and session titles",
        ),
    ] = False
    webhook_timeout: Annotated[
        float,
        Var(
            "WEBHOOK_TIMEOUT",
            "number",
            low=0.1,
            high=60,
            doc="seconds one delivery attempt may take, in all",
        ),
    ] = 10.0
    webhook_retry_base: Annotated[
        float,
        Var(
            "WEBHOOK_RETRY_BASE",
            "number",
            low=0.01,
            high=3600,
            doc="first retry delay, doubling up to the cap (seconds, with jitter)",
        ),
    ] = 5.0
    webhook_retry_cap: Annotated[
        float,
        Var(
            "WEBHOOK_RETRY_CAP",
            "number",
            low=0.01,
            high=86_400,
            row="WEBHOOK_RETRY_BASE",
            doc="first retry delay, doubling up to the cap (seconds, with jitter)",
        ),
    ] = 3600.0
    webhook_retry_window: Annotated[
        float,
        Var(
            "WEBHOOK_RETRY_WINDOW",
            "number",
            low=0.1,
            high=7 * 86_400,
            doc="seconds of retries before a delivery is a dead letter",
        ),
    ] = 86400.0
    webhook_poll_seconds: Annotated[
        float,
        Var(
            "WEBHOOK_POLL_SECONDS",
            "number",
            low=0.05,
            high=60,
            doc="how often the leader reads new rows and due periods",
        ),
    ] = 1.0
    webhook_retention_days: Annotated[
        float,
        Var(
            "WEBHOOK_RETENTION_DAYS",
            "number",
            low=1,
            high=3650,
            doc="delivered and dead deliveries are deleted after this many days",
        ),
    ] = 7.0
    # Hardening: token issuer, session creation, upload quota, disk floor, sweep.
    jwt_issuer: Annotated[
        str | None,
        Var(
            "JWT_ISSUER",
            "optional",
            shown="`SUPABASE_URL/auth/v1`",
            doc=(
                "the `iss` every token must carry; unset and no `SUPABASE_URL`: `iss` is "
                "not checked"
            ),
        ),
    ] = None
    session_create_bucket: Annotated[
        Bucket,
        Var(
            "SESSION_CREATE_RATE",
            "bucket",
            low=0,
            high=10_000,
            burst="SESSION_CREATE_BURST",
            burst_high=100_000,
            doc=(
                "per-user token bucket for `POST /api/chat/sessions` (429 `rate_limited`); "
                "shared through Redis. The database adds an hourly cap on every path, see "
                "[Limits](../SECURITY.md#limits)"
            ),
        ),
    ] = Bucket(rate=0.1, burst=20)
    upload_quota_bytes: Annotated[
        int,
        Var(
            "UPLOAD_QUOTA_BYTES",
            "integer",
            low=0,
            high=2**50,
            doc=(
                "bytes each user may upload per UTC day (300 MB); beyond, 429 "
                "`upload_quota_exceeded`; `0`: no quota"
            ),
        ),
    ] = 300 * 1024 * 1024
    storage_min_free_bytes: Annotated[
        int,
        Var(
            "STORAGE_MIN_FREE_BYTES",
            "integer",
            low=0,
            high=2**60,
            doc=(
                "the `local` store refuses new files (507 `insufficient_storage`) when its "
                "disk would fall below this (1 GiB); `0`: no floor"
            ),
        ),
    ] = 1024 * 1024 * 1024
    orphan_sweep_seconds: Annotated[
        float,
        Var(
            "ORPHAN_SWEEP_SECONDS",
            "number",
            low=0,
            high=86_400,
            doc=(
                "how often each relay removes objects whose message never committed, and "
                "stale temporary upload files; `0`: never"
            ),
        ),
    ] = 600.0
    orphan_grace_seconds: Annotated[
        float,
        Var(
            "ORPHAN_GRACE_SECONDS",
            "number",
            low=60,
            high=604_800,
            doc=(
                "how old a pending upload or a temporary file must be before the sweep "
                "removes it (at least 60)"
            ),
        ),
    ] = 900.0
    user_event_bucket: Annotated[
        Bucket,
        Var(
            "USER_EVENT_RATE",
            "bucket",
            low=0,
            high=100_000,
            burst="USER_EVENT_BURST",
            burst_high=1_000_000,
            doc=(
                "per-user bucket for every Socket.IO event, across the user's sockets and "
                "(through Redis) relays; `0` rate disables"
            ),
        ),
    ] = Bucket(rate=30.0, burst=100)
    api_bucket: Annotated[
        Bucket,
        Var(
            "API_RATE",
            "bucket",
            low=0,
            high=100_000,
            burst="API_BURST",
            burst_high=1_000_000,
            doc=(
                "per-user bucket for every authenticated REST call (`/api/chat/*`), shared "
                "through Redis; over it, 429 `rate_limited`; `0` rate disables"
            ),
        ),
    ] = Bucket(rate=20.0, burst=60)
    max_connections: Annotated[
        int,
        Var(
            "MAX_CONNECTIONS",
            "integer",
            low=1,
            high=1_000_000,
            doc="Socket.IO connections per relay; beyond, `connect_error` `server_full`",
        ),
    ] = 10_000
    max_connections_per_ip: Annotated[
        int,
        Var(
            "MAX_CONNECTIONS_PER_IP",
            "integer",
            low=1,
            high=1_000_000,
            doc="connections per client address per relay; beyond, `too_many_connections`",
        ),
    ] = 200
    max_connections_per_user: Annotated[
        int,
        Var(
            "MAX_CONNECTIONS_PER_USER",
            "integer",
            low=1,
            high=100_000,
            doc="connections per user per relay; beyond, `too_many_user_connections`",
        ),
    ] = 20
    connect_timeout: Annotated[
        float,
        Var(
            "CONNECT_TIMEOUT",
            "number",
            low=0.1,
            high=300,
            doc=(
                "seconds a socket may take to complete the Socket.IO connect with a valid "
                "token before it is closed"
            ),
        ),
    ] = 5.0
    connect_bucket_per_ip: Annotated[
        Bucket,
        Var(
            "CONNECT_RATE_PER_IP",
            "bucket",
            low=0,
            high=100_000,
            burst="CONNECT_BURST_PER_IP",
            burst_high=1_000_000,
            doc=(
                "new connections per client address (per second, bucket size) per relay; "
                "beyond, `connect_rate_limited`; `0` rate disables"
            ),
        ),
    ] = Bucket(rate=5.0, burst=50)
    max_queued_packets: Annotated[
        int,
        Var(
            "MAX_QUEUED_PACKETS",
            "integer",
            low=10,
            high=1_000_000,
            doc=(
                "packets waiting for one socket in the relay (written after its "
                "connection's buffer filled, or queued for its next poll); a client that "
                "stops reading is disconnected when this many wait (keep it above 500, "
                "the largest catch-up)"
            ),
        ),
    ] = 1_000
    trusted_proxies: Annotated[
        tuple[Network, ...],
        Var(
            "TRUSTED_PROXIES",
            "networks",
            doc=(
                "comma-separated addresses or networks (`10.0.0.0/8`) of reverse proxies "
                "whose `X-Forwarded-For` is believed for the client address; unset: the "
                "peer address counts"
            ),
        ),
    ] = ()
    refusal_audit_per_minute: Annotated[
        int,
        Var(
            "REFUSAL_AUDIT_PER_MINUTE",
            "integer",
            low=0,
            high=100_000,
            doc=(
                "refusals of callers without a valid token written to the audit log and "
                "monitoring per minute, per kind and code; all of them are counted in "
                "`/metrics`"
            ),
        ),
    ] = 10
    # Data lifecycle (workers/lifecycle): erasure, export, retention.
    erasure_mode: Annotated[
        str,
        Var(
            "ERASURE_MODE",
            "choice",
            choices=("redact", "retain", "delete"),
            doc=(
                "what deleting a user from `auth.users` does to their messages in sessions "
                "others keep: `redact` (tombstones), `retain` (content kept, sender shown "
                "as deleted) or `delete`; see [docs/data-lifecycle.md](data-lifecycle.md)"
            ),
        ),
    ] = "redact"
    retention_days: Annotated[
        tuple[tuple[str, float], ...],
        Var(
            "RETENTION_DAYS",
            "retention",
            shown="— (forever)",
            doc=(
                "closed sessions older than this are purged with their messages and files: "
                "`730`, or per type `booking=730,support=90`"
            ),
        ),
    ] = ()
    retention_interval: Annotated[
        float,
        Var(
            "RETENTION_INTERVAL_SECONDS",
            "number",
            low=1,
            high=7 * 86_400,
            doc=(
                "how often the retention purge runs (one relay), rows per purge "
                "transaction, and how long it rests after each (times the batch's duration)"
            ),
        ),
    ] = 86_400.0
    retention_batch: Annotated[
        int,
        Var(
            "RETENTION_BATCH",
            "integer",
            low=1,
            high=100_000,
            row="RETENTION_INTERVAL_SECONDS",
            doc=(
                "how often the retention purge runs (one relay), rows per purge "
                "transaction, and how long it rests after each (times the batch's duration)"
            ),
        ),
    ] = 5_000
    retention_pause_ratio: Annotated[
        float,
        Var(
            "RETENTION_PAUSE_RATIO",
            "number",
            low=0,
            high=100,
            row="RETENTION_INTERVAL_SECONDS",
            doc=(
                "how often the retention purge runs (one relay), rows per purge "
                "transaction, and how long it rests after each (times the batch's duration)"
            ),
        ),
    ] = 1.0
    lifecycle_poll_seconds: Annotated[
        float,
        Var(
            "LIFECYCLE_POLL_SECONDS",
            "number",
            low=0.05,
            high=600,
            doc=(
                "how often the lifecycle leader follows up erasures (files, webhook) and "
                "resumes abandoned exports"
            ),
        ),
    ] = 2.0
    export_ttl: Annotated[
        float,
        Var(
            "EXPORT_TTL_SECONDS",
            "number",
            low=60,
            high=30 * 86_400,
            doc="how long a data export archive can be downloaded",
        ),
    ] = 86_400.0
    # Moderation: how long a sender may edit or delete a message.
    edit_window: Annotated[
        int,
        Var(
            "EDIT_WINDOW_S",
            "integer",
            low=0,
            high=604_800,
            doc=(
                "seconds after sending during which the sender may edit or delete a message"
                " (written to the database at start; [docs/moderation.md](moderation.md))"
            ),
        ),
    ] = 900
    contact_filter: Annotated[
        str,
        Var(
            "CONTACT_FILTER",
            "choice",
            choices=("off", "flag", "mask", "block"),
            doc=(
                "phone numbers, e-mail addresses and links in messages: `off`, `flag` "
                "(stored, reported automatically), `mask` (replaced by `[hidden]`) or "
                "`block` (422 `contact_info_blocked`); on every path, in the database"
            ),
        ),
    ] = "flag"
    contact_allow_domains: Annotated[
        tuple[str, ...],
        Var(
            "CONTACT_FILTER_ALLOW_DOMAINS",
            "domains",
            doc="comma-separated domains (and their subdomains) whose links pass the filter",
        ),
    ] = ()

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
        values = {f.name: get.read(var, f.default) for f, var in settings_vars()}
        settings = cls(**values)
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


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def read(self, var: Var, default: Any) -> Any:
        """The value of one setting, by its kind."""
        name, kind = var.env, var.kind
        if kind == "integer":
            return self.integer(name, default, low=int(var.low or 0), high=int(var.high or 0))
        if kind == "number":
            return self.number(name, default, low=var.low or 0.0, high=var.high or 0.0)
        if kind == "bucket":
            assert var.burst is not None
            return Bucket(
                rate=self.number(name, default.rate, low=var.low or 0.0, high=var.high or 0.0),
                burst=self.integer(var.burst, default.burst, low=1, high=var.burst_high),
            )
        if kind == "choice":
            return self.choice(name, default, var.choices, upper=var.upper)
        if kind == "text":
            return self.text(name, default)
        if kind == "path":
            return Path(self.text(name, str(default)))
        if kind == "optional_path":
            return _optional_path(self.optional(name))
        if kind == "domains":
            raw = self.optional(name) or ""
            return tuple(d.strip().lower() for d in raw.split(",") if d.strip())
        if kind in ("postgres_url", "origins", "boolean"):
            return getattr(self, kind)(name, default)
        return getattr(self, kind)(name)  # optional, http_url, redis_url, networks, retention

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


def settings_vars() -> list[tuple[Any, Var]]:
    """Each field of :class:`Settings` with its :class:`Var`, in declaration order."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    found = []
    for f in fields(Settings):
        var = next(m for m in typing.get_args(hints[f.name])[1:] if isinstance(m, Var))
        found.append((f, var))
    return found


def shown_default(value: Any) -> str:
    """A default as the docs show it: ``5``, ``*``, ``.data``; — for none."""
    if value is None or value == ():
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{value}`"


def _env_value(value: Any) -> str:
    if value is None or value == ():
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _plain(doc: str) -> str:
    """Markdown links and code marks out, for a comment."""
    doc = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", doc)
    return doc.replace("`", "")


ENV_EXAMPLE_HEAD = (
    "# Copy to .env and adjust. Local development needs none of these: scripts/dev picks\n"
    "# working defaults. Variables already set in the environment win over this file.\n"
    "# Generated from workers/config.py (python -m workers settings-docs): edit it there.\n"
)


def env_example() -> str:
    """``.env.example``: each variable with its meaning and its default."""
    lines = [ENV_EXAMPLE_HEAD]
    for f, var in settings_vars():
        if var.row is None:
            lines.append("")
            lines += [
                "# " + line for line in textwrap.wrap(_plain(var.doc), 88, break_on_hyphens=False)
            ]
        if var.burst is not None:
            lines.append(f"{var.env}={_env_value(f.default.rate)}")
            lines.append(f"{var.burst}={_env_value(f.default.burst)}")
        else:
            lines.append(f"{var.env}={_env_value(f.default)}")
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def settings_table() -> str:
    """The configuration table of docs/operations.md (a row per variable, pairs together)."""
    rows: list[list[Any]] = []
    by_env: dict[str, list[Any]] = {}
    for f, var in settings_vars():
        shown = var.shown or shown_default(f.default)
        if var.row is not None:
            row = by_env[var.row]
            row[0].append(f"`{var.env}`")
            row[1].append(shown)
            continue
        row = [[f"`{var.env}`"], [shown], var.doc]
        if var.burst is not None:  # a bucket: rate and burst, one row
            row = [
                [f"`{var.env}`", f"`{var.burst}`"],
                [shown_default(f.default.rate), shown_default(f.default.burst)],
                var.doc,
            ]
        by_env[var.env] = row
        rows.append(row)
    out = ["| variable | default | meaning |", "|---|---|---|"]
    for names, shown_values, doc in rows:
        out.append(f"| {', '.join(names)} | {', '.join(shown_values)} | {doc} |")
    return "\n".join(out) + "\n"
