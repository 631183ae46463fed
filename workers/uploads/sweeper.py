"""The orphan sweep: objects stored by an upload whose message never committed (the
process died between the two), and spooled temporary files a crash left behind.

Every ``ORPHAN_SWEEP_SECONDS`` each relay reads the upload journal for rows older than
``ORPHAN_GRACE_SECONDS``: an object no message refers to is purged (row and bytes) and its
bytes no longer count against the uploader's quota; a journal row whose message exists is
simply closed. Temporary upload files older than the grace period are deleted. Every step
is idempotent, so relays sweeping at the same time do no harm.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..db import Database
from ..storage import ObjectStore
from . import accounting

log = logging.getLogger(__name__)
_BATCH = 200
_MAX_BACKOFF = 60.0


@dataclass(frozen=True, slots=True)
class SweepResult:
    purged: int = 0
    settled: int = 0
    temp_files: int = 0


async def sweep_once(
    db: Database, store: ObjectStore, *, spool_dir: Path, grace_seconds: float
) -> SweepResult:
    """One pass; returns what it cleaned."""
    grace = dt.timedelta(seconds=grace_seconds)
    async with db.as_service() as conn:
        rows = await conn.fetch(
            "select storage_path, has_message from chat_private.stale_uploads($1, $2)",
            grace,
            _BATCH,
        )
        await conn.execute("select chat_private.purge_upload_usage()")
    purged = settled = 0
    for row in rows:
        path = row["storage_path"]
        if row["has_message"]:
            await accounting.finish(db, path)
            settled += 1
            continue
        await store.purge(path)
        await accounting.cancel(db, path)
        purged += 1
        log.warning("removed orphaned upload %s (no message refers to it)", path)
    temp_files = await asyncio.to_thread(_old_temp_files, spool_dir, grace_seconds)
    return SweepResult(purged=purged, settled=settled, temp_files=temp_files)


def _old_temp_files(spool_dir: Path, grace_seconds: float) -> int:
    cutoff = time.time() - grace_seconds
    removed = 0
    try:
        entries = list(spool_dir.glob("upload-*.part"))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed


async def run(
    db: Database,
    store: ObjectStore,
    *,
    spool_dir: Path,
    interval: float,
    grace_seconds: float,
) -> None:
    """Sweep every ``interval`` seconds until cancelled; faults are logged, not fatal."""
    delay = interval
    while True:
        await asyncio.sleep(delay)
        try:
            result = await sweep_once(db, store, spool_dir=spool_dir, grace_seconds=grace_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            delay = min(max(delay, 1.0) * 2, max(interval, _MAX_BACKOFF))
            log.warning("orphan sweep failed (%r); next try in %.0f s", exc, delay)
            continue
        delay = interval
        if result.purged or result.temp_files:
            log.info(
                "orphan sweep: %d objects, %d temporary files removed",
                result.purged,
                result.temp_files,
            )
