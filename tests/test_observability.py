"""GET /metrics (Prometheus text, one registry per app) and /health recovering after the
database comes back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from workers.app import create_app

from .api_helpers import api_client, bearer, make_session
from .audit_helpers import FAST, eventually
from .conftest import Users, settings_for
from .relay_helpers import Recorder, running_relay


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_metrics_count_connections_events_messages_latency_errors_and_uploads(
    database_url: str, users: Users, superuser: asyncpg.Connection, tmp_path: Path
) -> None:
    client = await users.create("client")
    session_id = await make_session(superuser, client)
    async with (
        running_relay(database_url, data_dir=tmp_path, **FAST) as (url, _),
        aiohttp.ClientSession() as http,
    ):
        refused = Recorder()
        with contextlib.suppress(Exception):
            await refused.connect(url, None)
        socket = Recorder()
        await socket.connect(url, users.token(client))
        assert (await socket.call("join_session", {"session_id": str(session_id)}))["ok"]
        assert (await socket.call("send_message", {"session_id": str(session_id), "content": "m"}))[
            "ok"
        ]
        await socket.wait_for("new_message")
        await socket.call("join_session", {"session_id": "nope"})
        form = aiohttp.FormData()
        form.add_field("session_id", str(session_id))
        form.add_field("file", b"twelve bytes", filename="t.txt", content_type="text/plain")
        async with http.post(
            f"{url}/api/chat/upload", data=form, headers=bearer(users.token(client))
        ) as resp:
            uploaded = resp.status == 201
        async with http.get(f"{url}/api/chat/nope") as resp:
            assert resp.status == 404

        async with http.get(f"{url}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await resp.text()
    found = samples(text)
    assert found[("chat_socket_connections", ())] == 1
    assert found[("chat_socket_connects_total", ())] == 1
    assert found[("chat_socket_refused_total", (("code", "missing_token"),))] == 1
    assert found[("chat_socket_events_total", (("event", "send_message"), ("outcome", "ok")))] == 1
    assert (
        found[("chat_socket_events_total", (("event", "join_session"), ("outcome", "error")))] == 1
    )
    assert found[("chat_messages_sent_total", (("path", "socket"),))] == 1
    assert found[("chat_message_delivery_seconds_count", ())] >= 1
    assert found[("chat_errors_total", (("code", "invalid_payload"), ("source", "socket")))] == 1
    assert found[("chat_errors_total", (("code", "not_found"), ("source", "http")))] == 1
    assert found[("chat_active_sessions", ())] == 1
    assert found[("chat_python_heap_blocks", ())] > 10_000
    assert ("chat_event_writer_written_total", (("writer", "audit"),)) in found
    if uploaded:
        assert found[("chat_uploads_total", (("result", "stored"),))] == 1
        assert found[("chat_upload_bytes_total", ())] == 12


async def test_each_app_has_its_own_registry(database_url: str) -> None:
    async with api_client(database_url) as one, api_client(database_url) as two:
        await one.get("/api/chat/nope")
        first = samples(await (await one.get("/metrics")).text())
        second = samples(await (await two.get("/metrics")).text())
    key = ("chat_errors_total", (("code", "not_found"), ("source", "http")))
    assert first[key] == 1
    assert key not in second


async def test_event_loop_lag_shows_a_blocked_loop(database_url: str) -> None:
    # The app measures how late a timer due every 0.1 s runs. Block its loop (the test's
    # own: the app runs in it) for 300 ms: a timer falls due within its first 100 ms and
    # runs at its end, at least 200 ms late. The next one is set after it.
    async with api_client(database_url) as client:

        async def lag() -> dict[str, float]:
            found = samples(await (await client.get("/metrics")).text())
            return {
                le: value
                for (name, labels), value in found.items()
                if name == "chat_event_loop_lag_seconds_bucket"
                for key, le in labels
                if key == "le"
            } | {"count": found[("chat_event_loop_lag_seconds_count", ())]}

        await eventually(lambda: _observed(lag, at_least=3), within=5)
        before = await lag()
        time.sleep(0.3)  # noqa: ASYNC251 -- blocking the loop is the point
        await asyncio.sleep(0.25)
        after = await lag()
        assert after["count"] > before["count"]
        # Later than 100 ms: the timer held up by the block. (Start-up may have been slow
        # too, so the count is compared with the one before the block, not with zero.)
        late = (after["count"] - after["0.1"]) - (before["count"] - before["0.1"])
        assert late >= 1


async def _observed(lag: Any, at_least: int) -> bool:
    return (await lag())["count"] >= at_least


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut and restore."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _serve(self, down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(*self._target)
        except OSError:
            down_w.close()
            return
        self._writers |= {down_w, up_w}
        await asyncio.gather(self._pipe(down_r, up_w), self._pipe(up_r, down_w))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()
        self._writers.discard(writer)


async def test_health_is_503_while_the_database_is_away_and_recovers(database_url: str) -> None:
    parts = urllib.parse.urlsplit(database_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    via_proxy = urllib.parse.urlunsplit(
        parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}")
    )
    async with TestClient(TestServer(create_app(settings_for(via_proxy)))) as http:

        async def status() -> int:
            resp = await http.get("/health")
            body = await resp.json()
            assert body["status"] == ("healthy" if resp.status == 200 else "unhealthy")
            return resp.status

        assert await status() == 200
        await proxy.stop()
        await eventually(lambda: _is(status, 503), within=10)
        body = await (await http.get("/api/health")).json()
        assert body["database"]["status"] == "down"
        await proxy.start()
        await eventually(lambda: _is(status, 200), within=10)
    await proxy.stop()


async def _is(probe, expected: int) -> bool:  # type: ignore[no-untyped-def]
    return await probe() == expected
