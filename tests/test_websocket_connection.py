"""A websocket's connection after its handshake belongs to the relay, not to aiohttp's
request handling: aiohttp lets go of the request, and the relay's connection speaks the
rest of RFC 6455 itself (pings, fragments, bad frames, both closing handshakes)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import struct
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from .relay_helpers import bare_socket_server, running_relay


@contextlib.asynccontextmanager
async def _server(max_size: int = 1_000_000) -> AsyncIterator[tuple[Any, Any, str]]:
    """The relay's Engine.IO/Socket.IO server alone on aiohttp, its events handled in
    turn as the relay's are: the server, aiohttp's runner and the Engine.IO websocket
    URL."""
    async with bare_socket_server(max_size=max_size, async_handlers=False) as (
        sio,
        runner,
        base,
    ):
        try:
            yield sio, runner, base.replace("http", "ws", 1) + "&transport=websocket"
        finally:
            # as the relay's shutdown: aiohttp no longer knows the websockets' connections
            for sid in list(sio.eio.sockets):
                await sio.eio.disconnect(sid)


async def _until(condition: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 (state of the server, no event to wait on)
            await asyncio.sleep(0.02)


def _frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
    """A client frame (RFC 6455, 5.2)."""
    head = bytes(((0x80 if fin else 0) | opcode,))
    size = len(payload)
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes((mask_bit | size,))
    elif size < 65536:
        head += bytes((mask_bit | 126,)) + struct.pack("!H", size)
    else:
        head += bytes((mask_bit | 127,)) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWebSocket:
    """A websocket client on a bare TCP connection, to send what a library would not."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str, *, then: bytes = b"") -> RawWebSocket:
        """The handshake; ``then``: bytes sent in the same write as the request."""
        rest = url.removeprefix("ws://")
        hostport, path = rest.split("/", 1)
        host, port = hostport.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        writer.write(request.encode() + then)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def read_text(self) -> str:
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x1:
                return payload.decode()
            assert opcode != 0x8, f"closed: {payload!r}"

    async def close_code(self) -> int:
        """The server's closing frame's code, then the end of the connection."""
        async with asyncio.timeout(5):
            while True:
                opcode, payload = await self.read_frame()
                if opcode == 0x8:
                    (code,) = struct.unpack("!H", payload[:2])
                    assert await self.reader.read() == b""  # and the connection ends
                    return int(code)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


async def test_aiohttp_lets_go_of_a_websocket_once_it_is_handed_over() -> None:
    # Nothing of aiohttp's request handling is held by an idle websocket: no request
    # object, no connection handler, no task.
    async with _server() as (sio, runner, url), aiohttp.ClientSession() as http:
        clients = []
        for _ in range(20):
            ws = await http.ws_connect(url)
            assert (await ws.receive_str()).startswith("0{")  # Engine.IO's OPEN
            await ws.send_str("40")
            assert (await ws.receive_str()).startswith("40{")  # connected to "/"
            clients.append(ws)
        await _until(lambda: not runner.server._connections)
        gc.collect()
        requests = [o for o in gc.get_objects() if isinstance(o, web.BaseRequest)]
        assert requests == []
        assert len(sio.eio.sockets) == 20
        # ... and every socket still answers
        for ws in clients:
            await ws.send_str("42" + json.dumps(["unknown-event"]))
            await ws.send_str("3")  # a PONG the server did not ask for: ignored
        assert len(sio.eio.sockets) == 20
        for ws in clients:
            await ws.close()
        await _until(lambda: not sio.eio.sockets)


async def test_a_ping_is_answered_with_its_own_data() -> None:
    async with _server() as (_sio, _runner, url), aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url, autoping=False)
        await ws.receive_str()
        await ws.ping(b"are you there")
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.PONG
        assert msg.data == b"are you there"
        await ws.close()


async def test_a_message_in_fragments_is_read_whole() -> None:
    async with _server() as (_sio, _runner, url):
        raw = await RawWebSocket.open(url)
        assert (await raw.read_text()).startswith("0{")
        raw.send(_frame(0x1, b"4", fin=False))
        raw.send(_frame(0x9, b"between"))  # a control frame may come between fragments
        raw.send(_frame(0x0, b"0"))
        opcode, payload = await raw.read_frame()
        assert (opcode, payload) == (0xA, b"between")
        assert (await raw.read_text()).startswith("40{")
        raw.close()


