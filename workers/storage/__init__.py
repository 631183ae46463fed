"""Object stores for uploaded files (the ``ObjectStore`` port) and signed download URLs."""

from __future__ import annotations

from ..config import Settings
from ..db import Database
from .base import (
    BUCKET,
    InsufficientStorage,
    NewObject,
    ObjectMissing,
    ObjectStore,
    StorageError,
)
from .signing import UrlSigner

__all__ = [
    "BUCKET",
    "InsufficientStorage",
    "NewObject",
    "ObjectMissing",
    "ObjectStore",
    "StorageError",
    "UrlSigner",
    "build_store",
]


def build_store(settings: Settings, *, db: Database, signer: UrlSigner) -> ObjectStore:
    """The store ``STORAGE_BACKEND`` names. Nothing is opened yet (see ``open()``)."""
    if settings.storage_backend == "supabase":
        from .supabase import SupabaseStore

        assert settings.supabase_url and settings.supabase_service_role_key  # Settings checks
        return SupabaseStore(
            supabase_url=settings.supabase_url,
            service_role_key=settings.supabase_service_role_key,
        )
    from .local import LocalStore

    return LocalStore(
        root=settings.data_dir,
        db=db,
        signer=signer,
        min_free_bytes=settings.storage_min_free_bytes,
    )
