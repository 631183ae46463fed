"""Serving a stored object: one byte range at most (so audio players can seek),
Content-Disposition that is safe for any name, and headers that stop browsers from
guessing types or running anything."""

from __future__ import annotations

import logging
import re
import unicodedata
import urllib.parse

from aiohttp import web

from ..errors import ApiError
from ..storage import ObjectStore
from ..storage.catalog import ObjectInfo
from ..uploads import names
from ..uploads.sniff import ALLOWED
from .errors import error_response

log = logging.getLogger(__name__)

_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.ASCII)
_FALLBACK_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+", re.ASCII)


class Unsatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of one satisfiable range; None to send everything (no Range,
    several ranges or a malformed one: RFC 9110 lets a server ignore those)."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":  # the last N bytes
        suffix = int(match[2])
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(size - suffix, 0), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else max(size - 1, first)
    if last < first:
        return None
    if first >= size:
        raise Unsatisfiable
    return first, min(last, size - 1)


def content_type(info: ObjectInfo) -> str:
    mime = info.content_type.split(";", 1)[0].strip().lower()
    if mime not in ALLOWED:
        return "application/octet-stream"
    return "text/plain; charset=utf-8" if mime == "text/plain" else mime


def content_disposition(mime: str, name: str) -> str:
    """inline for images and audio (``<img>``, ``<audio>``), attachment for the rest;
    an ASCII ``filename`` for old clients and the exact name as RFC 5987 ``filename*``."""
    kind = "inline" if mime.startswith(("image/", "audio/")) else "attachment"
    name = "".join(c for c in name if not unicodedata.category(c).startswith("C")) or "file"
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    fallback = _FALLBACK_UNSAFE.sub("_", ascii_name).strip(" .") or "file"
    encoded = urllib.parse.quote(name, safe="")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _unsatisfiable(size: int) -> web.Response:
    response = error_response(
        ApiError(416, "range_not_satisfiable", f"the range is outside the file ({size} bytes)")
    )
    response.headers["Content-Range"] = f"bytes */{size}"
    return response


async def serve(request: web.Request, store: ObjectStore, info: ObjectInfo) -> web.StreamResponse:
    etag = f'"{info.id}"'  # objects are immutable (no update policy): the id validates
    wanted = request.headers.get("Range")
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != etag:
        wanted = None
    try:
        span = parse_range(wanted, info.size)
    except Unsatisfiable:
        return _unsatisfiable(info.size)
    first, last = span if span else (0, info.size - 1)
    length = max(last - first + 1, 0)
    mime = content_type(info)
    headers = {
        "Content-Type": mime,
        "Content-Disposition": content_disposition(
            mime, names.download_name(info.file_name, info.path)
        ),
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "private, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    }
    if span:
        headers["Content-Range"] = f"bytes {first}-{last}/{info.size}"
    async with store.stream(info.path, offset=first, length=length) as chunks:
        response = web.StreamResponse(status=206 if span else 200, headers=headers)
        response.content_length = length
        await response.prepare(request)
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except OSError:  # the client went away (players abort to seek): nothing to say
            response.force_close()
            return response
        except Exception:
            # Headers are gone: the only honest signal left is a short, closed response.
            log.exception("download of %s broke off", info.path)
            response.force_close()
            return response
        await response.write_eof()
    return response