async def test_frames_sent_with_the_handshake_are_not_lost() -> None:
    # RFC 6455 has a client wait for the handshake's answer; one that does not still
    # has its frames read, in order.
    async with _server() as (sio, _runner, url):
        raw = await RawWebSocket.open(url, then=_frame(0x1, b"40"))
        assert (await raw.read_text()).startswith("0{")
        assert (await raw.read_text()).startswith("40{")
        assert len(sio.eio.sockets) == 1
        raw.close()
        await _until(lambda: not sio.eio.sockets)


@pytest.mark.parametrize(
    ("name", "frames", "code"),
    [
        ("unknown opcode", [_frame(0x3, b"x")], 1002),
        ("continuation first", [_frame(0x0, b"40")], 1002),
        ("text not UTF-8", [_frame(0x1, b"4\xff\xfe")], 1007),
        ("too large", [_frame(0x1, b"4" + b"x" * 2000)], 1009),
        ("bad close code", [_frame(0x8, struct.pack("!H", 999))], 1002),
        ("undefined close code", [_frame(0x8, struct.pack("!H", 5000))], 1002),
    ],
)
async def test_a_frame_that_breaks_the_protocol_closes_with_its_code(
    name: str, frames: list[bytes], code: int
) -> None:
    async with _server(max_size=1000) as (sio, _runner, url):
        raw = await RawWebSocket.open(url)
        assert (await raw.read_text()).startswith("0{")
        for data in frames:
            raw.send(data)
        assert await raw.close_code() == code, name
        await _until(lambda: not sio.eio.sockets)
        raw.close()


async def test_the_clients_closing_handshake_is_answered_and_ends_its_socket() -> None:
    async with _server() as (sio, _runner, url), aiohttp.ClientSession() as http:
        ws = await http.ws_connect(url)
        await ws.receive_str()
        await ws.send_str("40")
        await ws.receive_str()
        assert len(sio.eio.sockets) == 1
        async with asyncio.timeout(5):
            await ws.close(code=4000)  # returns once the server's closing frame came
        assert ws.close_code == 4000
        await _until(lambda: not sio.eio.sockets)


async def test_a_client_that_vanishes_ends_its_socket() -> None:
    async with _server() as (sio, _runner, url):
        raw = await RawWebSocket.open(url)
        await raw.read_text()
        raw.send(_frame(0x1, b"40"))
        assert (await raw.read_text()).startswith("40{")
        raw.writer.transport.abort()  # no closing handshake
        await _until(lambda: not sio.eio.sockets)


async def test_a_client_sending_faster_than_it_is_read_waits_in_its_own_buffer() -> None:
    # Messages are read one after another; past a backlog the connection stops reading
    # (the client's data waits in the kernel, or as bytes), even within one read of many
    # small frames, and reads again once the backlog is worked off.
    async with _server() as (sio, _runner, url):
        release = asyncio.Event()
        seen: list[Any] = []
        backlog: list[int] = []

        async def slow(_sid: str, data: Any) -> None:
            seen.append(data)
            (socket,) = sio.eio.sockets.values()
            backlog.append(len(socket._inbox or ()))
            await release.wait()

        sio.on("slow", slow)
        raw = await RawWebSocket.open(url)
        await raw.read_text()
        raw.send(_frame(0x1, b"40"))
        await raw.read_text()
        raw.send(
            b"".join(_frame(0x1, ("42" + json.dumps(["slow", i])).encode()) for i in range(3000))
        )
        await _until(lambda: seen == [0])
        (socket,) = sio.eio.sockets.values()
        await _until(lambda: socket._reading_paused)
        await asyncio.sleep(0.2)
        assert len(socket._inbox) < 400  # 64, and at most one slice of 4 KB of frames
        release.set()
        await _until(lambda: len(seen) == 3000, 20)
        assert seen == list(range(3000))
        assert max(backlog) < 400
        assert not socket._reading_paused
        raw.close()


async def test_a_closed_socket_leaves_no_garbage_cycle_behind() -> None:
    # The socket, its websocket and its connection refer to one another while open; once
    # closed nothing keeps them but references that end, so they are freed at once, not
    # by a full garbage collection (rare in the relay: gc.freeze and high thresholds).
    import weakref

    from workers.relay.upstream.packets import _GuardedSocket

    async with _server() as (sio, _runner, url), aiohttp.ClientSession() as http:
        gc.collect()
        gc.disable()
        sockets = []
        try:
            for i in range(10):
                ws = await http.ws_connect(url)
                await ws.receive_str()
                await ws.send_str("40")
                await ws.receive_str()
                sockets.extend(weakref.ref(s) for s in sio.eio.sockets.values())
                if i % 2:
                    await ws.close()  # the client closes
                else:
                    (sid,) = sio.eio.sockets
                    await sio.eio.disconnect(sid)  # the server closes
                    while (await ws.receive()).type is not aiohttp.WSMsgType.CLOSE:
                        pass  # (Engine.IO's CLOSE packet first; then the handshake)
                    await ws.close()
                await _until(lambda: not sio.eio.sockets)
            await asyncio.sleep(0.1)
            # Some may still be referenced (Engine.IO's service task walks a copy of its
            # sockets); none may be garbage that only a collection frees.
            alive = [ref for ref in sockets if ref() is not None]
            assert all(isinstance(ref(), _GuardedSocket) for ref in alive)
            gc.collect()
            assert [ref for ref in alive if ref() is None] == []
        finally:
            gc.enable()


