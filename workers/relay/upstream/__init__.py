"""Every adaptation of python-socketio's and python-engineio's internals, in this package,
and the check that the installed versions are the ones they were read from.

The relay needs a few things neither library offers as a documented extension point
(``client_manager``, ``json``, ``async_handlers`` and the event handlers are used where
they suffice). Everything else lives here, each override read from python-socketio 5.18.1
and python-engineio 4.15.1:

* ``packets.py``: ``PacketGuardServer`` and ``_GuardedSocket``. An undecodable packet (at
  either protocol level) closes its connection with one log line instead of a traceback
  per packet; outgoing packets are not walked for binary data (the relay sends JSON only:
  ``Packet.uses_binary_events``). An Engine.IO socket on a websocket holds no task or
  loop timer of its own: packets are written as they are sent (``send``, no writer
  task), and its next ping and the moment its client counts as gone are deadlines of the
  relay's ``..deadlines.Deadlines`` (``schedule_ping``, ``_websocket_handler``); a
  polling socket's queue is a ``LeanQueue`` (``AsyncServer.create_queue``, ``poll``).
* ``transport.py``: websockets without permessage-deflate, whose frames can be written
  without awaiting (Engine.IO's aiohttp ``WebSocket``), a smaller environ with the peer's
  real address (its aiohttp ``translate_request``), both swapped into the Engine.IO
  server's ``_async`` table; the lean queue; orjson as the JSON module.
* ``server.py``: ``GuardedServer``. The connection limits of ``..gate`` applied before a
  socket exists (``_handle_eio_connect``) and released with it (``_handle_eio_disconnect``);
  a socket whose client stopped reading closed at ``MAX_QUEUED_PACKETS`` (``_send_packet``,
  ``_send_eio_packet``).
* ``redis_queue.py`` and ``manager.py``: an emit without a callback writes to each
  recipient in turn, without a task per recipient (``AsyncManager.emit``); the Redis
  manager publishes through the fail-fast Redis link (nothing, at no cost, while Redis is
  down), its listener's reconnect sleep is capped at one second, and a batch of another
  relay's committed messages becomes ``new_message`` to each room once.

``OVERRIDDEN`` names each upstream function or method the relay replaces or depends on the
inner workings of; ``tests/upstream/<name>.py.txt`` holds its source as read, and
``tests/test_upstream.py`` compares it with the installed one, so an upgrade shows what
changed. The relay refuses to start on other versions (``check``, run when
``workers.relay`` is imported) until they are read again and ``READ`` is updated
(``pyproject.toml`` pins the same versions).
"""

from __future__ import annotations

from importlib import metadata

READ = {"python-socketio": "5.18.1", "python-engineio": "4.15.1"}

# upstream function or method -> where the relay adapts it, and why
OVERRIDDEN = {
    "socketio.async_server.AsyncServer._handle_eio_connect": (
        "server.py: admit or refuse a connection before a socket exists; packets.py: each "
        "Engine.IO socket becomes a guarded one before its first packet"
    ),
    "socketio.async_server.AsyncServer._handle_eio_disconnect": (
        "server.py: the gate forgets the connection whatever happened in the handler"
    ),
    "socketio.async_server.AsyncServer._handle_eio_message": (
        "packets.py: an undecodable packet closes its connection with one log line"
    ),
    "socketio.async_server.AsyncServer._send_packet": (
        "server.py: a socket whose client stopped reading is closed at max_queued_packets"
    ),
    "socketio.async_server.AsyncServer._send_eio_packet": (
        "server.py: the same for room emits (encoded once for the room)"
    ),
    "socketio.packet.Packet.__init__": (
        "packets.py: uses_binary_events off, so outgoing data is not walked for bytes"
    ),
    "socketio.packet.Packet.decode": (
        "packets.py: a decoding failure of untrusted text is a MalformedPacket"
    ),
    "socketio.packet.Packet.add_attachment": ("packets.py: the same for binary attachments"),
    "socketio.async_redis_manager.AsyncRedisManager._publish": (
        "redis_queue.py: publishes through the fail-fast Redis link (nothing, at no cost, "
        "while Redis is down)"
    ),
    "socketio.async_redis_manager.AsyncRedisManager._redis_listen_with_retries": (
        "redis_queue.py: the listener's reconnect sleep capped at one second"
    ),
    "socketio.async_manager.AsyncManager.emit": (
        "manager.py: an emit without a callback writes to each recipient in turn, no task "
        "per recipient"
    ),
    "socketio.async_pubsub_manager.AsyncPubSubManager._handle_emit": (
        "manager.py: a batch of another relay's committed messages becomes new_message to "
        "each room, once (the changefeed is told)"
    ),
    "engineio.async_socket.AsyncSocket._websocket_handler": (
        "packets.py: no writer task (packets are written as they are sent), no task and "
        "wait_for per read (a deadline notices a silent client)"
    ),
    "engineio.async_socket.AsyncSocket.send": (
        "packets.py: written to the websocket at once (queued only for a poll), no await"
    ),
    "engineio.async_socket.AsyncSocket.schedule_ping": (
        "packets.py: the next ping a deadline of the relay's Deadlines, not a sleeping task "
        "per socket"
    ),
    "engineio.async_socket.AsyncSocket.poll": (
        "packets.py: waits on the lean queue's future, without wait_for's task and timer"
    ),
    "engineio.async_socket.AsyncSocket.close": (
        "packets.py: a closed websocket is closed at once, its deadlines cancelled"
    ),
    "engineio.async_socket.AsyncSocket.receive": (
        "packets.py: an unknown Engine.IO packet type closes the connection"
    ),
    "engineio.async_drivers.aiohttp.WebSocket.__call__": (
        "transport.py: the websocket response without permessage-deflate"
    ),
    "engineio.async_drivers.aiohttp.translate_request": (
        "transport.py: only the headers something reads, and the peer's real address"
    ),
}


class UpstreamMismatch(RuntimeError):
    """An installed version differs from the one the relay's adaptations were read from."""


def check(versions: dict[str, str] | None = None) -> None:
    """Raise :class:`UpstreamMismatch` naming each package whose installed version is not
    the one read."""
    installed = versions if versions is not None else {n: metadata.version(n) for n in READ}
    wrong = [
        f"{name} {installed.get(name)} (the relay's adaptations were read from {want})"
        for name, want in READ.items()
        if installed.get(name) != want
    ]
    if wrong:
        raise UpstreamMismatch(
            "installed "
            + "; ".join(wrong)
            + ": re-read the overridden methods (workers/relay/upstream/ lists them) "
            "before changing the pins in pyproject.toml"
        )
