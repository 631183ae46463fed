"""The object store port: one small interface, two backends (``local``, ``supabase``).

Objects live in the private bucket ``chat-files`` at ``{session_id}/{user_id}/{name}``.
Who may read an object is decided by the ``storage.objects`` policies (see
:mod:`workers.storage.catalog`); a store only moves bytes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..auth import Principal
from ..errors import ApiError

BUCKET = "chat-files"


class StorageError(ApiError):
    """The object store failed: not the caller's fault (503)."""

    def __init__(self, message: str) -> None:
        super().__init__(503, "storage_unavailable", message)


class InsufficientStorage(ApiError):
    """The store is below its free-space floor: no new files for now (507)."""

    def __init__(self) -> None:
        super().__init__(
            507,
            "insufficient_storage",
            "the file store is low on disk space and accepts no new files for now",
        )


class ObjectMissing(ApiError):
    """The object is not there (or not visible): 404."""

    def __init__(self, path: str) -> None:
        super().__init__(404, "not_found", f"file {path[:200]} not found")


@dataclass(frozen=True, slots=True)
class NewObject:
    """A validated upload, spooled to ``source``, to be stored at ``path``."""

    path: str
    source: Path
    size: int
    content_type: str
    file_name: str

    def row_metadata(self) -> dict[str, Any]:
        """``storage.objects.metadata`` as hosted Storage writes it."""
        return {
            "mimetype": self.content_type,
            "size": self.size,
            "contentLength": self.size,
            "cacheControl": "max-age=3600",
            "httpStatusCode": 200,
        }


class ObjectStore(ABC):
    """Where uploaded files live. ``put`` never overwrites; ``remove`` is idempotent."""

    name: str = "abstract"

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (HTTP clients); called once at start-up."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release them; called once at shutdown."""

    @abstractmethod
    async def put(self, principal: Principal, obj: NewObject) -> None:
        """Store the spooled file at ``obj.path`` for this user (consumes ``obj.source``)."""

    @abstractmethod
    async def remove(self, principal: Principal, path: str) -> None:
        """Delete the object (bytes and ``storage.objects`` row); missing is not an error."""

    async def purge(self, path: str) -> None:
        """Delete an object nobody refers to (the orphan sweep), without a user; missing
        is not an error."""
        raise NotImplementedError(f"the {self.name} store cannot purge objects")

    def has_room(self, size: int) -> bool:
        """Whether ``size`` more bytes keep the store above its free-space floor."""
        return True

    @abstractmethod
    def stream(
        self, path: str, *, offset: int, length: int
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The bytes ``[offset, offset + length)``, in chunks. Raises :class:`ObjectMissing`
        on entry (before any byte is sent) when the bytes are not there."""

    @abstractmethod
    async def signed_urls(self, paths: list[str], ttl: int) -> dict[str, str]:
        """Short-lived URLs that need no Authorization header, by path. Paths that cannot
        be signed are left out."""
