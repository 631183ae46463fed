"""Engine.IO transport settings for chat traffic.

* No permessage-deflate: aiohttp's ``WebSocketResponse`` compresses by default and
  Engine.IO does not turn it off. A zlib compressor and decompressor per socket hold
  tens of kilobytes for the life of the connection, and chat packets are small (a few
  hundred bytes), so compression costs memory and CPU for almost no saving.
* JSON with orjson: the same text, several times faster to encode and decode than the
  standard library (every packet in and out goes through it).
* A lean outgoing queue per socket. ``asyncio.Queue`` allocates four deques (about 3 KB)
  up front, and Engine.IO's writer waits on ``wait_for(queue.get(), ...)``, which wraps
  the ``get()`` coroutine in a task for every wait: an idle socket holds that task (about
  1.3 KB) for as long as it is idle. ``LeanQueue.get()`` returns a plain future, so the
  wait costs no task.
* A smaller environ, with the peer's real address. Engine.IO's aiohttp adapter copies every
  request header into a WSGI-style dict that lives as long as the socket, and sets
  ``REMOTE_ADDR`` to ``127.0.0.1`` for every client: the per-address connection limits
  would have counted every client of a relay as one address. ``translate_request`` keeps
  the headers something reads and the address aiohttp saw.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

import orjson
from aiohttp.web import WebSocketResponse
from engineio.async_drivers import aiohttp as eio_aiohttp

from .connection import DirectConnection, HandedOverResponse

# The environ key naming the connection of a socket that began on a websocket (the
# request is gone).
WEBSOCKET_KEY = "relay.websocket"

_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack


def frame(message: str | bytes) -> bytes:
    """One unfragmented, unmasked, uncompressed websocket frame (RFC 6455, 5.2): text for
    a ``str``, binary for ``bytes``; what aiohttp's writer sends with compression off."""
    if isinstance(message, str):
        payload, first = message.encode(), 0x81  # FIN, text
    else:
        payload, first = message, 0x82  # FIN, binary
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _LEN16(first, 126, size) + payload
    return _LEN64(first, 127, size) + payload


class PlainWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp websocket, without per-message compression, whose connection
    is handed over to a ``DirectConnection`` once the handshake is answered (aiohttp's
    request handling lets go of it), and with ``write_now``: a frame written to the
    connection at once, without awaiting."""

    _connection: DirectConnection | None = None
    _frames = 0  # frames written, and their bytes: the average frame, for ``waiting()``
    _bytes = 0

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        response = HandedOverResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await response.prepare(request)
        connection = DirectConnection(request.transport, self.server.max_http_buffer_size)
        response.hand_over(request, connection)
        self._connection = connection
        # Socket.IO keeps the environ for the socket's life: it names the websocket now,
        # not the request aiohttp is done with.
        del environ["aiohttp.request"]
        environ.pop("wsgi.input", None)
        environ[WEBSOCKET_KEY] = connection
        self.environ = environ
        try:
            await self.handler(self)
        finally:
            if not connection.started:  # the socket never came to read it (a failed upgrade)
                connection.close()
        return response

    @property
    def connection(self) -> DirectConnection:
        assert self._connection is not None
        return self._connection

    async def wait(self) -> str | bytes:
        """The next message, before the socket reads them itself (an upgrade's probe)."""
        return await self.connection.receive()

    async def send(self, message: str | bytes) -> None:
        self.write_now(message)

    async def close(self) -> None:
        """The closing handshake's first frame, then the connection closed."""
        if self._connection is not None:
            self._connection.close()

    def write_now(self, message: str | bytes) -> None:
        """``message`` as one frame (``frame``), written synchronously: aiohttp's
        ``send_*`` are coroutines that wait for the transport to drain once it is over
        its high-water mark; a fan-out must never wait on one slow client, so the relay
        reads ``waiting()`` instead and closes a socket whose client stopped reading.
        Raises ``ConnectionResetError`` once the websocket is closing."""
        self.write_frame(frame(message))

    def write_frame(self, data: bytes) -> None:
        """A frame built by ``frame`` (a room's packet is framed once for all its
        sockets), written synchronously."""
        connection = self._connection
        if connection is None:
            raise ConnectionResetError("the websocket is not open")
        connection.write(data)
        self._frames += 1
        self._bytes += len(data)

    def waiting(self) -> int:
        """About how many frames wait in the relay for this client: the bytes its
        connection has not taken yet (beyond what the kernel buffers), in frames of this
        socket's average size. It falls as the client reads."""
        connection = self._connection
        if connection is None or not self._frames:
            return 0
        buffered = connection.buffered()
        return -(-buffered * self._frames // self._bytes) if buffered else 0

    def abort(self) -> None:
        """Cut the connection now, without a closing handshake: for a client that is gone
        or stopped reading (a graceful close would wait for it to read)."""
        if self._connection is not None:
            self._connection.abort()


class LeanQueue:
    """The part of ``asyncio.Queue`` Engine.IO uses (unbounded, one consumer: the socket's
    writer), with a future for ``get()`` instead of a coroutine."""

    __slots__ = ("_getters", "_items", "_joined", "_unfinished")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[Any]] = []
        self._unfinished = 0
        self._joined: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: Any) -> None:
        self._unfinished += 1
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():  # a waiter that timed out is cancelled: skip it
                getter.set_result(item)
                return
        self._items.append(item)

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    def get(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._items:
            future.set_result(self._items.pop(0))
        else:
            if self._getters:  # drop waits that timed out
                self._getters = [g for g in self._getters if not g.done()]
            self._getters.append(future)
        return future

    def requeue(self, item: Any) -> None:
        """Put back, first, an item a getter was given but could not take (cancelled)."""
        while self._getters:
            getter = self._getters.pop(0)
            if not getter.done():
                getter.set_result(item)
                return
        self._items.insert(0, item)

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._joined is not None:
            if not self._joined.done():
                self._joined.set_result(None)
            self._joined = None

    async def join(self) -> None:
        if self._unfinished > 0:
            if self._joined is None:
                self._joined = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._joined)


