"""What the service does after the database erased a user (a delete from auth.users).

The erasure itself happens in SQL, in the deleting transaction (see the erasure migration
and docs/data-lifecycle.md). The database cannot reach the object store nor the sockets,
so the service follows up from what committed:

* every relay hears the erasure on the changefeed and disconnects the user's sockets and
  tells the other participants (``Relay._db_erased``);
* one relay, the lifecycle leader, removes queued files from the store
  (``chat_private.object_purges``), sends ``chat.user.erased`` to the host platform when
  webhooks are on, and finishes the erasure (the audit rows the file removals wrote are
  erased too, and the user's id is dropped).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from ..db import Database
from ..storage import ObjectStore

log = logging.getLogger(__name__)

USER_ERASED = "chat.user.erased"
MESSAGE_REPORTED = "chat.message.reported"
_BATCH = 200

_ENQUEUE_WEBHOOK = """
insert into chat_private.webhook_outbox (event_type, dedupe_key, user_id, payload)
values ($1, $2, $3, $4::jsonb)
on conflict (dedupe_key) do nothing
"""


@dataclass(frozen=True, slots=True)
class FollowUp:
    files_removed: int = 0
    erasures_finished: int = 0


def user_erased_payload(
    *, user_id: uuid.UUID, erasure_id: int, mode: str, counts: dict[str, Any], at: dt.datetime
) -> dict[str, Any]:
    """The Standard Webhooks body of ``chat.user.erased``: the one event that still names
    the user, so the host platform can erase its side too."""
    return {
        "type": USER_ERASED,
        "timestamp": at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": {
            "user_id": str(user_id),
            "erasure_id": erasure_id,
            "mode": mode,
            "sessions_deleted": counts.get("sessions_deleted", 0),
            "sessions_left": counts.get("sessions_left", 0),
            "messages": counts.get("messages", 0),
            "files": counts.get("files", 0),
        },
    }


async def purge_objects(db: Database, store: ObjectStore) -> int:
    """Remove queued files from the store (idempotent: a missing object is not an error)."""
    async with db.as_service() as conn:
        paths = await conn.fetch("select chat_private.objects_to_purge($1) as path", _BATCH)
    removed = 0
    for row in paths:
        await store.purge(row["path"])
        async with db.as_service() as conn:
            await conn.execute("select chat_private.object_purged($1)", row["path"])
        removed += 1
    return removed


async def follow_up_once(db: Database, store: ObjectStore, *, webhooks: bool) -> FollowUp:
    removed = 0
    while True:
        batch = await purge_objects(db, store)
        removed += batch
        if batch < _BATCH:
            break
    async with db.as_service() as conn:
        pending = await conn.fetch(
            "select erasure_id, subject, mode, counts, created_at, files_left "
            "from chat_private.pending_erasures($1)",
            _BATCH,
        )
    finished = 0
    for row in pending:
        if row["files_left"]:
            continue
        if webhooks and row["subject"] is not None:
            counts = row["counts"] if isinstance(row["counts"], dict) else json.loads(row["counts"])
            payload = user_erased_payload(
                user_id=row["subject"],
                erasure_id=row["erasure_id"],
                mode=row["mode"],
                counts=counts,
                at=row["created_at"],
            )
            # The outbox belongs to the webhook worker, which connects as the owner.
            async with db.pool.acquire() as conn:
                await conn.execute(
                    _ENQUEUE_WEBHOOK,
                    USER_ERASED,
                    f"{USER_ERASED}:{row['erasure_id']}",
                    row["subject"],
                    payload,
                )
        async with db.as_service() as conn:
            if await conn.fetchval("select chat_private.finish_erasure($1)", row["erasure_id"]):
                finished += 1
                log.info(
                    "erasure %d followed up (mode %s, %s)",
                    row["erasure_id"],
                    row["mode"],
                    row["counts"],
                )
    return FollowUp(files_removed=removed, erasures_finished=finished)


async def announce_reports(db: Database, *, webhooks: bool) -> int:
    """New reports to the host platform (``chat.message.reported``, no message content);
    with webhooks off they are only marked, so that turning them on later does not send
    old reports."""
    async with db.as_service() as conn:
        rows = await conn.fetch("select * from chat_private.unannounced_reports($1)", _BATCH)
    for row in rows:
        if webhooks:
            payload = {
                "type": MESSAGE_REPORTED,
                "timestamp": row["created_at"]
                .astimezone(dt.UTC)
                .isoformat()
                .replace("+00:00", "Z"),
                "data": {
                    "report_id": str(row["id"]),
                    "session_id": str(row["session_id"]),
                    "message_id": str(row["message_id"]),
                    "reporter_id": str(row["reporter_id"]) if row["reporter_id"] else None,
                    "category": row["category"],
                },
            }
            async with db.pool.acquire() as conn:
                await conn.execute(
                    "insert into chat_private.webhook_outbox "
                    "(event_type, dedupe_key, session_id, user_id, payload) "
                    "values ($1, $2, $3, $4, $5::jsonb) on conflict (dedupe_key) do nothing",
                    MESSAGE_REPORTED,
                    f"{MESSAGE_REPORTED}:{row['id']}",
                    row["session_id"],
                    row["reporter_id"],
                    payload,
                )
        async with db.as_service() as conn:
            await conn.execute("select chat_private.report_announced($1)", row["id"])
    return len(rows)
