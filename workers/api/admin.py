"""Admin endpoints: the audit log and monitoring, for app_metadata admins only.

The handlers run as the caller (``db.as_user``): the SQL functions check the app role
(``app_metadata.role`` admin or super_admin; ``user_metadata`` never counts), answer 403
otherwise, and write an audit row for every read, in the same transaction. The Python
code adds only what lives in the relays: who is online, open sockets.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from aiohttp import web

from ..keys import AUDIT, DATABASE, MONITORING, RELAY
from .admin_models import (
    AuditPage,
    AuditQuery,
    ChainVerification,
    SessionMonitoring,
    SystemMonitoring,
)
from .http import authenticate, path_params, query_params, reply
from .models import SessionPath
from .registry import Route, register

log = logging.getLogger(__name__)


async def audit_logs(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    query = query_params(request, AuditQuery)
    async with request.app[DATABASE].as_user(principal) as conn:
        page = await conn.fetchval(
            "select public.admin_chat_audit_logs(max_rows => $1, skip_rows => $2, "
            "session_id => $3, user_id => $4, action => $5, since => $6, until => $7)",
            query.limit,
            query.offset,
            query.session_id,
            query.user_id,
            query.action,
            query.since,
            query.until,
        )
    return reply(AuditPage.model_validate(page))


async def verify_chain(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    async with request.app[DATABASE].as_user(principal) as conn:
        result = await conn.fetchval("select public.admin_verify_chat_audit_chain()")
    return reply(ChainVerification.model_validate(result))


async def session_monitoring(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    path = path_params(request, SessionPath)
    async with request.app[DATABASE].as_user(principal) as conn:
        data: dict[str, Any] = await conn.fetchval(
            "select public.admin_chat_session_monitoring($1)", path.session_id
        )
    online = await _online(request.app, path.session_id)
    for participant in data["participants"]:
        participant["online"] = participant["user_id"] in online
    data["online_now"] = sorted(online)
    return reply(SessionMonitoring.model_validate(data))


async def system_monitoring(request: web.Request) -> web.Response:
    principal = await authenticate(request)
    async with request.app[DATABASE].as_user(principal) as conn:
        data: dict[str, Any] = await conn.fetchval("select public.admin_chat_monitoring()")
    relay = request.app[RELAY]
    stats = relay.stats()
    data["active_connections"] = stats["active_connections"]
    data["relay"] = {"relay_id": relay.relay_id, **stats}
    data["event_writers"] = {
        "audit": request.app[AUDIT].stats(),
        "monitoring": request.app[MONITORING].stats(),
    }
    return reply(SystemMonitoring.model_validate(data))


async def _online(app: web.Application, session_id: uuid.UUID) -> set[str]:
    """Users with a socket joined to the session on any relay (empty if Redis is away)."""
    try:
        return {str(u) for u in await app[RELAY].presence.online(session_id)}
    except Exception:
        log.warning("presence unavailable for session %s", session_id, exc_info=True)
        return set()


_ADMIN = "Admins only (app_metadata.role admin or super_admin), else 403. Every read is "
_ADMIN += "itself written to the audit log."

ROUTES = (
    Route(
        "GET",
        "/api/chat/audit",
        audit_logs,
        operation_id="listAuditLogs",
        summary="Audit log rows, newest first, filtered, with the total",
        description=_ADMIN,
        query=AuditQuery,
        response=AuditPage,
        errors=(403, 422),
        tag="admin",
    ),
    Route(
        "GET",
        "/api/chat/audit/verify",
        verify_chain,
        operation_id="verifyAuditChain",
        summary="Recompute the audit hash chain; name the first broken row",
        description=_ADMIN,
        response=ChainVerification,
        errors=(403,),
        tag="admin",
    ),
    Route(
        "GET",
        "/api/chat/monitoring",
        system_monitoring,
        operation_id="getSystemMonitoring",
        summary="Connections, throughput, session durations, uploads, error rate, "
        "events by type, sessions per day",
        description=_ADMIN,
        response=SystemMonitoring,
        errors=(403,),
        tag="admin",
    ),
    Route(
        "GET",
        "/api/chat/monitoring/{sessionId}",
        session_monitoring,
        operation_id="getSessionMonitoring",
        summary="One session: participants, who is online, message counts, response time, "
        "unread counts, uploads, duration",
        description=_ADMIN + " Any session, participant or not (404 when none).",
        params=SessionPath,
        response=SessionMonitoring,
        errors=(403,),
        tag="admin",
    ),
)


def setup(app: web.Application) -> None:
    register(app, ROUTES)
