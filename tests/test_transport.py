"""The relay's lean Engine.IO sockets (transport.py, packets.py): a websocket's packets
written as they are sent (no writer task), its ping and liveness deadlines on the relay's
one timer, room emits without a task per recipient, and the queue a polling request waits
on."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from workers.relay.upstream.transport import LeanQueue

from .conftest import Users
from .relay_helpers import Recorder, bare_socket_server, running_relay
from .test_fault_slow_reader import RawSocketIO


async def test_items_come_out_in_order_and_get_is_a_plain_future() -> None:
    q = LeanQueue()
    q.put_nowait(1)
    await q.put(2)
    got = q.get()
    assert isinstance(got, asyncio.Future) and not isinstance(got, asyncio.Task)
    assert await got == 1
    assert q.get_nowait() == 2
    assert q.empty() and q.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()


async def test_a_waiting_getter_is_handed_the_next_item() -> None:
    q = LeanQueue()
    waiting = q.get()
    assert not waiting.done()
    q.put_nowait("a")
    assert await waiting == "a"
    assert q.qsize() == 0


async def test_a_getter_that_timed_out_is_skipped_not_fed() -> None:
    q = LeanQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(q.get(), 0.01)
    q.put_nowait("kept")
    assert q.qsize() == 1  # not handed to the cancelled getter
    assert await q.get() == "kept"


async def test_requeue_puts_an_item_back_first() -> None:
    q = LeanQueue()
    q.put_nowait("b")
    q.requeue("a")
    assert [q.get_nowait(), q.get_nowait()] == ["a", "b"]


async def test_join_waits_for_every_item_to_be_done() -> None:
    q = LeanQueue()
    await q.join()  # nothing outstanding: returns at once
    q.put_nowait(1)
    q.put_nowait(2)
    joined = asyncio.ensure_future(q.join())
    await asyncio.sleep(0)
    q.get_nowait()
    q.task_done()
    await asyncio.sleep(0)
    assert not joined.done()
    q.get_nowait()
    q.task_done()
    await asyncio.wait_for(joined, 1)
    with pytest.raises(ValueError):
        q.task_done()


@contextlib.asynccontextmanager
async def _raw_socket(url: str, token: str) -> AsyncIterator[RawSocketIO]:
    """A raw websocket client, connected to the relay at ``url`` with ``token``."""
    raw = RawSocketIO()
    try:
        await raw.open(int(url.rsplit(":", 1)[1]), token)
        yield raw
    finally:
        raw.close()


async def _no_sockets_left(relay: Any) -> None:
    """The relay forgets every Engine.IO socket within 5 s."""
    async with asyncio.timeout(5):
        while relay.sio.eio.sockets:  # noqa: ASYNC110 (polling a dict)
            await asyncio.sleep(0.05)


async def _frames_until_closed(raw: RawSocketIO, *, answer_pings: bool) -> list[str]:
    """Frames received until the server closes the connection (a close frame or EOF)."""
    frames = []
    while True:
        try:
            frame = await raw.frame()
        except (asyncio.IncompleteReadError, ConnectionError):
            return frames
        if frame == "<close>":
            return frames
        if answer_pings and frame == "2":
            await raw.send("3")
        frames.append(frame)


def _fast_pings(relay: object, interval: float, timeout: float) -> None:
    eio = relay.sio.eio  # type: ignore[attr-defined]
    eio.ping_interval, eio.ping_timeout = interval, timeout


@pytest.mark.timeout(60)
async def test_a_client_answering_pings_stays_connected(database_url: str, users: Users) -> None:
    user = await users.create("client")
    async with running_relay(database_url) as (url, relay):
        _fast_pings(relay, 0.2, 0.5)
        client = Recorder()
        await client.connect(url, users.token(user))
        await asyncio.sleep(2.0)  # ten ping rounds, each well past the read timeout of 0.7 s
        assert client.client.connected
        assert ("disconnect", None) not in client.events
        refused = await client.call("join_session", {"session_id": "not-a-uuid"})
        assert refused["ok"] is False  # the socket still answers


@pytest.mark.timeout(60)
async def test_a_client_that_never_answers_pings_is_closed(database_url: str, users: Users) -> None:
    user = await users.create("client")
    async with running_relay(database_url) as (url, relay):
        _fast_pings(relay, 0.2, 0.5)
        async with _raw_socket(url, users.token(user)) as raw:
            started = time.monotonic()
            async with asyncio.timeout(10):
                frames = await _frames_until_closed(raw, answer_pings=False)
            assert "2" in frames  # pinged (Engine.IO PING) ...
            assert time.monotonic() - started < 5  # ... and closed soon after no PONG came
            await _no_sockets_left(relay)


@pytest.mark.timeout(60)
async def test_a_socket_the_server_closed_ends_even_if_its_client_keeps_sending(
    database_url: str, users: Users
) -> None:
    # The websocket writer waits without a timer: closing the socket must end it (and so
    # the connection), or a client that keeps sending frames would keep the connection,
    # its tasks and its file descriptor after the server let go of it.
    user = await users.create("client")
    async with running_relay(database_url) as (url, relay):
        async with _raw_socket(url, users.token(user)) as raw:
            (eio_sid,) = list(relay.sio.eio.sockets)
            await relay.sio.eio.disconnect(eio_sid)  # as a ping timeout or the gate closes it
            ended = False
            async with asyncio.timeout(5):
                while not ended:
                    try:
                        await raw.send("3")  # a PONG nobody asked for: keeps the reader busy
                        ended = await asyncio.wait_for(raw.frame(), 0.2) == "<close>"
                    except TimeoutError:
                        continue
                    except (asyncio.IncompleteReadError, ConnectionError):
                        ended = True
            assert ended
            await _no_sockets_left(relay)


@pytest.mark.timeout(60)
async def test_an_expired_socket_is_hung_up_on_even_if_its_client_ignores_the_disconnect(
    database_url: str, users: Users
) -> None:
    # python-socketio's disconnect sends DISCONNECT and leaves the transport to the client;
    # a client that ignores it would keep an Engine.IO socket (and its connection) open.
    user = await users.create("client")
    async with running_relay(database_url) as (url, relay):
        async with _raw_socket(url, users.token(user, expires_in=2)) as raw:
            async with asyncio.timeout(10):  # pings answered: only the expiry may end it
                frames = await _frames_until_closed(raw, answer_pings=True)
            assert any("token_expired" in f for f in frames), frames
            assert "41" in frames, frames
            await _no_sockets_left(relay)


def test_only_a_real_socket_io_websocket_upgrade_skips_the_middlewares() -> None:
    from aiohttp.test_utils import make_mocked_request

    from workers.api.passthrough import is_socket_upgrade

    upgrade = {"Upgrade": "websocket", "Connection": "keep-alive, Upgrade"}
    path = "/socket.io/?EIO=4&transport=websocket"
    assert is_socket_upgrade(make_mocked_request("GET", path, headers=upgrade))
    # Polling (Engine.IO serves it as polling, every middleware applies), another method,
    # another path, no Connection: upgrade.
    polling = "/socket.io/?EIO=4&transport=polling"
    assert not is_socket_upgrade(make_mocked_request("GET", polling, headers=upgrade))
    assert not is_socket_upgrade(make_mocked_request("POST", path, headers=upgrade))
    assert not is_socket_upgrade(make_mocked_request("GET", "/api/chat/sessions", headers=upgrade))
    assert not is_socket_upgrade(
        make_mocked_request("GET", path, headers={"Upgrade": "websocket", "Connection": "close"})
    )


def test_outgoing_packets_are_never_scanned_for_binary_data() -> None:
    """The relay sends JSON only: a packet it builds is a plain EVENT, its data not walked
    for bytes (python-socketio's default walks every outgoing packet)."""
    from socketio import packet

    from workers.relay.upstream.packets import _CheckedPacket

    built = _CheckedPacket(packet.EVENT, data=["new_message", {"content": "hi"}])
    assert built.packet_type == packet.EVENT
    assert built.encode() == '2["new_message",{"content":"hi"}]'
    # A client's binary event still decodes (its attachment count read from the header).
    incoming = _CheckedPacket(encoded_packet='51-["upload",{"_placeholder":true,"num":0}]')
    assert (incoming.packet_type, incoming.attachment_count) == (packet.BINARY_EVENT, 1)


def _server_tasks() -> list[str]:
    """The running tasks of the relay's HTTP server, Engine.IO sockets and relay code (not
    the test's clients'), by coroutine."""
    server = ("/aiohttp/web_", "/engineio/async_socket.py", "/engineio/async_server.py")
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        path = code.co_filename.replace("\\", "/") if code is not None else ""
        if any(part in path for part in server) or "/workers/relay/" in path:
            found.append(f"{path.rsplit('/', 1)[-1]}:{task.get_coro().__qualname__}")  # type: ignore[union-attr]
    return found


async def _clients(url: str, users: Users, count: int) -> list[Recorder]:
    """``count`` clients of as many users, connected over websocket."""
    clients = []
    for _ in range(count):
        client = Recorder()
        await client.connect(url, users.token(await users.create("client")))
        clients.append(client)
    return clients


@pytest.mark.timeout(60)
async def test_an_idle_websocket_holds_no_task_or_loop_timer_of_its_own(
    database_url: str, users: Users
) -> None:
    # aiohttp's two tasks per connection (its request handler and the request) are all an
    # idle websocket costs in tasks: no writer task, no ping task, no task per read. Its
    # ping, liveness and token expiry are deadlines of the relay's one timer.
    async with running_relay(database_url) as (url, relay):
        first = Recorder()  # the first connection starts Engine.IO's service task
        await first.connect(url, users.token(await users.create("client")))
        await asyncio.sleep(0.2)
        before = len(_server_tasks())
        clients = await _clients(url, users, 4)
        await asyncio.sleep(0.5)
        per_socket = (len(_server_tasks()) - before) / len(clients)
        assert per_socket <= 2, sorted(_server_tasks())
        # Each socket: its token expiry, its liveness and (between pings) its next ping.
        assert 2 * 5 <= len(relay.sio.deadlines) <= 3 * 5
        for client in [first, *clients]:
            await client.client.disconnect()
        await _no_sockets_left(relay)
        assert len(relay.sio.deadlines) == 0  # each socket's deadlines went with it


@pytest.mark.timeout(60)
async def test_an_emit_to_a_room_writes_to_each_socket_without_a_task_per_recipient(
    database_url: str, users: Users
) -> None:
    async with running_relay(database_url) as (url, relay):
        clients = await _clients(url, users, 3)
        for sid in list(relay.sio.manager.get_participants("/", None)):
            await relay.sio.enter_room(sid[0], "everyone")
        loop = asyncio.get_running_loop()
        created: list[object] = []

        def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            created.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting)
        try:
            await relay.sio.emit("hello", {"n": 1}, room="everyone")
        finally:
            loop.set_task_factory(None)
        assert created == []
        for client in clients:
            assert await client.wait_for("hello") == [{"n": 1}]


