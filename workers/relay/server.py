"""The Socket.IO relay: connection auth, rooms, presence, typing, database fan-out.

A message sent through a relay (socket or REST) goes client -> group commit (SQL send
function as the sender, RLS) -> commit -> ``new_message`` emitted by that relay to its own
sockets and, in one Redis message per group, to the other relays. A message written
anywhere else goes -> commit -> NOTIFY -> every relay's changefeed -> its own sockets
(``ignore_queue=True``). The changefeed's snapshot replay covers a relay that died
between commit and emit. Ephemeral events (typing, presence) go through the Socket.IO
message queue (Redis) so every relay sees them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import redis.exceptions
import socketio
from pydantic import BaseModel, ValidationError

from ..auth import TokenVerifier
from ..changefeed import Changefeed
from ..config import Settings
from ..db import Database
from ..errors import ApiError, from_postgres
from ..message_writer import MessageWriter
from ..messages import NameCache, now_iso
from ..tasks import spawn
from .events import RelayEvents, message_state_event
from .gate import EIO_SID_KEY, Gate, Limits
from .hooks import RelayHooks
from .models import JoinSession, MarkRead, RefreshToken, SendMessage, SessionRef, describe
from .presence import Presence
from .ratelimit import Budget
from .redis_link import RedisLink
from .rooms import SocketState, room
from .suspensions import Suspensions
from .topics import RealtimeTopics
from .typing import TypingTracker
from .upstream.manager import ChatRedisManager, DirectEmitManager
from .upstream.server import GuardedServer
from .upstream.transport import FastJson

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_LIMIT_AUDIT_WINDOW = 10.0  # seconds between audited rate-limit refusals of one socket


class Relay(RelayEvents):
    def __init__(
        self, *, settings: Settings, db: Database, verifier: TokenVerifier, relay_id: str
    ) -> None:
        self.settings = settings
        self.db = db
        self.verifier = verifier
        self.relay_id = relay_id
        # Redis is optional at run time: every use goes through the link, which falls back
        # to local state at once while Redis is unreachable.
        self.redis_link = RedisLink(settings.redis_url) if settings.redis_url else None
        self.redis = self.redis_link.client if self.redis_link is not None else None
        manager = (
            ChatRedisManager(settings.redis_url, link=self.redis_link, channel="chat-relay")
            if settings.redis_url
            else None
        )
        self.manager = manager
        origins = settings.cors_origins
        self.gate = Gate(limits=_limits(settings))
        self.sio = GuardedServer(
            gate=self.gate,
            on_refused=self._transport_refused,
            async_mode="aiohttp",
            client_manager=manager or DirectEmitManager(),
            cors_allowed_origins="*" if "*" in origins else list(origins),
            max_http_buffer_size=settings.max_packet_bytes,
            # Handle one socket's events in order (join before send, start before stop).
            async_handlers=False,
            logger=False,
            engineio_logger=False,
            json=FastJson,
        )
        self.presence = Presence(
            redis=self.redis_link, relay_id=relay_id, ttl=settings.presence_ttl
        )
        self.typing = TypingTracker(
            on_timeout=self._typing_timed_out, timeout=settings.typing_timeout
        )
        self.send_limit = Budget(name="send", bucket=settings.message_bucket, redis=self.redis_link)
        # Any event, per socket, in this process: a floor under every handler's cost.
        self.event_limit = Budget(name="events", bucket=settings.event_bucket, redis=None)
        self.typing_limit = Budget(
            name="typing", bucket=settings.typing_bucket, redis=self.redis_link
        )
        # Every event, per user, across the user's sockets and relays (Redis when up).
        self.user_event_budget = Budget(
            name="user-events", bucket=settings.user_event_bucket, redis=self.redis_link
        )
        # Every REST call, per user (shared with the relays through Redis).
        self.api_budget = Budget(name="api", bucket=settings.api_bucket, redis=self.redis_link)
        self.names = NameCache(db)
        self.topics = RealtimeTopics(db)
        self.suspensions = Suspensions(db)
        self.changefeed = Changefeed(
            dsn=settings.database_url,
            db=db,
            on_message=self._db_message,
            on_read=self._db_read,
            on_session=self._db_session,
            on_delivered=self._db_delivered,
            names=self.names,
            on_erased=self._db_erased,
            on_connected=self._check_erased_users,
            on_typing=self._db_typing,
            on_kind={"message_state": self._db_message_state, "suspended": self._db_suspended},
        )
        if manager is not None:
            manager.relayed = self._relayed
        self.writer = MessageWriter(
            db,
            names=self.names,
            max_group=settings.send_group_max,
            pipeline=settings.send_pipeline,
            overlap_after=settings.send_overlap_after_ms / 1000,
            on_commit=self._emit_committed,
            on_group=self._group_sent,
        )
        self._sockets: dict[str, SocketState] = {}
        self.total_connections = 0
        self._shut_down = False
        self.hooks = RelayHooks()  # audit, monitoring and metrics (the app installs them)
        self._register()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self.redis_link is not None:
            await self.redis_link.start()
        await self.presence.start()
        await self.changefeed.start()
        await self.writer.start()

    async def disconnect_all(self) -> None:
        """Close every socket (graceful shutdown: clients reconnect to another relay)."""
        for sid in list(self._sockets):
            with contextlib.suppress(Exception):
                await self.sio.disconnect(sid)
        # ... and any connection not (yet) in the namespace: a websocket's connection is
        # the relay's once handed over, aiohttp's shutdown no longer closes it.
        for eio_sid in list(self.sio.eio.sockets):
            with contextlib.suppress(Exception):
                await self.sio.close_transport(eio_sid)
        if not self._shut_down:
            self._shut_down = True
            with contextlib.suppress(Exception):
                await self.sio.shutdown()

    async def stop(self) -> None:
        await self.writer.stop()
        if self.manager is not None:
            await self.manager.close_publisher()
        await self.changefeed.stop()
        self.typing.close()
        self.sio.deadlines.close()  # every socket's expiry, ping and liveness deadline
        await self.presence.stop()
        if self.redis_link is not None:
            await self.redis_link.stop()

    def stats(self) -> dict[str, int]:
        return {
            "active_connections": len(self._sockets),
            "active_sessions": self.presence.active_sessions,
            "typing_sessions": self.typing.typing_sessions,
            "total_socket_connections": self.total_connections,
        }

    def _register(self) -> None:
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        events: dict[str, tuple[type[BaseModel], Callable[..., Awaitable[Any]]]] = {
            "join_session": (JoinSession, self._join_session),
            "leave_session": (SessionRef, self._leave_session),
            "send_message": (SendMessage, self._send_message),
            "mark_messages_read": (MarkRead, self._mark_read),
            "messages_delivered": (MarkRead, self._mark_delivered),
            "typing_start": (SessionRef, self._typing_start),
            "typing_stop": (SessionRef, self._typing_stop),
            "get_online_users": (SessionRef, self._get_online_users),
            "refresh_token": (RefreshToken, self._refresh_token),
        }
        for name, (model, handler) in events.items():
            self.sio.on(name, self._guarded(name, model, handler))
        self.sio.on("*", self._unknown_event)

    async def _unknown_event(self, event: str, sid: str, *_args: Any) -> dict[str, Any]:
        """Any other event name: an ``error`` event rather than silence (within the same
        per-socket and per-user budgets as every event; over them, nothing is emitted)."""
        state = self._sockets.get(sid)
        if state is not None and not (
            await self.event_limit.allow(sid)
            and await self.user_event_budget.allow(state.principal.user_id)
        ):
            limited = {"code": "rate_limited", "message": "too many events", "event": "*"}
            return {"ok": False, "error": limited}
        body = {
            "code": "unknown_event",
            "message": f"unknown event {str(event)[:64]!r}",
            "event": str(event)[:64],
        }
        if sid in self._sockets:
            await self.sio.emit("error", body, to=sid)
        return {"ok": False, "error": body}

    # ------------------------------------------------------------------ errors
    def _guarded(
        self, event: str, model: type[M], handler: Callable[[str, SocketState, M], Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Validate the payload, run the handler, turn every failure into an ``error``
        event (and the ack's answer), never an exception."""

        @functools.wraps(handler)
        async def run(sid: str, data: Any = None, *_extra: Any) -> Any:
            state = self._sockets.get(sid)
            if state is None:
                return None
            try:
                if not await self.event_limit.allow(sid):
                    raise ApiError(429, "rate_limited", "too many events; slow down")
                if not await self.user_event_budget.allow(state.principal.user_id):
                    raise ApiError(
                        429, "rate_limited", "too many events from this account; slow down"
                    )
                if not self.hooks.accepting(state.principal):
                    raise ApiError(503, "unavailable", "the audit log is behind; try again")
                payload = model.model_validate(data if data is not None else {})
                result = await handler(sid, state, payload)
                self.hooks.handled(event, state.principal, payload, result)
                return {"ok": True, **(result or {})}
            except ValidationError as exc:
                err = ApiError(400, "invalid_payload", describe(exc))
            except ApiError as exc:
                err = exc
            except asyncpg.PostgresError as exc:
                err = from_postgres(exc)
                if err.status >= 500:
                    log.exception("database error in %s", event)
            except (
                OSError,
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                TimeoutError,
                redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError,
            ):
                log.exception("backing service unavailable in %s", event)
                err = ApiError(503, "unavailable", "a backing service is unavailable")
            except Exception:
                log.exception("unhandled error in %s", event)
                err = ApiError(500, "internal_error", "internal error")
            body = {"code": err.code, "message": err.message, "event": event}
            if err.code != "rate_limited" or time.monotonic() >= state.quiet_until:
                # A flood is audited once per window, not once per refused packet.
                if err.code == "rate_limited":
                    state.quiet_until = time.monotonic() + _LIMIT_AUDIT_WINDOW
                self.hooks.failed(event, state.principal, err, data)
            await self.sio.emit("error", body, to=sid)
            return {"ok": False, "error": body}

        return run

    # ------------------------------------------------------------------ connection
    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            token = environ.get("HTTP_AUTHORIZATION")
        eio_sid = environ.get(EIO_SID_KEY)
        try:
            self.gate.admit(eio_sid)
            principal = await self.verifier.verify(token)
            if not self.hooks.accepting(principal):
                raise ApiError(503, "unavailable", "the audit log is behind; try again")
            self.gate.admit_user(eio_sid, principal.user_id)
        except ApiError as exc:
            self.hooks.connection_refused(exc, environ, token)
            self.sio.close_soon(eio_sid)
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": exc.code}
            ) from None
        state = SocketState(principal=principal)
        self._sockets[sid] = state
        self.total_connections += 1
        self._schedule_expiry(sid, state)
        self.hooks.connected(sid, principal)

    def _group_sent(self, waited: float, committing: float, held: float) -> None:
        self.hooks.group_sent(waited, committing, held)

    def _transport_refused(self, code: str, ip: str) -> None:
        """An Engine.IO socket refused before it existed (over twice a cap)."""
        error = ApiError(429, code, "connection refused")
        self.hooks.connection_refused(error, {"REMOTE_ADDR": ip}, None)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        state = self._sockets.pop(sid, None)
        if state is None:
            return
        if state.expiry is not None:
            state.expiry.cancel()
        self.hooks.disconnected(sid, state.principal, reason, list(state.sessions))
        for session_id in list(state.sessions):
            with contextlib.suppress(Exception):
                await self._leave(sid, state, session_id)

    def _schedule_expiry(self, sid: str, state: SocketState) -> None:
        if state.expiry is not None:
            state.expiry.cancel()
        delay = max(0.0, state.principal.expires_at - time.time())
        state.expiry = self.sio.deadlines.after(delay, self._expiry_due, sid, state)

    def _expiry_due(self, sid: str, state: SocketState) -> None:
        spawn(self._expire(sid, state), name="token-expiry")

    async def _expire(self, sid: str, state: SocketState) -> None:
        if self._sockets.get(sid) is not state:
            return
        if state.principal.expires_at > time.time():
            # A timer may fire a millisecond early (the loop's clock); a refreshed token
            # has its own deadline already (this one was cancelled).
            self._schedule_expiry(sid, state)
            return
        await self.sio.emit(
            "error",
            {
                "code": "token_expired",
                "message": "token has expired; reconnect with a fresh token "
                "or send refresh_token before expiry",
                "event": "connection",
            },
            to=sid,
        )
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        await self.sio.disconnect(sid)
        self.sio.close_soon(eio_sid, pending_only=False)

    # ------------------------------------------------------------------ Realtime topics
    async def _db_typing(self, event: dict[str, Any]) -> None:
        """Someone typed through the session's Realtime topic (a supabase-js client, via
        the database): this relay's sockets in the room hear it as from a socket."""
        user_id = uuid.UUID(str(event["user_id"]))
        session_id = uuid.UUID(str(event["session_id"]))
        names = await self.names.get([user_id])
        body = {
            "user_id": str(user_id),
            "user_name": names.get(user_id, "user"),
            "session_id": str(session_id),
            "timestamp": now_iso(),
        }
        name = "user_typing" if event.get("typing") else "user_stopped_typing"
        await self.sio.emit(name, body, room=room(session_id), ignore_queue=True)

    # ------------------------------------------------------------------ moderation
    async def _db_message_state(self, event: dict[str, Any]) -> None:
        """A message was edited, deleted or redacted (any path): the room hears its new
        state, once per relay, to the sockets this relay holds."""
        async with self.db.as_service() as conn:
            row = await conn.fetchrow(
                "select id, session_id, content, edited_at, deleted_at, deleted_reason "
                "from public.chat_messages where id = $1",
                uuid.UUID(str(event["id"])),
            )
        if row is None:
            return
        name, body = message_state_event(row)
        await self.sio.emit(name, body, room=room(row["session_id"]), ignore_queue=True)

    async def _db_suspended(self, event: dict[str, Any]) -> None:
        """A user was suspended: their sockets here are told at once (they stay connected
        and may read; sends, typing and joins are refused)."""
        user_id = uuid.UUID(str(event["user_id"]))
        self.suspensions.forget(user_id)
        until = event.get("until")
        for sid, state in list(self._sockets.items()):
            if state.principal.user_id == user_id:
                with contextlib.suppress(Exception):
                    await self.sio.emit(
                        "error",
                        {
                            "code": "suspended",
                            "message": "you are suspended from chat"
                            + (f" until {until}" if until else ""),
                            "event": "connection",
                            "until": until,
                        },
                        to=sid,
                    )

    # ------------------------------------------------------------------ erasure
    async def _db_erased(self, event: dict[str, Any]) -> None:
        """A user was deleted from auth.users (any relay hears it): their sockets here are
        told and closed, and the other participants of the sessions they left learn it
        with ``user_erased`` (their messages are now tombstones, anonymous or gone, by
        the erasure mode)."""
        user_id = uuid.UUID(str(event["user_id"]))
        async with self.db.as_service() as conn:
            row = await conn.fetchrow(
                "select sessions, mode from chat_private.erasure_sessions($1)",
                int(event["erasure_id"]),
            )
        self.names.forget(user_id)
        await self._close_sockets_of({user_id})
        if row is None:
            return
        now = now_iso()
        for session_id in row["sessions"] or ():
            body = {
                "user_id": str(user_id),
                "session_id": str(session_id),
                "mode": row["mode"],
                "timestamp": now,
            }
            await self.sio.emit("user_erased", body, room=room(session_id), ignore_queue=True)

    async def _check_erased_users(self) -> None:
        """After the changefeed (re)connects: close sockets of users deleted meanwhile
        (their notification may have been lost with the connection)."""
        users = {state.principal.user_id for state in self._sockets.values()}
        if not users:
            return
        async with self.db.as_service() as conn:
            gone = await conn.fetchval(
                "select chat_private.unknown_users($1::uuid[])", sorted(users)
            )
        if gone:
            await self._close_sockets_of(set(gone))

    async def _close_sockets_of(self, users: set[uuid.UUID]) -> None:
        for sid, state in list(self._sockets.items()):
            if state.principal.user_id not in users:
                continue
            with contextlib.suppress(Exception):
                await self.sio.emit(
                    "error",
                    {
                        "code": "user_erased",
                        "message": "this account was deleted",
                        "event": "connection",
                    },
                    to=sid,
                )
                eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
                await self.sio.disconnect(sid)
                self.sio.close_soon(eio_sid, pending_only=False)

    async def _refresh_token(
        self, sid: str, state: SocketState, data: RefreshToken
    ) -> dict[str, Any]:
        principal = await self.verifier.verify(data.token)
        if principal.user_id != state.principal.user_id:
            raise ApiError(403, "forbidden", "refresh_token must carry the same user")
        state.principal = principal
        self._schedule_expiry(sid, state)
        return {"expires_at": int(principal.expires_at)}


def _limits(settings: Settings) -> Limits:
    return Limits(
        max_connections=settings.max_connections,
        max_per_ip=settings.max_connections_per_ip,
        max_per_user=settings.max_connections_per_user,
        connect_timeout=settings.connect_timeout,
        connect_per_ip=settings.connect_bucket_per_ip,
        max_queued_packets=settings.max_queued_packets,
        trusted_proxies=settings.trusted_proxies,
    )
