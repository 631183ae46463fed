"""Models of the upload and download endpoints (the OpenAPI document is generated from
them; the upload handler streams the form itself, see workers/uploads/intake.py)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from ..uploads.names import MAX_OBJECT_PATH
from ..uploads.sniff import ALLOWED
from .models import DEMO_SESSION, ChatMessage

# What a download may answer with; anything else stored is served as octet-stream.
DOWNLOAD_TYPES = (*ALLOWED, "application/octet-stream")


class UploadFields(BaseModel):
    """The fields of a ``multipart/form-data`` upload; no others are accepted."""

    model_config = ConfigDict(extra="forbid")

    file: bytes = Field(
        description="The file, at most 10 MB: audio WAV, MP3, OGG, WebM; image JPEG, PNG, "
        "GIF, WebP; PDF; UTF-8 text. The type is read from the content; a declared "
        "Content-Type that says otherwise is refused (415)."
    )
    session_id: uuid.UUID = Field(
        description="An active session the caller takes part in.", examples=[DEMO_SESSION]
    )
    reply_to_message_id: uuid.UUID | None = Field(
        default=None, description="A message of the same session."
    )
    caption: str | None = Field(
        default=None, max_length=10_000, description="Becomes the message's content."
    )


class UploadedFile(BaseModel):
    storage_path: str = Field(description="{session_id}/{user_id}/{unique id}-{safe name}")
    file_name: str = Field(description="The client's name for the file, made safe.")
    mime_type: str
    size_bytes: int = Field(ge=1)
    url: str | None = Field(description="A short-lived signed download URL (no header needed).")


class UploadResult(BaseModel):
    message: ChatMessage = Field(
        description="The new audio, image or file message, as new_message carries it; "
        "metadata has file_name, mime_type, size_bytes, storage_path, url, and "
        "duration_ms (audio) or width and height (images) when the format tells them."
    )
    file: UploadedFile


class FilePath(BaseModel):
    path: str = Field(
        min_length=1,
        max_length=MAX_OBJECT_PATH,
        description="The object's storage_path: {session_id}/{user_id}/{name}.",
        examples=[f"{DEMO_SESSION}/11111111-1111-4111-8111-111111111111/0-note.txt"],
    )


class FileQuery(BaseModel):
    expires: int | None = Field(
        default=None,
        ge=0,
        le=2**53,
        description="Signed URL: expiry in Unix seconds (with signature; no token needed).",
    )
    signature: str | None = Field(
        default=None,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]*$",
        description="Signed URL: HMAC-SHA256, base64url.",
    )
