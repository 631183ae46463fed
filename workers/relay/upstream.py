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
"""

from __future__ import annotations

from importlib import metadata

READ = {"python-socketio": "5.18.1", "python-engineio": "4.15.1"}


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
