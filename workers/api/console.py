"""The web console (``web/``, built by Vite into ``web/dist``) served at ``/``.

``index.html`` is never cached (it names the current assets); files under ``/assets/``
carry a content hash in their name, so they are cached for a year. Every response has a
strict Content-Security-Policy: scripts and styles only from this origin, no inline
script, no framing; connections only to this origin (HTTP and its WebSocket).
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from ..errors import ApiError
from ..keys import SETTINGS

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_YEAR = 365 * 24 * 3600

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
_COMMON_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The token arrives in the URL fragment: never let another site frame the console.
    "X-Frame-Options": "DENY",
}

CONSOLE_DIR = web.AppKey("console_dir", Path)


def _dist(request: web.Request) -> Path:
    return request.app[CONSOLE_DIR]


async def index(request: web.Request) -> web.StreamResponse:
    page = _dist(request) / "index.html"
    if not page.is_file():
        raise ApiError(
            404,
            "console_not_built",
            "the console is not built: run `npm ci && npm run build` in clients/js/, then in web/"
            " (scripts/dev does)",
        )
    return web.FileResponse(page, headers={**_COMMON_HEADERS, "Cache-Control": "no-cache"})


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    folder = _dist(request) / "assets"
    path = folder / name
    if not _ASSET_NAME.match(name) or not path.is_file():
        raise ApiError(404, "not_found", f"no asset {name[:100]!r}")
    return web.FileResponse(
        path,
        headers={**_COMMON_HEADERS, "Cache-Control": f"public, max-age={_YEAR}, immutable"},
    )


def setup(app: web.Application) -> None:
    app[CONSOLE_DIR] = app[SETTINGS].console_dir or DEFAULT_DIR
    app.router.add_get("/", index, name="console")
    app.router.add_get("/assets/{name}", asset, name="console_asset")
