"""The HTTP app: /health in the original service's shape, 503 when the database is away,
errors shaped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from workers.app import create_app

from .conftest import settings_for
from .relay_process import free_port


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(create_app(settings_for(database_url)))) as c:
        yield c


async def test_health_has_the_seed_shape(client: TestClient) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "healthy"
    assert body["database"]["status"] == "up"
    assert set(body["chat_socket"]) == {
        "active_connections",
        "active_sessions",
        "typing_sessions",
        "total_socket_connections",
    }
    assert (await client.get("/api/health")).status == 200


async def test_health_is_503_when_database_is_unreachable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    async with TestClient(TestServer(create_app(settings_for(url)))) as c:
        resp = await c.get("/health")
        assert resp.status == 503
        body = await resp.json()
        assert body["status"] == "unhealthy"
        assert body["database"]["status"] == "down"


async def test_unknown_path_is_404_in_the_error_shape(client: TestClient) -> None:
    resp = await client.get("/api/chat/nope")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    resp = await client.post("/health")
    assert resp.status == 405
    body = await resp.json()
    assert body["error"]["code"] == "method_not_allowed"
