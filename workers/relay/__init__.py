"""Socket.IO relay, mounted on the aiohttp app at /socket.io/."""

from __future__ import annotations

import os
import socket
import uuid

from .rooms import room
from .server import Relay

__all__ = ["Relay", "new_relay_id", "room"]


def new_relay_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
