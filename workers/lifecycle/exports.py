"""Data exports: one zip archive per request, built in the background under the exported
user's own RLS (so it holds exactly what that user can read), streamed page by page into
the archive: the service's memory does not grow with the export's size.

The archive (schema in docs/data-lifecycle.md):

* ``README.txt``: what each file is;
* ``export.json``: the user, who asked, when, the counts;
* ``sessions.json``: the sessions the user can read;
* ``messages.jsonl``: every message the user can read, one JSON object per line, oldest
  first per session (sender, time, type, content, reply, metadata, tombstone flag);
* ``files.json``: the user's own files, each with a signed link valid for a day.

Archives live in ``DATA_DIR/exports`` (shared by the relays, as the local store's files
are) and are deleted once expired (``EXPORT_TTL_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from ..auth import Principal, principal_from_claims
from ..db import Database
from ..messages import MESSAGE_COLUMNS, iso, user_names
from ..storage import ObjectStore
from ..tasks import spawn

log = logging.getLogger(__name__)

_PAGE = 2000
_HEARTBEAT = 10.0
_ABANDONED_AFTER = 120.0  # seconds without a heartbeat: the building relay is gone
FILE_LINK_TTL = 86_400
_SIGN_CHUNK = 500

README = """Your chat data, exported {exported_at}.

export.json     who this archive is about, who asked for it, and the counts.
sessions.json   the chat sessions you can read: id, participants, type, booking_id,
                status, title, created_by, created_at, closed_at, last_message_at.
