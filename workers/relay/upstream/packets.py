"""A Socket.IO server that closes a connection sending an undecodable packet.

python-socketio lets a decoding failure (a ``RecursionError`` from deeply nested JSON, a
bad binary attachment, an unknown packet type) escape to Engine.IO, which logs a
traceback of several kilobytes per packet and keeps the socket open; Engine.IO does the
same with a packet type it does not know. Here such a packet costs one log line and the
connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import engineio
import socketio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from socketio import packet

from ...tasks import spawn
from ..deadlines import Deadlines
from .transport import LeanQueue, frame, tune_transport

log = logging.getLogger(__name__)

# Messages received from one websocket and not yet read, past which its connection stops
# reading until they are.
_INBOX_HIGH = 64

# What decoding untrusted text can raise (json, int(), slicing, the binary placeholders).
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)


class _SafeJson:
    """The ``json`` module, but too deep a nesting is a ``ValueError`` (which both packet
    decoders treat as bad input) rather than a ``RecursionError``."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(text: Any, **kwargs: Any) -> Any:
        try:
            return json.loads(text, **kwargs)
        except RecursionError:
            raise ValueError("JSON nested too deeply") from None


class MalformedPacket(Exception):
    """A packet that cannot be decoded; the connection that sent it is closed."""


class _CheckedPacket(packet.Packet):
    """A Socket.IO packet whose decoding failure is a :class:`MalformedPacket`, and which
    never looks for binary data to send: the relay sends JSON only (files travel as URLs),
    and python-socketio otherwise walks every outgoing packet's data for ``bytes``
    (``Packet.data_is_binary``: about 2 % of the relay's CPU at 1,000 messages a second,
    by py-spy). A client's binary packets are decoded as before."""

    uses_binary_events = False

    def decode(self, encoded_packet: Any) -> Any:
        try:
            return super().decode(encoded_packet)
        except _DECODE_ERRORS as exc:
            raise MalformedPacket(type(exc).__name__) from None

    def add_attachment(self, attachment: Any) -> Any:
        try:
            return super().add_attachment(attachment)
        except _DECODE_ERRORS as exc:
            raise MalformedPacket(type(exc).__name__) from None


