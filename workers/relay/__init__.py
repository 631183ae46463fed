"""Socket.IO relay, mounted on the aiohttp app at /socket.io/."""

from __future__ import annotations

import os
import socket
import uuid

from . import upstream

# Before anything imports the adapted internals: a different version fails here, clearly.
upstream.check()

from .rooms import room  # noqa: E402
from .server import Relay  # noqa: E402

__all__ = ["Relay", "new_relay_id", "room"]


def new_relay_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
