"""Signed download URLs for the local store: HMAC-SHA256 over the object path and an
expiry, so ``<audio src>`` works without an Authorization header.

``/api/chat/files/{path}?expires=<unix seconds>&signature=<base64url>``. The key is
derived from ``FILE_URL_SECRET``, else from ``JWT_SECRET``; with neither (JWKS-only
set-ups) a random per-process key is used, and URLs die with the process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import time
import urllib.parse
from collections.abc import Callable

from ..errors import ApiError

log = logging.getLogger(__name__)

FILES_PREFIX = "/api/chat/files/"
_CONTEXT = b"chat-files signed URL v1"


class UrlSigner:
    def __init__(
        self,
        key: bytes,
        *,
        public_url: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = hmac.new(key, _CONTEXT, hashlib.sha256).digest()
        self._base = (public_url or "").rstrip("/")
        self._clock = clock

    @classmethod
    def from_secrets(
        cls, *, file_url_secret: str | None, jwt_secret: str | None, public_url: str | None
    ) -> UrlSigner:
        secret = file_url_secret or jwt_secret
        if secret is None:
            log.warning(
                "neither FILE_URL_SECRET nor JWT_SECRET is set: signed file URLs use a "
                "random key and stop working when this process restarts"
            )
            return cls(os.urandom(32), public_url=public_url)
        return cls(secret.encode(), public_url=public_url)

    def signature(self, path: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def url(self, path: str, ttl: int) -> str:
        expires = int(self._clock()) + ttl
        query = urllib.parse.urlencode(
            {"expires": expires, "signature": self.signature(path, expires)}
        )
        return f"{self._base}{FILES_PREFIX}{urllib.parse.quote(path, safe='/')}?{query}"

    def verify(self, path: str, *, expires: int | None, signature: str | None) -> None:
        """Raise 403 unless the signature is this path's and the URL has not expired."""
        if expires is None or not signature:
            raise ApiError(403, "invalid_signature", "a signed URL needs expires and signature")
        expected = self.signature(path, expires).encode()
        if not hmac.compare_digest(expected, signature.encode("utf-8", "replace")):
            raise ApiError(403, "invalid_signature", "the URL signature is not valid")
        if expires < self._clock():
            raise ApiError(403, "url_expired", "the signed URL has expired")
