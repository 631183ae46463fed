"""Request and response models of the REST API. The handlers parse and serialize with these,
and the OpenAPI document is generated from them, so the two cannot drift apart.

Examples use the demo data of ``supabase/seed.sql`` (what ``scripts/dev`` serves).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

DEMO_SESSION = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
DEMO_CLIENT = "11111111-1111-4111-8111-111111111111"
DEMO_READER = "22222222-2222-4222-8222-222222222222"
DEMO_MESSAGE = "cccccccc-cccc-4ccc-8ccc-000000000002"
MAX_PAGE = 200
MAX_OFFSET = 2**31 - 1  # the SQL functions take an integer offset

SessionType = Literal["booking", "support", "emergency"]
MessageType = Literal["text", "audio", "image", "file", "system"]


# ---------------------------------------------------------------- value checks
def _storable(value: str) -> str:
    """PostgreSQL text cannot hold NUL characters."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _distinct(items: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(items)) != len(items):
        raise ValueError("must not repeat a user")
    return items


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    """jsonb refuses NaN, infinities and NUL characters; refuse them here, readably."""

    def walk(item: Any) -> None:
        if isinstance(item, str):
            _storable(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError("must not contain NaN or infinite numbers")
        elif isinstance(item, dict):
            for key, child in item.items():
                _storable(key)
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(value)
    try:
        json.dumps(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"is not storable as JSON ({exc})") from None
    return value


def _timestamp(value: Any) -> dt.datetime:
    """An ISO 8601 timestamp with a time zone (RFC 3339), in UTC."""
    if not isinstance(value, str):
        raise ValueError("must be a timestamp such as 2026-11-24T10:00:00Z")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a timestamp such as 2026-11-24T10:00:00Z") from None
    if parsed.tzinfo is None:
        raise ValueError("must have a time zone, such as 2026-11-24T10:00:00Z")
    try:
        return parsed.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


Title = Annotated[str, StringConstraints(max_length=200), AfterValidator(_storable)]
Content = Annotated[str, StringConstraints(max_length=10_000), AfterValidator(_storable)]
ClientMessageId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_storable)
]
Timestamp = Annotated[dt.datetime, BeforeValidator(_timestamp)]


# ---------------------------------------------------------------- errors
class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str = Field(examples=["chat session ... not found"])


class ErrorBody(BaseModel):
    """Every error, on every path."""

    error: ErrorDetail


# ---------------------------------------------------------------- requests
class _Body(BaseModel):
    # Strict: JSON types must match (no "5" for 5); unknown fields are ignored.
    model_config = ConfigDict(strict=True, extra="ignore")


class CreateSession(_Body):
    # The booking rule is in the schema too, so generated clients and fuzzers know it.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"type": {"const": "booking"}}, "required": ["type"]},
            "then": {
                "properties": {"booking_id": {"type": "string", "format": "uuid"}},
                "required": ["booking_id"],
            },
        }
    )

    participants: Annotated[list[uuid.UUID], AfterValidator(_distinct)] = Field(
        min_length=1,
        max_length=50,
        description="User ids, no duplicates; the caller must be one of them (admins excepted).",
        examples=[[DEMO_CLIENT, DEMO_READER]],
        json_schema_extra={"uniqueItems": True},
    )
    type: SessionType = "support"
    booking_id: uuid.UUID | None = Field(default=None, description="Required for booking.")
    title: Title | None = Field(default=None, examples=["Follow-up reading"])

    @model_validator(mode="after")
    def _booking_needs_id(self) -> CreateSession:
        if self.type == "booking" and self.booking_id is None:
            raise ValueError("a booking session needs a booking_id")
        return self


