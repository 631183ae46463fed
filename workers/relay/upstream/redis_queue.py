"""python-socketio's Redis manager, made to live through Redis outages.

What the stock ``AsyncRedisManager`` does when Redis goes away (python-socketio 5.x):

* every emit is handled locally first, then published; a failed publish is retried once
  on a fresh client and then given up with two ERROR log lines: local delivery works,
  but with redis-py's default retries (10, with back-off) each publish can take seconds,
  and the emitting handler waits for it;
* the listener reconnects with an exponential sleep 1, 2, 4 ... 60 s: after a minute's
  outage, cross-relay events could stay silent for up to another minute.

This subclass publishes through the relay's fail-fast :class:`RedisLink` (nothing is
published, at no cost, while the link is down: ephemeral events are not worth queueing)
and caps the listener's reconnect sleep at one second, so cross-relay events resume
within about a second of Redis returning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import socketio

from ..redis_link import RedisDown, RedisLink, client_options

log = logging.getLogger(__name__)

_MAX_LISTEN_SLEEP = 1.0


class ResilientRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """A drop-in base for any ``AsyncRedisManager`` subclass: pass ``link=``."""

    def __init__(self, *args: Any, link: RedisLink | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("redis_options", client_options(2.0))
        super().__init__(*args, **kwargs)
        self.link = link
        self.unpublished = 0  # emits not sent to other relays (Redis down)

    async def _publish(self, data: Any) -> Any:
        if self.link is None:
            return await super()._publish(data)
        payload = self.json.dumps(data)
        try:
            return await self.link.run(lambda client: client.publish(self.channel, payload))
        except RedisDown:
            self.unpublished += 1
            return None

    async def _redis_listen_with_retries(self) -> AsyncIterator[Any]:
        subscribed = False
        while True:
            try:
                if not subscribed:
                    if self.redis is not None:
                        await _quietly_close(self.redis)
                    self._redis_connect()
                    await self.pubsub.subscribe(self.channel)
                    subscribed = True
                async for message in self.pubsub.listen():
                    yield message
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if subscribed:
                    log.warning("socket.io queue: lost redis (%s); reconnecting", exc)
                    if self.link is not None:
                        self.link.mark_down(exc)
                subscribed = False
                await asyncio.sleep(_MAX_LISTEN_SLEEP)


async def _quietly_close(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:
        log.debug("closing the old redis client failed", exc_info=True)
