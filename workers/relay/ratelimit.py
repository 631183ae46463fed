"""Per-user token buckets for send_message and typing; shared through Redis when present."""

from __future__ import annotations

import time
import uuid

import redis.asyncio as aioredis

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


class RateLimiter:
    def __init__(self, *, name: str, rate: float, burst: int, redis: aioredis.Redis | None) -> None:
        self._name = name
        self._rate = rate
        self._burst = burst
        self._redis = redis
        self._script = redis.register_script(_LUA) if redis is not None else None
        self._buckets: dict[uuid.UUID | str, tuple[float, float]] = {}

    async def allow(self, user_id: uuid.UUID | str) -> bool:
        """Take one token for this key (a user id, or a socket id for local limits)."""
        if self._rate <= 0:
            return True
        now = time.time()
        if self._script is not None:
            key = f"chat:rate:{self._name}:{user_id}"
            return bool(await self._script(keys=[key], args=[self._rate, self._burst, now, 1]))
        tokens, ts = self._buckets.get(user_id, (float(self._burst), now))
        tokens = min(self._burst, tokens + max(0.0, now - ts) * self._rate)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[user_id] = (tokens, now)
        if len(self._buckets) > 100_000:  # bound memory: forget full buckets
            self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self._burst}
        return allowed
