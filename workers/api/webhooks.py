"""Admin endpoints of the webhook outbox: list deliveries, replay one.

Like the other admin endpoints, the handlers run as the caller (``db.as_user``): the SQL
functions check the app role (admin or super_admin from ``app_metadata``), answer 403
otherwise, and write the audit row (``admin.webhooks.read``, ``admin.webhooks.replay``)
in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from ..keys import DATABASE, SETTINGS
from ..webhooks import WEBHOOKS
from .http import authenticate, path_params, query_params, reply
from .models import MAX_OFFSET
from .registry import Route, register

MAX_PAGE = 200
EventType = Literal["chat.message.waiting", "chat.session.created", "chat.session.closed"]


class DeliveryQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE, description="Page size.")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="Rows to skip.")
    status: Literal["pending", "delivered", "dead"] | None = Field(
        default=None, description="Only deliveries in this state (dead: the dead letters)."
    )
    event_type: EventType | None = Field(default=None, description="Only this event type.")


class DeliveryPath(BaseModel):
    delivery_id: uuid.UUID = Field(alias="deliveryId")


class Delivery(BaseModel):
    id: uuid.UUID
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt.")
    event_type: EventType
    session_id: uuid.UUID | None
    user_id: uuid.UUID | None = Field(description="The participant of chat.message.waiting.")
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: dt.datetime | None = Field(description="When pending: the next attempt.")
    created_at: dt.datetime
    last_attempt_at: dt.datetime | None
    last_status: int | None = Field(description="HTTP status of the last attempt, if any.")
    last_error: str | None = Field(description="Why the last attempt failed (clipped).")
    delivered_at: dt.datetime | None
    dead_reason: Literal["expired", "gone", "rejected"] | None = Field(
        description="expired: 24 h of retries; gone: 410; rejected: another 3xx or 4xx."
    )
    replays: int
    payload: dict[str, Any] = Field(description="The body sent: {type, timestamp, data}.")


class DeliveryPage(BaseModel):
    deliveries: list[Delivery]
    total: int
    enabled: bool = Field(description="Whether WEBHOOK_URL is set on this relay.")


class DeliveryReplayed(BaseModel):
    delivery: Delivery


async def list_deliveries(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = query_params(request, DeliveryQuery)
    async with request.app[DATABASE].as_user(principal) as conn:
        page: dict[str, Any] = await conn.fetchval(
            "select public.admin_chat_webhook_deliveries(max_rows => $1, skip_rows => $2, "
            "status => $3, event_type => $4)",
            query.limit,
            query.offset,
            query.status,
            query.event_type,
        )
    page["enabled"] = request.app[SETTINGS].webhook_url is not None
    return reply(DeliveryPage.model_validate(page))


async def replay_delivery(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, DeliveryPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        row = await conn.fetchval("select public.admin_replay_chat_webhook($1)", path.delivery_id)
    worker = request.app.get(WEBHOOKS)
    if worker is not None:
        worker.wake()
    return reply(DeliveryReplayed(delivery=Delivery.model_validate(row)))


_ADMIN = "Admins only (app_metadata.role admin or super_admin), else 403. Every call is "
_ADMIN += "itself written to the audit log."

ROUTES = (
    Route(
        "GET",
        "/api/chat/webhooks/deliveries",
        list_deliveries,
        operation_id="listWebhookDeliveries",
        summary="Webhook deliveries to the host platform, newest first, with the total",
        description=_ADMIN + " status=dead lists the dead letters.",
        query=DeliveryQuery,
        response=DeliveryPage,
        errors=(403, 422),
        tag="admin",
    ),
    Route(
        "POST",
        "/api/chat/webhooks/deliveries/{deliveryId}/replay",
        replay_delivery,
        operation_id="replayWebhookDelivery",
        summary="Send a delivered or dead webhook again (same webhook-id, new retry window)",
        description=_ADMIN + " 409 when it is still pending.",
        params=DeliveryPath,
        response=DeliveryReplayed,
        errors=(403, 409),
        tag="admin",
    ),
)


def setup(app: web.Application) -> None:
    register(app, ROUTES)
