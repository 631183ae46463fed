"""Audit, monitoring and metrics for the relay and the HTTP API, wired in one place.

``setup(app)`` builds the two batched writers (``workers.audit``, ``workers.monitoring``)
and the metrics, installs :class:`Telemetry` as the relay's hooks and an HTTP middleware
that observes REST answers (sent messages, uploads, refusals, errors), and serves
``GET /metrics``. Nothing here waits on the database: events are queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import jwt
from aiohttp import web

from .api.passthrough import passes_websockets
from .audit import AuditWriter
from .auth import Principal
from .errors import ApiError, AuthError
from .keys import AUDIT, AUDIT_LINKER, DATABASE, METRICS, MONITORING, RELAY, SETTINGS, VERIFIER
from .metrics import MessagePathCollector, Metrics, StateCollector
from .monitoring import MonitoringWriter
from .relay.hooks import RelayHooks
from .sampling import Sampler

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., None])

# Refusals of these socket events are audited (beyond the error metrics and event).
_AUDITED_REFUSALS = {"join_session": "join.refused", "send_message": "send.refused"}
_ADMIN_PREFIXES = ("/api/chat/audit", "/api/chat/monitoring", "/api/chat/webhooks")
SUMMARY_EVERY = 60.0  # seconds between summaries of unsampled anonymous refusals
_LIMIT_AUDIT_WINDOW = 10.0  # seconds between audited REST rate-limit refusals of one user


def _never_raises(method: F) -> F:
    @functools.wraps(method)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except Exception:
            log.exception("telemetry hook %s failed", method.__name__)

    return run  # type: ignore[return-value]


class Telemetry(RelayHooks):
    def __init__(
        self,
        *,
        audit: AuditWriter,
        monitoring: MonitoringWriter,
        metrics: Metrics,
        refusal_audit_per_minute: int = 10,
    ):
        self.audit = audit
        self.monitoring = monitoring
        self.metrics = metrics
        # Refusals of unauthenticated callers: counted in metrics, sampled into the audit
        # log and monitoring (per source and code), never one row each.
        self.anonymous = Sampler(per_window=refusal_audit_per_minute, window=60.0)
        # REST rate-limit refusals of one user: one audit row per window, like sockets.
        self.limited = Sampler(per_window=1, window=_LIMIT_AUDIT_WINDOW)

    def accepting(self, principal: Principal) -> bool:
        return not self.audit.overloaded

    def summarize(self) -> int:
        """One audit row (and one monitoring event) with the anonymous refusals that were
        counted but not sampled since the last summary; returns how many."""
        drained = self.anonymous.drain()
        if not drained:
            return 0
        counts = [
            {"kind": [str(k) for k in _parts(key)], "skipped": n} for key, n in drained.items()
        ]
        total = sum(drained.values())
        details = {"total": total, "counts": counts[:100]}
        self.audit.record("refusals.skipped", actor_role="anon", details=details)
        self.monitoring.record("refusals", details=details)
        return total

    # ------------------------------------------------------------------ relay hooks
    @_never_raises
    def connected(self, sid: str, principal: Principal) -> None:
        self.metrics.connections.inc()
        self.metrics.connects.inc()
        self.audit.record("socket.connected", actor=principal, details={"sid": sid})
        self.monitoring.record("connect", user_id=principal.user_id, details={"sid": sid})

    @_never_raises
    def connection_refused(
        self, error: ApiError, environ: dict[str, Any], token: str | None
    ) -> None:
        self.metrics.refused.labels(error.code).inc()
        self.metrics.errors.labels(error.code, "socket").inc()
        self.metrics.anonymous_refusals.labels("socket", error.code).inc()
        skipped = self.anonymous.admit(("socket", error.code))
        if skipped is None:
            return
        details = {
            "code": error.code,
            "reason": error.message,
            "remote": environ.get("REMOTE_ADDR"),
            "user_agent": str(environ.get("HTTP_USER_AGENT", ""))[:200] or None,
            # Who the token claims to be: unverified, but it says whose token expired.
            "claimed_user_id": _claimed_user(token),
            "skipped_before": skipped or None,  # like refusals not recorded since the last
        }
        self.audit.record("socket.refused", actor_role="anon", details=_compact(details))
        self.monitoring.record(
            "error", details=_compact({"event": "connect", "code": error.code, **_skips(skipped)})
        )

    @_never_raises
    def disconnected(
        self, sid: str, principal: Principal, reason: Any, sessions: list[uuid.UUID]
    ) -> None:
        self.metrics.connections.dec()
        details = {"sid": sid, "reason": str(reason), "sessions": [str(s) for s in sessions]}
        self.audit.record("socket.disconnected", actor=principal, details=details)
        self.monitoring.record(
            "disconnect", user_id=principal.user_id, details={"reason": str(reason)}
        )

    @_never_raises
    def handled(self, event: str, principal: Principal, payload: Any, result: Any) -> None:
        self.metrics.events.labels(event, "ok").inc()
        session_id = getattr(payload, "session_id", None)
        if event == "join_session":
            self.monitoring.record("join", user_id=principal.user_id, session_id=session_id)
        elif event == "send_message":
            self.metrics.messages.labels("socket").inc()
            message = (result or {}).get("message") or {}
            self.monitoring.record(
                "message",
                user_id=principal.user_id,
                session_id=session_id,
                details={
                    "message_id": message.get("id"),
                    "type": message.get("type"),
                    "via": "socket",
                },
            )

    @_never_raises
    def failed(self, event: str, principal: Principal, error: ApiError, data: Any) -> None:
        self.metrics.events.labels(event, "error").inc()
        self.metrics.errors.labels(error.code, "socket").inc()
        session_id = data.get("session_id") if isinstance(data, dict) else None
        action = "rate_limited" if error.code == "rate_limited" else _AUDITED_REFUSALS.get(event)
        if action is not None:
            details = {"event": event, "code": error.code, "reason": error.message}
            self.audit.record(action, actor=principal, session_id=session_id, details=details)
        self.monitoring.record(
            "error",
            user_id=principal.user_id,
            session_id=session_id,
            details={"event": event, "code": error.code},
        )

    @_never_raises
    def left(self, principal: Principal, session_id: uuid.UUID) -> None:
        self.monitoring.record("leave", user_id=principal.user_id, session_id=session_id)

    @_never_raises
    def delivered(self, payload: dict[str, Any]) -> None:
        self.metrics.observe_delivery(payload.get("created_at"))

    @_never_raises
    def group_sent(self, waited: float, committing: float, held: float) -> None:
        self.metrics.send_wait.observe(waited)
        self.metrics.send_commit.observe(committing)
        self.metrics.send_held.observe(held)

    # ------------------------------------------------------------------ HTTP
    async def observe(self, request: web.Request, response: web.StreamResponse) -> None:
        """Record what a REST answer means: a message or upload, a refusal, an error."""
        path, status = request.path, response.status
        if not path.startswith("/api/"):
            return
        upload = request.method == "POST" and path == "/api/chat/upload"
        sent = request.method == "POST" and path == "/api/chat/messages" and status == 201
        if status < 400 and not (upload or sent):
            return  # the common case: nothing to parse, nothing to record
        body = _json_body(response)
        error = body.get("error") if isinstance(body.get("error"), dict) else None
        code = str((error or {}).get("code", status))
        if status >= 400:
            self.metrics.errors.labels(code, "http").inc()
        if status == 401:
            self.metrics.anonymous_refusals.labels("http", code).inc()
        if upload and status >= 400:
            self.metrics.uploads.labels("refused").inc()
        admin_refused = status == 403 and path.startswith(_ADMIN_PREFIXES)
        if not (upload or sent or admin_refused or status == 429):
            return
        principal = await _caller(request) if status != 401 else None
        if principal is None and status >= 400:
            # Nobody authenticated: sampled, never one row per request.
            skipped = self.anonymous.admit(("http", request.method, path[:64], code))
            if skipped is None:
                return
            error = {**(error or {}), **_skips(skipped)}
        elif status == 429:
            skipped = self.limited.admit(principal.user_id if principal else None)
            if skipped is None:
                return
            error = {**(error or {}), **_skips(skipped)}
        user_id = principal.user_id if principal else None
        message: dict[str, Any] = body["message"] if isinstance(body.get("message"), dict) else {}
        session_id = message.get("session_id")
        reason = {"status": status, **(error or {})}
        if sent:
            self.metrics.messages.labels("rest").inc()
            details = {"message_id": message.get("id"), "type": message.get("type"), "via": "rest"}
            self.monitoring.record(
                "message", user_id=user_id, session_id=session_id, details=details
            )
        elif upload and status < 400:
            size = (message.get("metadata") or {}).get("size_bytes")
            self.metrics.uploads.labels("stored").inc()
            if isinstance(size, int) and size >= 0:
                self.metrics.upload_bytes.inc(size)
            details = {
                "message_id": message.get("id"),
                "type": message.get("type"),
                "size_bytes": size,
                "mime_type": (message.get("metadata") or {}).get("mime_type"),
            }
            self.monitoring.record(
                "upload", user_id=user_id, session_id=session_id, details=details
            )
        elif upload:
            self.audit.record("upload.refused", actor=principal, actor_role="anon", details=reason)
            self.monitoring.record(
                "error", user_id=user_id, details={"event": "upload", **_code(error, status)}
            )
        if status == 429:
            self.audit.record(
                "rate_limited", actor=principal, actor_role="anon", details={"path": path, **reason}
            )
        if admin_refused:
            self.audit.record(
                "admin.refused", actor=principal, details={"path": path, "method": request.method}
            )


def _parts(key: object) -> tuple[object, ...]:
    return key if isinstance(key, tuple) else (key,)


def _skips(skipped: int | None) -> dict[str, Any]:
    return {"skipped_before": skipped} if skipped else {}


def _code(error: dict[str, Any] | None, status: int) -> dict[str, Any]:
    return {"code": (error or {}).get("code", str(status))}


def _compact(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _json_body(response: web.StreamResponse) -> dict[str, Any]:
    if not isinstance(response, web.Response) or response.content_type != "application/json":
        return {}
    raw = response.body
    if not isinstance(raw, bytes | bytearray):
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _claimed_user(token: Any) -> str | None:
    """The ``sub`` a refused token claims (not verified: only for the record)."""
    if not isinstance(token, str):
        return None
    try:
        raw = token.removeprefix("Bearer ").strip()
        claims = jwt.decode(raw, options={"verify_signature": False})
        return str(uuid.UUID(str(claims.get("sub"))))
    except Exception:
        return None


async def _caller(request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization")
    if not header:
        return None
    try:
        return await request.app[VERIFIER].verify(header)
    except AuthError:
        return None


async def _summarize_forever(telemetry: Telemetry) -> None:
    while True:
        await asyncio.sleep(SUMMARY_EVERY)
        try:
            telemetry.summarize()
        except Exception:
            log.exception("refusal summary failed")


# ---------------------------------------------------------------- wiring
def setup(app: web.Application) -> None:
    """Writers, metrics, relay hooks, the HTTP observer and GET /metrics. Call after the
    relay exists."""
    settings = app[SETTINGS]
    metrics = app[METRICS] = Metrics()
    common: dict[str, Any] = {
        "db": app[DATABASE],
        "batch_size": settings.event_batch_size,
        "flush_interval": settings.event_flush_seconds,
        "max_queue": settings.event_queue_limit,
    }
    audit = app[AUDIT] = AuditWriter(**common)
    monitoring = app[MONITORING] = MonitoringWriter(
        retention_days=settings.monitoring_retention_days, **common
    )
    relay = app[RELAY]
    telemetry = Telemetry(
        audit=audit,
        monitoring=monitoring,
        metrics=metrics,
        refusal_audit_per_minute=settings.refusal_audit_per_minute,
    )
    relay.hooks = telemetry
    metrics.watch(
        StateCollector(
            relay_stats=lambda: {**relay.stats(), "pending_connections": relay.gate.pending},
            writers=lambda: {"audit": audit.stats(), "monitoring": monitoring.stats()},
        )
    )
    linker = app[AUDIT_LINKER]

    def message_path() -> dict[str, float]:
        return {
            "chat_send_groups": relay.writer.groups,
            "chat_send_group_messages": relay.writer.messages,
            "chat_send_isolated_groups": relay.writer.isolated_groups,
            "chat_changefeed_replayed": relay.changefeed.replayed,
            "chat_changefeed_polls": relay.changefeed.polls,
            "chat_changefeed_polled_messages": relay.changefeed.polled,
            "chat_relay_publish_dropped": relay.manager.dropped if relay.manager else 0,
            "chat_audit_linker_leader": 1 if linker.is_leader else 0,
            "chat_audit_linked": linker.linked,
            "chat_audit_link_delay_ms": linker.last_delay_ms,
        }

    metrics.watch(MessagePathCollector(message_path))

    @web.middleware
    async def observe(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        try:
            await telemetry.observe(request, response)
        except Exception:
            log.exception("telemetry failed to observe %s %s", request.method, request.path)
        return response

    app.middlewares.insert(0, passes_websockets(observe))
    app.router.add_get("/metrics", metrics.handle)
    app.cleanup_ctx.append(_writers_ctx)


async def _writers_ctx(app: web.Application) -> AsyncIterator[None]:
    await app[AUDIT].start()
    await app[MONITORING].start()
    telemetry = app[RELAY].hooks
    summaries = (
        asyncio.create_task(_summarize_forever(telemetry), name="refusal-summaries")
        if isinstance(telemetry, Telemetry)
        else None
    )
    loop_lag = asyncio.create_task(app[METRICS].watch_loop(), name="event-loop-lag")
    yield
    for task in (summaries, loop_lag):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if isinstance(telemetry, Telemetry):
        telemetry.summarize()
    # Sockets were closed on shutdown (their disconnects are queued): write it all.
    await app[MONITORING].stop()
    await app[AUDIT].stop()
