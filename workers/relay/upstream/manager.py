"""Cross-relay fan-out of the messages a relay commits itself.

python-socketio's ``AsyncRedisManager`` (made resilient to Redis outages by
``ResilientRedisManager``) carries ephemeral events (typing, joins) between relays. For
committed messages this subclass adds one thing: a relay publishes each group of new
messages as ONE Redis message (not one per message), from a queue worked by one task, so
the group commit never waits on Redis. Receiving relays emit each message to their own
sockets, unless they already delivered it (their changefeed may have replayed it first
when the emit was late): ``relayed(payload) -> bool`` decides.

Losing such a publish (Redis down, queue full) loses nothing: every relay's changefeed
replays what committed and was not emitted on it, within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

from ..rooms import room
from .redis_queue import ResilientRedisManager
from .transport import frame

log = logging.getLogger(__name__)

_BATCH_EVENT = "chat:new_messages"  # never sent to clients: unpacked by the receiving relay
_QUEUE_LIMIT = 1000  # groups waiting to be published; beyond, the changefeed covers them


class DirectEmitManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager, whose emits without a callback write to each recipient
    in turn instead of starting a task per recipient and waiting for them all
    (``AsyncManager.emit``: two tasks and an ``asyncio.wait`` for every message to a
    two-person room). Sending never waits (``GuardedServer.send_eio_packet_now``), so the
    tasks bought nothing; the packet is encoded and framed once for the whole room."""

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> None:
        if callback:  # a packet per recipient, each with its own ack id
            await super().emit(
                event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, to=to
            )
            return
        room = to or room
        if namespace not in self.rooms:
            return
        if isinstance(data, tuple):  # expanded to several arguments, as upstream
            data = list(data)
        elif data is not None:
            data = [data]
        else:
            data = []
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = self.server.packet_class(
            packet.EVENT, namespace=namespace, data=[event, *data]
        ).encode()
        eio_pkts = [
            eio_packet.Packet(eio_packet.MESSAGE, part)
            for part in (encoded if isinstance(encoded, list) else (encoded,))
        ]
        # Framed once for the whole room too (a websocket writes these bytes as they are).
        frames = [frame(pkt.encode()) for pkt in eio_pkts]
        send = self.server.send_eio_packet_now
        # The participants are listed first: a write never changes a room, but a socket
        # closed for a full buffer leaves its rooms once its task runs.
        for sid, eio_sid in list(self.get_participants(namespace, room)):
            if sid in skip:
                continue
            try:
                for pkt, data in zip(eio_pkts, frames, strict=True):
                    send(eio_sid, pkt, data)
            except Exception:  # one recipient never stops the others
                log.exception("emitting %s to %s failed", event, sid)


# After AsyncPubSubManager in the method order, before AsyncManager: the pub/sub manager's
# local deliveries (``super().emit``) come to DirectEmitManager.emit.
class ChatRedisManager(ResilientRedisManager, DirectEmitManager):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.relayed: Callable[[dict[str, Any]], bool] | None = None
        self._outbox: asyncio.Queue[list[dict[str, Any]]] = asyncio.Queue(_QUEUE_LIMIT)
        self._publisher: asyncio.Task[None] | None = None
        self.dropped = 0

    def publish_messages(self, payloads: list[dict[str, Any]]) -> None:
        """Queue a group of committed messages for the other relays (never waits)."""
        if self._publisher is None:
            self._publisher = asyncio.create_task(self._publish_forever(), name="relay-publish")
        try:
            self._outbox.put_nowait(payloads)
        except asyncio.QueueFull:
            self.dropped += len(payloads)

    async def close_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._publisher
            self._publisher = None

    async def _publish_forever(self) -> None:
        while True:
            payloads = await self._outbox.get()
            try:
                await self._publish(
                    {
                        "method": "emit",
                        "event": _BATCH_EVENT,
                        "data": [payloads],
                        "binary": False,
                        "namespace": "/",
                        "room": None,
                        "skip_sid": None,
                        "callback": None,
                        "host_id": self.host_id,
                    }
                )
            except asyncio.CancelledError:
                raise
            except Exception:  # the other relays' changefeeds replay what they missed
                log.warning("could not publish %d message(s) to other relays", len(payloads))

    async def _handle_emit(self, message: dict[str, Any]) -> None:
        if message.get("event") != _BATCH_EVENT:
            await super()._handle_emit(message)
            return
        data = message.get("data")
        payloads = data[0] if isinstance(data, list) and data else []
        for payload in payloads if isinstance(payloads, list) else []:
            if not isinstance(payload, dict) or "session_id" not in payload:
                continue
            if self.relayed is not None and not self.relayed(payload):
                continue
            await self.emit(
                "new_message",
                payload,
                room=room(payload["session_id"]),
                namespace="/",
                ignore_queue=True,
            )
