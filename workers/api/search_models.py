"""Models of search, the session-list filters and delivery receipts (the OpenAPI document
is generated from them)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

from .models import DEMO_MESSAGE, DEMO_SESSION, ChatMessage, SessionsQuery, SessionType, _storable

SearchText = Annotated[
    str, StringConstraints(min_length=1, max_length=200), AfterValidator(_storable)
]


# ---------------------------------------------------------------- requests
class SessionsFilterQuery(SessionsQuery):
    q: Annotated[str, StringConstraints(max_length=200), AfterValidator(_storable)] | None = Field(
        default=None,
        description="Text in the session's title (any part) or in any of its messages "
        "(full text, whole words).",
        examples=["booked"],
    )
    type: SessionType | None = Field(default=None, description="Only sessions of this type.")
    status: Literal["active", "closed"] | None = Field(
        default=None, description="Only sessions with this status."
    )


class SearchQuery(BaseModel):
    q: SearchText = Field(
        description='Words to find (web-search syntax: "a phrase", or, -word).',
        examples=["booked"],
    )
    session_id: uuid.UUID | None = Field(
        default=None, description="Only this session of the caller.", examples=[DEMO_SESSION]
    )
    limit: int = Field(default=20, ge=1, le=100, description="Results per page.")
    before_id: uuid.UUID | None = Field(
        default=None,
        description="Continue after this result of the same query (the last id of the "
        "previous page).",
    )


class DeliveredBody(BaseModel):
    up_to_message_id: uuid.UUID | None = Field(
        default=None,
        description="The newest message that reached the device (absent: the newest).",
        examples=[DEMO_MESSAGE],
    )


# ---------------------------------------------------------------- responses
class SearchHit(BaseModel):
    message: ChatMessage
    rank: float = Field(description="Relevance (ts_rank_cd); results come best first.")
    snippet: str = Field(
        description="HTML-escaped fragments of the content, each hit in <mark>...</mark>.",
        examples=["Hello, I <mark>booked</mark> a reading for today."],
    )


class SearchResults(BaseModel):
    results: list[SearchHit] = Field(description="Best match first, then newest.")
    has_more: bool


class Cursor(BaseModel):
    message_id: uuid.UUID
    created_at: dt.datetime
    seq: int = Field(description="The message's place in the total order (created_at, seq).")


class ParticipantReceipt(BaseModel):
    user_id: uuid.UUID
    delivered: Cursor | None = Field(
        description="Everything up to here reached a device of the user (a read counts)."
    )
    read: Cursor | None = Field(description="Everything up to here was read by the user.")


class Receipts(BaseModel):
    """A message of (created_at, seq) is delivered to a participant when their delivered
    cursor is at or past it, and read when their read cursor is."""

    session_id: uuid.UUID
    participants: list[ParticipantReceipt]


class DeliveredResult(BaseModel):
    moved: bool = Field(description="The cursor advanced (it never moves backwards).")
