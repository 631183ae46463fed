"""Service events in the audit log (chat_audit_logs), written in batches by the service role.

Data changes are audited by the database itself (triggers, every path); this writer adds
what only the service sees: socket connections and disconnections, refused connections,
joins, sends and uploads (with the reason), rate-limit hits, refused admin reads.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from .auth import Principal
from .batching import BatchWriter

# One statement per batch; the rows keep their order (ids follow it). The database stamps
# created_at (no role may backdate an audit row): when the service saw the event is kept
# in details.occurred_at.
INSERT_AUDIT = """
insert into public.chat_audit_logs (
  actor_id, actor_role, action, session_id, message_id, details
)
select r.actor_id, r.actor_role, r.action, r.session_id, r.message_id,
  coalesce(r.details, '{}'::jsonb)
  || jsonb_strip_nulls(jsonb_build_object('occurred_at', r.created_at))
from rows from (
  jsonb_to_recordset($1::jsonb) as (
    actor_id uuid, actor_role text, action text, session_id uuid, message_id uuid,
    details jsonb, created_at timestamptz
  )
) with ordinality as r (
  actor_id, actor_role, action, session_id, message_id, details, created_at, n
)
order by r.n
"""


class AuditWriter(BatchWriter):
    """Rows about an authenticated actor (``actor_id`` set) are never shed: when they
    fill the queue the writer reports :attr:`overloaded` and the relay and the REST API
    refuse new actions with ``unavailable`` until they are written. Rows without an actor
    (refusals of anonymous callers, already sampled) are shed first."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(name="audit", sql=INSERT_AUDIT, **kwargs)

    def sheddable(self, row: dict[str, Any]) -> bool:
        return row.get("actor_id") is None

    def record(
        self,
        action: str,
        *,
        actor: Principal | None = None,
        actor_role: str | None = None,
        session_id: uuid.UUID | str | None = None,
        message_id: uuid.UUID | str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Queue one audit row. ``actor`` is the user it is about (their app role is
        the actor role); without one, ``actor_role`` (default ``service_role``)."""
        self.append(
            {
                "actor_id": str(actor.user_id) if actor else None,
                "actor_role": actor.app_role if actor else (actor_role or "service_role"),
                "action": action[:100],
                "session_id": as_uuid(session_id),
                "message_id": as_uuid(message_id),
                "details": details or {},
                "created_at": dt.datetime.now(dt.UTC).isoformat(),
            }
        )


def as_uuid(value: Any) -> str | None:
    """A UUID as text, or None for anything that is not one (client input included)."""
    if value is None:
        return None
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError):
        return None
