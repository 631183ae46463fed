"""The REST API of the original service under /api/chat, every query run as the caller
(``db.as_user``), so row-level security decides what they may see or do."""

from __future__ import annotations

from aiohttp import web

from .. import message_store, sessions
from ..errors import ApiError
from ..keys import DATABASE, RELAY, SETTINGS
from ..relay.ratelimit import Budget
from . import cors, openapi
from .http import authenticate, json_body, path_params, query_params, reply
from .models import (
    ChatSession,
    CreateSession,
    MarkRead,
    MessageEnvelope,
    MessagePage,
    MessagesQuery,
    ReadResult,
    SendMessage,
    SessionEnvelope,
    SessionList,
    SessionPath,
)
from .registry import Route, register
from .search_models import SessionsFilterQuery

# Sessions each user may create: a token bucket per user (SESSION_CREATE_RATE per second,
# SESSION_CREATE_BURST), shared through Redis like the send limit.
SESSION_LIMIT = web.AppKey("session_limit", Budget)


# ---------------------------------------------------------------- sessions
async def list_sessions(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = query_params(request, SessionsFilterQuery)
    async with request.app[DATABASE].as_user(principal) as conn:
        if query.q or query.type or query.status:
            rows, has_more = await sessions.find_mine(
                conn,
                text=query.q,
                type_=query.type,
                status=query.status,
                limit=query.limit,
                offset=query.offset,
            )
        else:
            rows, has_more = await sessions.list_mine(conn, limit=query.limit, offset=query.offset)
    return reply(
        SessionList(sessions=[ChatSession.model_validate(r) for r in rows], has_more=has_more)
    )


async def create_session(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await json_body(request, CreateSession)
    if not await request.app[SESSION_LIMIT].allow(principal.user_id):
        raise ApiError(429, "rate_limited", "too many sessions created; slow down")
    async with request.app[DATABASE].as_user(principal) as conn:
        row = await sessions.create(
            conn,
            participants=body.participants,
            type_=body.type,
            booking_id=body.booking_id,
            title=body.title,
        )
    return reply(SessionEnvelope(session=ChatSession.model_validate(row)), status=201)


async def get_session(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        row = await sessions.get_mine(conn, path.session_id)
    return reply(SessionEnvelope(session=ChatSession.model_validate(row)))


async def close_session(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        row = await sessions.close(conn, path.session_id, as_admin=principal.is_admin)
    return reply(SessionEnvelope(session=ChatSession.model_validate(row)))


# ---------------------------------------------------------------- messages
async def list_messages(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    query = query_params(request, MessagesQuery)
    async with request.app[DATABASE].as_user(principal) as conn:
        rows, has_more = await message_store.page(
            conn,
            path.session_id,
            limit=query.limit,
            offset=query.offset,
            before=query.before,
            before_id=query.before_id,
        )
    return reply(MessagePage.model_validate({"messages": rows, "has_more": has_more}))


async def send_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    body = await json_body(request, SendMessage)
    limit = request.app[SETTINGS].max_content_length
    if body.content is not None and len(body.content) > limit:
        raise ApiError(422, "invalid_value", f"content may be at most {limit} characters")
    # The same per-user bucket as the relay's send_message (shared through Redis).
    if not await request.app[RELAY].send_limit.allow(principal.user_id):
        raise ApiError(429, "rate_limited", "too many messages; slow down")
    # The relay's group commit: the message reaches the session's sockets from there.
    message = await request.app[RELAY].writer.send(
        principal,
        session_id=body.session_id,
        type_=body.type,
        content=body.content,
        reply_to_message_id=body.reply_to_message_id,
        metadata=body.metadata,
        client_message_id=body.client_message_id,
    )
    return reply(MessageEnvelope.model_validate({"message": message}), status=201)


async def mark_read(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    body = await json_body(request, MarkRead)
    async with request.app[DATABASE].as_user(principal) as conn:
        count = await message_store.mark_read(conn, path.session_id, body.up_to_message_id)
    return reply(ReadResult(read_count=count))


ROUTES = (
    Route(
        "GET",
        "/api/chat/sessions",
        list_sessions,
        operation_id="listSessions",
        summary="The caller's sessions, newest activity first, with unread counts",
        description="q, type and status filter the list (q: text in the title or, as "
        "whole words, in any message).",
        query=SessionsFilterQuery,
        response=SessionList,
    ),
    Route(
        "POST",
        "/api/chat/sessions",
        create_session,
        operation_id="createSession",
        summary="Create a session the caller takes part in (admins: any)",
        body=CreateSession,
        response=SessionEnvelope,
        status=201,
        errors=(403, 429),
    ),
    Route(
        "GET",
        "/api/chat/sessions/{sessionId}",
        get_session,
        operation_id="getSession",
        summary="One session of the caller; 404 for anyone else",
        params=SessionPath,
        response=SessionEnvelope,
    ),
    Route(
        "POST",
        "/api/chat/sessions/{sessionId}/close",
        close_session,
        operation_id="closeSession",
        summary="Close a session (participants; admins any, audited); adds a system message",
        description="Closing twice is not an error. A closed session refuses messages (409).",
        params=SessionPath,
        response=SessionEnvelope,
    ),
    Route(
        "GET",
        "/api/chat/messages/{sessionId}",
        list_messages,
        operation_id="listMessages",
        summary="A page of a session's messages, newest first",
        description="limit/offset, before (a time) and before_id (a keyset cursor) combine; "
        "has_more says whether older messages remain.",
        params=SessionPath,
        query=MessagesQuery,
        response=MessagePage,
        errors=(422,),
    ),
    Route(
        "POST",
        "/api/chat/messages",
        send_message,
        operation_id="sendMessage",
        summary="Send a message; it reaches the session's sockets as new_message",
        body=SendMessage,
        response=MessageEnvelope,
        status=201,
        errors=(404, 409, 429),
    ),
    Route(
        "PUT",
        "/api/chat/messages/{sessionId}/read",
        mark_read,
        operation_id="markRead",
        summary="Advance the caller's read cursor; the room gets messages_read",
        params=SessionPath,
        body=MarkRead,
        response=ReadResult,
    ),
)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    app[SESSION_LIMIT] = Budget(
        name="sessions", bucket=settings.session_create_bucket, redis=app[RELAY].redis
    )
    cors.setup(app, app[SETTINGS].cors_origins)
    register(app, ROUTES)
    openapi.setup(app, title="Consultation chat API", version="1.0.0")
