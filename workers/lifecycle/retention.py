"""The retention purge: closed sessions past ``RETENTION_DAYS`` for their type go, with
their messages and files, in short batches (``chat_private.purge_expired_batch``: one
transaction of at most ``batch`` rows each, so no lock is held long). Sessions under a
legal hold are skipped. Run once a day by the lifecycle leader."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from ..db import Database
from ..storage import ObjectStore
from .erasure import purge_objects

log = logging.getLogger(__name__)


@dataclass(slots=True)
class PurgeResult:
    sessions: int = 0
    messages: int = 0
    files: int = 0
    audit_rows_erased: int = 0
    batches: int = 0


async def purge(
    db: Database,
    store: ObjectStore,
    *,
    days: dict[str, float],
    batch: int,
    pause_ratio: float = 1.0,
) -> PurgeResult:
    """Purge everything expired now. After each batch the purge rests ``pause_ratio``
    times as long as the batch took, so it takes at most 1 / (1 + pause_ratio) of a
    database core and the message path keeps its latency on a busy database."""
    result = PurgeResult()
    retention = dict(days)  # the pool encodes jsonb parameters itself
    while True:
        began = time.monotonic()
        async with db.as_service() as conn:
            raw = await conn.fetchval(
                "select chat_private.purge_expired_batch($1::jsonb, $2)", retention, batch
            )
        step = raw if isinstance(raw, dict) else json.loads(raw)
        if step.get("done"):
            break
        result.batches += 1
        result.sessions += step["sessions"]
        result.messages += step["messages"]
        result.audit_rows_erased += step["audit_rows_erased"]
        if pause_ratio > 0:
            await asyncio.sleep((time.monotonic() - began) * pause_ratio)
    while True:  # the purged sessions' files (and any other queued removal)
        removed = await purge_objects(db, store)
        result.files += removed
        if removed == 0:
            break
    if result.batches:
        log.info(
            "retention purge: %d sessions, %d messages, %d files, %d audit rows erased",
            result.sessions,
            result.messages,
            result.files,
            result.audit_rows_erased,
        )
    return result
