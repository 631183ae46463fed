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

The server that applies these limits at the Engine.IO level, and closes a socket whose
client stops reading once ``MAX_QUEUED_PACKETS`` packets wait for it, is
``upstream.server.GuardedServer``: it overrides python-socketio's internals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any

from ..config import Bucket, Network, Settings
from ..errors import ApiError
from .ratelimit import Budget

log = logging.getLogger(__name__)

NAMESPACE = "/"
EIO_SID_KEY = "chat.eio_sid"  # where the relay finds the Engine.IO sid in the environ
REFUSED_GRACE = 1.0  # seconds a refused socket keeps to read its connect_error

# The limits default to what the settings default to (workers/config.py, their one home).
_DEFAULT: dict[str, Any] = {f.name: f.default for f in fields(Settings)}


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = _DEFAULT["max_connections"]
    max_per_ip: int = _DEFAULT["max_connections_per_ip"]
    max_per_user: int = _DEFAULT["max_connections_per_user"]
    connect_timeout: float = _DEFAULT["connect_timeout"]
    connect_per_ip: Bucket = _DEFAULT["connect_bucket_per_ip"]
    max_queued_packets: int = _DEFAULT["max_queued_packets"]
    trusted_proxies: tuple[Network, ...] = _DEFAULT["trusted_proxies"]


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
        self._rate = Budget(name="connect", bucket=self.limits.connect_per_ip)

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
