"""REST: what every endpoint shares: body handling, unknown paths, the OpenAPI document,
CORS, and delivery to sockets through the database."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import socketio
from aiohttp.test_utils import TestClient

from workers.keys import RELAY

from .api_helpers import api_client, bearer, error_of, make_session
from .conftest import Users


@pytest.fixture
async def api(database_url: str) -> AsyncIterator[TestClient]:
    async with api_client(database_url, cors_origins=("https://app.example",)) as client:
        yield client


@pytest.fixture
async def member(users: Users, superuser: asyncpg.Connection) -> dict[str, Any]:
    uid = await users.create("client")
    return {"session": await make_session(superuser, uid), "h": bearer(users.token(uid))}


BODY_PATHS = [("POST", "/api/chat/sessions"), ("POST", "/api/chat/messages")]


async def test_body_must_be_json(api: TestClient, member: dict[str, Any]) -> None:
    paths = [*BODY_PATHS, ("PUT", f"/api/chat/messages/{member['session']}/read")]
    for method, path in paths:
        for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {**member["h"], **({"Content-Type": content_type} if content_type else {})}
            resp = await api.request(method, path, data=b'{"a": 1}', headers=headers)
            assert (await error_of(resp, 415))["code"] == "unsupported_media_type"
        json_h = {**member["h"], "Content-Type": "application/json"}
        for raw in (b"", b"{", b'{"a": }', b"\xff\xfe", b"[" * 5000):
            resp = await api.request(method, path, data=raw, headers=json_h)
            assert (await error_of(resp, 400))["code"] == "malformed_json", raw[:10]
        for raw in (b"[]", b"42", b'"text"', b"null"):
            resp = await api.request(method, path, data=raw, headers=json_h)
            error = await error_of(resp, 422)
            assert "JSON object" in error["message"]


async def test_body_over_one_megabyte_is_413(api: TestClient, member: dict[str, Any]) -> None:
    big = b'{"content": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    for method, path in BODY_PATHS:
        resp = await api.request(
            method,
            path,
            data=io.BytesIO(big),
            headers={**member["h"], "Content-Type": "application/json"},
        )
        assert (await error_of(resp, 413))["code"] == "payload_too_large"


async def test_unknown_paths_and_methods_are_errors_in_the_one_shape(
    api: TestClient, member: dict[str, Any]
) -> None:
    for path in ("/api/chat/nope", "/api/chat/sessions/a/b/c", "/nothing"):
        resp = await api.get(path, headers=member["h"])
        assert (await error_of(resp, 404))["code"] == "not_found"
    resp = await api.delete("/api/chat/sessions", headers=member["h"])
    assert (await error_of(resp, 405))["code"] == "method_not_allowed"
    assert set(resp.headers["Allow"].split(",")) == {"GET", "POST"}


async def test_openapi_document_covers_every_route(api: TestClient) -> None:
    resp = await api.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    operations = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    assert operations == {
        ("GET", "/api/chat/sessions"),
        ("POST", "/api/chat/sessions"),
        ("GET", "/api/chat/sessions/{sessionId}"),
        ("POST", "/api/chat/sessions/{sessionId}/close"),
        ("GET", "/api/chat/messages/{sessionId}"),
        ("POST", "/api/chat/messages"),
        ("PUT", "/api/chat/messages/{sessionId}/read"),
        ("PUT", "/api/chat/messages/{sessionId}/delivered"),
        ("GET", "/api/chat/sessions/{sessionId}/receipts"),
        ("GET", "/api/chat/search"),
        ("POST", "/api/chat/upload"),
        ("GET", "/api/chat/files/{path}"),
        ("GET", "/api/chat/audit"),
        ("GET", "/api/chat/audit/verify"),
        ("GET", "/api/chat/monitoring"),
        ("GET", "/api/chat/monitoring/{sessionId}"),
        ("GET", "/api/chat/webhooks/deliveries"),
        ("POST", "/api/chat/webhooks/deliveries/{deliveryId}/replay"),
        ("POST", "/api/chat/me/export"),
        ("GET", "/api/chat/me/export/{exportId}"),
        ("GET", "/api/chat/me/export/{exportId}/archive"),
        ("POST", "/api/chat/admin/users/{userId}/export"),
        ("GET", "/api/chat/admin/retention"),
        ("PUT", "/api/chat/admin/sessions/{sessionId}/legal-hold"),
        ("DELETE", "/api/chat/admin/sessions/{sessionId}/legal-hold"),
        ("PATCH", "/api/chat/messages/{sessionId}/{messageId}"),
        ("DELETE", "/api/chat/messages/{sessionId}/{messageId}"),
        ("POST", "/api/chat/messages/{sessionId}/{messageId}/redaction"),
        ("GET", "/api/chat/messages/{sessionId}/{messageId}/history"),
        ("POST", "/api/chat/users/{userId}/suspension"),
        ("DELETE", "/api/chat/users/{userId}/suspension"),
        ("POST", "/api/chat/sessions/{sessionId}/freeze"),
        ("DELETE", "/api/chat/sessions/{sessionId}/freeze"),
        ("POST", "/api/chat/messages/{sessionId}/{messageId}/reports"),
        ("GET", "/api/chat/reports"),
        ("POST", "/api/chat/reports/{reportId}/resolve"),
    }
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for item in doc["paths"].values():
        for operation in item.values():
            assert operation["security"][0] == {"bearerAuth": []}
            assert operation["responses"]["401"]["content"]["application/json"]["schema"] == (
                error_ref
            )
    listing = doc["paths"]["/api/chat/messages/{sessionId}"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert set(params) == {"sessionId", "limit", "offset", "before", "before_id"}
    assert params["limit"]["schema"]["maximum"] == 200
    assert params["before"]["schema"]["format"] == "date-time"
    send = doc["paths"]["/api/chat/messages"]["post"]
    assert send["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SendMessage"
    }
    assert {"201", "409", "413", "415", "422"} <= set(send["responses"])


async def test_cors_preflight_and_headers_for_allowed_origins_only(
    api: TestClient, member: dict[str, Any]
) -> None:
    preflight = {"Access-Control-Request-Method": "POST"}
    resp = await api.options(
        "/api/chat/messages", headers={**preflight, "Origin": "https://app.example"}
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert "PUT" in resp.headers["Access-Control-Allow-Methods"]

    resp = await api.options("/api/chat/messages", headers={**preflight, "Origin": "https://evil"})
    await error_of(resp, 403)
    assert "Access-Control-Allow-Origin" not in resp.headers

    ok = await api.get(
        "/api/chat/sessions", headers={**member["h"], "Origin": "https://app.example"}
    )
    assert ok.headers["Access-Control-Allow-Origin"] == "https://app.example"
    refused = await api.get("/api/chat/sessions", headers={"Origin": "https://app.example"})
    assert refused.status == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "https://app.example"


async def test_rest_send_and_read_reach_the_sessions_sockets(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    client, reader = await users.create("client"), await users.create("reader")
    session_id = await make_session(superuser, client, reader)
    received: dict[str, list[Any]] = {"new_message": [], "messages_read": []}
    arrived = asyncio.Event()
    sio = socketio.AsyncClient(reconnection=False)
    for event, bucket in received.items():
        sio.on(event, lambda data, bucket=bucket: (bucket.append(data), arrived.set()))

    async with api_client(database_url) as api:
        await asyncio.wait_for(api.app[RELAY].changefeed.connected.wait(), timeout=10)
        url = str(api.make_url("/"))
        await sio.connect(
            url, auth={"token": users.token(reader, "reader")}, transports=["websocket"]
        )
        try:
            await sio.call("join_session", {"session_id": str(session_id)}, timeout=5)
            resp = await api.post(
                "/api/chat/messages",
                json={"session_id": str(session_id), "content": "over REST"},
                headers=bearer(users.token(client)),
            )
            sent = (await resp.json())["message"]
            async with asyncio.timeout(5):
                while not received["new_message"]:
                    arrived.clear()
                    await arrived.wait()
            assert received["new_message"] == [sent]  # the same shape, the same message

            resp = await api.put(
                f"/api/chat/messages/{session_id}/read",
                json={},
                headers=bearer(users.token(client)),
            )
            assert resp.status == 200
            async with asyncio.timeout(5):
                while not received["messages_read"]:
                    arrived.clear()
                    await arrived.wait()
            read = received["messages_read"][0]
            assert (read["user_id"], read["session_id"]) == (str(client), str(session_id))
        finally:
            await sio.disconnect()
