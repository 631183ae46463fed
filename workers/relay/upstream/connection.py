"""A websocket's connection once its handshake is answered: read by the relay, not by
aiohttp's request handling.

aiohttp serves a websocket from the request handler that accepted it, so for as long as
the connection lives that handler holds the parsed upgrade request and its headers, the
HTTP parser and its message queue, the connection's two tasks, the websocket response
with its reader queue, and the chain of coroutine frames from aiohttp's request handling
down to Engine.IO's socket: about 10 KB for every idle socket, most of what one costs.

So once the handshake is answered, :func:`hand_over` makes a :class:`DirectConnection` the
transport's protocol (``transport.set_protocol``) and lets aiohttp's request handling
finish without touching the connection. The connection parses the client's frames with
aiohttp's own frame reader (``WebSocketReader``: unmasking, fragments, control frames,
UTF-8 and size checks), answers pings and the closing handshake itself, and hands each
message to its receiver, the Engine.IO socket (``frame_received``), which reads them on a
task that exists only while it has some to read. An idle socket holds no task and no
coroutine frame.

The aiohttp internals this relies on are listed, with the version read, in
``upstream.OVERRIDDEN``; tests/test_transport.py drives the handshake, pings, fragments,
bad frames and both closing handshakes through it.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp._websocket.reader import WebSocketDataQueue
from aiohttp.http_websocket import WebSocketError, WebSocketReader

_CLOSE = struct.Struct("!BBH").pack


class Receiver(Protocol):
    """What a connection hands its messages to (the Engine.IO socket)."""

    def frame_received(self, data: str | bytes | None) -> None:
        """A text or binary message; ``None`` once the connection has ended."""


class _Sink(WebSocketDataQueue):  # type: ignore[misc]
    """Where aiohttp's frame reader puts each message it completes.

    The reader calls it synchronously from ``feed_data``, so one sink serves every
    connection: :meth:`DirectConnection.data_received` names itself the target before it
    feeds the reader. (A queue per connection would hold a deque for nothing.) Nothing
    is queued here, so the reader never stalls on a full queue."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        # No protocol to pause and no loop to wait on: nothing is ever queued here.
        super().__init__(None, 2**16, loop=None)  # type: ignore[arg-type]
        self.target: DirectConnection | None = None

    def feed_data(self, data: Any, size: int) -> None:
        if self.target is not None:
            self.target.message(data)

    def feed_eof(self) -> None:
        pass

    def set_exception(self, exc: BaseException, exc_cause: Any = None) -> None:
        if self.target is not None:
            self.target.failed(exc)


_SINK = _Sink()


