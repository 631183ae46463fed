"""The ``local`` object store: files under ``DATA_DIR/chat-files/``, each with a
``storage.objects`` row inserted *as the user*, so the foundation's storage policies
decide, exactly as hosted Supabase Storage would.

A file appears under its final name only by a hard link from its spooled temporary file
inside the row's transaction: a failure leaves neither a partial file nor a row, and
``os.link`` refuses to replace an existing file, so an upload never overwrites another.

Below ``min_free_bytes`` of free disk (``STORAGE_MIN_FREE_BYTES``) the store refuses new
files with 507 ``insufficient_storage``: the database and the other files on that disk
keep their room.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import asyncpg

from ..auth import Principal
from ..db import Database
from ..errors import ApiError
from .base import BUCKET, InsufficientStorage, NewObject, ObjectMissing, ObjectStore, StorageError
from .signing import UrlSigner

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024
_INSERT = (
    "insert into storage.objects (bucket_id, name, owner, owner_id, metadata, user_metadata) "
    "values ($1, $2, (select auth.uid()), (select auth.uid())::text, $3::jsonb, $4::jsonb)"
)
_DELETE = "delete from storage.objects where bucket_id = $1 and name = $2"


class LocalStore(ObjectStore):
    name = "local"

    def __init__(
        self, *, root: Path, db: Database, signer: UrlSigner, min_free_bytes: int = 0
    ) -> None:
        self._root = Path(root)
        self._bucket_dir = self._root / BUCKET
        self._db = db
        self._signer = signer
        self._min_free = min_free_bytes

    def has_room(self, size: int) -> bool:
        if self._min_free <= 0:
            return True
        probe = self._bucket_dir if self._bucket_dir.exists() else self._root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        try:
            free = shutil.disk_usage(probe).free
        except OSError:
            return False
        return free - size >= self._min_free

    def file_for(self, path: str) -> Path:
        """The file of an object path; refuses anything that could leave the bucket."""
        parts = path.split("/")
        if any(p in ("", ".", "..") or "\\" in p or "\x00" in p for p in parts):
            raise ObjectMissing(path)
        target = self._bucket_dir.joinpath(*parts)
        if not target.resolve().is_relative_to(self._bucket_dir.resolve()):
            raise ObjectMissing(path)
        return target

    async def put(self, principal: Principal, obj: NewObject) -> None:
        target = self.file_for(obj.path)
        if not self.has_room(obj.size):
            raise InsufficientStorage()
        placed = False
        try:
            try:
                async with self._db.as_user(principal) as conn:
                    await conn.execute(
                        _INSERT,
                        BUCKET,
                        obj.path,
                        obj.row_metadata(),
                        {"file_name": obj.file_name},
                    )
                    await asyncio.to_thread(_place, obj.source, target)
                    placed = True
            except BaseException:
                if placed:  # the row did not commit: neither may the file
                    await asyncio.shield(asyncio.to_thread(_unlink, target))
                raise
        except asyncpg.InsufficientPrivilegeError:
            # The participation check passed a moment ago: the session closed meanwhile.
            raise ApiError(409, "conflict", "the session no longer accepts files") from None
        except OSError as exc:
            log.error("local store could not write %s: %s", obj.path, exc)
            raise StorageError("the file could not be stored") from None

    async def remove(self, principal: Principal, path: str) -> None:
        async with self._db.as_user(principal) as conn:
            status = await conn.execute(_DELETE, BUCKET, path)
        if status == "DELETE 0":
            # Not visible to the user any more (they left the session): this cleans up
            # our own write, which is what the service role is for.
            async with self._db.as_service() as conn:
                await conn.execute(_DELETE, BUCKET, path)
        await asyncio.to_thread(_unlink, self.file_for(path))

    async def purge(self, path: str) -> None:
        async with self._db.as_service() as conn:
            await conn.execute(_DELETE, BUCKET, path)
        try:
            target = self.file_for(path)
        except ObjectMissing:
            return  # a name that could never have been stored here
        await asyncio.to_thread(_unlink, target)

    @asynccontextmanager
    async def stream(
        self, path: str, *, offset: int, length: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        target = self.file_for(path)
        # Opening and closing are quick syscalls, done inline so that a cancelled
        # request cannot lose a handle between a thread and its awaiter; reads use a thread.
        try:
            handle = _open_at(target, offset)
        except OSError:
            raise ObjectMissing(path) from None
        try:
            yield _chunks(handle, length)
        finally:
            handle.close()

    async def signed_urls(self, paths: list[str], ttl: int) -> dict[str, str]:
        return {path: self._signer.url(path, ttl) for path in paths}


async def _chunks(handle: BinaryIO, length: int) -> AsyncIterator[bytes]:
    left = length
    while left > 0:
        chunk = await asyncio.to_thread(handle.read, min(_CHUNK, left))
        if not chunk:
            return
        left -= len(chunk)
        yield chunk


def _open_at(target: Path, offset: int) -> BinaryIO:
    handle = target.open("rb")
    handle.seek(offset)
    return handle


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    os.link(source, target)  # FileExistsError rather than overwrite
    source.unlink()


def _unlink(target: Path) -> None:
    target.unlink(missing_ok=True)
