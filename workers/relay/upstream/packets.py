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

from .transport import LeanQueue

log = logging.getLogger(__name__)

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
    would log a traceback for each and carry on), and whose next ping waits on a timer
    rather than in a task of its own (a sleeping task per idle socket: about 0.7 KB)."""

    # Engine.IO's own attributes (it has no annotations).
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool

    def schedule_ping(self) -> None:
        # Engine.IO's own: a task sleeping ping_interval, then send(PING).
        if self.last_ping:
            self.last_ping = None
            asyncio.get_running_loop().call_later(self.server.ping_interval, self._ping_due)

    def _ping_due(self) -> None:
        if not self.closing and not self.closed:
            self.last_ping = time.time()
            # What send() does once the ping timeout check has passed (it just has: the
            # clock starts now).
            self.queue.put_nowait(eio_packet.Packet(eio_packet.PING))

    async def poll(self) -> list[Any]:
        """Engine.IO's ``poll``, without ``wait_for`` (whose task, waiter, callback and
        timer an idle socket's writer would hold)."""
        waiting = self.queue.get()
        try:
            if self.upgraded:
                # The websocket writer: its reader ends it (queueing None) when the
                # connection ends or goes quiet, so no timer of its own.
                packets = [await waiting]
            else:  # a polling request: answered empty once the ping window is over
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
        if was_open and self.upgraded:
            # A closed websocket ends now: the writer (waiting without a timer) gets None,
            # closes the websocket, and that ends the reader, even for a client that keeps
            # sending frames after the server closed it.
            self.queue.put_nowait(None)

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
            server = self.server
            server.malformed_packets = getattr(server, "malformed_packets", 0) + 1
            log.warning(
                "closing connection %s: undecodable Engine.IO packet (%s)",
                self.sid,
                str(exc)[:80] or type(exc).__name__,
            )
            await self.queue.put(None)  # lets Engine.IO's writer task end
            await self.close(wait=False, abort=True)
            return None

    async def _serve_websocket(self, ws: Any) -> None:
        """Engine.IO 4.15's ``AsyncSocket._websocket_handler``, but each read waits under
        ``asyncio.timeout`` in the handler's own task: Engine.IO wraps every read in a new
        task and ``wait_for`` (a task and a timer held by every idle socket)."""
        server = self.server
        limit = server.max_http_buffer_size
        idle = server.ping_interval + server.ping_timeout

        async def websocket_wait() -> Any:
            data = await ws.wait()
            if data and len(data) > limit:
                raise ValueError("packet is too large")
            return data

        if self.connected:
            # the socket was already connected (polling): this is an upgrade
            self.upgrading = True  # hold packet sends during the upgrade
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
        else:
            self.connected = True
            self.upgraded = True

        async def writer() -> None:
            while True:
                try:
                    packets = await self.poll()
                except eio_exceptions.QueueEmpty:
                    break
                if not packets:
                    break  # an empty list: the connection is closing
                try:
                    for pkt in packets:
                        await ws.send(pkt.encode())
                except Exception:
                    break
            await ws.close()

        writer_task = asyncio.ensure_future(writer())
        while True:
            try:
                async with asyncio.timeout(idle):
                    p = await websocket_wait()
            except (asyncio.CancelledError, Exception):
                break  # closed, timed out, too large: as Engine.IO, the connection ends
            if p is None:
                break  # closed by the client
            received = eio_packet.Packet(encoded_packet=p)
            try:
                await self.receive(received)
            except eio_exceptions.UnknownPacketError:
                pass
            except eio_exceptions.SocketIsClosedError:
                server.logger.info("Receive error -- socket is closed")
                break
            except Exception:
                server.logger.exception("Unknown receive error")
            if self.closed:
                break

        await self.queue.put(None)  # unlock the writer task so it can exit
        await writer_task
        await self.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


class PacketGuardServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` whose undecodable packets close their connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json", _SafeJson)
        super().__init__(*args, **kwargs)
        self.packet_class = _CheckedPacket
        # Its sockets (_GuardedSocket) wait on a LeanQueue: get() a plain future, requeue().
        self.eio.create_queue = lambda *args, **kwargs: LeanQueue()
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
