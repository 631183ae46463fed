"""python-socketio's server with the relay's gate at the Engine.IO level (``..gate``: the
limits themselves), a bounded send queue per socket, and undecodable packets closing their
connection (``PacketGuardServer``).

A socket whose client stops reading is closed once ``MAX_QUEUED_PACKETS`` packets wait for
it, instead of buffering without bound (Engine.IO's send queue has no limit; aiohttp's
writer blocks on a full TCP window).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from engineio import packet as eio_packet

from ...tasks import spawn
from ..gate import EIO_SID_KEY, REFUSED_GRACE, Gate
from .packets import PacketGuardServer
from .transport import WEBSOCKET_KEY

log = logging.getLogger(__name__)


class GuardedServer(PacketGuardServer):
    """python-socketio's server with the gate at the Engine.IO level, a bounded send queue
    per socket, and undecodable packets closing their connection (PacketGuardServer)."""

    def __init__(
        self, *, gate: Gate, on_refused: Callable[[str, str], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.gate = gate
        self._on_refused = on_refused
        self.overflowed = 0  # sockets closed because their client stopped reading

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        code = await self.gate.open_transport(eio_sid, environ)
        if code is not None:
            if self._on_refused is not None:
                self._on_refused(code, self.gate.client_ip(environ))
            # Engine.IO answers 401 with this body; no socket was created.
            return {"message": "connection refused", "data": {"code": code}}
        environ[EIO_SID_KEY] = eio_sid
        await super()._handle_eio_connect(eio_sid, environ)
        loop = asyncio.get_running_loop()
        self.gate.transports[eio_sid].timer = loop.call_later(
            self.gate.limits.connect_timeout, self._connect_deadline, eio_sid
        )
        return None

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.gate.close_transport(eio_sid)

    def _connect_deadline(self, eio_sid: str) -> None:
        if self.gate.is_pending(eio_sid):
            self.gate.refused["connect_timeout"] += 1
            spawn(self.close_transport(eio_sid), name="connect-timeout")

    def close_soon(self, eio_sid: str | None, *, pending_only: bool = True) -> None:
        """A refused socket: give it a moment to read its connect_error, then close it.
        ``pending_only=False``: a socket the relay disconnected (its client should hang up
        on the DISCONNECT packet; one that does not would keep its transport open)."""
        if eio_sid is None:
            return

        def close() -> None:
            still_there = (
                self.gate.is_pending(eio_sid) if pending_only else (eio_sid in self.eio.sockets)
            )
            if still_there:
                spawn(self.close_transport(eio_sid), name="close-refused")

        asyncio.get_running_loop().call_later(REFUSED_GRACE, close)

    async def close_transport(self, eio_sid: str, *, abort: bool = False) -> None:
        """Close an Engine.IO socket without waiting for its client to read anything."""
        environ = self.environ.get(eio_sid) or {}  # read first: closing forgets it
        socket = self.eio.sockets.get(eio_sid)
        websocket = getattr(socket, "_direct", None)  # read first: closing forgets it
        if socket is not None and not socket.closed:
            await socket.close(wait=False, abort=abort)
        self.eio.sockets.pop(eio_sid, None)
        # A websocket owns its connection: cut it, whether the socket began on it or was
        # upgraded from polling (a polling request's connection is shared keep-alive, and
        # its socket is gone from the server anyway).
        if websocket is not None:
            websocket.abort()
        # A socket that began on a websocket: its connection, even once the socket has let
        # go of it (the environ names it).
        opened_on = environ.get(WEBSOCKET_KEY)
        if opened_on is not None:
            opened_on.abort()
        self.gate.close_transport(eio_sid)

    def send_eio_packet_now(self, eio_sid: str, eio_pkt: Any, data: bytes | None = None) -> None:
        """One Engine.IO packet to one socket, without awaiting: written to its websocket
        now (``data``: the packet already framed) or queued for its poll. Nothing for a
        socket that is gone, or whose client stopped reading (closed here once)."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or self._over_limit(eio_sid, socket):
            return
        socket.send_now(eio_pkt, data)

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        encoded = pkt.encode()
        for part in encoded if isinstance(encoded, list) else (encoded,):
            self.send_eio_packet_now(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, data=part))

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        # Room emits come this way (encoded once for all the room's sockets).
        self.send_eio_packet_now(eio_sid, eio_pkt)

    def _over_limit(self, eio_sid: str, socket: Any) -> bool:
        """True when this socket's client has stopped reading: ``max_queued_packets``
        wait for it. The socket is then closed (once) and nothing more is sent."""
        if socket.pending() < self.gate.limits.max_queued_packets:
            return False
        if not socket.closed and not socket.closing:
            self.overflowed += 1
            log.warning("closing socket %s: its client stopped reading", eio_sid)
            spawn(self.close_transport(eio_sid, abort=True), name="slow-reader")
        return True
