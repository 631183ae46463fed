"""A client that stops reading: what the relay buffers for it is bounded (its socket is
closed once MAX_QUEUED_PACKETS wait), and the others in the session are unaffected.

Without the bound, python-socketio queues every packet for the socket (Engine.IO's send
queue has no limit) while aiohttp's writer waits on the full TCP window forever.
The slow client is a raw websocket over a TCP socket that stops calling recv (a small
receive buffer, so the window closes quickly)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time

import asyncpg
import pytest

from workers.config import Bucket

from .conftest import Users
from .relay_helpers import Recorder, make_session, running_relay

pytestmark = [pytest.mark.fault, pytest.mark.timeout(90)]

QUEUE_LIMIT = 20
MESSAGES = 400
BIG = "é" * 9_990  # about 20 kB of UTF-8 per message: 400 of them exceed the socket buffers


class RawSocketIO:
    """Just enough of the websocket and Socket.IO protocols to connect, join and then
    stop reading."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self, port: int, token: str) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        self.reader, self.writer = await asyncio.open_connection(sock=sock, limit=65536)
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert (await self.frame()).startswith("0{")  # Engine.IO OPEN
        await self.send("40" + json.dumps({"token": token}))
        assert (await self.frame()).startswith("40{")  # Socket.IO CONNECT ok

    async def send(self, text: str) -> None:
        assert self.writer is not None
        data = text.encode()
        mask = os.urandom(4)
        length = len(data)
        if length < 126:
            header = struct.pack("!BB", 0x81, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(header + mask + masked)
        await self.writer.drain()

    async def frame(self) -> str:
        assert self.reader is not None
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await self.reader.readexactly(length)
        if first & 0x0F == 0x8:
            return "<close>"
        return payload.decode()

    async def wait_for(self, prefix: str) -> None:
        while not (await self.frame()).startswith(prefix):
            pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


async def test_a_client_that_stops_reading_is_cut_off_and_others_are_unaffected(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    talker, stalled, listener = (
        await users.create("client"),
        await users.create("reader"),
        await users.create("reader"),
    )
    session = await make_session(superuser, talker, stalled, listener)
    settings = {
        "max_queued_packets": QUEUE_LIMIT,
        "message_bucket": Bucket(rate=10_000, burst=10_000),
        "user_event_bucket": Bucket(rate=10_000, burst=10_000),
        "event_bucket": Bucket(rate=10_000, burst=10_000),
    }
    slow = RawSocketIO()
    async with running_relay(database_url, **settings) as (url, relay):
        port = int(url.rsplit(":", 1)[1])
        try:
            await slow.open(port, users.token(stalled, "reader"))
            await slow.send("42" + json.dumps(["join_session", {"session_id": str(session)}]))
            await slow.wait_for('42["session_joined"')
            sender, reader = Recorder("talker"), Recorder("listener")
            await sender.connect(url, users.token(talker))
            await reader.connect(url, users.token(listener, "reader"))
            for recorder in (sender, reader):
                assert (await recorder.call("join_session", {"session_id": str(session)}))["ok"]
            # From here on the slow client reads nothing.
            started = time.monotonic()
            cut_off_after = None
            for i in range(MESSAGES):
                ack = await sender.call(
                    "send_message", {"session_id": str(session), "content": f"{i} {BIG}"}
                )
                assert ack["ok"], ack
                if cut_off_after is None and relay.sio.overflowed:
                    cut_off_after = i
            await reader.wait_for("new_message", MESSAGES, within=30)
            await sender.wait_for("new_message", MESSAGES, within=30)
            elapsed = time.monotonic() - started
        finally:
            slow.close()
        assert relay.sio.overflowed == 1
        assert cut_off_after is not None and cut_off_after < MESSAGES - 1
        # The stalled socket is gone from the relay: no queue left to grow.
        assert len(relay.sio.eio.sockets) == 2
        assert relay.gate.connected == 2
        # Everyone else got everything, in order, once.
        seqs = [m["content"].split(" ", 1)[0] for m in reader.of("new_message")]
        assert seqs == [str(i) for i in range(MESSAGES)]
        assert elapsed < 60
