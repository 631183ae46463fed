"""The upload worker: participation, content type, safe name, store, message; atomic.

1. ``check_session``: the caller takes part in an active session (as the user, RLS), or
   404 / 409, before anything is stored.
2. ``publish``: the spooled file's type from its bytes (415 when not allowed or when the
   declared type says otherwise), a fresh safe path, the object stored, then the message
   sent through ``send_chat_message`` as the user. If the message cannot be written, the
   object is removed again; if storing fails, no message is attempted.

Before storing, the upload is counted against the user's daily quota and journaled
(:mod:`.accounting`); the journal row goes when the message is committed, and the bytes
are given back when the object is not kept. A crash between storing and the message
leaves a journal row for the orphan sweep (:mod:`.sweeper`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from .. import message_store
from ..auth import Principal
from ..db import Database
from ..errors import ApiError
from ..storage import NewObject, ObjectStore
from . import accounting, names, sniff
from .intake import UploadForm

log = logging.getLogger(__name__)

# Declared types that say nothing about the content.
_NEUTRAL = {"", "application/octet-stream", "binary/octet-stream", "application/unknown"}
# Declared types that agree with a detected one.
_SYNONYMS = {
    "audio/wav": {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave", "audio/x-pn-wav"},
    "audio/mpeg": {"audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg", "audio/x-mp3"},
    "audio/ogg": {"audio/ogg", "application/ogg", "audio/opus", "audio/x-ogg", "audio/vorbis"},
    "audio/webm": {"audio/webm", "video/webm"},  # MediaRecorder labels audio-only WebM either way
    "image/jpeg": {"image/jpeg", "image/jpg", "image/pjpeg"},
    "image/png": {"image/png", "image/x-png"},
    "image/gif": {"image/gif"},
    "image/webp": {"image/webp"},
    "application/pdf": {"application/pdf", "application/x-pdf"},
}

_SESSION_STATUS = (
    "select status from public.chat_sessions "
    "where id = $1 and participants @> array[(select auth.uid())]"
)


async def check_session(db: Database, principal: Principal, session_id: uuid.UUID) -> None:
    async with db.as_user(principal) as conn:
        status = await conn.fetchval(_SESSION_STATUS, session_id)
    if status is None:
        raise ApiError(404, "not_found", f"chat session {session_id} not found")
    if status != "active":
        raise ApiError(409, "conflict", f"chat session {session_id} is closed")


def _declared(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def check_declared(detected: sniff.Detected, declared_type: str | None) -> None:
    declared = _declared(declared_type)
    if declared in _NEUTRAL or declared == detected.mime:
        return
    if detected.mime == "text/plain" and declared.startswith("text/"):
        return
    if declared in _SYNONYMS.get(detected.mime, ()):
        return
    raise ApiError(
        415,
        "unsupported_media_type",
        f"the file was declared {declared[:100]} but its content is {detected.mime}",
    )


async def publish(
    *,
    db: Database,
    store: ObjectStore,
    principal: Principal,
    form: UploadForm,
    url_ttl: int,
    daily_quota: int = 0,
) -> dict[str, Any]:
    """Store the spooled file and send its message; returns ``{message, file}``."""
    spooled = form.file
    if spooled.size == 0:
        raise ApiError(422, "invalid_value", "file: the file is empty")
    detected = await asyncio.to_thread(sniff.detect, spooled.path)
    if not detected.allowed:
        what = (
            f"files of type {detected.mime} are not accepted"
            if detected.mime not in sniff.ALLOWED
            else f"the content is not a valid {detected.mime} file"
        )
        raise ApiError(
            415,
            "unsupported_media_type",
            f"{what} (accepted: audio WAV, MP3, OGG, WebM; images JPEG, PNG, GIF, WebP; "
            "PDF; UTF-8 text)",
        )
    check_declared(detected, spooled.declared_type)
    display = names.display_name(
        spooled.filename, extension=detected.extension, known=detected.extensions
    )
    path = names.object_path(
        session_id=form.session_id,
        user_id=principal.user_id,
        name=names.key_name(display, extension=detected.extension, known=detected.extensions),
    )
    metadata: dict[str, Any] = {
        "file_name": display,
        "mime_type": detected.mime,
        "size_bytes": spooled.size,
        "storage_path": path,
        **detected.details,
    }
    await accounting.begin(db, principal.user_id, path, spooled.size, quota=daily_quota)
    try:
        await store.put(
            principal,
            NewObject(
                path=path,
                source=spooled.path,
                size=spooled.size,
                content_type=detected.mime,
                file_name=display,
            ),
        )
    except BaseException:
        await asyncio.shield(_forget(db, path))
        raise
    try:
        async with db.as_user(principal) as conn:
            message = await message_store.send(
                conn,
                session_id=form.session_id,
                type_=detected.message_type,
                content=form.caption,
                reply_to_message_id=form.reply_to_message_id,
                metadata=metadata,
                client_message_id=None,
            )
    except BaseException:
        await asyncio.shield(_discard(db, store, principal, path))
        raise
    await asyncio.shield(_settled(db, path))
    urls = await store.signed_urls([path], url_ttl)
    file = {k: metadata[k] for k in ("storage_path", "file_name", "mime_type", "size_bytes")}
    return {"message": message, "file": {**file, "url": urls.get(path)}}


async def _discard(db: Database, store: ObjectStore, principal: Principal, path: str) -> None:
    try:
        await store.remove(principal, path)
    except Exception as exc:  # the journal row stays: the sweep removes it later
        log.error("could not remove %s after its message failed: %r", path, exc)
        return
    await _forget(db, path)


async def _forget(db: Database, path: str) -> None:
    """The object was not kept: give its bytes back (the sweep retries on failure)."""
    try:
        await accounting.cancel(db, path)
    except Exception as exc:
        log.warning("could not release the upload journal of %s: %r", path, exc)


async def _settled(db: Database, path: str) -> None:
    """The message is committed; a failure here only leaves work for the sweep."""
    try:
        await accounting.finish(db, path)
    except Exception as exc:
        log.warning("could not close the upload journal of %s: %r", path, exc)
