"""Models of the admin endpoints (audit log, monitoring): query parameters and answers, for
the handlers and the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from .models import DEMO_CLIENT, MAX_OFFSET, Timestamp, _storable

MAX_AUDIT_PAGE = 500

Action = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_storable)]


class _Open(BaseModel):
    # Figures computed in SQL: documented fields, more may follow.
    model_config = ConfigDict(extra="allow")


# ---------------------------------------------------------------- GET /api/chat/audit
class AuditQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_AUDIT_PAGE, description="Page size.")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Rows to skip.")
    session_id: uuid.UUID | None = Field(default=None, description="Rows about this session.")
    user_id: uuid.UUID | None = Field(
        default=None, description="Rows whose actor is this user.", examples=[DEMO_CLIENT]
    )
    action: Action | None = Field(
        default=None,
        description="One action: session.created, session.updated, session.closed, "
        "message.created, read_state.advanced, file.created, file.removed, "
        "socket.connected, socket.refused, join.refused, send.refused, upload.refused, "
        "rate_limited, admin.audit.read, ...",
        examples=["message.created"],
    )
    since: Timestamp | None = Field(
        default=None, description="Rows created at or after this time (RFC 3339)."
    )
    until: Timestamp | None = Field(
        default=None, description="Rows created strictly before this time (RFC 3339)."
    )


class AuditEntry(BaseModel):
    id: int
    actor_id: uuid.UUID | None = Field(description="The user; null for the service or SQL.")
    actor_role: str = Field(
        description="client, reader, admin, super_admin, service_role, anon, or the "
        "database role (postgres) when no JWT claims were in force."
    )
    action: str
    session_id: uuid.UUID | None
    message_id: uuid.UUID | None
    details: dict[str, Any]
    created_at: dt.datetime
    chain_seq: int | None = Field(description="Position in the hash chain.")
    prev_hash: str | None
    hash: str | None = Field(description="sha256 of prev_hash and the row's content.")


class AuditPage(BaseModel):
    logs: list[AuditEntry] = Field(description="Newest first.")
    total: int = Field(ge=0, description="Rows matching the filters.")


class ChainVerification(BaseModel):
    valid: bool
    first_broken_id: int | None = Field(
        description="The first edited, inserted or removed row, or null."
    )
    checked: int = Field(ge=0, description="Rows linked into the chain (all verified).")
    unlinked: int = Field(
        default=0,
        ge=0,
        description="Committed rows the background linker has not chained yet (not a break).",
    )
    oldest_unlinked_at: dt.datetime | None = Field(
        default=None, description="When the oldest unlinked row was written."
    )


# ---------------------------------------------------------------- GET /api/chat/monitoring/{id}
class MonitoredSession(_Open):
    id: uuid.UUID
    type: str
    status: str
    title: str | None
    booking_id: uuid.UUID | None
    created_by: uuid.UUID | None
    created_at: dt.datetime
    closed_at: dt.datetime | None
    last_message_at: dt.datetime | None


class Participant(_Open):
    user_id: uuid.UUID
    name: str | None
    app_role: str
    messages_sent: int
    unread_count: int = Field(description="Messages from others after this user's read cursor.")
    last_read_at: dt.datetime | None
    online: bool = Field(description="A socket of this user has joined the session now.")


class MessageRef(_Open):
    id: uuid.UUID
    sender_id: uuid.UUID | None
    type: str
    created_at: dt.datetime


class ResponseTime(_Open):
    responses: int = Field(description="Messages answering someone else's.")
    median_seconds: float | None


class UploadTotals(_Open):
    count: int
    bytes: int = Field(description="Sum of metadata.size_bytes.")


class SessionMonitoring(_Open):
    session: MonitoredSession
    participants: list[Participant]
    online_now: list[uuid.UUID] = Field(description="From the relays' presence.")
    message_counts: dict[str, int] = Field(description="By type, and total.")
    first_message: MessageRef | None
    last_message: MessageRef | None
    response_time: ResponseTime
    uploads: UploadTotals
    duration_seconds: float = Field(description="Until closed_at, or until now when open.")


# ---------------------------------------------------------------- GET /api/chat/monitoring
class EventCount(_Open):
    event_type: str
    event_count: int
    unique_users: int


class SessionsPerDay(_Open):
    date: dt.date
    type: str
    sessions_created: int
    unique_participants: int = Field(description="Distinct users among the participants.")


class Throughput(_Open):
    last_minute: int = Field(description="Messages created in the last minute.")
    last_hour: int
    per_minute_last_hour: float


class SessionDurations(_Open):
    window_days: int = Field(description="Sessions created in the last this many days.")
    closed: int
    active: int
    closed_avg_seconds: float | None
    closed_median_seconds: float | None
    closed_max_seconds: float | None
    active_avg_age_seconds: float | None


class UploadStats(_Open):
    last_hour: UploadTotals
    last_24_hours: UploadTotals
    by_type_last_24_hours: dict[str, UploadTotals] = Field(description="audio, image, file.")


class ErrorRate(_Open):
    window_seconds: int
    events: int = Field(description="Monitoring events in the window.")
    errors: int = Field(description="Of which error events (refusals and failures).")
    rate: float | None = Field(description="errors / events; null without events.")
    by_code: dict[str, int]


class SystemMonitoring(_Open):
    generated_at: dt.datetime
    active_connections: int = Field(description="Open sockets on this relay.")
    relay: dict[str, Any] = Field(description="This relay's id and socket figures.")
    message_throughput: Throughput
    session_durations: SessionDurations
    uploads: UploadStats
    error_rate: ErrorRate
    events_last_hour: list[EventCount] = Field(
        description="The original service's first monitoring query: events by type, last hour."
    )
    sessions_per_day: list[SessionsPerDay] = Field(
        description="The original service's second query: sessions created per day and type, "
        "7 days."
    )
    event_writers: dict[str, dict[str, int]] = Field(
        description="This process's audit and monitoring writers: pending, written, dropped."
    )
