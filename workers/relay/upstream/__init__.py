"""Every adaptation of python-socketio's, python-engineio's and aiohttp's internals, in this
package, and the check that the installed versions are the ones they were read from.

The relay needs a few things none of them offers as a documented extension point
(``client_manager``, ``json``, ``async_handlers`` and the event handlers are used where
they suffice). Everything else lives here, each override read from python-socketio 5.18.1,
python-engineio 4.15.1 and aiohttp 3.14.5:

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

* ``connection.py``: a websocket's connection handed over from aiohttp once its
  handshake is answered (``transport.set_protocol``): aiohttp's request handling returns
  and lets go of the request, its parser, tasks and coroutine frames (about 15 KB per
  idle socket); the connection parses frames with aiohttp's ``WebSocketReader`` and hands
  each message to the Engine.IO socket (read from aiohttp 3.14.5).

``OVERRIDDEN`` names each upstream function or method the relay replaces or depends on the
inner workings of; ``tests/upstream/<name>.py.txt`` holds its source as read, and
``tests/test_upstream.py`` compares it with the installed one, so an upgrade shows what
changed. The relay refuses to start on other versions (``check``, run when
``workers.relay`` is imported) until they are read again and ``READ`` is updated
(``pyproject.toml`` pins the same versions).
"""

from __future__ import annotations

from importlib import metadata

READ = {"python-socketio": "5.18.1", "python-engineio": "4.15.1", "aiohttp": "3.14.5"}

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
    "engineio.async_drivers.aiohttp.WebSocket.wait": (
        "transport.py: an upgrade's probe read from the handed-over connection"
    ),
    "engineio.async_drivers.aiohttp.WebSocket.send": (
        "transport.py: written to the handed-over connection at once"
    ),
    "engineio.async_drivers.aiohttp.WebSocket.close": (
        "transport.py: the handed-over connection's closing frame, then closed"
    ),
    # aiohttp: a websocket's connection handed over after its handshake (connection.py).
    "aiohttp.web_ws.WebSocketResponse.write_eof": (
        "connection.py: nothing once the connection is handed over (no closing handshake)"
    ),
    "aiohttp.web_ws.WebSocketResponse._post_start": (
        "connection.py: what its reader queue (_reader._buffer) holds is read at hand-over"
    ),
    "aiohttp.web_protocol.RequestHandler.start": (
        "connection.py: with its transport set to None, its request loop ends without "
        "closing the handed-over connection"
    ),
    "aiohttp.web_protocol.RequestHandler.finish_response": (
        "connection.py: a handed-over response's write_eof is all it does to it"
    ),
    "aiohttp.web_server.Server.connection_lost": (
        "connection.py: forgets the handler once its request handling returns"
    ),
    # The compiled reader (reader_c) is built from reader_py.py's source.
    "aiohttp._websocket.reader_py.WebSocketReader.__init__": (
        "connection.py: (queue, max_msg_size, compress, decode_text), positional"
    ),
    "aiohttp._websocket.reader_py.WebSocketReader.feed_data": (
        "connection.py: a protocol error is reported by set_exception on the queue"
    ),
    "aiohttp._websocket.reader_py.WebSocketReader._handle_frame": (
        "connection.py: each complete message fed to the queue synchronously, as a WSMessage"
    ),
    "aiohttp._websocket.reader_py.WebSocketDataQueue.feed_data": (
        "connection.py: _Sink hands each message to its connection instead of queueing it"
    ),
    "aiohttp._websocket.reader_py.WebSocketDataQueue.feed_eof": ("connection.py: _Sink: nothing"),
    "aiohttp._websocket.reader_py.WebSocketDataQueue.set_exception": (
        "connection.py: _Sink closes its connection with the error's code"
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
