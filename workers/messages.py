"""Messages and sessions as clients see them: one shape for the relay and the REST API."""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

# Columns of a message row, in the order the payload uses them.
# Those every message function returns (search, the group commit)...
MESSAGE_FIELDS = (
    "id, seq, session_id, sender_id, type, content, reply_to_message_id, metadata, "
    "client_message_id, created_at"
)
# ... and, read from the table, whether the message is a tombstone.
MESSAGE_COLUMNS = MESSAGE_FIELDS + ", deleted_at, deleted_reason, edited_at"
# How a message whose sender's account was deleted names its sender.
DELETED_USER = "Deleted user"


def iso(value: dt.datetime | None) -> str | None:
    """UTC ISO-8601 with a Z, millisecond precision kept as stored."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(dt.datetime.now(dt.UTC)) or ""


async def user_names(
    conn: asyncpg.Connection, user_ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    """Display names of users who share a session with the connection's user (RLS-aware
    SQL function); under the service role, of anyone."""
    wanted = sorted({u for u in user_ids if u is not None})
    if not wanted:
        return {}
    rows = await conn.fetch("select user_id, name from public.chat_user_names($1::uuid[])", wanted)
    return {r["user_id"]: r["name"] for r in rows}


class NameCache:
    """Display names of senders for messages the service emits itself (the group commit),
    kept for ``ttl`` seconds: a name is read once, not once per message. Misses are read
    in one query as the service role (the sender shares the session with its room)."""

    def __init__(self, db: Any, *, ttl: float = 300.0, limit: int = 100_000) -> None:
        self._db = db
        self._ttl = ttl
        self._limit = limit
        self._names: dict[uuid.UUID, tuple[str, float]] = {}

    def has(self, user_id: uuid.UUID) -> bool:
        hit = self._names.get(user_id)
        return hit is not None and hit[1] > time.monotonic()

    def forget(self, user_id: uuid.UUID) -> None:
        """A user was erased: their name is not kept, nor shown again."""
        self._names.pop(user_id, None)

    def put(self, names: Mapping[uuid.UUID, str]) -> None:
        if len(self._names) + len(names) > self._limit:
            self._names.clear()
        expires = time.monotonic() + self._ttl
        for user_id, name in names.items():
            self._names[user_id] = (name, expires)

    async def get(self, user_ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
        now = time.monotonic()
        found: dict[uuid.UUID, str] = {}
        missing: set[uuid.UUID] = set()
        for user_id in user_ids:
            if user_id is None or user_id in found:
                continue
            hit = self._names.get(user_id)
            if hit is not None and hit[1] > now:
                found[user_id] = hit[0]
            else:
                missing.add(user_id)
        if missing:
            try:
                async with self._db.as_service() as conn:
                    fetched = await user_names(conn, missing)
            except Exception:  # a name is a convenience: never hold a message back for it
                log.warning("could not read %d sender name(s)", len(missing), exc_info=True)
                return found
            self.put(fetched)
            found.update(fetched)
        return found


# Optional: storage paths -> short-lived download URLs, set at start-up by the app that
# serves files (workers/api/files.py). With it, file messages carry ``metadata.url``.
FileUrlSigner = Callable[[list[str]], Awaitable[Mapping[str, str]]]
_file_url_signer: FileUrlSigner | None = None
_FILE_TYPES = ("audio", "image", "file")


def set_file_url_signer(signer: FileUrlSigner | None) -> FileUrlSigner | None:
    """Install (or, with None, remove) the signer; returns the one it replaces."""
    global _file_url_signer
    previous, _file_url_signer = _file_url_signer, signer
    return previous


def _storage_path(row: Mapping[str, Any]) -> str | None:
    metadata = row["metadata"]
    if row["type"] not in _FILE_TYPES or not isinstance(metadata, dict):
        return None
    path = metadata.get("storage_path")
    if not isinstance(path, str):
        return None
    # Only a file its sender stored under this session gets a signed URL: a message row
    # written around the send function must not turn someone else's path into a link.
    folders = path.split("/")
    if len(folders) < 3 or folders[0] != str(row["session_id"]):
        return None
    # A retained file of a deleted user (ERASURE_MODE=retain) has no sender any more.
    if row["sender_id"] is not None and folders[1] != str(row["sender_id"]):
        return None
    return path


def _sender_name(row: Mapping[str, Any], names: Mapping[uuid.UUID, str]) -> str | None:
    sender = row["sender_id"]
    if row["type"] == "system":
        return names.get(sender, "System") if sender else "System"
    if sender is None:
        return DELETED_USER  # the account was deleted (or the message is a tombstone)
    return names.get(sender, "user")


async def file_urls(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, str]:
    signer = _file_url_signer
    paths = sorted({p for p in map(_storage_path, rows) if p})
    if signer is None or not paths:
        return {}
    try:
        return await signer(paths)
    except Exception:  # a URL is a convenience: never lose a message over it
        log.warning("could not sign %d file URL(s)", len(paths), exc_info=True)
        return {}


def message_payload(
    row: Mapping[str, Any],
    names: Mapping[uuid.UUID, str],
    urls: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    sender = row["sender_id"]
    metadata = row["metadata"] or {}
    metadata = {k: v for k, v in metadata.items() if k != "url"}  # only ours, below
    path = _storage_path(row)
    if urls and path is not None and path in urls:
        metadata["url"] = urls[path]
    return {
        "id": str(row["id"]),
        "session_id": str(row["session_id"]),
        "sender_id": str(sender) if sender else None,
        "sender_name": _sender_name(row, names),
        "type": row["type"],
        "content": row["content"],
        "reply_to_message_id": str(row["reply_to_message_id"])
        if row["reply_to_message_id"]
        else None,
        "metadata": metadata,
        "client_message_id": row["client_message_id"],
        "created_at": iso(row["created_at"]),
        "seq": row["seq"],
        "deleted": _optional(row, "deleted_at") is not None,
        "deleted_reason": _optional(row, "deleted_reason"),
        "edited_at": iso(_optional(row, "edited_at")),
    }


def _optional(row: Mapping[str, Any], column: str) -> Any:
    """A column only the table has (a tombstone's, an edit's): the functions that return
    MESSAGE_FIELDS (search, the group commit) leave it out, and it is null there."""
    try:
        return row[column]
    except KeyError:
        return None


async def message_payloads(
    conn: asyncpg.Connection, rows: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    names = await user_names(conn, (r["sender_id"] for r in rows))
    urls = await file_urls(rows)
    return [message_payload(r, names, urls) for r in rows]
