"""Moderation over REST: a sender edits or deletes their message within the edit window;
admins redact messages, read what a message said before, suspend users and freeze
sessions. Every handler runs as the caller (``db.as_user``); the SQL functions hold the
rules (docs/moderation.md). The room hears every change from the changefeed
(``message_updated``, ``message_deleted``), whichever path made it."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Literal

import asyncpg
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..errors import ApiError
from ..keys import DATABASE
from ..messages import MESSAGE_COLUMNS, message_payloads
from .http import authenticate, json_body, path_params, query_params, reply
from .lifecycle import UserPath
from .models import DEMO_SESSION, MessageEnvelope, SessionPath
from .registry import Route, register

Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
Content = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]


class MessagePath(BaseModel):
    session_id: uuid.UUID = Field(alias="sessionId", examples=[DEMO_SESSION])
    message_id: uuid.UUID = Field(
        alias="messageId", description="A message of that session. Not there, or not yours: 404."
    )


class EditBody(BaseModel):
    content: Content = Field(description="The new text (1 to 10,000 characters).")


class RedactionBody(BaseModel):
    reason: Reason = Field(description="Why it was removed (kept for admins, audited).")


class SuspensionBody(BaseModel):
    until: dt.datetime | None = Field(
        default=None, description="When the suspension ends (RFC 3339); null: until lifted."
    )
    reason: Reason


class Suspension(BaseModel):
    user_id: uuid.UUID
    suspended: bool
    until: dt.datetime | None
    reason: str | None


Category = Literal["spam", "harassment", "off_platform_contact", "inappropriate", "other"]


class ReportBody(BaseModel):
    category: Category
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ReportPath(BaseModel):
    report_id: uuid.UUID = Field(alias="reportId", description="A report id.")


class ReportsQuery(BaseModel):
    status: Literal["open", "resolved"] | None = Field(
        default="open", description="open (default) or resolved."
    )
    limit: int = Field(default=50, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=100_000)


class ResolveBody(BaseModel):
    action: Literal["dismiss", "redact", "suspend"] = Field(
        description="dismiss it, redact the message, or suspend its sender (until lifted)."
    )
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class Report(BaseModel):
    model_config = ConfigDict(extra="allow")  # the queue adds the message's current state
    id: uuid.UUID
    session_id: uuid.UUID
    message_id: uuid.UUID
    reporter_id: uuid.UUID | None
    category: str
    note: str | None
    status: str
    action: str | None
    resolution_note: str | None
    resolved_by: uuid.UUID | None
    resolved_at: dt.datetime | None
    created_at: dt.datetime


class ReportEnvelope(BaseModel):
    report: Report


class ReportPage(BaseModel):
    reports: list[Report]
    total: int


class Freeze(BaseModel):
    session_id: uuid.UUID
    frozen: bool
    frozen_at: dt.datetime | None


class HistoryEntry(BaseModel):
    kind: str = Field(description="edited, deleted or redacted.")
    content: str | None = Field(description="What the message said before.")
    metadata: dict[str, Any] | None
    reason: str | None
    actor_id: uuid.UUID | None
    at: dt.datetime


class MessageHistory(BaseModel):
    message_id: uuid.UUID
    history: list[HistoryEntry]


async def _changed(
    conn: asyncpg.Connection, sql: str, path: MessagePath, *args: Any
) -> MessageEnvelope:
    """Run one of the message functions and answer the message as the room sees it. A
    message of another session is refused before anything changes (the transaction is
    rolled back with the error)."""
    row = await conn.fetchrow(f"select {MESSAGE_COLUMNS} from {sql}", path.message_id, *args)
    if row is None or row["session_id"] != path.session_id:
        raise ApiError(404, "not_found", f"message {path.message_id} not found")
    (message,) = await message_payloads(conn, [row])
    return MessageEnvelope.model_validate({"message": message})


async def edit_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, MessagePath)
    body = await json_body(request, EditBody)
    async with request.app[DATABASE].as_user(principal) as conn:
        answer = await _changed(conn, "public.edit_chat_message($1, $2)", path, body.content)
    return reply(answer)


async def delete_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, MessagePath)
    async with request.app[DATABASE].as_user(principal) as conn:
        answer = await _changed(conn, "public.delete_chat_message($1)", path)
    return reply(answer)


async def redact_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, MessagePath)
    body = await json_body(request, RedactionBody)
    async with request.app[DATABASE].as_user(principal) as conn:
        answer = await _changed(conn, "public.admin_redact_chat_message($1, $2)", path, body.reason)
    return reply(answer)


async def message_history(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, MessagePath)
    async with request.app[DATABASE].as_user(principal) as conn:
        data = await conn.fetchval("select public.admin_chat_message_history($1)", path.message_id)
    return reply(MessageHistory.model_validate(data))


async def suspend_user(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, UserPath)
    body = await json_body(request, SuspensionBody)
    async with request.app[DATABASE].as_user(principal) as conn:
        data = await conn.fetchval(
            "select public.admin_suspend_chat_user($1, $2, $3)",
            path.user_id,
            body.until,
            body.reason,
        )
    return reply(Suspension.model_validate(data))


async def lift_suspension(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, UserPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        data = await conn.fetchval("select public.admin_lift_chat_suspension($1)", path.user_id)
    return reply(Suspension.model_validate(data))


async def report_message(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, MessagePath)
    body = await json_body(request, ReportBody)
    async with request.app[DATABASE].as_user(principal) as conn:
        session_id = await conn.fetchval(
            "select session_id from public.chat_messages where id = $1", path.message_id
        )
        if session_id != path.session_id:
            raise ApiError(404, "not_found", f"message {path.message_id} not found")
        data = await conn.fetchval(
            "select public.report_chat_message($1, $2, $3)",
            path.message_id,
            body.category,
            body.note,
        )
    return reply(ReportEnvelope(report=Report.model_validate(data)), status=201)


async def list_reports(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = query_params(request, ReportsQuery)
    async with request.app[DATABASE].as_user(principal) as conn:
        data = await conn.fetchval(
            "select public.admin_chat_reports($1, $2, $3)", query.status, query.limit, query.offset
        )
    return reply(ReportPage.model_validate(data))


async def resolve_report(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, ReportPath)
    body = await json_body(request, ResolveBody)
    async with request.app[DATABASE].as_user(principal) as conn:
        data = await conn.fetchval(
            "select public.admin_resolve_chat_report($1, $2, $3)",
            path.report_id,
            body.action,
            body.note,
        )
    return reply(ReportEnvelope(report=Report.model_validate(data)))


async def _freeze(request: web.Request, frozen: bool) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        row = await conn.fetchrow(
            "select id, frozen_at from public.admin_freeze_chat_session($1, $2)",
            path.session_id,
            frozen,
        )
    return reply(Freeze(session_id=row["id"], frozen=frozen, frozen_at=row["frozen_at"]))


async def freeze_session(request: web.Request) -> web.Response:
    return await _freeze(request, True)


async def unfreeze_session(request: web.Request) -> web.Response:
    return await _freeze(request, False)


_ADMIN = "Admins only (app_metadata.role admin or super_admin), else 403; audited."
# A message id in the path is hexadecimal with dashes (then validated as a UUID): /read and
# /delivered stay the session's own paths.
_UUID = "[0-9a-fA-F-]+"
_WINDOW = (
    "Within EDIT_WINDOW_S (default 15 minutes) of sending, by the sender only: 409 "
    "edit_window_closed after it, 409 message_deleted for a tombstone, 403 suspended, 409 "
    "session_frozen. The room gets message_updated or message_deleted."
)

ROUTES = (
    Route(
        "PATCH",
        "/api/chat/messages/{sessionId}/{messageId:" + _UUID + "}",
        edit_message,
        operation_id="editMessage",
        summary="Edit your message's content",
        description=_WINDOW,
        params=MessagePath,
        body=EditBody,
        response=MessageEnvelope,
        errors=(403, 409),
        tag="moderation",
    ),
    Route(
        "DELETE",
        "/api/chat/messages/{sessionId}/{messageId:" + _UUID + "}",
        delete_message,
        operation_id="deleteMessage",
        summary="Delete your message: it stays as a tombstone, its file is removed",
        description=_WINDOW,
        params=MessagePath,
        response=MessageEnvelope,
        errors=(403, 409),
        tag="moderation",
    ),
    Route(
        "POST",
        "/api/chat/messages/{sessionId}/{messageId:" + _UUID + "}/redaction",
        redact_message,
        operation_id="redactMessage",
        summary="Remove any message with a reason (others see a moderator's tombstone)",
        description=_ADMIN + " The original stays readable to admins (history).",
        params=MessagePath,
        body=RedactionBody,
        response=MessageEnvelope,
        errors=(403, 409),
        tag="moderation",
    ),
    Route(
        "GET",
        "/api/chat/messages/{sessionId}/{messageId:" + _UUID + "}/history",
        message_history,
        operation_id="getMessageHistory",
        summary="What a message said before each edit, deletion or redaction",
        description=_ADMIN,
        params=MessagePath,
        response=MessageHistory,
        errors=(403,),
        tag="moderation",
    ),
    Route(
        "POST",
        "/api/chat/messages/{sessionId}/{messageId:" + _UUID + "}/reports",
        report_message,
        operation_id="reportMessage",
        summary="Report another participant's message",
        description="Participants only (404 otherwise); not your own message (422); one open "
        "report per reporter and message (409). Admins see it in GET /api/chat/reports; the "
        "host platform gets chat.message.reported.",
        params=MessagePath,
        body=ReportBody,
        response=ReportEnvelope,
        status=201,
        errors=(409,),
        tag="moderation",
    ),
    Route(
        "GET",
        "/api/chat/reports",
        list_reports,
        operation_id="listReports",
        summary="The report queue, oldest first, with each message's current state",
        description=_ADMIN,
        query=ReportsQuery,
        response=ReportPage,
        errors=(403, 422),
        tag="moderation",
    ),
    Route(
        "POST",
        "/api/chat/reports/{reportId}/resolve",
        resolve_report,
        operation_id="resolveReport",
        summary="Resolve a report: dismiss it, redact the message or suspend its sender",
        description=_ADMIN + " 409 when it is already resolved.",
        params=ReportPath,
        body=ResolveBody,
        response=ReportEnvelope,
        errors=(403, 409),
        tag="moderation",
    ),
    Route(
        "POST",
        "/api/chat/users/{userId}/suspension",
        suspend_user,
        operation_id="suspendUser",
        summary="Suspend a user from chat (sends, typing, joins) until a time or until lifted",
        description=_ADMIN + " Their open sockets are told at once; reading stays allowed.",
        params=UserPath,
        body=SuspensionBody,
        response=Suspension,
        errors=(403,),
        tag="moderation",
    ),
    Route(
        "DELETE",
        "/api/chat/users/{userId}/suspension",
        lift_suspension,
        operation_id="liftSuspension",
        summary="Lift a user's suspension",
        description=_ADMIN,
        params=UserPath,
        response=Suspension,
        errors=(403,),
        tag="moderation",
    ),
    Route(
        "POST",
        "/api/chat/sessions/{sessionId}/freeze",
        freeze_session,
        operation_id="freezeSession",
        summary="Freeze a session: no new messages from anyone until unfrozen",
        description=_ADMIN,
        params=SessionPath,
        response=Freeze,
        errors=(403,),
        tag="moderation",
    ),
    Route(
        "DELETE",
        "/api/chat/sessions/{sessionId}/freeze",
        unfreeze_session,
        operation_id="unfreezeSession",
        summary="Unfreeze a session",
        description=_ADMIN,
        params=SessionPath,
        response=Freeze,
        errors=(403,),
        tag="moderation",
    ),
)


def setup(app: web.Application) -> None:
    register(app, ROUTES)