async def test_packets_after_an_undecodable_one_are_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An undecodable packet closes the connection; what the client sends after it, even
    # while the socket's disconnect handler still runs, is dropped (a second CONNECT there
    # would open a session no disconnect ever ends).
    from workers.relay.upstream import connection

    monkeypatch.setattr(connection, "CLOSE_WAIT", 0.2)
    async with _server() as (sio, _runner, url):
        connects: list[str] = []
        events: list[Any] = []

        async def slow_disconnect(_sid: str, *_args: Any) -> None:
            await asyncio.sleep(0.3)

        sio.on("connect", lambda sid, *_args: connects.append(sid))
        sio.on("disconnect", slow_disconnect)
        sio.on("ev", lambda _sid, data: events.append(data))
        raw = await RawWebSocket.open(url)
        await raw.read_text()
        raw.send(_frame(0x1, b"40"))
        assert (await raw.read_text()).startswith("40{")
        raw.send(_frame(0x1, b"x"))  # not an Engine.IO packet
        await asyncio.sleep(0.05)  # the disconnect handler is running
        raw.send(_frame(0x1, b"40") + _frame(0x1, b'42["ev", 1]'))
        async with asyncio.timeout(5):
            while await raw.reader.read(4096):  # until the connection ends (unanswered)
                pass
        await _until(lambda: not sio.eio.sockets)
        await asyncio.sleep(0.4)
        assert (len(connects), events) == (1, [])
        assert not sio.manager.rooms.get("/", {}).get(None)
        raw.close()


async def test_a_websocket_waiting_for_its_upgrade_ends_with_its_polling_socket() -> None:
    async with _server() as (sio, _runner, url), aiohttp.ClientSession() as http:
        base = url.replace("ws://", "http://", 1).replace("&transport=websocket", "")
        async with http.get(base + "&transport=polling") as resp:
            eio_sid = json.loads((await resp.text())[1:])["sid"]
        ws = await http.ws_connect(url + f"&sid={eio_sid}")  # no probe sent
        await asyncio.sleep(0.1)
        await sio.eio.sockets[eio_sid].close(wait=False)
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.CLOSE
        await ws.close()


async def test_the_relays_closing_handshake_waits_for_the_answer_then_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers.relay.upstream import connection

    monkeypatch.setattr(connection, "CLOSE_WAIT", 0.3)
    async with _server() as (sio, _runner, url):
        for answers in (True, False):
            raw = await RawWebSocket.open(url)
            await raw.read_text()
            raw.send(_frame(0x1, b"40"))
            await raw.read_text()
            (sid,) = sio.eio.sockets
            await sio.eio.disconnect(sid)
            assert await raw.read_text() == "1"  # Engine.IO's CLOSE packet
            opcode, payload = await raw.read_frame()
            assert (opcode, payload) == (0x8, struct.pack("!H", 1000))
            raw.send(_frame(0x1, b'42["late"]'))  # read and dropped, not a reset
            started = asyncio.get_running_loop().time()
            if answers:
                raw.send(_frame(0x8, struct.pack("!H", 1000)))
            async with asyncio.timeout(5):
                assert await raw.reader.read() == b""
            waited = asyncio.get_running_loop().time() - started
            assert waited < 0.25 if answers else waited >= 0.25
            raw.close()


async def test_the_relays_shutdown_closes_every_handed_over_connection(database_url: str) -> None:
    # aiohttp's own shutdown no longer knows these connections: the relay's closes them,
    # including one that never joined the Socket.IO namespace.
    async with running_relay(database_url) as (base, relay):
        url = base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        raw = await RawWebSocket.open(url)
        assert (await raw.read_text()).startswith("0{")
        assert len(relay.sio.eio.sockets) == 1
        await relay.disconnect_all()
        async with asyncio.timeout(5):
            while await raw.reader.read(4096):  # until the connection ends
                pass
        assert not relay.sio.eio.sockets
        raw.close()
