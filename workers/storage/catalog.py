"""``storage.objects``: the catalog both backends share (hosted Storage writes it; the
local store writes it as the user). Reading it as the user lets the storage policies
decide who may download what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from .base import BUCKET

_FIND = (
    "select id, name, metadata, user_metadata from storage.objects "
    "where bucket_id = $1 and name = $2"
)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    id: str
    path: str
    size: int
    content_type: str
    file_name: str | None


async def find(conn: asyncpg.Connection, path: str) -> ObjectInfo | None:
    """The object at ``path`` if the connection's role may see it."""
    row = await conn.fetchrow(_FIND, BUCKET, path)
    if row is None:
        return None
    meta: Any = row["metadata"] if isinstance(row["metadata"], dict) else {}
    user_meta: Any = row["user_metadata"] if isinstance(row["user_metadata"], dict) else {}
    size = meta.get("size", meta.get("contentLength"))
    name = user_meta.get("file_name")
    return ObjectInfo(
        id=str(row["id"]),
        path=row["name"],
        size=size if isinstance(size, int) and size >= 0 else 0,
        content_type=str(meta.get("mimetype") or "application/octet-stream"),
        file_name=name if isinstance(name, str) and name else None,
    )
