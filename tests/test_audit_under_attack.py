"""Audit you can trust under attack: refusals of callers without a
valid token are counted in full (metrics) and sampled into the audit log and monitoring,
never one row each; the audit writer never drops a row about an authenticated actor; when
such rows cannot be written fast enough, new actions are refused (fail closed)."""

from __future__ import annotations

import asyncio
import random
import re
import uuid

import aiohttp
import asyncpg
import pytest
import socketio

from workers.audit import AuditWriter
from workers.db import Database
from workers.keys import RELAY
from workers.metrics import Metrics
from workers.monitoring import MonitoringWriter
from workers.telemetry import Telemetry

from .api_helpers import api_client, bearer, make_session
from .audit_helpers import FAST, audit_where, eventually, monitoring_where
from .conftest import Users
from .fault_helpers import free_port
from .relay_helpers import Recorder, running_relay

SAMPLES = 5


def _metric(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == want:
            return float(match.group(2))
    return 0.0


async def _max_audit_id(superuser: asyncpg.Connection) -> int:
    return await superuser.fetchval("select coalesce(max(id), 0) from public.chat_audit_logs")


async def test_unauthenticated_upload_flood_is_counted_and_sampled(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    outsider, member = await users.create("client"), await users.create("client")
    session = await make_session(superuser, member)
    before = await _max_audit_id(superuser)
    monitored_before = await superuser.fetchval(
        "select coalesce(max(id), 0) from public.chat_monitoring"
    )
    async with api_client(database_url, refusal_audit_per_minute=SAMPLES, **FAST) as api:
        for _ in range(300):
            form = aiohttp.FormData()
            form.add_field("session_id", str(session))
            form.add_field("file", b"x", filename="a.txt", content_type="text/plain")
            resp = await api.post("/api/chat/upload", data=form)
            assert resp.status == 401
        # An authenticated refusal right after the flood is still audited, every time.
        for _ in range(3):
            form = aiohttp.FormData()
            form.add_field("session_id", str(session))
            form.add_field("file", b"x", filename="a.txt", content_type="text/plain")
            resp = await api.post(
                "/api/chat/upload", data=form, headers=bearer(users.token(outsider))
            )
            assert resp.status == 404
        mine = await eventually(
            lambda: _at_least(audit_where(superuser, "actor_id = $1", outsider), 3)
        )
        metrics = await (await api.get("/metrics")).text()
        # The periodic summary accounts for every refusal not sampled: one row.
        assert api.app[RELAY].hooks.summarize() == 300 - SAMPLES  # type: ignore[attr-defined]
        summary = await eventually(
            lambda: audit_where(superuser, "id > $1 and action = 'refusals.skipped'", before)
        )
    assert [a["action"] for a in mine] == ["upload.refused"] * 3
    assert len(summary) == 1 and summary[0]["details"]["total"] == 300 - SAMPLES
    assert summary[0]["details"]["counts"] == [
        {"kind": ["http", "POST", "/api/chat/upload", "missing_token"], "skipped": 295}
    ]
    anonymous = await audit_where(
        superuser, "id > $1 and action = 'upload.refused' and actor_id is null", before
    )
    assert len(anonymous) == SAMPLES
    assert all(a["actor_role"] == "anon" and a["details"]["status"] == 401 for a in anonymous)
    errors = await monitoring_where(
        superuser,
        "id > $1 and event_type = 'error' and user_id is null and details->>'event' = 'upload'",
        monitored_before,
    )
    assert len(errors) == SAMPLES
    assert _metric(
        metrics, "chat_anonymous_refusals_total", source="http", code="missing_token"
    ) == (300)
    assert _metric(metrics, "chat_uploads_total", result="refused") == 303


async def _at_least(rows_coro: object, count: int) -> list | None:
    rows = await rows_coro  # type: ignore[misc]
    return rows if len(rows) >= count else None


async def test_refused_socket_connects_are_sampled(
    database_url: str, superuser: asyncpg.Connection
) -> None:
    before = await _max_audit_id(superuser)
    async with running_relay(database_url, refusal_audit_per_minute=SAMPLES, **FAST) as (
        url,
        relay,
    ):
        for _ in range(40):
            recorder = Recorder()
            with pytest.raises(socketio.exceptions.ConnectionError):
                await recorder.connect(url, "garbage")
            assert recorder.connect_error["data"]["code"] == "invalid_token"
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
            metrics = await resp.text()
        refused = await eventually(
            lambda: _at_least(
                audit_where(superuser, "id > $1 and action = 'socket.refused'", before), SAMPLES
            )
        )
    assert len(refused) == SAMPLES
    assert _metric(
        metrics, "chat_anonymous_refusals_total", source="socket", code="invalid_token"
    ) == (40)
    assert relay.hooks.anonymous.skipped_total == 35  # type: ignore[attr-defined]


def _row(actor: uuid.UUID | None) -> dict[str, object]:
    return {
        "actor_id": str(actor) if actor else None,
        "actor_role": "client" if actor else "anon",
        "action": "test.row",
        "details": {},
    }


async def test_audit_writer_never_sheds_rows_of_authenticated_actors(
    db: Database, superuser: asyncpg.Connection
) -> None:
    actor = uuid.uuid4()
    writer = AuditWriter(db=db, batch_size=5, max_queue=10)  # loop not started: rows wait
    for _ in range(8):
        writer.append(_row(None))
    for _ in range(10):
        writer.append(_row(actor))
    assert writer.pending == 10 and writer.dropped == 8 and writer.overloaded
    for _ in range(5):
        writer.append(_row(None))  # no room and nothing sheddable: these go
    assert writer.overloaded and writer.dropped == 13
    writer.append(_row(actor))  # past the limit, still kept
    assert writer.pending == 11 and writer.dropped == 13
    while writer.pending:
        await writer.flush()
    written = await superuser.fetchval(
        "select count(*) from public.chat_audit_logs where actor_id = $1", actor
    )
    assert written == 11 and not writer.overloaded


async def test_a_failed_batch_keeps_rows_of_authenticated_actors() -> None:
    dead = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", max_size=1)
    await dead.open()
    actor = uuid.uuid4()
    writer = AuditWriter(db=dead, batch_size=10, max_queue=10)
    try:
        for i in range(10):
            writer.append(_row(actor if i % 2 else None))
        with pytest.raises(OSError):
            await writer.flush()  # the batch goes back in front
        for _ in range(5):
            writer.append(_row(actor))  # each sheds an anonymous row
        assert writer.pending == 10 and writer.dropped == 5
        assert writer.overloaded
        with pytest.raises(OSError):
            await writer.flush()
        assert writer.pending == 10 and writer.dropped == 5
    finally:
        await dead.close()


async def test_actions_fail_closed_while_the_audit_log_is_behind(
    database_url: str, db: Database, users: Users, superuser: asyncpg.Connection
) -> None:
    uid = await users.create("client")
    session = await make_session(superuser, uid)
    # A writer whose loop is not running: its rows wait until the test writes them.
    behind = AuditWriter(db=db, batch_size=3, max_queue=3)
    async with running_relay(database_url) as (url, relay):
        socket = Recorder()
        await socket.connect(url, users.token(uid))
        relay.hooks = Telemetry(audit=behind, monitoring=MonitoringWriter(db=db), metrics=Metrics())
        for _ in range(3):
            behind.append(_row(uid))
        ack = await socket.call("join_session", {"session_id": str(session)})
        assert ack["error"]["code"] == "unavailable", ack
        late = Recorder()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await late.connect(url, users.token(uid))
        assert late.connect_error["data"]["code"] == "unavailable"
        async with aiohttp.ClientSession() as http:
            async with http.get(
                url + "/api/chat/sessions", headers=bearer(users.token(uid))
            ) as resp:
                assert resp.status == 503
                assert (await resp.json())["error"]["code"] == "unavailable"
            await behind.flush()  # the backlog is written: actions resume
            async with http.get(
                url + "/api/chat/sessions", headers=bearer(users.token(uid))
            ) as resp:
                assert resp.status == 200
        assert (await socket.call("join_session", {"session_id": str(session)}))["ok"]


async def test_stopping_a_writer_mid_write_writes_each_row_once(
    db: Database, superuser: asyncpg.Connection
) -> None:
    """stop() used to cancel the loop even in the middle of a write: a batch whose COMMIT
    had gone through but whose connection release was cancelled went back in the queue and
    was written again (an append-only log with duplicates; 26 of 60 tries here)."""
    rng = random.Random(7)
    for _ in range(30):
        actor = uuid.uuid4()
        writer = AuditWriter(db=db, batch_size=200, flush_interval=0.002)
        await writer.start()
        for _ in range(3):
            writer.append(_row(actor))
        await asyncio.sleep(rng.random() * 0.01)
        await writer.stop()
        written = await superuser.fetchval(
            "select count(*) from public.chat_audit_logs where actor_id = $1", actor
        )
        assert written == 3
