"""Full-text search (GET /api/chat/search) and delivery receipts
(GET /api/chat/sessions/{sessionId}/receipts, PUT /api/chat/messages/{sessionId}/delivered),
every query as the caller, so row-level security decides."""

from __future__ import annotations

from aiohttp import web

from .. import receipts, search
from ..keys import DATABASE
from .http import authenticate, json_body, path_params, query_params, reply
from .models import SessionPath
from .registry import Route, register
from .search_models import (
    DeliveredBody,
    DeliveredResult,
    Receipts,
    SearchQuery,
    SearchResults,
)


async def search_messages(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = query_params(request, SearchQuery)
    async with request.app[DATABASE].as_user(principal) as conn:
        results, has_more = await search.messages(
            conn,
            query=query.q,
            session_id=query.session_id,
            limit=query.limit,
            before_id=query.before_id,
        )
    return reply(SearchResults.model_validate({"results": results, "has_more": has_more}))


async def session_receipts(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        rows = await receipts.cursors(conn, path.session_id)
    return reply(Receipts.model_validate({"session_id": path.session_id, "participants": rows}))


async def mark_delivered(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    body = await json_body(request, DeliveredBody)
    async with request.app[DATABASE].as_user(principal) as conn:
        moved = await receipts.mark_delivered(conn, path.session_id, body.up_to_message_id)
    return reply(DeliveredResult(moved=moved))


ROUTES = (
    Route(
        "GET",
        "/api/chat/search",
        search_messages,
        operation_id="searchMessages",
        summary="Full-text search over the caller's sessions, best match first",
        description="PostgreSQL full-text search (configuration 'simple', GIN index) under "
        "row-level security: only messages of sessions the caller takes part in.",
        query=SearchQuery,
        response=SearchResults,
        errors=(422,),
    ),
    Route(
        "GET",
        "/api/chat/sessions/{sessionId}/receipts",
        session_receipts,
        operation_id="getReceipts",
        summary="Every participant's delivery and read cursor in a session of the caller",
        params=SessionPath,
        response=Receipts,
    ),
    Route(
        "PUT",
        "/api/chat/messages/{sessionId}/delivered",
        mark_delivered,
        operation_id="markDelivered",
        summary="Advance the caller's delivery cursor; the room gets messages_delivered",
        params=SessionPath,
        body=DeliveredBody,
        response=DeliveredResult,
    ),
)


def setup(app: web.Application) -> None:
    register(app, ROUTES)
