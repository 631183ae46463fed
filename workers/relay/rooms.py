"""Room names and per-socket state."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ..auth import Principal
from .deadlines import Deadline


def room(session_id: uuid.UUID | str) -> str:
    """The Socket.IO room of a chat session."""
    return f"session:{session_id}"


@dataclass(slots=True)
class SocketState:
    """What the relay knows about one connected socket."""

    principal: Principal
    sessions: set[uuid.UUID] = field(default_factory=set)
    expiry: Deadline | None = None  # the token's expiry
    quiet_until: float = 0.0  # rate-limit refusals before this are not audited again
