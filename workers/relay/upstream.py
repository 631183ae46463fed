"""The versions of python-socketio and python-engineio whose private methods the relay
adapts, and the check that the installed ones are those.

The relay overrides internals read from these exact versions: Engine.IO's connection and
websocket handling (``packets.py``: ``_handle_eio_connect``, ``_handle_eio_message``,
``_websocket_handler``, ``_send_packet``; ``transport.py``: the socket queue and pings;
``gate.py``: admission before a socket exists) and the Redis manager's publishing and
listening (``manager.py``, ``redis_queue.py``: ``_publish``, ``_redis_listen_with_retries``,
``_handle_emit``). A different version may rename or reshape any of them without notice,
so the relay refuses to start on one until they are read again and this table is updated
(``pyproject.toml`` pins the same versions).

``OVERRIDDEN`` names each upstream method the relay replaces or depends on the inner workings
of; ``tests/upstream/<name>.py.txt`` holds its source as read, and ``tests/test_upstream.py``
compares it with the installed one, so an upgrade shows what changed.
"""

from __future__ import annotations

from importlib import metadata

READ = {"python-socketio": "5.18.1", "python-engineio": "4.15.1"}

# upstream method -> where the relay adapts it, and why
OVERRIDDEN = {
    "socketio.async_server.AsyncServer._handle_eio_connect": (
        "gate.py: admit or refuse a connection before a socket exists; packets.py: each "
        "Engine.IO socket becomes a guarded one before its first packet"
    ),
    "socketio.async_server.AsyncServer._handle_eio_message": (
        "packets.py: an undecodable packet closes its connection with one log line"
    ),
    "socketio.async_server.AsyncServer._send_packet": (
        "gate.py: a socket whose client stopped reading is closed at max_queued_packets"
    ),
    "socketio.async_server.AsyncServer._send_eio_packet": (
        "gate.py: the same for room emits (encoded once for the room)"
    ),
    "socketio.async_redis_manager.AsyncRedisManager._publish": (
        "redis_queue.py: publishes through the fail-fast Redis link (nothing, at no cost, "
        "while Redis is down)"
    ),
    "socketio.async_redis_manager.AsyncRedisManager._redis_listen_with_retries": (
        "redis_queue.py: the listener's reconnect sleep capped at one second"
    ),
    "socketio.async_pubsub_manager.AsyncPubSubManager._handle_emit": (
        "manager.py: a batch of another relay's committed messages becomes new_message to "
        "each room, once (the changefeed is told)"
    ),
    "engineio.async_socket.AsyncSocket._websocket_handler": (
        "packets.py: reads wait under asyncio.timeout, the writer without a timer (memory per "
        "idle socket)"
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
            + ": re-read the overridden methods (workers/relay/upstream.py lists them) "
            "before changing the pins in pyproject.toml"
        )
