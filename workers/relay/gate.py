"""Connection limits of one relay: what a socket may hold before and after it authenticates.

Two levels, because an Engine.IO socket exists before any Socket.IO CONNECT (and token):

* **Transport** (Engine.IO open, before the token): every new socket takes a token from its
  address's bucket (``CONNECT_RATE_PER_IP``/``CONNECT_BURST_PER_IP``); a socket that has
  not completed the Socket.IO connect with a valid token within ``CONNECT_TIMEOUT`` seconds
  is closed. Beyond twice the open-connection caps (an address, or the relay) new
  transports are refused outright (HTTP 401 before any socket exists): that bounds file
  descriptors held by sockets that never send CONNECT.
* **Connect** (Socket.IO CONNECT): refused with a ``connect_error`` whose ``data.code``
  says why: ``connect_rate_limited``, ``too_many_connections`` (this address),
  ``server_full`` (this relay), ``too_many_user_connections`` (this user). A refused
  socket is closed right after its ``connect_error``.

The client address is the peer address; ``X-Forwarded-For`` is believed only when the peer
is one of ``TRUSTED_PROXIES`` (then the nearest address not itself a trusted proxy).

Also here: a socket whose client stops reading is closed once ``MAX_QUEUED_PACKETS``
packets wait for it, instead of buffering without bound (Engine.IO's send queue has no
limit; aiohttp's writer blocks on a full TCP window).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..config import Network
from ..errors import ApiError
from ..tasks import spawn
from .packets import PacketGuardServer
from .ratelimit import Budget

log = logging.getLogger(__name__)

NAMESPACE = "/"
EIO_SID_KEY = "chat.eio_sid"  # where the relay finds the Engine.IO sid in the environ
_REFUSED_GRACE = 1.0  # seconds a refused socket keeps to read its connect_error


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 10_000
    max_per_ip: int = 200
    max_per_user: int = 20
    connect_timeout: float = 5.0
    connect_rate_per_ip: float = 5.0
    connect_burst_per_ip: int = 50
    max_queued_packets: int = 1_000
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(slots=True)
class _Transport:
    ip: str
    rate_limited: bool
    timer: asyncio.TimerHandle | None = None
    user_id: uuid.UUID | None = None  # set once the Socket.IO connect succeeded


@dataclass(slots=True)
class Gate:
    """The counts behind the limits (no I/O)."""

    limits: Limits
    transports: dict[str, _Transport] = field(default_factory=dict)
    per_ip: Counter[str] = field(default_factory=Counter)  # open transports
    connected_per_ip: Counter[str] = field(default_factory=Counter)
    connected_per_user: Counter[uuid.UUID] = field(default_factory=Counter)
    connected: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # by code
    _rate: Budget = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rate = Budget(
            name="connect",
            rate=self.limits.connect_rate_per_ip,
            burst=self.limits.connect_burst_per_ip,
        )

    def client_ip(self, environ: dict[str, Any]) -> str:
        """The address limits count by: the peer, or behind a trusted proxy the nearest
        forwarded address that is not itself a proxy; an IPv6 address counts as its /64
        (one subscriber's allocation: any of its 2^64 addresses is the same client)."""
        return _counted(self._client_address(environ))

    def _client_address(self, environ: dict[str, Any]) -> str:
        peer = str(environ.get("REMOTE_ADDR") or "unknown")
        if not self.limits.trusted_proxies or not self._trusted(peer):
            return peer
        hops = [h.strip() for h in str(environ.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
        for hop in reversed([h for h in hops if h]):
            if not self._trusted(hop):
                return hop if _is_ip(hop) else peer
        return peer

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.limits.trusted_proxies)

    # ------------------------------------------------------------------ transport
    async def open_transport(self, eio_sid: str, environ: dict[str, Any]) -> str | None:
        """Record a new Engine.IO socket; a code when it must be refused outright."""
        ip = self.client_ip(environ)
        limits = self.limits
        if len(self.transports) >= 2 * limits.max_connections:
            return self._refuse("server_full")
        if self.per_ip[ip] >= 2 * limits.max_per_ip:
            return self._refuse("too_many_connections")
        rate_limited = not await self._rate.allow(ip)
        self.transports[eio_sid] = _Transport(ip=ip, rate_limited=rate_limited)
        self.per_ip[ip] += 1
        return None

    def close_transport(self, eio_sid: str) -> None:
        transport = self.transports.pop(eio_sid, None)
        if transport is None:
            return
        if transport.timer is not None:
            transport.timer.cancel()
        _decrement(self.per_ip, transport.ip)
        if transport.user_id is not None:
            self.connected -= 1
            _decrement(self.connected_per_ip, transport.ip)
            _decrement(self.connected_per_user, transport.user_id)

    def is_pending(self, eio_sid: str) -> bool:
        transport = self.transports.get(eio_sid)
        return transport is not None and transport.user_id is None

    @property
    def pending(self) -> int:
        """Sockets that have not completed the Socket.IO connect."""
        return len(self.transports) - self.connected

    # ------------------------------------------------------------------ connect
    def admit(self, eio_sid: str | None) -> None:
        """Before the token is checked: the address's rate and caps, the relay's cap."""
        transport = self.transports.get(eio_sid) if eio_sid else None
        if transport is None:
            return
        limits = self.limits
        if transport.rate_limited:
            raise self._error("connect_rate_limited", "too many connections from this address")
        if self.connected_per_ip[transport.ip] >= limits.max_per_ip:
            raise self._error(
                "too_many_connections",
                f"at most {limits.max_per_ip} connections from one address",
            )
        if self.connected >= limits.max_connections:
            raise self._error("server_full", "this relay is full; try again later")

    def admit_user(self, eio_sid: str | None, user_id: uuid.UUID) -> None:
        """After the token: the user's cap; then the socket counts as connected."""
        if self.connected_per_user[user_id] >= self.limits.max_per_user:
            raise self._error(
                "too_many_user_connections",
                f"at most {self.limits.max_per_user} connections per user",
            )
        transport = self.transports.get(eio_sid) if eio_sid else None
        if transport is None or transport.user_id is not None:
            return
        transport.user_id = user_id
        self.connected += 1
        self.connected_per_ip[transport.ip] += 1
        self.connected_per_user[user_id] += 1
        if transport.timer is not None:
            transport.timer.cancel()
            transport.timer = None

    def _refuse(self, code: str) -> str:
        self.refused[code] += 1
        return code

    def _error(self, code: str, message: str) -> ApiError:
        self.refused[code] += 1
        return ApiError(429 if code != "server_full" else 503, code, message)


def _decrement(counter: Counter[Any], key: Any) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _counted(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


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

        asyncio.get_running_loop().call_later(_REFUSED_GRACE, close)

    async def close_transport(self, eio_sid: str, *, abort: bool = False) -> None:
        """Close an Engine.IO socket without waiting for its client to read anything."""
        environ = self.environ.get(eio_sid) or {}  # read first: closing forgets it
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not socket.closed:
            await socket.close(wait=False, abort=abort)
        self.eio.sockets.pop(eio_sid, None)
        request = environ.get("aiohttp.request")
        # A direct websocket's request owns the connection: cut it (a polling request's
        # connection is shared keep-alive, and its socket is gone from the server anyway).
        if request is not None and "transport=websocket" in str(environ.get("QUERY_STRING")):
            transport = request.transport
            if transport is not None:
                transport.abort()
        self.gate.close_transport(eio_sid)

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        if not self._over_limit(eio_sid):
            await super()._send_packet(eio_sid, pkt)

    async def _send_eio_packet(self, eio_sid: str, eio_pkt: Any) -> None:
        # Room emits come this way (encoded once for all the room's sockets).
        if not self._over_limit(eio_sid):
            await super()._send_eio_packet(eio_sid, eio_pkt)

    def _over_limit(self, eio_sid: str) -> bool:
        """True when this socket's client has stopped reading: ``max_queued_packets``
        wait for it. The socket is then closed (once) and nothing more is queued."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.queue.qsize() < self.gate.limits.max_queued_packets:
            return False
        if not socket.closed and not socket.closing:
            self.overflowed += 1
            log.warning("closing socket %s: its client stopped reading", eio_sid)
            spawn(self.close_transport(eio_sid, abort=True), name="slow-reader")
        return True