class SendMessage(_Body):
    session_id: uuid.UUID = Field(examples=[DEMO_SESSION])
    type: Literal["text", "audio", "image", "file"] = Field(
        default="text",
        description="system messages are written by the service itself, never sent.",
    )
    content: Content | None = Field(
        default=None, description="Required for text.", examples=["Hello"]
    )
    reply_to_message_id: uuid.UUID | None = Field(default=None, description="Same session.")
    metadata: Annotated[dict[str, Any], AfterValidator(_storable_json)] = Field(
        default_factory=dict,
        description="A JSON object up to 16 kB; audio, image and file messages need "
        "storage_path: an object the sender uploaded to this session.",
    )
    client_message_id: ClientMessageId | None = Field(
        default=None,
        description="Makes retries idempotent: the same id returns the first message.",
    )


class MarkRead(_Body):
    up_to_message_id: uuid.UUID | None = Field(
        default=None,
        description="A message of this session; null or absent: the newest.",
        examples=[DEMO_MESSAGE],
    )


# ---------------------------------------------------------------- path and query parameters
class SessionPath(BaseModel):
    session_id: uuid.UUID = Field(
        alias="sessionId",
        description="A chat session id. Not a UUID, not yours or not there: 404.",
        examples=[DEMO_SESSION],
    )


class SessionsQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description="Page size.")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Rows to skip.")


class MessagesQuery(SessionsQuery):
    before: Timestamp | None = Field(
        default=None,
        description="Only messages created strictly before this time (RFC 3339).",
        examples=["2030-01-01T00:00:00Z"],
    )
    before_id: uuid.UUID | None = Field(
        default=None,
        description="Keyset cursor: only messages older than this message of the session "
        "(pass the last id of the previous page).",
    )


# ---------------------------------------------------------------- responses
class BookingSummary(BaseModel):
    service_name: str | None


class LastMessage(BaseModel):
    id: uuid.UUID
    sender_id: uuid.UUID | None
    type: MessageType
    content: str | None = Field(description="The first 200 characters.")
    created_at: dt.datetime


class ChatSession(BaseModel):
    id: uuid.UUID
    participants: list[uuid.UUID]
    type: SessionType
    booking_id: uuid.UUID | None
    status: Literal["active", "closed"]
    title: str | None
    last_message_at: dt.datetime | None
    unread_count: int = Field(ge=0, description="Messages from others after your read cursor.")
    bookings: BookingSummary | None = Field(
        description="The host platform's booking (public.bookings), when there is one."
    )
    created_by: uuid.UUID | None
    created_at: dt.datetime
    updated_at: dt.datetime
    closed_at: dt.datetime | None
    last_message: LastMessage | None


class SessionList(BaseModel):
    sessions: list[ChatSession] = Field(description="Newest activity first.")
    has_more: bool


class SessionEnvelope(BaseModel):
    session: ChatSession


class ChatMessage(BaseModel):
    """A message exactly as the relay's ``new_message`` event carries it."""

    id: uuid.UUID
    session_id: uuid.UUID
    sender_id: uuid.UUID | None
    sender_name: str | None
    type: MessageType
    content: str | None
    reply_to_message_id: uuid.UUID | None
    metadata: dict[str, Any]
    client_message_id: str | None
    created_at: dt.datetime
    seq: int = Field(description="Total order of messages; breaks ties on created_at.")
    deleted: bool = Field(
        default=False,
        description="A tombstone: the message keeps its place, id, type and time, without "
        "sender, content or file (its sender's account was deleted). sender_name is then "
        "'Deleted user'.",
    )
    deleted_reason: str | None = Field(
        default=None,
        description="Why it is a tombstone: erased (the sender's account was deleted), sender "
        "(the sender deleted it), moderator (an admin removed it).",
    )
    edited_at: dt.datetime | None = Field(
        default=None, description="When the sender last edited it; null if never."
    )


class MessagePage(BaseModel):
    messages: list[ChatMessage] = Field(description="Newest first.")
    has_more: bool = Field(description="Older messages exist beyond this page.")


class MessageEnvelope(BaseModel):
    message: ChatMessage


class ReadResult(BaseModel):
    read_count: int = Field(ge=0, description="Messages from others that became read.")
