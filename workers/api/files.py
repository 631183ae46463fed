"""POST /api/chat/upload and GET /api/chat/files/{path}: uploads become audio, image or
file messages; downloads are for participants (as the user, under the storage policies)
or for holders of a short-lived signed URL."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from .. import messages
from ..errors import ApiError
from ..keys import DATABASE, OBJECT_STORE, RELAY, SETTINGS, URL_SIGNER
from ..storage import InsufficientStorage, ObjectMissing, UrlSigner, build_store, catalog
from ..tasks import spawn
from ..uploads import accounting, intake, names, service, sweeper
from . import downloads
from .file_models import DOWNLOAD_TYPES, FilePath, FileQuery, UploadFields, UploadResult
from .http import authenticate, query_params, reply
from .registry import Route, register


async def upload(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    app = request.app
    settings, db = app[SETTINGS], app[DATABASE]
    # An upload is a message: it draws from the same per-user bucket as sends.
    if not await app[RELAY].send_limit.allow(principal.user_id):
        raise ApiError(429, "rate_limited", "too many messages; slow down")
    # Refused before a byte of the body is read: a full disk, a used-up daily quota.
    if not app[OBJECT_STORE].has_room(settings.upload_max_bytes):
        raise InsufficientStorage()
    await accounting.check_quota(db, principal.user_id, quota=settings.upload_quota_bytes)

    async def participating(session_id: uuid.UUID) -> None:
        await service.check_session(db, principal, session_id)

    async with intake.read_form(
        request,
        spool_dir=settings.data_dir / "tmp",
        max_bytes=settings.upload_max_bytes,
        on_session=participating,
    ) as form:
        if form.caption and len(form.caption) > settings.max_content_length:
            raise ApiError(
                422,
                "invalid_value",
                f"caption: at most {settings.max_content_length} characters",
            )
        result = await service.publish(
            db=db,
            store=app[OBJECT_STORE],
            principal=principal,
            form=form,
            url_ttl=settings.file_url_ttl,
            daily_quota=settings.upload_quota_bytes,
        )
    return reply(UploadResult.model_validate(result), status=201)


async def download(request: web.Request) -> web.StreamResponse:
    raw = request.match_info["path"]
    db = request.app[DATABASE]
    if "expires" in request.query or "signature" in request.query:
        query = query_params(request, FileQuery)
        request.app[URL_SIGNER].verify(raw, expires=query.expires, signature=query.signature)
        path = names.checked_object_path(raw)
        if path is None:
            raise ObjectMissing(raw)
        # The signature is the permission (a participant's payload carried it); reading
        # the object's row is the store's own business, as in hosted Storage.
        async with db.as_service() as conn:
            info = await catalog.find(conn, path)
    else:
        principal = await authenticate(request)
        path = names.checked_object_path(raw)
        if path is None:
            raise ObjectMissing(raw)
        async with db.as_user(principal) as conn:
            info = await catalog.find(conn, path)
    if info is None:
        raise ObjectMissing(path)
    return await downloads.serve(request, request.app[OBJECT_STORE], info)


ROUTES = (
    Route(
        "POST",
        "/api/chat/upload",
        upload,
        operation_id="uploadFile",
        summary="Upload a file and send it as an audio, image or file message",
        description="multipart/form-data, streamed: at most 10 MB (413 beyond). The type "
        "comes from the content (415 for anything else, or when the declared type "
        "contradicts it). Participants of an active session only (404, 409). The message "
        "reaches the session's sockets as new_message.",
        form=UploadFields,
        response=UploadResult,
        status=201,
        errors=(404, 409, 429, 507),
        notes=(
            (413, "The file is larger than 10 MB"),
            (
                429,
                "Too many messages (rate_limited), or the daily upload quota is used up "
                "(upload_quota_exceeded)",
            ),
            (507, "The file store is below its free-space floor (insufficient_storage)"),
            (415, "Not multipart/form-data, or a file type that is not accepted"),
            (422, "A missing or invalid field, an empty file, a reply from elsewhere"),
        ),
    ),
    Route(
        "GET",
        "/api/chat/files/{path:.+}",
        download,
        operation_id="downloadFile",
        summary="Download a chat file (participants, or a signed URL without a token)",
        description="Streams the object with Content-Type, Content-Length, "
        "Content-Disposition (inline for images and audio) and one Range (206; 416 when "
        "outside the file). With expires and signature (the metadata.url of a file "
        "message) no Authorization header is needed.",
        params=FilePath,
        query=FileQuery,
        response=None,
        binary=DOWNLOAD_TYPES,
        errors=(403, 416),
        token_optional=True,
        notes=(
            (403, "The signed URL is invalid or has expired"),
            (404, "No such file, or not visible to the caller"),
            (416, "The Range lies outside the file"),
        ),
    ),
)


def setup(app: web.Application) -> None:
    settings = app[SETTINGS]
    signer = UrlSigner.from_secrets(
        file_url_secret=settings.file_url_secret,
        jwt_secret=settings.jwt_secret,
        public_url=settings.public_url,
    )
    app[URL_SIGNER] = signer
    app[OBJECT_STORE] = build_store(settings, db=app[DATABASE], signer=signer)
    app.cleanup_ctx.append(_store_ctx)
    register(app, ROUTES)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[OBJECT_STORE]  # read at start-up: tests may swap it in before
    ttl = app[SETTINGS].file_url_ttl
    await store.open()

    async def sign(paths: list[str]) -> Mapping[str, str]:
        return await store.signed_urls(paths, ttl)

    messages.set_file_url_signer(sign)
    settings = app[SETTINGS]
    sweep = None
    if settings.orphan_sweep_seconds > 0:
        sweep = spawn(
            sweeper.run(
                app[DATABASE],
                store,
                spool_dir=settings.data_dir / "tmp",
                interval=settings.orphan_sweep_seconds,
                grace_seconds=settings.orphan_grace_seconds,
            ),
            name="orphan-sweep",
        )
    yield
    if sweep is not None:
        sweep.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweep
    # One signer per process: take it down only if another app has not replaced it.
    current = messages.set_file_url_signer(None)
    if current is not sign:
        messages.set_file_url_signer(current)
    await store.close()