@pytest.mark.timeout(60)
async def test_a_socket_that_upgrades_from_polling_is_written_to_directly_afterwards(
    database_url: str, users: Users
) -> None:
    # socket.io-client's default: polling first, then the websocket. What was queued for
    # polls goes out first; from then on packets are written to the websocket as sent.
    async with running_relay(database_url) as (url, relay):
        client = Recorder()
        await client.client.connect(
            url,
            auth={"token": users.token(await users.create("client"))},
            transports=["polling", "websocket"],
            wait_timeout=5,
        )
        async with asyncio.timeout(10):
            while client.client.transport() != "websocket":  # noqa: ASYNC110 (no event for it)
                await asyncio.sleep(0.05)
        (socket,) = relay.sio.eio.sockets.values()
        async with asyncio.timeout(5):
            # The upgrade completes on the server's side too.
            while socket._direct is None:  # noqa: ASYNC110 (an attribute, no event)
                await asyncio.sleep(0.05)
        for n in range(5):
            await relay.sio.emit("hello", {"n": n})
        refused = await client.call("join_session", {"session_id": "not-a-uuid"})
        assert refused["ok"] is False  # and the client's packets still arrive
        hellos = await client.wait_for("hello", count=5)
        assert [h["n"] for h in hellos] == [0, 1, 2, 3, 4]
        await client.client.disconnect()
        await _no_sockets_left(relay)


