"""Upload accounting (service role): the daily quota per user and the journal of uploads
whose message is not yet committed. See the upload accounting migration."""

from __future__ import annotations

import uuid

from ..db import Database
from ..errors import ApiError


def quota_exceeded(quota: int) -> ApiError:
    return ApiError(
        429,
        "upload_quota_exceeded",
        f"daily upload quota of {quota} bytes reached; it resets at 00:00 UTC",
    )


async def check_quota(db: Database, user_id: uuid.UUID, *, quota: int) -> None:
    """Refuse early (before reading the body) when the user has used up today's quota."""
    if quota <= 0:
        return
    async with db.as_service() as conn:
        used = await conn.fetchval("select chat_private.uploaded_today($1)", user_id)
    if used >= quota:
        raise quota_exceeded(quota)


async def begin(db: Database, user_id: uuid.UUID, path: str, size: int, *, quota: int) -> None:
    """Count ``size`` bytes against today's quota and journal the upload; 429 when it would
    exceed the quota (nothing is counted then)."""
    async with db.as_service() as conn:
        total = await conn.fetchval(
            "select chat_private.begin_upload($1, $2, $3, $4)", user_id, path, size, quota
        )
    if total is None:
        raise quota_exceeded(quota)


async def finish(db: Database, path: str) -> None:
    """The message is committed: the object is no longer pending."""
    async with db.as_service() as conn:
        await conn.execute("select chat_private.finish_upload($1)", path)


async def cancel(db: Database, path: str) -> None:
    """The object was not kept: drop the journal row and give its bytes back."""
    async with db.as_service() as conn:
        await conn.execute("select chat_private.cancel_upload($1)", path)