messages.jsonl  every message you can read, one JSON object per line, ordered by session
                and time: id, session_id, seq, sender_id, sender_name, type, content,
                reply_to_message_id, metadata, created_at, deleted (true for a message
                whose sender's account was deleted: no content, no file).
files.json      the files you sent: message_id, session_id, type, file_name, mime_type,
                size_bytes, and url, a link valid until url_expires_at.
"""

_ARCHIVE_SESSIONS = """
select id, participants, type, booking_id, status, title, created_by, created_at,
  closed_at, last_message_at
from public.chat_sessions
order by created_at, id
"""

_ARCHIVE_MESSAGES = (
    f"select {MESSAGE_COLUMNS} from public.chat_messages order by session_id, created_at, seq"
)


class Exporter:
    def __init__(
        self,
        *,
        db: Database,
        store: ObjectStore,
        directory: Path,
        ttl: float,
        metrics: Any = None,
    ) -> None:
        self._db = db
        self._store = store
        self.directory = directory
        self._ttl = ttl
        self._metrics = metrics
        self._tasks: dict[uuid.UUID, asyncio.Task[None]] = {}

    def archive_path(self, export_id: uuid.UUID) -> Path:
        return self.directory / f"{export_id}.zip"

    def start(self, export_id: uuid.UUID) -> None:
        """Build the archive in the background on this relay."""
        if export_id in self._tasks:
            return
        task = spawn(self._run(export_id), name=f"export-{export_id}")
        self._tasks[export_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(export_id, None))

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def resume_abandoned(self) -> None:
        """Pending exports nobody started, and running ones whose relay stopped beating
        (it died): start them here (the leader calls this)."""
        async with self._db.pool.acquire() as conn:
            rows = await conn.fetch(
                "update chat_private.exports set status = 'pending', heartbeat_at = null "
                "where (status = 'running' and heartbeat_at < now() - make_interval(secs => $1)) "
                "or (status = 'pending' and created_at < now() - interval '5 seconds') "
                "returning id",
                _ABANDONED_AFTER,
            )
        for row in rows:
            self.start(row["id"])

    async def expire(self) -> int:
        """Delete archives past their expiry (and any archive no row vouches for)."""
        async with self._db.pool.acquire() as conn:
            rows = await conn.fetch(
                "update chat_private.exports set status = 'expired' "
                "where status = 'ready' and expires_at <= now() returning id"
            )
            live = {
                str(r["id"])
                for r in await conn.fetch(
                    "select id from chat_private.exports where status in ('running', 'ready')"
                )
            }
        for row in rows:
            await asyncio.to_thread(_unlink, self.archive_path(row["id"]))
        stray = await asyncio.to_thread(_stray_archives, self.directory, live)
        return len(rows) + stray

    # ------------------------------------------------------------------ building
    async def _run(self, export_id: uuid.UUID) -> None:
        async with self._db.pool.acquire() as conn:
            claimed = await conn.fetchrow(
                "update chat_private.exports "
                "set status = 'running', started_at = now(), heartbeat_at = now() "
                "where id = $1 and status = 'pending' returning user_id",
                export_id,
            )
        if claimed is None:
            return  # another relay has it, or it is gone
        beat = spawn(self._heartbeat(export_id), name=f"export-heartbeat-{export_id}")
        started = time.monotonic()
        try:
            counts = await self._build(export_id, claimed["user_id"])
        except asyncio.CancelledError:
            beat.cancel()
            await asyncio.to_thread(_unlink, self._part(export_id))
            raise
        except Exception as exc:
            beat.cancel()
            log.exception("export %s failed", export_id)
            await asyncio.to_thread(_unlink, self._part(export_id))
            async with self._db.pool.acquire() as conn:
                await conn.execute(
                    "update chat_private.exports set status = 'failed', finished_at = now(), "
                    "error = $2 where id = $1",
                    export_id,
                    f"the archive could not be built ({type(exc).__name__})",
                )
            if self._metrics is not None:
                self._metrics.exports.labels("failed").inc()
            return
        beat.cancel()
        async with self._db.pool.acquire() as conn:
            await conn.execute(
                "update chat_private.exports set status = 'ready', finished_at = now(), "
                "expires_at = now() + make_interval(secs => $2), sessions = $3, messages = $4, "
                "files = $5, archive_bytes = $6 where id = $1",
                export_id,
                self._ttl,
                counts["sessions"],
                counts["messages"],
                counts["files"],
                counts["archive_bytes"],
            )
        if self._metrics is not None:
            self._metrics.exports.labels("ready").inc()
        log.info(
            "export %s ready: %d sessions, %d messages, %d files, %d bytes in %.1f s",
            export_id,
            counts["sessions"],
            counts["messages"],
            counts["files"],
            counts["archive_bytes"],
            time.monotonic() - started,
        )

    async def _heartbeat(self, export_id: uuid.UUID) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT)
            with contextlib.suppress(Exception):
                async with self._db.pool.acquire() as conn:
                    await conn.execute(
                        "update chat_private.exports set heartbeat_at = now() where id = $1",
                        export_id,
                    )

    def _part(self, export_id: uuid.UUID) -> Path:
        return self.directory / f"{export_id}.zip.part"

    async def _principal(self, user_id: uuid.UUID) -> Principal:
        """The exported user as the database sees them under PostgREST (their claims)."""
        async with self._db.pool.acquire() as conn:
            row = await conn.fetchrow(
                "select email, raw_app_meta_data, raw_user_meta_data from auth.users where id = $1",
                user_id,
            )
        if row is None:
            raise LookupError("the user no longer exists")
        return principal_from_claims(
            {
                "sub": str(user_id),
                "role": "authenticated",
                "aud": "authenticated",
                "email": row["email"],
                "app_metadata": _json(row["raw_app_meta_data"]),
                "user_metadata": _json(row["raw_user_meta_data"]),
                "exp": int(time.time()) + 3600,
            }
        )

    async def _build(self, export_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, int]:
        principal = await self._principal(user_id)
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        part = self._part(export_id)
        archive = await asyncio.to_thread(
            zipfile.ZipFile, part, "w", zipfile.ZIP_DEFLATED, allowZip64=True
        )
        own_files: list[dict[str, Any]] = []
        try:
            async with self._db.as_user(principal) as conn:
                sessions = [_session_json(r) for r in await conn.fetch(_ARCHIVE_SESSIONS)]
                await asyncio.to_thread(
                    archive.writestr, "sessions.json", json.dumps(sessions, indent=1)
                )
                messages = await self._write_messages(conn, archive, user_id, own_files)
            files = await self._file_links(own_files)
            exported_at = iso(dt.datetime.now(dt.UTC))
            summary = {
                "export_id": str(export_id),
                "user_id": str(user_id),
                "exported_at": exported_at,
                "sessions": len(sessions),
                "messages": messages,
                "files": len(files),
            }
            await asyncio.to_thread(archive.writestr, "files.json", json.dumps(files, indent=1))
            await asyncio.to_thread(archive.writestr, "export.json", json.dumps(summary, indent=1))
            await asyncio.to_thread(
                archive.writestr, "README.txt", README.format(exported_at=exported_at)
            )
        finally:
            await asyncio.to_thread(archive.close)
        final = self.archive_path(export_id)
        await asyncio.to_thread(part.replace, final)
        size = (await asyncio.to_thread(final.stat)).st_size
        return {
            "sessions": len(sessions),
            "messages": messages,
            "files": len(files),
            "archive_bytes": size,
        }

    async def _write_messages(
        self,
        conn: Any,
        archive: zipfile.ZipFile,
        user_id: uuid.UUID,
        own_files: list[dict[str, Any]],
    ) -> int:
        names: dict[uuid.UUID, str] = {}
        count = 0
        out: IO[bytes] = await asyncio.to_thread(
            archive.open, "messages.jsonl", "w", force_zip64=True
        )
        try:
            cursor = await conn.cursor(_ARCHIVE_MESSAGES)
            while True:
                rows = await cursor.fetch(_PAGE)
                if not rows:
                    break
                missing = {r["sender_id"] for r in rows if r["sender_id"]} - names.keys()
                if missing:
                    names.update(await user_names(conn, missing))
                lines = []
                for row in rows:
                    lines.append(json.dumps(_message_json(row, names), separators=(",", ":")))
                    if row["sender_id"] == user_id:
                        own = _own_file(row)
                        if own is not None:
                            own_files.append(own)
                await asyncio.to_thread(out.write, ("\n".join(lines) + "\n").encode())
                count += len(rows)
        finally:
            await asyncio.to_thread(out.close)
        return count

    async def _file_links(self, own_files: list[dict[str, Any]]) -> list[dict[str, Any]]:
        expires = iso(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=FILE_LINK_TTL))
        for chunk in _chunks(own_files, _SIGN_CHUNK):
            urls = await self._store.signed_urls([f["storage_path"] for f in chunk], FILE_LINK_TTL)
            for entry in chunk:
                entry["url"] = urls.get(entry["storage_path"])
                entry["url_expires_at"] = expires if entry["url"] else None
        return own_files


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        loaded = json.loads(value)
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _session_json(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "participants": [str(p) for p in row["participants"]],
        "type": row["type"],
        "booking_id": str(row["booking_id"]) if row["booking_id"] else None,
        "status": row["status"],
        "title": row["title"],
        "created_by": str(row["created_by"]) if row["created_by"] else None,
        "created_at": iso(row["created_at"]),
        "closed_at": iso(row["closed_at"]),
        "last_message_at": iso(row["last_message_at"]),
    }


def _message_json(row: Any, names: dict[uuid.UUID, str]) -> dict[str, Any]:
    sender = row["sender_id"]
    metadata = _json(row["metadata"])
    metadata.pop("url", None)
    return {
        "id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "seq": row["seq"],
        "sender_id": str(sender) if sender else None,
        "sender_name": names.get(sender) if sender else None,
        "type": row["type"],
        "content": row["content"],
        "reply_to_message_id": str(row["reply_to_message_id"])
        if row["reply_to_message_id"]
        else None,
        "metadata": metadata,
        "created_at": iso(row["created_at"]),
        "deleted": row["deleted_at"] is not None,
    }


def _own_file(row: Any) -> dict[str, Any] | None:
    metadata = _json(row["metadata"])
    path = metadata.get("storage_path")
    if row["type"] not in ("audio", "image", "file") or not isinstance(path, str):
        return None
    return {
        "message_id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "type": row["type"],
        "file_name": metadata.get("file_name"),
        "mime_type": metadata.get("mime_type"),
        "size_bytes": metadata.get("size_bytes"),
        "storage_path": path,
    }


def _chunks(items: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _stray_archives(directory: Path, live: set[str]) -> int:
    """Archives (and parts) with no running or ready export: a deleted user's, a crash's."""
    removed = 0
    try:
        entries = list(directory.glob("*.zip*"))
    except OSError:
        return 0
    for entry in entries:
        export_id = entry.name.split(".", 1)[0]
        if export_id not in live:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed
