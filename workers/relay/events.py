"""What the relay does with each client event and each database event.

Every action on a session checks participation through the database as the user (RLS);
a socket that has joined a session (checked then) may type in it without a new query.
The :class:`~workers.relay.server.Relay` mixes this in; the state it uses is declared
below for the type checker.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import asyncpg
import socketio

from .. import message_store, receipts
from ..auth import Principal
from ..changefeed import Changefeed
from ..config import Settings
from ..db import Database
from ..errors import ApiError
from ..message_writer import MessageWriter
from ..messages import MESSAGE_COLUMNS, NameCache, iso, message_payloads, now_iso, user_names
from .hooks import RelayHooks
from .models import JoinSession, MarkRead, SendMessage, SessionRef
from .presence import Presence
from .ratelimit import Budget
from .rooms import SocketState, room
from .suspensions import Suspensions
from .topics import RealtimeTopics
from .typing import TypingTracker
from .upstream.manager import ChatRedisManager

_CATCH_UP_LIMIT = 500


class RelayEvents:
    """Handlers of the original service's events; needs the attributes below (set by Relay)."""

    settings: Settings
    db: Database
    sio: socketio.AsyncServer
    presence: Presence
    typing: TypingTracker
    send_limit: Budget
    typing_limit: Budget
    hooks: RelayHooks
    changefeed: Changefeed
    writer: MessageWriter
    names: NameCache
    topics: RealtimeTopics
    suspensions: Suspensions
    manager: ChatRedisManager | None
    _sockets: dict[str, SocketState]

    # ------------------------------------------------------------------ helpers
    async def _require_participant(self, principal: Principal, session_id: uuid.UUID) -> None:
        """Participation as the database sees it (as the user, under RLS)."""
        async with self.db.as_user(principal) as conn:
            await _check_participant(conn, session_id)

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
        self.topics.typing(principal, session_id, False)
        await self.sio.emit(
            "user_stopped_typing",
            self._person(principal, session_id),
            room=room(session_id),
            skip_sid=list(skip) or None,
        )

    # ------------------------------------------------------------------ rooms
    async def _join_session(
        self, sid: str, state: SocketState, data: JoinSession
    ) -> dict[str, Any]:
        principal = state.principal
        anchor = None
        changed: list[asyncpg.Record] = []
        await self.suspensions.refuse(principal.user_id)
        async with self.db.as_user(principal) as conn:
            await _check_participant(conn, data.session_id)
            if data.last_message_id is not None:
                anchor = await _anchor(conn, data.session_id, data.last_message_id)
            if not self.names.has(principal.user_id):
                # The joiner's name as its messages will carry it, read now rather than
                # on the first send (group commits never wait for a name query).
                self.names.put(await user_names(conn, [principal.user_id]))
        # In the room first, then read the backlog: a message committed in between is in
        # the backlog or in the live stream (or both: clients dedupe by id), never in neither.
        await self.sio.enter_room(sid, room(data.session_id))
        state.sessions.add(data.session_id)
        first = await self.presence.add(data.session_id, principal.user_id, sid)
        catch_up: list[dict[str, Any]] = []
        if anchor is not None:
            async with self.db.as_user(principal) as conn:
                catch_up = await _missed(conn, data.session_id, anchor)
                changed = await _changed_since(conn, data.session_id, anchor)
        online = [str(u) for u in await self.presence.online(data.session_id)]
        if first:
            self.topics.presence(principal, data.session_id, True)
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
        for row in changed:  # edited or deleted while the client was away
            name, body = message_state_event(row)
            await self.sio.emit(name, body, to=sid)
        return {**joined, "missed": len(catch_up)}

    async def _leave_session(
        self, sid: str, state: SocketState, data: SessionRef
    ) -> dict[str, Any]:
        if data.session_id in state.sessions:
            await self._leave(sid, state, data.session_id)
        return {"session_id": str(data.session_id)}

    async def _leave(self, sid: str, state: SocketState, session_id: uuid.UUID) -> None:
        principal = state.principal
        state.sessions.discard(session_id)
        others = self.presence.local_sids(session_id, principal.user_id) - {sid}
        if not others and self.typing.stop(session_id, principal.user_id):
            await self._emit_stopped_typing(principal, session_id, skip={sid})
        self.hooks.left(principal, session_id)
        with contextlib.suppress(ValueError, KeyError):
            await self.sio.leave_room(sid, room(session_id))
        if await self.presence.remove(session_id, principal.user_id, sid):
            self.topics.presence(principal, session_id, False)
            await self.sio.emit(
                "user_left", self._person(principal, session_id), room=room(session_id)
            )

    # ------------------------------------------------------------------ messages
    async def _send_message(
        self, sid: str, state: SocketState, data: SendMessage
    ) -> dict[str, Any]:
        principal = state.principal
        if not await self.send_limit.allow(principal.user_id):
            raise ApiError(429, "rate_limited", "too many messages; slow down")
        if data.content is not None and len(data.content) > self.settings.max_content_length:
            raise ApiError(
                422,
                "invalid_value",
                f"content may be at most {self.settings.max_content_length} characters",
            )
        message = await self.writer.send(
            principal,
            session_id=data.session_id,
            type_=data.type,
            content=data.content,
            reply_to_message_id=data.reply_to_message_id,
            metadata=data.metadata,
            client_message_id=data.client_message_id,
        )
        if self.typing.stop(data.session_id, principal.user_id):
            await self._emit_stopped_typing(principal, data.session_id, skip={sid})
        return {"message": message}

    async def _mark_read(self, sid: str, state: SocketState, data: MarkRead) -> dict[str, Any]:
        async with self.db.as_user(state.principal) as conn:
            count = await message_store.mark_read(conn, data.session_id, data.up_to_message_id)
        return {"session_id": str(data.session_id), "read_count": count}

    async def _mark_delivered(self, sid: str, state: SocketState, data: MarkRead) -> dict[str, Any]:
        """A device got the session's messages up to a message: the delivery cursor moves
        (never backwards); the room hears it from the changefeed (``messages_delivered``)."""
        async with self.db.as_user(state.principal) as conn:
            moved = await receipts.mark_delivered(conn, data.session_id, data.up_to_message_id)
        return {"session_id": str(data.session_id), "moved": moved}

    # ------------------------------------------------------------------ typing
    async def _typing_start(self, sid: str, state: SocketState, data: SessionRef) -> dict[str, Any]:
        principal = state.principal
        if not await self.typing_limit.allow(principal.user_id):
            raise ApiError(429, "rate_limited", "too many typing events; slow down")
        await self.suspensions.refuse(principal.user_id)
        if data.session_id not in state.sessions:
            await self._require_participant(principal, data.session_id)
        if self.typing.start(data.session_id, principal.user_id, principal):
            self.topics.typing(principal, data.session_id, True)
            await self.sio.emit(
                "user_typing",
                self._person(principal, data.session_id),
                room=room(data.session_id),
                skip_sid=list(self.presence.local_sids(data.session_id, principal.user_id) | {sid}),
            )
        return {"session_id": str(data.session_id)}

    async def _typing_stop(self, sid: str, state: SocketState, data: SessionRef) -> dict[str, Any]:
        principal = state.principal
        if data.session_id not in state.sessions:
            await self._require_participant(principal, data.session_id)
        if self.typing.stop(data.session_id, principal.user_id):
            skip = self.presence.local_sids(data.session_id, principal.user_id) | {sid}
            await self._emit_stopped_typing(principal, data.session_id, skip=skip)
        return {"session_id": str(data.session_id)}

    async def _typing_timed_out(
        self, session_id: uuid.UUID, user_id: uuid.UUID, who: Principal
    ) -> None:
        """No typing_start for TYPING_TIMEOUT: the relay says the user stopped (even when the
        socket that started typing has gone and another of the user's sockets remains)."""
        skip = self.presence.local_sids(session_id, user_id)
        await self._emit_stopped_typing(who, session_id, skip=skip)

    # ------------------------------------------------------------------ presence
    async def _get_online_users(
        self, sid: str, state: SocketState, data: SessionRef
    ) -> dict[str, Any]:
        await self._require_participant(state.principal, data.session_id)
        users = [str(u) for u in await self.presence.online(data.session_id)]
        body = {"session_id": str(data.session_id), "users": users, "count": len(users)}
        await self.sio.emit("online_users", body, to=sid)
        return body

    # ------------------------------------------------------------------ fan-out
    async def _emit_committed(self, payloads: list[dict[str, Any]]) -> None:
        """Messages this relay just committed (group commit): to its own sockets now, to
        the other relays in one Redis message."""
        for payload in payloads:
            self.changefeed.remember(payload["id"])
        for payload in payloads:
            await self.sio.emit(
                "new_message", payload, room=room(payload["session_id"]), ignore_queue=True
            )
            self.hooks.delivered(payload)
        if self.manager is not None:
            self.manager.publish_messages(payloads)

    def _relayed(self, payload: dict[str, Any]) -> bool:
        """A message another relay committed reached this one through Redis: emit it here
        unless the changefeed has delivered it already."""
        if self.changefeed.seen(payload.get("id")):
            return False
        self.changefeed.remember(payload.get("id"))
        self.hooks.delivered(payload)
        return True

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

    async def _db_delivered(self, event: dict[str, Any]) -> None:
        body = {
            "user_id": event["user_id"],
            "session_id": event["session_id"],
            "up_to_message_id": event["up_to_message_id"],
            "timestamp": now_iso(),
        }
        await self.sio.emit(
            "messages_delivered", body, room=room(event["session_id"]), ignore_queue=True
        )

    async def _db_session(self, event: dict[str, Any]) -> None:
        if event.get("op") == "update":
            body = {
                "session_id": event["id"],
                "status": event.get("status"),
                "timestamp": now_iso(),
            }
            if "frozen" in event:  # an admin froze or unfroze it
                body["frozen"] = bool(event["frozen"])
            await self.sio.emit("session_updated", body, room=room(event["id"]), ignore_queue=True)


