"""Engine.IO transport settings for chat traffic.

* No permessage-deflate: aiohttp's ``WebSocketResponse`` compresses by default and
  Engine.IO does not turn it off. A zlib compressor and decompressor per socket hold
  tens of kilobytes for the life of the connection, and chat packets are small (a few
  hundred bytes), so compression costs memory and CPU for almost no saving.
* JSON with orjson: the same text, several times faster to encode and decode than the
  standard library (every packet in and out goes through it).
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from aiohttp.web import WebSocketResponse
from engineio.async_drivers import aiohttp as eio_aiohttp


class PlainWebSocket(eio_aiohttp.WebSocket):  # type: ignore[misc]
    """Engine.IO's aiohttp websocket, without per-message compression."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def without_compression(eio: Any) -> None:
    """Make this Engine.IO server's websockets uncompressed (its own copy of the table)."""
    eio._async = {**eio._async, "websocket": PlainWebSocket}


class FastJson:
    """The ``json`` module interface python-socketio uses, backed by orjson."""

    @staticmethod
    def dumps(obj: Any, **kwargs: Any) -> str:
        try:
            return orjson.dumps(obj).decode()
        except TypeError:  # what orjson refuses (an integer beyond 64 bits)
            return json.dumps(obj, **kwargs)

    @staticmethod
    def loads(data: str | bytes, **_kwargs: Any) -> Any:
        # orjson refuses nesting deeper than 1024 with a JSONDecodeError (a ValueError):
        # both packet decoders treat that as bad input, never a RecursionError.
        return orjson.loads(data)
