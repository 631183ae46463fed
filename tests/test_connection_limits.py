"""Connection limits: Engine.IO sockets that never complete the
Socket.IO connect are closed after CONNECT_TIMEOUT; connections per address, per user and
per relay are capped and refused with a connect_error code; the connection rate per
address is limited; X-Forwarded-For counts only behind a trusted proxy."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
import socketio

from workers.config import Bucket
from workers.relay.gate import Gate, Limits

from .conftest import Users
from .relay_helpers import Recorder, make_session, running_relay

EIO = "/socket.io/?EIO=4&transport="


async def _refused(url: str, token: str | None, **kwargs: Any) -> Any:
    """Connect and expect a refusal; the connect_error's data."""
    recorder = Recorder()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await recorder.connect(url, token, **kwargs)
    return recorder.connect_error


async def _connected(url: str, token: str) -> Recorder:
    recorder = Recorder()
    await recorder.connect(url, token)
    return recorder


async def test_sockets_that_never_send_connect_are_closed(database_url: str) -> None:
    async with (
        running_relay(database_url, connect_timeout=0.5) as (url, relay),
        aiohttp.ClientSession() as http,
    ):
        # Websocket transport: the OPEN packet, then nothing from us.
        sockets = [await http.ws_connect(url + EIO + "websocket") for _ in range(20)]
        for ws in sockets:
            opened = await ws.receive(timeout=2)
            assert opened.type == aiohttp.WSMsgType.TEXT and opened.data.startswith("0{")
        # Polling transport: a handshake, then silence.
        async with http.get(url + EIO + "polling") as resp:
            assert resp.status == 200
            sid = (await resp.text()).split('"sid":"')[1].split('"')[0]
        assert relay.gate.pending == 21
        started = time.monotonic()
        for ws in sockets:
            while (await ws.receive(timeout=3)).type not in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                pass
            await ws.close()
        assert time.monotonic() - started < 3
        answers = []
        for _ in range(2):  # the CLOSE packet if still queued, then: unknown sid
            async with http.get(url + EIO + f"polling&sid={sid}") as resp:
                answers.append((resp.status, await resp.text()))
            if resp.status == 400:
                break
        assert answers[-1][0] == 400 and answers[0] in ((200, "1"), answers[-1]), answers
        assert relay.gate.pending == 0 and not relay.gate.transports
        assert relay.gate.refused["connect_timeout"] == 21
        # The relay still answers at once.
        t0 = time.monotonic()
        async with http.get(url + "/health") as resp:
            assert resp.status == 200
        assert time.monotonic() - t0 < 1


async def test_connections_per_user_are_capped(database_url: str, users: Users) -> None:
    greedy, other = await users.create("client"), await users.create("client")
    async with running_relay(database_url, max_connections_per_user=3) as (url, relay):
        mine = [await _connected(url, users.token(greedy)) for _ in range(3)]
        refused = await _refused(url, users.token(greedy))
        assert refused["data"]["code"] == "too_many_user_connections", refused
        assert "3" in refused["message"]
        theirs = await _connected(url, users.token(other))  # others are unaffected
        await mine[0].close()
        await asyncio.sleep(0.2)
        again = await _connected(url, users.token(greedy))  # a freed slot is usable
        assert again.client.connected and theirs.client.connected
        await asyncio.sleep(1.5)  # the refused socket was closed after its connect_error
        assert relay.gate.pending == 0


async def test_connections_per_address_and_per_relay_are_capped(
    database_url: str, users: Users
) -> None:
    ids = [await users.create("client") for _ in range(4)]
    async with running_relay(database_url, max_connections_per_ip=2) as (url, _):
        for uid in ids[:2]:
            await _connected(url, users.token(uid))
        refused = await _refused(url, users.token(ids[2]))
        assert refused["data"]["code"] == "too_many_connections", refused
    async with running_relay(database_url, max_connections=2) as (url, _):
        for uid in ids[:2]:
            await _connected(url, users.token(uid))
        refused = await _refused(url, users.token(ids[2]))
        assert refused["data"]["code"] == "server_full", refused


