"""Token buckets ("budgets") keyed by a user id, a socket id or an address.

With Redis the bucket is shared by every relay (one Lua script per check, atomic); without
it, or while Redis is unreachable, each relay keeps a local bucket (the limit then holds per
relay). A Redis outage never turns into an error: the check falls back to the local bucket
at once (:class:`~workers.relay.redis_link.RedisLink` short-circuits while it is down).

Reuse: ``Budget(name="uploads", bucket=Bucket(rate=..., burst=...), redis=relay.redis_link)`` and
``await budget.allow(user_id)`` (or ``allow(key, cost=n)`` for weighted costs).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from ..config import Bucket
from .redis_link import UNREACHABLE, RedisDown, RedisLink

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate (tokens/s), burst, now (s), cost. Returns 1 if allowed.
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 1)
return allowed
"""

_LOCAL_KEYS = 100_000  # beyond, full (idle) local buckets are forgotten


class Budget:
    """A token bucket per key: ``bucket.rate`` tokens per second, at most ``bucket.burst``
    saved. A rate of 0 disables the budget (everything allowed)."""

    def __init__(
        self,
        *,
        name: str,
        bucket: Bucket,
        redis: RedisLink | aioredis.Redis | None = None,
    ) -> None:
        self._name = name
        self._rate = bucket.rate
        self._burst = bucket.burst
        self._link = redis if isinstance(redis, RedisLink) else None
        client = redis.client if isinstance(redis, RedisLink) else redis
        self._script: Any = client.register_script(_LUA) if client is not None else None
        self._buckets: dict[Any, tuple[float, float]] = {}
        self.local_checks = 0  # checks answered locally because Redis was unreachable

    @property
    def name(self) -> str:
        return self._name

    async def allow(self, key: uuid.UUID | str, cost: float = 1) -> bool:
        """Take ``cost`` tokens for this key; False when there are not enough."""
        if self._rate <= 0:
            return True
        now = time.time()
        if self._script is not None:
            args = [self._rate, self._burst, now, cost]
            redis_key = f"chat:rate:{self._name}:{key}"
            try:
                if self._link is not None:
                    allowed = await self._link.run(
                        lambda client: self._script(keys=[redis_key], args=args, client=client)
                    )
                else:
                    allowed = await self._script(keys=[redis_key], args=args)
                return bool(allowed)
            except RedisDown:
                pass
            except UNREACHABLE as exc:
                log.debug("budget %s: redis unreachable (%s)", self._name, exc)
            self.local_checks += 1
        return self._local(key, now, cost)

    def _local(self, key: Any, now: float, cost: float) -> bool:
        tokens, ts = self._buckets.get(key, (float(self._burst), now))
        tokens = min(self._burst, tokens + max(0.0, now - ts) * self._rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > _LOCAL_KEYS:  # bound memory: forget full buckets
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self._burst}
        return allowed
