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

# Bytes parsed at a time from one read (see DirectConnection._feed).
_SLICE = 4096

# Seconds a closing handshake the relay started may wait for the client's answer.
CLOSE_WAIT = 5.0

_DEFINED_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


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
    ``receive`` reads (Engine.IO's upgrade from polling reads its probe this way). A
    receiver that has too much to read calls ``pause``: the rest of what was read from
    the client waits here as bytes (at most one read, parsed again on ``resume``), and
    nothing more is read until then."""

    __slots__ = (
        "_backlog",
        "_closing",
        "_giving_up",
        "_paused",
        "_reader",
        "_receiver",
        "_stash",
        "_transport",
        "_waiter",
    )

    def __init__(self, transport: asyncio.Transport, max_size: int) -> None:
        self._transport: asyncio.Transport | None = transport
        self._reader = WebSocketReader(_SINK, max_size, False, True)  # no deflate; text as str
        self._receiver: Receiver | None = None
        self._backlog: list[str | bytes | None] | None = []
        self._waiter: asyncio.Future[None] | None = None
        self._closing = False  # our closing frame is written (or the connection is gone)
        self._paused = False  # the receiver has too much to read
        self._stash = b""  # bytes read but not parsed while paused
        self._giving_up: asyncio.TimerHandle | None = None  # the cut, if no answer comes

    # ------------------------------------------------------------------ from the transport
    def data_received(self, data: bytes) -> None:
        if self._paused:
            self._stash += data
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """Parse ``data`` in slices, stopping where the receiver asks to pause: a read of
        many small frames cannot become thousands of messages at once."""
        _SINK.target = self
        try:
            if len(data) <= _SLICE:
                self._reader.feed_data(data)
                return
            for start in range(0, len(data), _SLICE):
                self._reader.feed_data(data[start : start + _SLICE])
                if self._paused:
                    self._stash = data[start + _SLICE :] + self._stash
                    return
        finally:
            _SINK.target = None

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost ends the connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closing = True
        self._transport = None
        self._stash = b""
        if self._giving_up is not None:
            self._giving_up.cancel()
            self._giving_up = None
        self._deliver(None)
        self._receiver = None  # (the socket refers to this connection: no cycle left)

    # ------------------------------------------------------------------ from the reader
    def message(self, msg: Any) -> None:
        kind = msg.type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if not self._closing:
                self._deliver(msg.data)
        elif kind is WSMsgType.PING:
            self._write(b"\x8a" + bytes((len(msg.data),)) + msg.data)  # PONG, same data
        elif kind is WSMsgType.CLOSE:
            if self._closing:  # the answer to our closing frame: the handshake is done
                self._close_now()
            else:  # the client's closing handshake: answered with its code (5.5.1, 7.4)
                code = msg.data if msg.data else WSCloseCode.OK
                self.fail(code if _answerable(code) else WSCloseCode.PROTOCOL_ERROR)
        # PONG: nothing to do (the relay's liveness check is Engine.IO's ping)

    def failed(self, exc: BaseException) -> None:
        """A frame that breaks the protocol, text that is not UTF-8, a message too large:
        the connection fails with the reader's code (7.1.7, 7.4.1)."""
        code = exc.code if isinstance(exc, WebSocketError) else WSCloseCode.PROTOCOL_ERROR
        self.fail(code)

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
        """Read nothing more until ``resume`` (the receiver has enough to read)."""
        if not self._paused:
            self._paused = True
            if self._transport is not None:
                self._transport.pause_reading()

    def resume(self) -> None:
        if not self._paused:
            return
        self._paused = False
        stash, self._stash = self._stash, b""
        if stash:
            self._feed(stash)
        if not self._paused and self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self, code: int = WSCloseCode.OK) -> None:
        """The closing handshake: our closing frame, then the connection closed once the
        client answers with its own (what it sends meanwhile is read and dropped, so its
        answer is not lost to a reset), or cut after ``CLOSE_WAIT`` seconds."""
        if self._closing:
            return
        self._closing = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(_CLOSE(0x88, 2, int(code)))
        if self._paused:  # read again: the client's answer must get through
            self._paused = False
            self._stash = b""
            transport.resume_reading()
        self._giving_up = asyncio.get_running_loop().call_later(CLOSE_WAIT, self.abort)

    def fail(self, code: int) -> None:
        """Our closing frame with ``code``, then the connection closed at once (the client
        has sent its own closing frame, or broke the protocol)."""
        if self._closing and self._giving_up is None:
            return  # already failed, or gone
        self._closing = True
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._giving_up is None:  # (not after a closing frame of ours)
                transport.write(_CLOSE(0x88, 2, int(code)))
        self._close_now()

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

    def _close_now(self) -> None:
        if self._giving_up is not None:
            self._giving_up.cancel()
            self._giving_up = None
        self._stash = b""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()

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


def _answerable(code: int) -> bool:
    """A close code a closing frame may carry (RFC 6455 7.4.1, 7.4.2; IANA registry)."""
    return code in _DEFINED_CODES or 3000 <= code <= 4999


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
        if transport is None:  # the client left during the handshake
            raise ConnectionResetError("the websocket's connection is gone")
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
        transport.resume_reading()  # (aiohttp pauses it when its queue fills)
        self._handed_over = True
        protocol._payload_parser = None
        protocol._parser = None  # (it refers back to the handler: no cycle left behind)
        protocol.transport = None  # its request loop ends without closing the transport
        manager = protocol._manager
        if manager is not None:
            manager.connection_lost(protocol, None)  # forgotten once its handler returns
