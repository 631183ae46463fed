"""A Socket.IO server that closes a connection sending an undecodable packet.

python-socketio lets a decoding failure (a ``RecursionError`` from deeply nested JSON, a
bad binary attachment, an unknown packet type) escape to Engine.IO, which logs a
traceback of several kilobytes per packet and keeps the socket open. Here such a packet
costs one log line and the connection.
"""

from __future__ import annotations

import logging
from typing import Any

import socketio
from socketio import packet

log = logging.getLogger(__name__)

# What decoding untrusted text can raise (json, int(), slicing, the binary placeholders).
_DECODE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError)


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


class PacketGuardServer(socketio.AsyncServer):
    """``socketio.AsyncServer`` whose undecodable packets close their connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.packet_class = _CheckedPacket
        self.malformed_packets = 0

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