# Request headers that Engine.IO (origin check, upgrade, polling compression and CORS),
# python-socketio or the relay (token, client address, audit) read from the environ.
_KEPT_HEADERS = {
    name: "HTTP_" + name.upper().replace("-", "_")
    for name in (
        "Origin",
        "Host",
        "Upgrade",
        "Connection",
        "Accept-Encoding",
        "Access-Control-Request-Headers",
        "X-Forwarded-Proto",
        "X-Forwarded-Host",
        "X-Forwarded-For",
        "Authorization",
        "User-Agent",
    )
}


def translate_request(request: Any) -> dict[str, Any]:
    """Engine.IO's aiohttp ``translate_request``, with only the headers something reads
    and ``REMOTE_ADDR`` the peer's address (Engine.IO's says ``127.0.0.1`` for all)."""
    headers = request.headers
    environ: dict[str, Any] = {
        "wsgi.input": request.content,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.query_string or "",
        "PATH_INFO": request.path,
        "SCRIPT_NAME": "",
        "REMOTE_ADDR": request.remote or "unknown",
        "aiohttp.request": request,
    }
    for name, key in _KEPT_HEADERS.items():
        values = headers.getall(name, None)
        if values:
            environ[key] = ",".join(values)
    if "Content-Type" in headers:
        environ["CONTENT_TYPE"] = headers["Content-Type"]
    if "Content-Length" in headers:
        environ["CONTENT_LENGTH"] = headers["Content-Length"]
    environ["wsgi.url_scheme"] = environ.get("HTTP_X_FORWARDED_PROTO", "http")
    return environ


def tune_transport(eio: Any) -> None:
    """This Engine.IO server's websockets uncompressed, its environ small and with the
    peer's address (its own copy of the table). ``PacketGuardServer`` applies it, with
    its sockets' lean queues: its sockets rely on both."""
    eio._async = {
        **eio._async,
        "websocket": PlainWebSocket,
        "translate_request": translate_request,
    }


class FastJson:
    """The ``json`` module interface python-socketio uses, backed by orjson."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:  # what orjson refuses (an integer beyond 64 bits)
            return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(data: str | bytes, **_kwargs: Any) -> Any:
        # orjson refuses nesting deeper than 1024 with a JSONDecodeError (a ValueError):
        # both packet decoders treat that as bad input, never a RecursionError.
        return orjson.loads(data)
