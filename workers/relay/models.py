"""Payloads of the events clients send, one model each. Unknown fields are ignored."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


class SessionRef(_Payload):
    session_id: uuid.UUID


class JoinSession(SessionRef):
    last_message_id: uuid.UUID | None = None


class SendMessage(SessionRef):
    type: Literal["text", "audio", "image", "file"] = "text"
    content: str | None = None
    reply_to_message_id: uuid.UUID | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    client_message_id: str | None = Field(default=None, min_length=1, max_length=128)


class MarkRead(SessionRef):
    up_to_message_id: uuid.UUID | None = None


class RefreshToken(_Payload):
    token: str = Field(min_length=1, max_length=16_384)


def describe(exc: ValidationError) -> str:
    """First problem of a validation error, as one readable sentence."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
    if err.get("type") == "model_type":
        return "payload must be a JSON object"
    return f"{where}: {err.get('msg', 'invalid')}"