@contextlib.asynccontextmanager
async def _bare_server() -> AsyncIterator[tuple[Any, str]]:
    """The relay's Engine.IO/Socket.IO server alone on aiohttp: the server and the
    Engine.IO URL."""
    async with bare_socket_server() as (sio, _runner, base):
        yield sio, base


async def _upgrading(http: Any, base: str) -> tuple[str, Any]:
    """A polling socket, connected to the namespace, with its websocket probed (the
    upgrade waits for the client's UPGRADE packet)."""
    import json

    async with http.get(base + "&transport=polling") as resp:
        eio_sid = json.loads((await resp.text())[1:])["sid"]
    await (await http.post(base + f"&transport=polling&sid={eio_sid}", data="40")).text()
    await (await http.get(base + f"&transport=polling&sid={eio_sid}")).text()
    websocket_url = base.replace("http", "ws", 1) + f"&transport=websocket&sid={eio_sid}"
    ws = await http.ws_connect(websocket_url)
    await ws.send_str("2probe")
    assert (await ws.receive()).data == "3probe"
    return eio_sid, ws


@pytest.mark.timeout(30)
async def test_a_socket_closed_during_its_upgrade_still_gets_what_was_queued() -> None:
    # Sent and closed between the probe and the client's UPGRADE packet: once the
    # websocket is ready the client gets the NOOP, the event and Engine.IO's CLOSE, in
    # order, and a disconnect that waits for the queue returns.
    import aiohttp

    async with _bare_server() as (sio, base), aiohttp.ClientSession() as http:
        eio_sid, ws = await _upgrading(http, base)
        (sid,) = [s for s, _ in sio.manager.get_participants("/", None)]
        await sio.emit("hello", {"n": 1}, to=sid)
        disconnect = asyncio.ensure_future(sio.eio.disconnect(eio_sid))
        await asyncio.sleep(0.1)
        await ws.send_str("5")
        frames = []
        async with asyncio.timeout(5):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                frames.append(msg.data)
        assert frames == ["6", '42["hello",{"n":1}]', "1"]
        await asyncio.wait_for(disconnect, 2)
        await ws.close()


