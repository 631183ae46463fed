"""A Socket.IO server that closes a connection sending an undecodable packet.

python-socketio lets a decoding failure (a ``RecursionError`` from deeply nested JSON, a
bad binary attachment, an unknown packet type) escape to Engine.IO, which logs a
traceback of several kilobytes per packet and keeps the socket open; Engine.IO does the
same with a packet type it does not know. Here such a packet costs one log line and the
connection.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import engineio
import socketio
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from socketio import packet

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
    would log a traceback for each and carry on)."""

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
            return await super()._websocket_handler(ws)
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


class PacketGuardServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` whose undecodable packets close their connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json", _SafeJson)
        super().__init__(*args, **kwargs)
        self.packet_class = _CheckedPacket
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