async def test_connection_rate_per_address_is_limited(database_url: str, users: Users) -> None:
    uid = await users.create("client")
    settings = {"connect_bucket_per_ip": Bucket(rate=0.01, burst=3)}
    async with running_relay(database_url, **settings) as (url, relay):
        for _ in range(3):
            await (await _connected(url, users.token(uid))).close()
        refused = await _refused(url, users.token(uid))
        assert refused["data"]["code"] == "connect_rate_limited", refused
        # Far beyond the caps, the transport itself is refused before any socket exists.
    async with (
        running_relay(database_url, max_connections_per_ip=2, connect_timeout=5) as (url, relay),
        aiohttp.ClientSession() as http,
    ):
        held = [await http.ws_connect(url + EIO + "websocket") for _ in range(4)]
        async with http.get(url + EIO + "polling") as resp:
            assert resp.status == 401
            body = await resp.json()
        assert body["data"]["code"] == "too_many_connections"
        assert len(relay.gate.transports) == 4
        for ws in held:
            await ws.close()


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    a, b = await users.create("client"), await users.create("client")

    async def connect(url: str, uid: Any, forwarded: str) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            url,
            auth={"token": users.token(uid)},
            headers={"X-Forwarded-For": forwarded},
            transports=["websocket"],
            wait_timeout=5,
        )
        return client

    trusted = {"max_connections_per_ip": 1, "trusted_proxies": (ipaddress.ip_network("127.0.0.1"),)}
    async with running_relay(database_url, **trusted) as (url, relay):
        one = await connect(url, a, "203.0.113.7")
        two = await connect(url, b, "198.51.100.9, 203.0.113.99")  # last hop counts
        assert set(relay.gate.connected_per_ip) == {"203.0.113.7", "203.0.113.99"}
        await one.disconnect()
        await two.disconnect()
    async with running_relay(database_url, max_connections_per_ip=1) as (url, relay):
        one = await connect(url, a, "203.0.113.7")
        with pytest.raises(socketio.exceptions.ConnectionError):
            await connect(url, b, "198.51.100.9")  # not believed: both are 127.0.0.1
        assert set(relay.gate.connected_per_ip) == {"127.0.0.1"}
        await one.disconnect()


def test_client_address_behind_proxies() -> None:
    gate = Gate(limits=Limits(trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),)))
    via = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "1.1.1.1, 2.2.2.2, 10.1.1.1"}
    assert gate.client_ip(via) == "2.2.2.2"
    assert gate.client_ip({**via, "REMOTE_ADDR": "192.0.2.1"}) == "192.0.2.1"
    assert gate.client_ip({"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "junk"}) == (
        "10.0.0.5"
    )
    assert Gate(limits=Limits()).client_ip(via) == "10.0.0.5"  # no trusted proxy
    # IPv6: a subscriber's /64 is one client; IPv4-mapped addresses are IPv4.
    plain = Gate(limits=Limits())
    assert plain.client_ip({"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}) == "2001:db8:1:2::/64"
    assert plain.client_ip({"REMOTE_ADDR": "2001:db8:1:2:ffff::9"}) == "2001:db8:1:2::/64"
    assert plain.client_ip({"REMOTE_ADDR": "::ffff:192.0.2.7"}) == "192.0.2.7"


async def test_refused_connections_cost_no_session(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    """A refused user keeps nothing: the room of a session they are in gets no join."""
    uid, peer = await users.create("client"), await users.create("reader")
    session = await make_session(superuser, uid, peer)
    async with running_relay(database_url, max_connections_per_user=1) as (url, _):
        first = await _connected(url, users.token(uid))
        assert (await first.call("join_session", {"session_id": str(session)}))["ok"]
        refused = await _refused(url, users.token(uid))
        assert refused["data"]["code"] == "too_many_user_connections"
        assert (await first.call("get_online_users", {"session_id": str(session)}))["count"] == 1


async def test_each_client_address_counts_as_itself(database_url: str, users: Users) -> None:
    # Engine.IO's aiohttp adapter reports 127.0.0.1 as every client's address: the
    # per-address cap was then one cap for the whole relay. A second loopback address as
    # the source stands for another machine.
    ids = [await users.create("client") for _ in range(3)]
    async with (
        running_relay(database_url, max_connections_per_ip=1) as (url, relay),
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        ) as elsewhere,
    ):
        here = await _connected(url, users.token(ids[0]))
        ws = await elsewhere.ws_connect(url + EIO + "websocket")
        assert (await ws.receive_str()).startswith("0{")  # Engine.IO OPEN
        await ws.send_str("40" + json.dumps({"token": users.token(ids[1])}))
        assert (await ws.receive_str()).startswith("40{"), "the other address was refused"
        assert {t.ip for t in relay.gate.transports.values()} == {"127.0.0.1", "127.0.0.2"}
        refused = await _refused(url, users.token(ids[2]))  # 127.0.0.1's one is taken
        assert refused["data"]["code"] == "too_many_connections", refused
        await ws.close()
        await here.close()