class DirectConnection(asyncio.Protocol):
    """One websocket connection after its handshake (RFC 6455 from section 5 on).

    Until a receiver starts reading (``start``), messages wait in a short backlog that
    ``receive`` reads (Engine.IO's upgrade from polling reads its probe this way)."""

    __slots__ = ("_backlog", "_closing", "_reader", "_receiver", "_transport", "_waiter")

    def __init__(self, transport: asyncio.Transport, max_size: int) -> None:
        self._transport: asyncio.Transport | None = transport
        self._reader = WebSocketReader(_SINK, max_size, False, True)  # no deflate; text as str
        self._receiver: Receiver | None = None
        self._backlog: list[str | bytes | None] | None = []
        self._waiter: asyncio.Future[None] | None = None
        self._closing = False  # our closing frame is written (or the connection is gone)

    # ------------------------------------------------------------------ from the transport
    def data_received(self, data: bytes) -> None:
        _SINK.target = self
        try:
            self._reader.feed_data(data)
        finally:
            _SINK.target = None

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost ends the connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closing = True
        self._transport = None
        self._deliver(None)

    # ------------------------------------------------------------------ from the reader
    def message(self, msg: Any) -> None:
        kind = msg.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if not self._closing:
                self._deliver(msg.data)
        elif kind is WSMsgType.PING:
            self._write(b"\x8a" + bytes((len(msg.data),)) + msg.data)  # PONG, same data
        elif kind is WSMsgType.CLOSE:
            # The client's closing handshake: answer with its code and close (5.5.1).
            code = msg.data if msg.data else WSCloseCode.OK
            self.close(code)
        # PONG: nothing to do (the relay's liveness check is Engine.IO's ping)

    def failed(self, exc: BaseException) -> None:
        """A frame that breaks the protocol, text that is not UTF-8, a message too large:
        closed with the reader's code (7.4.1)."""
        code = exc.code if isinstance(exc, WebSocketError) else WSCloseCode.PROTOCOL_ERROR
        self.close(code)

    # ------------------------------------------------------------------ for the socket
    def start(self, receiver: Receiver) -> None:
        """From now on every message goes to ``receiver``, starting with the backlog."""
        backlog, self._backlog = self._backlog or [], None
        self._receiver = receiver
        for data in backlog:
            receiver.frame_received(data)

    async def receive(self) -> str | bytes:
        """The next message before ``start``; ``OSError`` once the connection ended."""
        backlog = self._backlog
        assert backlog is not None, "the connection has a receiver"
        while not backlog:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = backlog[0]
        if data is None:
            raise OSError("the websocket connection ended")
        del backlog[0]
        return data

    def write(self, data: bytes) -> None:
        """A frame, written now. ``ConnectionResetError`` once closing."""
        transport = self._transport
        if self._closing or transport is None or transport.is_closing():
            raise ConnectionResetError("the websocket is closing")
        transport.write(data)

    def buffered(self) -> int:
        """Bytes written that the client's connection has not taken yet."""
        transport = self._transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def pause(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self, code: int = WSCloseCode.OK) -> None:
        """Our closing frame, then the connection closed once it is written. The client's
        answer is not awaited: nothing it could still send would be read."""
        if self._closing:
            return
        self._closing = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(_CLOSE(0x88, 2, int(code)))
            transport.close()

    def abort(self) -> None:
        """Cut the connection now (a client that is gone or stopped reading)."""
        self._closing = True
        if self._transport is not None:
            self._transport.abort()

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def started(self) -> bool:
        """A receiver reads the messages (``start``)."""
        return self._receiver is not None

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if not self._closing and transport is not None and not transport.is_closing():
            transport.write(data)

    def _deliver(self, data: str | bytes | None) -> None:
        receiver = self._receiver
        if receiver is not None:
            receiver.frame_received(data)
            return
        backlog = self._backlog
        if backlog is not None and (data is not None or None not in backlog):
            backlog.append(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class HandedOverResponse(web.WebSocketResponse):
    """aiohttp's websocket response, whose connection can be handed over after its
    handshake: aiohttp's request handling then finishes without a closing handshake of
    its own (``write_eof``)."""

    _handed_over = False

    async def write_eof(self) -> None:  # type: ignore[override]  # as aiohttp's own
        if self._handed_over:
            return
        await super().write_eof()

    def hand_over(self, request: web.BaseRequest, connection: DirectConnection) -> None:
        """``connection`` becomes the transport's protocol; aiohttp forgets the transport
        (its handler then returns without closing it) and the connection's handler."""
        protocol = request.protocol
        transport = protocol.transport
        assert transport is not None
        # Messages aiohttp's reader already holds: a client that sent frames before the
        # handshake's answer reached it (RFC 6455 forbids that, 4.1, but nothing is lost).
        queue = self._reader
        if queue is not None and queue._buffer:
            _SINK.target = connection
            try:
                for msg, _size in list(queue._buffer):
                    connection.message(msg)
            finally:
                _SINK.target = None
            queue._buffer.clear()
        transport.set_protocol(connection)
        self._handed_over = True
        protocol._payload_parser = None
        protocol.transport = None  # its request loop ends without closing the transport
        manager = protocol._manager
        if manager is not None:
            manager.connection_lost(protocol, None)  # forgotten once its handler returns
