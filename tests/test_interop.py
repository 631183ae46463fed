"""The official socket.io-client (Node, the version pinned in package.json) running the
original frontend's connection and event code against the relay, over websocket and polling."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from .conftest import Users
from .relay_helpers import people, running_relay

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "interop" / "original_client.mjs"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "node_modules" / "socket.io-client").exists(),
    reason="needs node and npm install (scripts/test installs both)",
)


async def _run_original_client(
    url: str, world: dict[str, Any], transport: str
) -> list[dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(SCRIPT),
        url,
        world["tokens"]["client"],
        world["tokens"]["reader"],
        str(world["session"]),
        transport,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=45)
    assert proc.returncode == 0, err.decode()[-2000:]
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_original_client_code_works_unchanged(
    database_url: str, users: Users, superuser: asyncpg.Connection, transport: str
) -> None:
    world = await people(users, superuser)
    async with running_relay(database_url) as (url, _):
        lines = await _run_original_client(url, world, transport)
    assert lines[-1] == {"done": True}
    events: dict[tuple[str, str], Any] = {}  # the first of each (who, event)
    for line in lines:
        if "event" in line:
            events.setdefault((line["who"], line["event"]), line["data"])

    assert events[("a", "transport")] == transport
    refused = events[("bad", "connect_error")]
    assert refused["message"] and refused["data"]["code"] == "invalid_token"

    assert events[("a", "session_joined")]["session_id"] == str(world["session"])
    assert str(world["client"]) in events[("b", "session_joined")]["participants_online"]
    assert events[("a", "user_joined")]["user_id"] == str(world["reader"])
    assert set(events[("b", "user_typing")]) >= {"user_id", "user_name", "timestamp"}
    assert events[("b", "user_stopped_typing")]["user_name"] == "Cora Client"

    message = events[("b", "new_message")]
    assert message["content"] == "Hello world!"
    assert message["sender_name"] == "Cora Client"
    receipt = events[("a", "messages_read")]
    assert receipt["up_to_message_id"] == message["id"]
    assert receipt["read_count"] >= 1
    online = events[("b", "online_users")]
    assert online["count"] == 2 and len(online["users"]) == 2
    assert events[("b", "error")]["event"] == "send_message"
    ack = events[("a", "ack")]
    assert ack["ok"] is True and ack["message"]["client_message_id"] == "interop-1"
    assert events[("a", "user_left")]["user_id"] == str(world["reader"])
