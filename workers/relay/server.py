"""The Socket.IO relay: connection auth, rooms, presence, typing, database fan-out.

A message travels one way only: client -> SQL function (RLS) -> commit -> NOTIFY ->
changefeed -> ``new_message`` to the session's room. Database events are emitted by each
relay to its own sockets (``ignore_queue=True``); ephemeral events (typing, presence)
go through the Socket.IO message queue (Redis) so every relay sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import redis.asyncio as aioredis
import socketio
from pydantic import BaseModel, ValidationError

from ..auth import Principal, TokenVerifier
from ..changefeed import Changefeed
from ..config import Settings
from ..db import Database
from ..errors import ApiError, AuthError, from_postgres
from ..messages import MESSAGE_COLUMNS, message_payloads, now_iso, user_names
from ..tasks import spawn
from .hooks import RelayHooks
from .models import JoinSession, MarkRead, RefreshToken, SendMessage, SessionRef, describe
from .presence import Presence
from .ratelimit import RateLimiter
from .typing import TypingTracker

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
_CATCH_UP_LIMIT = 500


def room(session_id: uuid.UUID | str) -> str:
    return f"session:{session_id}"


@dataclass(slots=True)
class _Socket:
    principal: Principal
    sessions: set[uuid.UUID] = field(default_factory=set)
    expiry: asyncio.TimerHandle | None = None


class Relay:
    def __init__(
        self, *, settings: Settings, db: Database, verifier: TokenVerifier, relay_id: str
    ) -> None:
        self.settings = settings
        self.db = db
        self.verifier = verifier
        self.relay_id = relay_id
        self.redis: aioredis.Redis | None = (
            aioredis.Redis.from_url(settings.redis_url) if settings.redis_url else None
        )
        manager = (
            socketio.AsyncRedisManager(settings.redis_url, channel="chat-relay")
            if settings.redis_url
            else None
        )
        origins = settings.cors_origins
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=manager,
            cors_allowed_origins="*" if "*" in origins else list(origins),
            max_http_buffer_size=settings.max_packet_bytes,
            # Handle one socket's events in order (join before send, start before stop).
            async_handlers=False,
            logger=False,
            engineio_logger=False,
        )
        self.presence = Presence(redis=self.redis, relay_id=relay_id, ttl=settings.presence_ttl)
        self.typing = TypingTracker(
            on_timeout=self._typing_timed_out, timeout=settings.typing_timeout
        )
        self.send_limit = RateLimiter(
            name="send", rate=settings.message_rate, burst=settings.message_burst, redis=self.redis
        )
        self.typing_limit = RateLimiter(
            name="typing", rate=settings.typing_rate, burst=settings.typing_burst, redis=self.redis
        )
        self.changefeed = Changefeed(
            dsn=settings.database_url,
            db=db,
            on_message=self._db_message,
            on_read=self._db_read,
            on_session=self._db_session,
        )
        self._sockets: dict[str, _Socket] = {}
        self.total_connections = 0
        self._shut_down = False
        self.hooks = RelayHooks()  # audit, monitoring and metrics (the app installs them)
        self._register()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        await self.presence.start()
        await self.changefeed.start()

    async def disconnect_all(self) -> None:
        """Close every socket (graceful shutdown: clients reconnect to another relay)."""
        for sid in list(self._sockets):
            with contextlib.suppress(Exception):
                await self.sio.disconnect(sid)
        if not self._shut_down:
            self._shut_down = True
            with contextlib.suppress(Exception):
                await self.sio.shutdown()

    async def stop(self) -> None:
        await self.changefeed.stop()
        self.typing.close()
        for state in self._sockets.values():
            if state.expiry is not None:
                state.expiry.cancel()
        await self.presence.stop()
        if self.redis is not None:
            await self.redis.aclose()

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
            "typing_start": (SessionRef, self._typing_start),
            "typing_stop": (SessionRef, self._typing_stop),
            "get_online_users": (SessionRef, self._get_online_users),
            "refresh_token": (RefreshToken, self._refresh_token),
        }
        for name, (model, handler) in events.items():
            self.sio.on(name, self._guarded(name, model, handler))

    # ------------------------------------------------------------------ errors
    def _guarded(
        self, event: str, model: type[M], handler: Callable[[str, _Socket, M], Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Validate the payload, run the handler, turn every failure into an ``error``
        event (and the ack's answer), never an exception."""

        @functools.wraps(handler)
        async def run(sid: str, data: Any = None, *_extra: Any) -> Any:
            state = self._sockets.get(sid)
            if state is None:
                return None
            try:
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
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                log.exception("backing service unavailable in %s", event)
                err = ApiError(503, "unavailable", "a backing service is unavailable")
            except Exception:
                log.exception("unhandled error in %s", event)
                err = ApiError(500, "internal_error", "internal error")
            body = {"code": err.code, "message": err.message, "event": event}
            self.hooks.failed(event, state.principal, err, data)
            await self.sio.emit("error", body, to=sid)
            return {"ok": False, "error": body}

        return run

    # ------------------------------------------------------------------ connection
    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if not token:
            token = environ.get("HTTP_AUTHORIZATION")
        try:
            principal = await self.verifier.verify(token)
        except AuthError as exc:
            self.hooks.connection_refused(exc, environ, token)
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": exc.code}
            ) from None
        state = _Socket(principal=principal)
        self._sockets[sid] = state
        self.total_connections += 1
        self._schedule_expiry(sid, state)
        self.hooks.connected(sid, principal)

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

    def _schedule_expiry(self, sid: str, state: _Socket) -> None:
        if state.expiry is not None:
            state.expiry.cancel()
        delay = max(0.0, state.principal.expires_at - time.time())
        loop = asyncio.get_running_loop()
        state.expiry = loop.call_later(
            delay, lambda: spawn(self._expire(sid, state), name="token-expiry")
        )

    async def _expire(self, sid: str, state: _Socket) -> None:
        if self._sockets.get(sid) is not state or state.principal.expires_at > time.time():
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
        await self.sio.disconnect(sid)

    async def _refresh_token(self, sid: str, state: _Socket, data: RefreshToken) -> dict[str, Any]:
        principal = await self.verifier.verify(data.token)
        if principal.user_id != state.principal.user_id:
            raise ApiError(403, "forbidden", "refresh_token must carry the same user")
        state.principal = principal
        self._schedule_expiry(sid, state)
        return {"expires_at": int(principal.expires_at)}

    # ------------------------------------------------------------------ helpers
    async def _require_participant(self, principal: Principal, session_id: uuid.UUID) -> None:
        """Participation as the database sees it (RLS), never decided in Python."""
        async with self.db.as_user(principal) as conn:
            found = await conn.fetchval(
                "select true from public.chat_sessions where id = $1", session_id
            )
        if not found:
            raise ApiError(404, "not_found", f"chat session {session_id} not found")

    def _person(self, principal: Principal, session_id: uuid.UUID) -> dict[str, Any]:
        return {
            "user_id": str(principal.user_id),
            "user_name": principal.name,
            "session_id": str(session_id),
            "timestamp": now_iso(),
        }

    async def _emit_stopped_typing(
        self, principal: Principal, session_id: uuid.UUID, *, skip: set[str]
    ) -> None:
        await self.sio.emit(
            "user_stopped_typing",
            self._person(principal, session_id),
            room=room(session_id),
            skip_sid=list(skip) or None,
        )

    # ------------------------------------------------------------------ rooms
    async def _join_session(self, sid: str, state: _Socket, data: JoinSession) -> dict[str, Any]:
        principal = state.principal
        catch_up: list[dict[str, Any]] = []
        async with self.db.as_user(principal) as conn:
            found = await conn.fetchval(
                "select true from public.chat_sessions where id = $1", data.session_id
            )
            if not found:
                raise ApiError(404, "not_found", f"chat session {data.session_id} not found")
            if data.last_message_id is not None:
                catch_up = await self._missed(conn, data.session_id, data.last_message_id)
        await self.sio.enter_room(sid, room(data.session_id))
        state.sessions.add(data.session_id)
        first = await self.presence.add(data.session_id, principal.user_id, sid)
        online = [str(u) for u in await self.presence.online(data.session_id)]
        if first:
            await self.sio.emit(
                "user_joined",
                self._person(principal, data.session_id),
                room=room(data.session_id),
                skip_sid=list(self.presence.local_sids(data.session_id, principal.user_id)),
            )
        joined = {"session_id": str(data.session_id), "participants_online": online}
        await self.sio.emit("session_joined", joined, to=sid)
        for message in catch_up:
            await self.sio.emit("new_message", message, to=sid)
        return {**joined, "missed": len(catch_up)}

    async def _missed(
        self, conn: asyncpg.Connection, session_id: uuid.UUID, last_message_id: uuid.UUID
    ) -> list[dict[str, Any]]:
        anchor = await conn.fetchrow(
            "select created_at, seq from public.chat_messages where id = $1 and session_id = $2",
            last_message_id,
            session_id,
        )
        if anchor is None:
            raise ApiError(422, "invalid_value", "last_message_id is not a message of this session")
        rows = await conn.fetch(
            f"select {MESSAGE_COLUMNS} from public.chat_messages "
            "where session_id = $1 and (created_at, seq) > ($2, $3) "
            "order by created_at, seq limit $4",
            session_id,
            anchor["created_at"],
            anchor["seq"],
            _CATCH_UP_LIMIT,
        )
        return await message_payloads(conn, list(rows))

    async def _leave_session(self, sid: str, state: _Socket, data: SessionRef) -> dict[str, Any]:
        if data.session_id in state.sessions:
            await self._leave(sid, state, data.session_id)
        return {"session_id": str(data.session_id)}

    async def _leave(self, sid: str, state: _Socket, session_id: uuid.UUID) -> None:
        principal = state.principal
        state.sessions.discard(session_id)
        others = self.presence.local_sids(session_id, principal.user_id) - {sid}
        if not others and self.typing.stop(session_id, principal.user_id):
            await self._emit_stopped_typing(principal, session_id, skip={sid})
        self.hooks.left(principal, session_id)
        with contextlib.suppress(ValueError, KeyError):
            await self.sio.leave_room(sid, room(session_id))
        if await self.presence.remove(session_id, principal.user_id, sid):
            await self.sio.emit(
                "user_left", self._person(principal, session_id), room=room(session_id)
            )

    # ------------------------------------------------------------------ messages
    async def _send_message(self, sid: str, state: _Socket, data: SendMessage) -> dict[str, Any]:
        principal = state.principal
        if not await self.send_limit.allow(principal.user_id):
            raise ApiError(429, "rate_limited", "too many messages; slow down")
        if data.content is not None and len(data.content) > self.settings.max_content_length:
            raise ApiError(
                422,
                "invalid_value",
                f"content may be at most {self.settings.max_content_length} characters",
            )
        async with self.db.as_user(principal) as conn:
            row = await conn.fetchrow(
                f"select {MESSAGE_COLUMNS} from public.send_chat_message("
                "session_id => $1, content => $2, type => $3, reply_to_message_id => $4, "
                "metadata => $5::jsonb, client_message_id => $6)",
                data.session_id,
                data.content,
                data.type,
                data.reply_to_message_id,
                data.metadata,
                data.client_message_id,
            )
            (message,) = await message_payloads(conn, [row])
        if self.typing.stop(data.session_id, principal.user_id):
            await self._emit_stopped_typing(principal, data.session_id, skip={sid})
        return {"message": message}

    async def _mark_read(self, sid: str, state: _Socket, data: MarkRead) -> dict[str, Any]:
        async with self.db.as_user(state.principal) as conn:
            count = await conn.fetchval(
                "select public.mark_chat_messages_read($1, $2)",
                data.session_id,
                data.up_to_message_id,
            )
        return {"session_id": str(data.session_id), "read_count": count}

    # ------------------------------------------------------------------ typing
    async def _typing_start(self, sid: str, state: _Socket, data: SessionRef) -> dict[str, Any]:
        principal = state.principal
        if not await self.typing_limit.allow(principal.user_id):
            raise ApiError(429, "rate_limited", "too many typing events; slow down")
        if data.session_id not in state.sessions:
            await self._require_participant(principal, data.session_id)
        if self.typing.start(data.session_id, principal.user_id, sid):
            await self.sio.emit(
                "user_typing",
                self._person(principal, data.session_id),
                room=room(data.session_id),
                skip_sid=list(self.presence.local_sids(data.session_id, principal.user_id) | {sid}),
            )
        return {"session_id": str(data.session_id)}

    async def _typing_stop(self, sid: str, state: _Socket, data: SessionRef) -> dict[str, Any]:
        principal = state.principal
        if data.session_id not in state.sessions:
            await self._require_participant(principal, data.session_id)
        if self.typing.stop(data.session_id, principal.user_id):
            skip = self.presence.local_sids(data.session_id, principal.user_id) | {sid}
            await self._emit_stopped_typing(principal, data.session_id, skip=skip)
        return {"session_id": str(data.session_id)}

    async def _typing_timed_out(self, session_id: uuid.UUID, user_id: uuid.UUID, sid: str) -> None:
        state = self._sockets.get(sid)
        if state is None:
            return
        skip = self.presence.local_sids(session_id, user_id) | {sid}
        await self._emit_stopped_typing(state.principal, session_id, skip=skip)

    # ------------------------------------------------------------------ presence
    async def _get_online_users(self, sid: str, state: _Socket, data: SessionRef) -> dict[str, Any]:
        await self._require_participant(state.principal, data.session_id)
        users = [str(u) for u in await self.presence.online(data.session_id)]
        body = {"session_id": str(data.session_id), "users": users, "count": len(users)}
        await self.sio.emit("online_users", body, to=sid)
        return body

    # ------------------------------------------------------------------ database events
    async def _db_message(self, payload: dict[str, Any]) -> None:
        await self.sio.emit(
            "new_message", payload, room=room(payload["session_id"]), ignore_queue=True
        )
        self.hooks.delivered(payload)

    async def _db_read(self, event: dict[str, Any]) -> None:
        user_id = uuid.UUID(event["user_id"])
        async with self.db.as_service() as conn:
            names = await user_names(conn, [user_id])
        body = {
            "user_id": str(user_id),
            "user_name": names.get(user_id, "user"),
            "session_id": event["session_id"],
            "up_to_message_id": event["up_to_message_id"],
            "read_count": event.get("read_count", 0),
            "timestamp": now_iso(),
        }
        await self.sio.emit(
            "messages_read", body, room=room(event["session_id"]), ignore_queue=True
        )

    async def _db_session(self, event: dict[str, Any]) -> None:
        if event.get("op") == "update":
            body = {
                "session_id": event["id"],
                "status": event.get("status"),
                "timestamp": now_iso(),
            }
            await self.sio.emit("session_updated", body, room=room(event["id"]), ignore_queue=True)