async def _check_participant(conn: asyncpg.Connection, session_id: uuid.UUID) -> None:
    """A participant, not merely someone who may read the session row (its creator may)."""
    found = await conn.fetchval(
        "select true from public.chat_sessions "
        "where id = $1 and participants @> array[(select auth.uid())]",
        session_id,
    )
    if not found:
        raise ApiError(404, "not_found", f"chat session {session_id} not found")


async def _anchor(
    conn: asyncpg.Connection, session_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[Any, int]:
    row = await conn.fetchrow(
        "select created_at, seq from public.chat_messages where id = $1 and session_id = $2",
        message_id,
        session_id,
    )
    if row is None:
        raise ApiError(422, "invalid_value", "last_message_id is not a message of this session")
    return row["created_at"], row["seq"]


def message_state_event(row: Any) -> tuple[str, dict[str, Any]]:
    """``message_deleted`` or ``message_updated`` for a message's current state."""
    if row["deleted_at"] is not None:
        return "message_deleted", {
            "session_id": str(row["session_id"]),
            "message_id": str(row["id"]),
            "deleted_at": iso(row["deleted_at"]),
            "reason": row["deleted_reason"],
        }
    return "message_updated", {
        "session_id": str(row["session_id"]),
        "message_id": str(row["id"]),
        "content": row["content"],
        "edited_at": iso(row["edited_at"]),
    }


async def _changed_since(
    conn: asyncpg.Connection, session_id: uuid.UUID, anchor: tuple[Any, int]
) -> list[asyncpg.Record]:
    """Messages up to the anchor that were edited or deleted after it was written: what a
    client that had the anchor may have missed in place (at most _CATCH_UP_LIMIT)."""
    return list(
        await conn.fetch(
            "select id, session_id, content, edited_at, deleted_at, deleted_reason "
            "from public.chat_messages "
            "where session_id = $1 and (edited_at is not null or deleted_at is not null) "
            "and greatest(edited_at, deleted_at) > $2 and (created_at, seq) <= ($2, $3) "
            "order by greatest(edited_at, deleted_at) limit $4",
            session_id,
            anchor[0],
            anchor[1],
            _CATCH_UP_LIMIT,
        )
    )


async def _missed(
    conn: asyncpg.Connection, session_id: uuid.UUID, anchor: tuple[Any, int]
) -> list[dict[str, Any]]:
    """The session's messages after the anchor, oldest first (at most _CATCH_UP_LIMIT)."""
    rows = await conn.fetch(
        f"select {MESSAGE_COLUMNS} from public.chat_messages "
        "where session_id = $1 and (created_at, seq) > ($2, $3) "
        "order by created_at, seq limit $4",
        session_id,
        anchor[0],
        anchor[1],
        _CATCH_UP_LIMIT,
    )
    return await message_payloads(conn, list(rows))
