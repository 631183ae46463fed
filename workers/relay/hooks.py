"""What the relay reports as it works. This base does nothing; the app installs
``workers.telemetry.Telemetry`` (audit, monitoring, metrics) as ``relay.hooks``.

Every hook is synchronous and cheap (it queues, it never waits on I/O), and must not
raise: the relay calls them on its hot paths.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..auth import Principal
from ..errors import ApiError


class RelayHooks:
    def connected(self, sid: str, principal: Principal) -> None:
        """A socket was accepted."""

    def connection_refused(
        self, error: ApiError, environ: dict[str, Any], token: str | None
    ) -> None:
        """A connection was refused (no, bad or expired token; a connection limit)."""

    def accepting(self, principal: Principal) -> bool:
        """False while an action of this user could not be audited (the audit writer is
        too far behind): the relay then refuses it with ``unavailable`` (fail closed)."""
        return True

    def disconnected(
        self, sid: str, principal: Principal, reason: Any, sessions: list[uuid.UUID]
    ) -> None:
        """An accepted socket went away; ``sessions`` it had joined."""

    def handled(self, event: str, principal: Principal, payload: Any, result: Any) -> None:
        """An event succeeded (``payload`` is the validated model)."""

    def failed(self, event: str, principal: Principal, error: ApiError, data: Any) -> None:
        """An event was refused or failed (``data`` is the raw payload)."""

    def left(self, principal: Principal, session_id: uuid.UUID) -> None:
        """A socket left a session (leave_session or disconnect)."""

    def delivered(self, payload: dict[str, Any]) -> None:
        """A committed message was emitted to its session's room as new_message."""

    def group_sent(self, waited: float, committing: float, held: float) -> None:
        """A group commit was emitted: its oldest send ``waited`` seconds for it to start,
        it took ``committing`` seconds to commit, and it was ``held`` seconds after its
        commit for earlier groups of the same sessions."""
