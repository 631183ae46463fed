"""The data lifecycle over REST: exports of a user's data, the retention preview, legal
holds. Deleting a user needs no endpoint: it is Supabase Auth's (``auth.admin.deleteUser``)
and the database erases the user's chat data in that transaction (docs/data-lifecycle.md).

Every handler runs as the caller (``db.as_user``): the SQL functions decide who may ask
for what, and audit it."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints

from ..errors import ApiError
from ..keys import DATABASE, SETTINGS
from ..lifecycle import LIFECYCLE
from .http import authenticate, json_body, path_params, reply
from .models import SessionPath
from .registry import Route, register

ZIP = "application/zip"


class ExportPath(BaseModel):
    export_id: uuid.UUID = Field(
        alias="exportId", description="An export id. Not yours, or not there: 404."
    )


class UserPath(BaseModel):
    user_id: uuid.UUID = Field(alias="userId", description="A user id (auth.users).")


class Export(BaseModel):
    id: uuid.UUID
    user_id: uuid.UUID = Field(description="Whose data the archive holds.")
    requested_by: uuid.UUID = Field(description="The user, or the admin who asked.")
    status: str = Field(description="pending, running, ready, failed or expired.")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    expires_at: dt.datetime | None = Field(description="When the archive is deleted.")
    sessions: int | None
    messages: int | None
    files: int | None
    archive_bytes: int | None
    error: str | None
    download_url: str | None = Field(
        default=None, description="Path of the archive (a zip) while it is ready."
    )


class ExportReply(BaseModel):
    export: Export


class RetentionPreview(BaseModel):
    retention_days: dict[str, float] = Field(
        description="RETENTION_DAYS by session type; a type not listed is kept forever."
    )
    sessions: int = Field(description="Closed sessions the purge would remove now.")
    messages: int = Field(description="Their messages.")
    held: int = Field(description="Sessions under a legal hold (never purged).")


Reason = Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]


class LegalHoldBody(BaseModel):
    reason: Reason = Field(description="Why the session must be kept (1 to 500 characters).")


class LegalHold(BaseModel):
    session_id: uuid.UUID
    legal_hold: bool
    reason: str | None
    set_at: dt.datetime | None


def _export(raw: Any) -> ExportReply:
    data = raw if isinstance(raw, dict) else json.loads(raw)
    if data["status"] == "ready":
        data["download_url"] = f"/api/chat/me/export/{data['id']}/archive"
    return ExportReply(export=Export.model_validate(data))


async def request_export(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    async with request.app[DATABASE].as_user(principal) as conn:
        raw = await conn.fetchval("select public.request_chat_export()")
    answer = _export(raw)
    request.app[LIFECYCLE].exports.start(answer.export.id)
    return reply(answer, status=202)


async def admin_request_export(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, UserPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        raw = await conn.fetchval("select public.admin_request_chat_export($1)", path.user_id)
    answer = _export(raw)
    request.app[LIFECYCLE].exports.start(answer.export.id)
    return reply(answer, status=202)


async def get_export(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, ExportPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        raw = await conn.fetchval("select public.get_chat_export($1)", path.export_id)
    return reply(_export(raw))


async def download_export(request: web.Request) -> web.StreamResponse:
    principal = await authenticate(request)
    path = path_params(request, ExportPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        raw = await conn.fetchval("select public.get_chat_export($1)", path.export_id)
    export = _export(raw).export
    if export.status != "ready":
        raise ApiError(409, "not_ready", f"the export is {export.status}, not ready")
    archive = request.app[LIFECYCLE].exports.archive_path(export.id)
    if not archive.is_file():
        raise ApiError(404, "not_found", "the archive is no longer there")
    return web.FileResponse(
        archive,
        headers={
            "Content-Type": ZIP,
            "Content-Disposition": f'attachment; filename="chat-export-{export.id}.zip"',
            "Cache-Control": "no-store",
        },
    )


async def retention_preview(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    days = dict(request.app[SETTINGS].retention_days)
    async with request.app[DATABASE].as_user(principal) as conn:
        raw = await conn.fetchval("select public.admin_chat_retention_preview($1::jsonb)", days)
    data = raw if isinstance(raw, dict) else json.loads(raw)
    return reply(RetentionPreview(retention_days=days, **data))


async def set_legal_hold(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    body = await json_body(request, LegalHoldBody)
    return await _legal_hold(request, principal, path.session_id, True, body.reason)


async def lift_legal_hold(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    return await _legal_hold(request, principal, path.session_id, False, None)


async def _legal_hold(
    request: web.Request, principal: Any, session_id: uuid.UUID, hold: bool, reason: str | None
) -> web.Response:
    async with request.app[DATABASE].as_user(principal) as conn:
        raw = await conn.fetchval(
            "select public.admin_set_chat_legal_hold($1, $2, $3)", session_id, hold, reason
        )
    data = raw if isinstance(raw, dict) else json.loads(raw)
    return reply(LegalHold.model_validate(data))


_ADMIN = "Admins only (app_metadata.role admin or super_admin), else 403; audited."

ROUTES = (
    Route(
        "POST",
        "/api/chat/me/export",
        request_export,
        operation_id="requestMyExport",
        summary="Ask for an archive of your chat data (right of access and portability)",
        description="Builds, in the background, one zip with your sessions, every message "
        "you can read and links to your own files (valid for a day); poll "
        "GET /api/chat/me/export/{exportId}. One export at a time (409 while one is "
        "pending or running); the archive is deleted after EXPORT_TTL_SECONDS.",
        response=ExportReply,
        status=202,
        errors=(409,),
        tag="lifecycle",
    ),
    Route(
        "GET",
        "/api/chat/me/export/{exportId}",
        get_export,
        operation_id="getMyExport",
        summary="An export's status, counts, expiry and, once ready, its download path",
        params=ExportPath,
        response=ExportReply,
        tag="lifecycle",
    ),
    Route(
        "GET",
        "/api/chat/me/export/{exportId}/archive",
        download_export,
        operation_id="downloadMyExport",
        summary="The export's zip archive (yours, or one you asked for as an admin)",
        params=ExportPath,
        response=None,
        binary=(ZIP,),
        errors=(409,),
        tag="lifecycle",
    ),
    Route(
        "POST",
        "/api/chat/admin/users/{userId}/export",
        admin_request_export,
        operation_id="requestUserExport",
        summary="Ask for an archive of any user's chat data (what that user can read)",
        description=_ADMIN + " Poll and download it like your own export.",
        params=UserPath,
        response=ExportReply,
        status=202,
        errors=(403, 409),
        tag="lifecycle",
    ),
    Route(
        "GET",
        "/api/chat/admin/retention",
        retention_preview,
        operation_id="previewRetention",
        summary="What the retention purge would remove now (a dry run), and the holds",
        description=_ADMIN,
        response=RetentionPreview,
        errors=(403,),
        tag="lifecycle",
    ),
    Route(
        "PUT",
        "/api/chat/admin/sessions/{sessionId}/legal-hold",
        set_legal_hold,
        operation_id="setLegalHold",
        summary="Place a legal hold on a session: the retention purge keeps it",
        description=_ADMIN,
        params=SessionPath,
        body=LegalHoldBody,
        response=LegalHold,
        errors=(403,),
        tag="lifecycle",
    ),
    Route(
        "DELETE",
        "/api/chat/admin/sessions/{sessionId}/legal-hold",
        lift_legal_hold,
        operation_id="liftLegalHold",
        summary="Lift a session's legal hold",
        description=_ADMIN,
        params=SessionPath,
        response=LegalHold,
        errors=(403,),
        tag="lifecycle",
    ),
)


def setup(app: web.Application) -> None:
    register(app, ROUTES)
