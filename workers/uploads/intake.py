"""Reading ``multipart/form-data`` uploads as a stream: the file part goes to a temporary
file chunk by chunk and stops one byte past the limit, so memory holds one chunk, never
the file; text fields are capped too. The temporary file is removed on the way out
unless a store has taken it.

Fields: ``file`` (required, once), ``session_id`` (required), ``reply_to_message_id``,
``caption``; any other is refused (422), as the documented form says. As soon as
``session_id`` is known (before the file, when the client sends it first, as ``curl -F``
and most forms do), ``on_session`` runs: the participation check, before a byte of the
file is read.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import ApiError

FORM = "multipart/form-data"
CHUNK = 64 * 1024
FIELD_LIMIT = 64 * 1024  # bytes of one text field (a caption of 10 000 characters fits)
FORM_OVERHEAD = 1024 * 1024  # text fields and part headers beside the file
_TEXT_FIELDS = ("session_id", "reply_to_message_id", "caption")
_PLAIN_ENCODINGS = {"", "binary", "8bit", "7bit"}
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SpooledFile:
    path: Path
    size: int
    filename: str | None
    declared_type: str | None


@dataclass(frozen=True, slots=True)
class UploadForm:
    session_id: uuid.UUID
    reply_to_message_id: uuid.UUID | None
    caption: str | None
    file: SpooledFile


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"the file is larger than {limit} bytes")


def _malformed(detail: str) -> ApiError:
    return ApiError(400, "malformed_multipart", f"malformed multipart body: {detail}")


@asynccontextmanager
async def read_form(
    request: web.Request,
    *,
    spool_dir: Path,
    max_bytes: int,
    on_session: Callable[[uuid.UUID], Awaitable[None]],
) -> AsyncIterator[UploadForm]:
    temp: list[Path] = []
    try:
        yield await _read(request, spool_dir, max_bytes, on_session, temp)
    finally:
        for path in temp:
            path.unlink(missing_ok=True)


async def _read(
    request: web.Request,
    spool_dir: Path,
    max_bytes: int,
    on_session: Callable[[uuid.UUID], Awaitable[None]],
    temp: list[Path],
) -> UploadForm:
    if request.content_type != FORM:
        raise ApiError(415, "unsupported_media_type", f"the body must be {FORM}")
    if request.content_length is not None and request.content_length > max_bytes + FORM_OVERHEAD:
        raise _too_large(max_bytes)
    fields: dict[str, str] = {}
    spooled: SpooledFile | None = None
    session_id: uuid.UUID | None = None
    reader = await _parsing(request.multipart(), max_bytes)
    while (part := await _parsing(reader.next(), max_bytes)) is not None:
        if not isinstance(part, BodyPartReader):
            raise _malformed("nested multipart parts are not accepted")
        if part.name == "file":
            if spooled is not None:
                raise ApiError(422, "invalid_value", "file: one file per upload")
            spooled = await _parsing(_spool(part, spool_dir, max_bytes, temp), max_bytes)
        elif part.name in _TEXT_FIELDS:
            if part.name in fields:
                raise ApiError(422, "invalid_value", f"{part.name}: given more than once")
            fields[part.name] = await _parsing(_text(part, part.name), max_bytes)
            if part.name == "session_id":
                session_id = _uuid(fields["session_id"], "session_id")
                await on_session(session_id)
        elif part.name != "_charset_":
            raise ApiError(
                422,
                "invalid_value",
                f"{repr(part.name[:40]) if part.name else 'a part without a name'}: "
                "unknown field (expected file, session_id, reply_to_message_id, caption)",
            )
    if session_id is None:
        raise ApiError(422, "invalid_value", "session_id: field required")
    if spooled is None:
        raise ApiError(422, "invalid_value", "file: field required")
    reply = fields.get("reply_to_message_id", "").strip()
    caption = fields.get("caption", "").strip()
    return UploadForm(
        session_id=session_id,
        reply_to_message_id=_uuid(reply, "reply_to_message_id") if reply else None,
        caption=caption or None,
        file=spooled,
    )


async def _parsing(step: Awaitable[T], max_bytes: int) -> T:
    """A step of reading the body; what aiohttp raises for a broken body becomes 400."""
    try:
        return await step
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(max_bytes) from None
    except (ValueError, AssertionError, RuntimeError, LookupError, HttpProcessingError) as exc:
        raise _malformed(str(exc)[:200] or type(exc).__name__) from None
    except Warning as exc:  # a bad Content-Disposition, where warnings are errors
        raise _malformed(str(exc)[:200]) from None


async def _spool(
    part: BodyPartReader, spool_dir: Path, max_bytes: int, temp: list[Path]
) -> SpooledFile:
    encoding = part.headers.get("Content-Transfer-Encoding", "").strip().lower()
    if encoding not in _PLAIN_ENCODINGS:
        raise _malformed(f"Content-Transfer-Encoding {encoding} is not accepted; send binary")
    fd, name = await asyncio.to_thread(_temp_file, spool_dir)
    temp.append(Path(name))
    size = 0
    # Writes go to the page cache in 64 kB pieces: cheaper inline than a thread hop each.
    with os.fdopen(fd, "wb") as out:
        while chunk := await part.read_chunk(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            out.write(chunk)
    return SpooledFile(
        path=Path(name),
        size=size,
        filename=part.filename,
        declared_type=part.headers.get("Content-Type"),
    )


async def _text(part: BodyPartReader, name: str) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        data += chunk
        if len(data) > FIELD_LIMIT:
            raise ApiError(413, "payload_too_large", f"{name}: at most {FIELD_LIMIT} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(422, "invalid_value", f"{name}: must be UTF-8 text") from None
    if "\x00" in text:
        raise ApiError(422, "invalid_value", f"{name}: must not contain NUL characters")
    return text


def _temp_file(spool_dir: Path) -> tuple[int, str]:
    spool_dir.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(dir=spool_dir, prefix="upload-", suffix=".part")


def _uuid(value: str, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        raise ApiError(422, "invalid_value", f"{name}: must be a UUID") from None