@pytest.mark.timeout(30)
async def test_a_closed_websocket_whose_client_stopped_reading_is_cut_after_a_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A graceful close waits for the client to read what was buffered; one that never
    # reads would keep the connection, its task and megabytes of buffer until TCP gave
    # up. After the grace the relay cuts the connection.
    import aiohttp
    from engineio import packet as eio_packet

    from workers.relay.upstream import connection

    monkeypatch.setattr(connection, "CLOSE_WAIT", 0.5)
    async with _bare_server() as (sio, base), aiohttp.ClientSession() as http:
        eio_sid, ws = await _upgrading(http, base)
        await ws.send_str("5")
        socket = sio.eio.sockets[eio_sid]
        async with asyncio.timeout(5):
            while socket._direct is None:  # noqa: ASYNC110 (an attribute, no event)
                await asyncio.sleep(0.02)
        websocket = socket._direct
        for _ in range(20):  # the client reads nothing: the relay's buffer fills
            for _ in range(200):
                socket.send_now(eio_packet.Packet(eio_packet.MESSAGE, data="x" * 2000))
            await asyncio.sleep(0.02)
        assert websocket.waiting() > 100  # frames waiting in the relay, by its estimate
        transport = websocket.connection._transport
        await socket.close(wait=False)
        await asyncio.sleep(0.1)
        assert websocket.connection.closing  # its closing frame is queued behind the rest
        assert transport.get_write_buffer_size() > 0
        async with asyncio.timeout(5):
            while transport.get_write_buffer_size():  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # cut after the grace: the client never read it
        assert transport.is_closing()
        await ws.close()


@pytest.mark.timeout(30)
async def test_a_token_expiry_that_fires_early_is_scheduled_again(
    database_url: str, users: Users
) -> None:
    # Loop timers may run a millisecond early; an expiry that finds the token still valid
    # must not be dropped (the token would then never expire on this socket).
    user = await users.create("client")
    async with running_relay(database_url) as (url, relay):
        client = Recorder()
        await client.connect(url, users.token(user, expires_in=60))
        ((sid, state),) = list(relay._sockets.items())
        fired = state.expiry
        await relay._expire(sid, state)  # as if its deadline had fired now, far too early
        assert client.client.connected
        assert state.expiry is not fired and state.expiry.active
        await client.client.disconnect()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
async def test_a_frame_is_byte_for_byte_what_aiohttp_writes(size: int) -> None:
    # The relay frames packets itself (once per room); the bytes must be aiohttp's own
    # for the same text or binary message with compression off.
    from aiohttp import WSMsgType
    from aiohttp._websocket.writer import WebSocketWriter

    from workers.relay.upstream.transport import frame

    class Collect:
        def __init__(self) -> None:
            self.data = b""

        def write(self, data: bytes) -> None:
            self.data += bytes(data)

        def is_closing(self) -> bool:
            return False

    class Protocol:
        _paused = False

    text = ("é" * size)[:size]  # multi-byte UTF-8 where it fits
    for message, opcode in ((text, WSMsgType.TEXT), (b"\x00\xff" * (size // 2), WSMsgType.BINARY)):
        sink = Collect()
        writer = WebSocketWriter(Protocol(), sink, limit=1 << 30)  # type: ignore[arg-type]
        payload = message.encode() if isinstance(message, str) else message
        await writer.send_frame(payload, opcode)
        assert frame(message) == sink.data
