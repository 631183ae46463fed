"""The ``supabase`` object store: Supabase Storage's HTTP API through ``storage3``, with
the service role key (the upload worker has already checked participation as the user).

Uploads, deletes and signed URLs go through storage3's async client; downloads stream
``GET /storage/v1/object/authenticated/{bucket}/{path}`` on the same httpx client,
because storage3's ``download`` buffers the whole body. Hosted Storage writes the
``storage.objects`` row itself, so downloads are authorized the same way as locally.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from storage3 import AsyncStorageClient
from storage3.exceptions import StorageApiError
from storage3.utils import StorageException

from ..auth import Principal
from .base import BUCKET, NewObject, ObjectMissing, ObjectStore, StorageError

log = logging.getLogger(__name__)

_CACHE_LIMIT = 2048
_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class SupabaseStore(ObjectStore):
    name = "supabase"

    def __init__(self, *, supabase_url: str, service_role_key: str) -> None:
        self._base = supabase_url.rstrip("/") + "/storage/v1/"
        self._headers = {"apikey": service_role_key, "Authorization": f"Bearer {service_role_key}"}
        self._http: httpx.AsyncClient | None = None
        self._client: AsyncStorageClient | None = None
        # path -> (url, expires at): fan-out of one message must not sign it N times.
        self._signed: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def open(self) -> None:
        self._http = httpx.AsyncClient(headers=self._headers, timeout=_TIMEOUT)
        self._client = AsyncStorageClient(self._base, self._headers, http_client=self._http)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        self._http = self._client = None

    def _bucket(self):  # type: ignore[no-untyped-def]
        if self._client is None:
            raise RuntimeError("SupabaseStore.open() has not been called")
        return self._client.from_(BUCKET)

    async def put(self, principal: Principal, obj: NewObject) -> None:
        try:
            with obj.source.open("rb") as body:
                await self._bucket().upload(
                    obj.path,
                    body,  # type: ignore[arg-type]
                    {
                        "content-type": obj.content_type,
                        "cache-control": "3600",
                        "upsert": "false",
                        "metadata": {"file_name": obj.file_name},
                    },
                )
        except (StorageException, httpx.HTTPError, ValueError) as exc:
            log.error("Supabase Storage refused %s: %s", obj.path, exc)
            raise StorageError("the file could not be stored") from None
        finally:
            obj.source.unlink(missing_ok=True)

    async def remove(self, principal: Principal, path: str) -> None:
        await self.purge(path)

    async def purge(self, path: str) -> None:
        try:
            await self._bucket().remove([path])
        except (StorageException, httpx.HTTPError) as exc:
            raise StorageError(f"the file could not be removed ({exc})") from None
        self._signed.pop(path, None)

    @asynccontextmanager
    async def stream(
        self, path: str, *, offset: int, length: int
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        if self._http is None:
            raise RuntimeError("SupabaseStore.open() has not been called")
        url = f"{self._base}object/authenticated/{BUCKET}/{urllib.parse.quote(path, safe='/')}"
        headers = {"Range": f"bytes={offset}-{offset + length - 1}"} if length else {}
        try:
            response = await self._http.send(
                self._http.build_request("GET", url, headers=headers), stream=True
            )
        except httpx.HTTPError as exc:
            raise StorageError(f"Supabase Storage is unreachable ({exc})") from None
        try:
            if response.status_code in (400, 404):
                raise ObjectMissing(path)
            if response.status_code not in (200, 206):
                raise StorageError(f"Supabase Storage answered {response.status_code}")
            yield _body(response, skip=offset if response.status_code == 200 else 0, length=length)
        finally:
            await response.aclose()

    async def signed_urls(self, paths: list[str], ttl: int) -> dict[str, str]:
        now = time.time()
        urls: dict[str, str] = {}
        wanted = []
        for path in paths:
            cached = self._signed.get(path)
            if cached and cached[1] - now > ttl / 2:
                urls[path] = cached[0]
            else:
                wanted.append(path)
        if wanted:
            fresh = await self._sign(wanted, ttl)
            for path, url in fresh.items():
                self._signed[path] = (url, now + ttl)
                self._signed.move_to_end(path)
            while len(self._signed) > _CACHE_LIMIT:
                self._signed.popitem(last=False)
            urls.update(fresh)
        return urls

    async def _sign(self, paths: list[str], ttl: int) -> dict[str, str]:
        bucket = self._bucket()
        try:
            if len(paths) == 1:
                signed = await bucket.create_signed_url(paths[0], ttl)
                url = signed.get("signedURL")
                return {paths[0]: url} if url else {}
            items = await bucket.create_signed_urls(paths, ttl)
        except (StorageApiError, StorageException, httpx.HTTPError, ValueError) as exc:
            log.warning("Supabase Storage could not sign %d URL(s): %s", len(paths), exc)
            return {}
        return {i["path"]: i["signedURL"] for i in items if i.get("path") and i.get("signedURL")}


async def _body(response: httpx.Response, *, skip: int, length: int) -> AsyncIterator[bytes]:
    """The asked-for bytes, also when the server ignored the Range header (200)."""
    left = length
    async for chunk in response.aiter_bytes():
        if skip:
            cut = min(skip, len(chunk))
            chunk, skip = chunk[cut:], skip - cut
        if not chunk:
            continue
        chunk = chunk[:left]
        left -= len(chunk)
        yield chunk
        if left <= 0:
            return
