"""Who is online in which session: at least one socket of the user joined to it, on any relay.

Each relay counts its own sockets per (session, user) in memory. With Redis, it also
publishes which users it holds per session (a hash per session, field
``{relay_id}|{user_id}``) and a heartbeat key with a TTL; a relay that dies stops its
heartbeat, so its users drop out of ``online`` within the TTL.

While Redis is unreachable, presence is this relay's own sockets only; departures are
remembered, and when Redis returns the relay re-registers its entries and removes those
that left meanwhile (so other relays see the truth again within a probe interval).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from typing import Any

from .redis_link import RedisDown, RedisLink

log = logging.getLogger(__name__)


class Presence:
    def __init__(self, *, redis: RedisLink | None, relay_id: str, ttl: int = 15) -> None:
        """``ttl``: seconds after which a silent relay's users are no longer online."""
        self._redis = redis
        # (session, user) that left this relay while Redis was unreachable
        self._left_while_down: set[tuple[uuid.UUID, uuid.UUID]] = set()
        self._ttl = ttl
        self._every = max(1.0, ttl / 3)
        self.relay_id = relay_id
        # session -> user -> set of local sids
        self._local: dict[uuid.UUID, dict[uuid.UUID, set[str]]] = defaultdict(dict)
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._redis is not None:
            self._redis.on_up(self._resync)
            with contextlib.suppress(RedisDown):
                await self._beat()
            self._task = asyncio.create_task(self._heartbeat(), name="presence-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._forget_all()

    async def _heartbeat(self) -> None:
        delay = self._every
        while True:
            await asyncio.sleep(delay)
            try:
                await self._beat()
                delay = self._every
            except asyncio.CancelledError:
                raise
            except RedisDown:
                delay = self._every  # the link's probe calls _resync when Redis returns
            except Exception:
                log.warning("presence heartbeat failed; retrying", exc_info=True)
                delay = 1

    async def _beat(self) -> None:
        assert self._redis is not None
        left = list(self._left_while_down)

        async def beat(client: Any) -> None:
            pipe = client.pipeline()
            pipe.set(self._relay_key(self.relay_id), "1", ex=self._ttl)
            # Re-assert our entries, in case Redis lost them (a restart without
            # persistence, or other relays took us for dead during an outage).
            for session_id, users in self._local.items():
                for user_id in users:
                    pipe.hset(self._session_key(session_id), self._field(user_id), "1")
            for session_id, user_id in left:
                if user_id not in self._local.get(session_id, {}):
                    pipe.hdel(self._session_key(session_id), self._field(user_id))
            await pipe.execute()

        await self._redis.run(beat)
        self._left_while_down.difference_update(left)

    async def _resync(self) -> None:
        """Redis is back: publish what this relay holds now."""
        await self._beat()

    async def _forget_all(self) -> None:
        assert self._redis is not None

        async def forget(client: Any) -> None:
            pipe = client.pipeline()
            for session_id, users in self._local.items():
                for user_id in users:
                    pipe.hdel(self._session_key(session_id), self._field(user_id))
            pipe.delete(self._relay_key(self.relay_id))
            await pipe.execute()

        await self._redis.run(forget)

    # ------------------------------------------------------------------ keys
    @staticmethod
    def _session_key(session_id: uuid.UUID) -> str:
        return f"chat:presence:{session_id}"

    @staticmethod
    def _relay_key(relay_id: str) -> str:
        return f"chat:relay:{relay_id}"

    def _field(self, user_id: uuid.UUID) -> str:
        return f"{self.relay_id}|{user_id}"

    # ------------------------------------------------------------------ changes
    async def add(self, session_id: uuid.UUID, user_id: uuid.UUID, sid: str) -> bool:
        """Record a joined socket. True when the user was not online in the session before
        (on any relay)."""
        was_online = user_id in await self.online(session_id)
        sids = self._local[session_id].setdefault(user_id, set())
        first_here = not sids
        sids.add(sid)
        if first_here and self._redis is not None:
            key, field = self._session_key(session_id), self._field(user_id)
            # Down: the entry is published by _resync when Redis returns.
            with contextlib.suppress(RedisDown):
                await self._redis.run(lambda client: client.hset(key, field, "1"))
        return not was_online

    async def remove(self, session_id: uuid.UUID, user_id: uuid.UUID, sid: str) -> bool:
        """Forget a socket. True when that was the user's last socket in the session (on
        every relay)."""
        users = self._local.get(session_id)
        if not users or sid not in users.get(user_id, set()):
            return False
        users[user_id].discard(sid)
        if users[user_id]:
            return False
        del users[user_id]
        if not users:
            self._local.pop(session_id, None)
        if self._redis is not None:
            key, field = self._session_key(session_id), self._field(user_id)
            try:
                await self._redis.run(lambda client: client.hdel(key, field))
            except RedisDown:
                self._left_while_down.add((session_id, user_id))
        return user_id not in await self.online(session_id)

    def local_sids(self, session_id: uuid.UUID, user_id: uuid.UUID) -> set[str]:
        return set(self._local.get(session_id, {}).get(user_id, set()))

    # ------------------------------------------------------------------ queries
    async def online(self, session_id: uuid.UUID) -> list[uuid.UUID]:
        """Users with at least one joined socket on a live relay, sorted."""
        local = set(self._local.get(session_id, {}))
        if self._redis is None:
            return sorted(local)
        try:
            return await self._redis.run(lambda client: self._online(client, session_id, local))
        except RedisDown:
            return sorted(local)  # this relay's view until Redis returns

    async def _online(
        self, client: Any, session_id: uuid.UUID, local: set[uuid.UUID]
    ) -> list[uuid.UUID]:
        fields = await client.hkeys(self._session_key(session_id))
        by_relay: dict[str, list[uuid.UUID]] = defaultdict(list)
        for raw in fields:
            text = raw.decode() if isinstance(raw, bytes) else raw
            relay, _, user = text.partition("|")
            with contextlib.suppress(ValueError):
                by_relay[relay].append(uuid.UUID(user))
        relays = [r for r in by_relay if r != self.relay_id]
        users = set(local)
        if relays:
            alive = await client.mget([self._relay_key(r) for r in relays])
            dead: list[str] = []
            for relay, flag in zip(relays, alive, strict=True):
                if flag is not None:
                    users.update(by_relay[relay])
                else:
                    dead.extend(f"{relay}|{u}" for u in by_relay[relay])
            if dead:  # a crashed relay's entries: clean up lazily
                await client.hdel(self._session_key(session_id), *dead)
        return sorted(users)

    @property
    def active_sessions(self) -> int:
        return sum(1 for users in self._local.values() if users)