class _GuardedSocket(engineio.async_socket.AsyncSocket):
    """An Engine.IO socket that hangs up on a packet type Engine.IO does not know (it
    would log a traceback for each and carry on), and that holds no task or loop timer
    of its own while idle:

    * on a websocket, ``send`` writes the frame at once (``PlainWebSocket.write_now``)
      instead of queueing it for a writer task (Engine.IO's: a task per socket, and a
      task step per packet);
    * its next ping, the moment its client counts as gone (nothing read for the ping
      interval plus the ping timeout) and nothing else wait in the relay's
      ``Deadlines`` (``server.deadlines``), not in a sleeping task, a loop timer or a
      ``wait_for`` around every read.

    A long-polling socket (and one in the middle of its upgrade) still queues for its
    poll request, as Engine.IO does."""

    # Engine.IO's own attributes (it has no annotations).
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool
    closing: bool
    closed: bool
    # The relay's (class defaults: sockets become guarded after Engine.IO created them).
    _direct: Any = None  # the PlainWebSocket written to directly, once upgraded
    _last_read = 0.0  # loop time of the last frame read from the websocket
    _alive: Any = None  # the Deadline checking that the client is still there
    _pinging: Any = None  # the Deadline of the next ping
    _timing_out = False  # a close for a missed ping has been started
    _websocket: Any = None  # the PlainWebSocket, once messages come from its connection
    _inbox: list[str | bytes | None] | None = None  # messages received, not yet read
    _reading: asyncio.Task[None] | None = None  # the task reading them, while there are some
    _reading_paused = False  # the connection stopped reading: the inbox is full
    _ended = False  # the socket has ended with its websocket
    _upgrading_ws: Any = None  # the PlainWebSocket in its upgrade exchange, meanwhile

    def pending(self) -> int:
        """Packets waiting for this client: queued for a poll, or written to a
        websocket while earlier frames still waited in the relay's buffer."""
        direct = self._direct
        return direct.waiting() if direct is not None else self.queue.qsize()

    def schedule_ping(self) -> None:
        # Engine.IO's own: a task sleeping ping_interval, then send(PING).
        if self.last_ping:
            self.last_ping = None
            self._pinging = self.server.deadlines.after(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        self._pinging = None
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            self.send_now(eio_packet.Packet(eio_packet.PING))

    async def send(self, pkt: Any) -> None:
        self.send_now(pkt)

    def send_now(self, pkt: Any, data: bytes | None = None) -> None:
        """Engine.IO's ``send`` without an await: on a websocket the frame is written now
        (``data``: ``pkt`` already framed, by a room emit), otherwise it is queued for the
        next poll. A socket whose client missed a ping is closed instead (as Engine.IO's
        ``check_ping_timeout``)."""
        if self.closed:
            raise eio_exceptions.SocketIsClosedError()
        last_ping = self.last_ping
        if last_ping and time.time() - last_ping > self.server.ping_timeout:
            if not self._timing_out and not self.closing:
                self._timing_out = True
                spawn(
                    self.close(wait=False, abort=False, reason=self.server.reason.PING_TIMEOUT),
                    name="ping-timeout",
                )
            return
        direct = self._direct
        if direct is None:
            self.queue.put_nowait(pkt)
            return
        try:
            direct.write_frame(data if data is not None else frame(pkt.encode()))
        except ConnectionResetError:
            pass  # the websocket is closing: its read loop ends the socket

    async def poll(self) -> list[Any]:
        """Engine.IO's ``poll`` (long-polling only), without ``wait_for`` (whose task,
        waiter, callback and timer the waiting request would hold)."""
        waiting = self.queue.get()
        try:
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                packets = [await waiting]
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError):
            if waiting.done() and not waiting.cancelled():  # given a packet as time ran out
                self.queue.requeue(waiting.result())
            raise eio_exceptions.QueueEmpty() from None
        if packets == [None]:
            return []
        while True:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    async def close(self, wait: bool = True, abort: bool = False, reason: Any = None) -> None:
        was_open = not self.closed and not self.closing
        await super().close(wait=wait, abort=abort, reason=reason)
        if was_open:
            self._stop_timers()
            direct = self._direct
            if direct is not None:
                # A closed websocket ends now, even for a client that keeps sending
                # frames: its connection reads nothing more and ends the socket once the
                # closing handshake is done, or is cut after CLOSE_WAIT seconds (a client
                # that does not read would never answer).
                self._direct = None
                spawn(direct.close(), name="websocket-close")
            elif self.upgrading:
                self.queue.put_nowait(None)  # mid-upgrade: the websocket, once ready, ends
                if self._upgrading_ws is not None:  # ... and one still in its exchange ends
                    spawn(self._upgrading_ws.close(), name="websocket-close")

    def _stop_timers(self) -> None:
        for deadline in (self._pinging, self._alive):
            if deadline is not None:
                deadline.cancel()
        self._pinging = self._alive = None

    async def receive(self, pkt: Any) -> None:
        kind = pkt.packet_type
        if not isinstance(kind, int) or not 0 <= kind < len(eio_packet.packet_names):
            server = self.server
            server.malformed_packets = getattr(server, "malformed_packets", 0) + 1
            log.warning(
                "closing connection %s: undecodable Engine.IO packet (type %s)",
                self.sid,
                str(kind)[:10],
            )
            await self.close(wait=False, abort=True)
            raise eio_exceptions.SocketIsClosedError()
        await super().receive(pkt)

    async def _websocket_handler(self, ws: Any) -> Any:
        # Engine.IO decodes each frame outside its own error handling: an empty frame or
        # one not starting with a digit would end the request with a traceback.
        try:
            return await self._serve_websocket(ws)
        except _DECODE_ERRORS as exc:
            await self._malformed(ws, exc)
            return None

    def _check_alive(self, ws: Any) -> None:
        """The client's deadline: nothing read for the ping interval plus the ping
        timeout closes its websocket (its read loop then ends the socket)."""
        self._alive = None
        if self._direct is not ws:
            return
        server = self.server
        idle = server.ping_interval + server.ping_timeout
        quiet = asyncio.get_running_loop().time() - self._last_read
        if quiet >= idle:
            # Gone: no closing handshake (it would wait for a client that does not read).
            self._direct = None
            ws.abort()
        else:  # (a deadline may fire a millisecond early: never sooner than a step)
            delay = max(idle - quiet, server.deadlines.resolution)
            self._alive = server.deadlines.after(delay, self._check_alive, ws)

    async def _serve_websocket(self, ws: Any) -> None:
        """Engine.IO 4.15's ``AsyncSocket._websocket_handler``, but without its writer task
        (packets are written as they are sent) and without a task and ``wait_for`` per
        read: once the socket is on the websocket, its connection hands over each message
        (``frame_received``) and this handler returns, and a deadline notices a silent
        client."""
        if self.connected:
            # the socket was already connected (polling): this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade
            self._upgrading_ws = ws  # closed with the socket, if that comes first
            try:
                await self._upgrade_websocket_probe(ws)
            finally:
                self._upgrading_ws = None
            if not self.upgraded:
                return
        else:
            self.connected = True
            self.upgraded = True
        await self._serve_direct(ws)

    async def _upgrade_websocket_probe(self, ws: Any) -> None:
        """Engine.IO's upgrade exchange on the new websocket (probe, then UPGRADE); the
        socket counts as upgraded only once it completes."""
        server = self.server
        limit = server.max_http_buffer_size

        async def websocket_wait() -> Any:
            # (a client that never finishes its upgrade: TimeoutError is an OSError)
            async with asyncio.timeout(server.ping_interval + server.ping_timeout):
                data = await ws.wait()
            if data and len(data) > limit:
                raise ValueError("packet is too large")
            return data

        try:
            pkt = await websocket_wait()
        except OSError:
            return
        decoded = eio_packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != eio_packet.PING or decoded.data != "probe":
            server.logger.info("%s: Failed websocket upgrade, no PING packet", self.sid)
            self.upgrading = False
            return
        await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
        await self.queue.put(eio_packet.Packet(eio_packet.NOOP))  # end poll
        try:
            pkt = await websocket_wait()
        except OSError:
            self.upgrading = False
            return
        decoded = eio_packet.Packet(encoded_packet=pkt)
        if decoded.packet_type != eio_packet.UPGRADE:
            self.upgraded = False
            server.logger.info(
                "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
                self.sid,
                pkt,
            )
            self.upgrading = False
            return
        self.upgraded = True
        self.upgrading = False

    async def _serve_direct(self, ws: Any) -> None:
        """The socket on its websocket: what was queued is written, then its connection
        hands each message to ``frame_received``."""
        server = self.server
        # From here on packets are written as they are sent; what was queued before (the
        # OPEN packet, anything sent during an upgrade, the CLOSE packet of a socket
        # closed meanwhile) goes first, in order, and every item is marked done (a
        # close(wait=True) waits for that).
        closed = False
        while True:
            try:
                queued = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if queued is None:  # closed before its websocket was ready
                closed = True
            elif not closed:
                try:
                    ws.write_now(queued.encode())
                except ConnectionResetError:
                    closed = True
        closed = closed or self.closed
        if closed:
            self._direct = None
            self._stop_timers()
            await ws.close()
            await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
            return
        self._direct = self._websocket = ws
        self._last_read = asyncio.get_running_loop().time()
        self._alive = server.deadlines.after(
            server.ping_interval + server.ping_timeout, self._check_alive, ws
        )
        # From here the connection hands each message to frame_received, and this request
        # handler returns: aiohttp lets go of the request (connection.py).
        ws.connection.start(self)

    def frame_received(self, data: str | bytes | None) -> None:
        """A message from the websocket (``None``: the connection ended), read in order
        on a task that lives only while there are messages to read."""
        inbox = self._inbox
        if inbox is None:
            inbox = self._inbox = []
        inbox.append(data)
        if self._reading is None:
            self._reading = asyncio.get_running_loop().create_task(self._read_inbox())
        elif len(inbox) >= _INBOX_HIGH and not self._reading_paused:
            # A client sending faster than its packets are handled waits in its kernel
            # buffer, not in the relay's memory.
            websocket = self._websocket
            if websocket is not None:
                self._reading_paused = True
                websocket.connection.pause()

    async def _read_inbox(self) -> None:
        """Engine.IO's websocket read loop, for the messages received so far."""
        server = self.server
        limit = server.max_http_buffer_size
        ws = self._websocket
        loop = asyncio.get_running_loop()
        ended = False
        try:
            while not ended and self._inbox:
                data = self._inbox.pop(0)
                if not isinstance(data, str | bytes) or len(data) > limit:
                    ended = True  # the connection ended (or a packet too large)
                    break
                if self.closed or self.closing:
                    ended = True  # nothing more is read for a socket that is closing
                    break
                self._last_read = loop.time()
                # Decoded outside the try: a frame that does not decode ends the
                # connection, it is not an error of the receiving code.
                try:
                    received = eio_packet.Packet(encoded_packet=data)
                except _DECODE_ERRORS as exc:
                    await self._malformed(ws, exc)
                    ended = True
                    break
                data = None
                try:
                    await self.receive(received)
                except eio_exceptions.UnknownPacketError:
                    pass
                except eio_exceptions.SocketIsClosedError:
                    server.logger.info("Receive error -- socket is closed")
                    ended = True
                except Exception:
                    server.logger.exception("Unknown receive error")
                received = None
                if self.closed:
                    ended = True
        finally:
            self._reading = None
            if ended:
                self._inbox = None
            elif not self._inbox:
                self._inbox = None
                if self._reading_paused and ws is not None:
                    self._reading_paused = False
                    ws.connection.resume()
        if ended:
            await self._end_websocket(ws)

    async def _end_websocket(self, ws: Any) -> None:
        """The websocket's connection ended (or must): the socket ends with it."""
        if self._ended:
            return
        self._ended = True
        self._direct = None
        self._stop_timers()
        await ws.close()
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        self._forget()

    def _forget(self) -> None:
        """Engine.IO forgets a websocket's socket when its request handler returns (that
        handler returned long ago), and the socket lets go of its websocket (they refer
        to each other)."""
        self._websocket = None
        if self.server.sockets.get(self.sid) is self:
            del self.server.sockets[self.sid]

    async def _malformed(self, ws: Any, exc: BaseException) -> None:
        server = self.server
        server.malformed_packets = getattr(server, "malformed_packets", 0) + 1
        log.warning(
            "closing connection %s: undecodable Engine.IO packet (%s)",
            self.sid,
            str(exc)[:80] or type(exc).__name__,
        )
        self._ended = True
        self._direct = None
        await ws.close()  # first: nothing more is read from it
        await self.close(wait=False, abort=True)
        self._forget()


class PacketGuardServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` whose undecodable packets close their connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json", _SafeJson)
        super().__init__(*args, **kwargs)
        self.packet_class = _CheckedPacket
        # Its sockets (_GuardedSocket) wait on a LeanQueue: get() a plain future, requeue().
        self.eio.create_queue = lambda *args, **kwargs: LeanQueue()
        # ... and write to a PlainWebSocket (write_now), in a smaller environ.
        tune_transport(self.eio)
        # Every socket's ping and liveness deadlines, and whatever else the relay keeps per
        # socket (token expiry), on one loop timer (_GuardedSocket).
        self.deadlines = Deadlines()
        self.eio.deadlines = self.deadlines
        self.malformed_packets = 0

    @property
    def undecodable_packets(self) -> int:
        """Connections closed for an undecodable packet, at either protocol level."""
        return self.malformed_packets + getattr(self.eio, "malformed_packets", 0)

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        # Engine.IO creates its sockets itself; each becomes a guarded one before its
        # first packet is read (the connect event comes first).
        sock = self.eio.sockets.get(eio_sid)
        if type(sock) is engineio.async_socket.AsyncSocket:
            sock.__class__ = _GuardedSocket
        return await super()._handle_eio_connect(eio_sid, environ)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except (MalformedPacket, ValueError) as exc:
            # ValueError: python-socketio's own refusals (unknown packet type, unexpected
            # binary packet or CONNECT_ERROR), raised before any handler of ours runs.
            self.malformed_packets += 1
            self._binary_packet.pop(eio_sid, None)
            log.warning(
                "closing connection %s: undecodable Socket.IO packet (%s)",
                eio_sid,
                str(exc)[:80] or type(exc).__name__,
            )
            await self.eio.disconnect(eio_sid)
