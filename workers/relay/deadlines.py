"""Many coarse deadlines on one event-loop timer.

Every socket of a relay has deadlines that almost never fire on time-critical paths: its
next Engine.IO ping, the moment its client counts as gone (nothing read for the ping
interval plus the ping timeout) and its token's expiry. An event-loop timer per deadline
costs about 0.5 KB per socket each (uvloop's handle and its libuv timer); here a deadline
is a small slotted object in a bucket of ``resolution`` seconds, and one loop timer waits
for the earliest bucket. A deadline fires at most ``resolution`` late and, as any loop
timer, up to a millisecond early (the loop's clock); the timer runs only when a bucket is
due: an idle relay with one socket wakes once per ping interval, not once per tick.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Deadline:
    """One scheduled callback; ``cancel()`` forgets it (at once: it frees its slot)."""

    __slots__ = ("_owner", "args", "callback", "key")

    def __init__(
        self, owner: Deadlines, key: int, callback: Callable[..., Any], args: tuple[Any, ...]
    ) -> None:
        self._owner: Deadlines | None = owner
        self.key = key
        self.callback = callback
        self.args = args

    @property
    def active(self) -> bool:
        """Neither fired nor cancelled yet."""
        return self._owner is not None

    def cancel(self) -> None:
        owner = self._owner
        if owner is not None:
            self._owner = None
            owner._discard(self)


class Deadlines:
    """Deadlines in buckets of ``resolution`` seconds, fired by one loop timer."""

    def __init__(self, resolution: float = 0.1) -> None:
        if resolution <= 0:
            raise ValueError("resolution must be positive")
        self.resolution = resolution
        self._buckets: dict[int, set[Deadline]] = {}
        self._keys: list[int] = []  # a heap of the bucket keys, each at most once
        self._queued: set[int] = set()  # the keys in the heap
        self._timer: asyncio.TimerHandle | None = None
        self._armed: int | None = None  # the key the timer waits for
        self.fired = 0

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def after(self, delay: float, callback: Callable[..., Any], *args: Any) -> Deadline:
        """Call ``callback(*args)`` in ``delay`` seconds (at most ``resolution`` later, or
        a millisecond sooner)."""
        loop = asyncio.get_running_loop()
        key = math.ceil((loop.time() + max(delay, 0.0)) / self.resolution)
        deadline = Deadline(self, key, callback, args)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = set()
            if key not in self._queued:
                self._queued.add(key)
                heapq.heappush(self._keys, key)
            if self._armed is None or key < self._armed:
                self._arm(loop, key)
        bucket.add(deadline)
        return deadline

    def close(self) -> None:
        """Forget every deadline (the relay is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed = None
        for bucket in self._buckets.values():
            for deadline in bucket:
                deadline._owner = None
        self._buckets.clear()
        self._keys.clear()
        self._queued.clear()

    def _discard(self, deadline: Deadline) -> None:
        bucket = self._buckets.get(deadline.key)
        if bucket is not None:
            bucket.discard(deadline)
            if not bucket:
                del self._buckets[deadline.key]  # its key leaves the heap when due

    def _arm(self, loop: asyncio.AbstractEventLoop, key: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = key
        self._timer = loop.call_at(key * self.resolution, self._fire)

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = self._armed = None
        # A loop may run a timer a little early (its clock's resolution): a bucket due
        # within a hundredth of a step counts as due.
        due = math.floor(loop.time() / self.resolution + 0.01)
        keys = self._keys
        while keys and keys[0] <= due:
            key = heapq.heappop(keys)
            self._queued.discard(key)
            bucket = self._buckets.pop(key, None)
            if not bucket:
                continue
            for deadline in bucket:
                if deadline._owner is None:  # cancelled by an earlier callback
                    continue
                deadline._owner = None
                self.fired += 1
                try:
                    deadline.callback(*deadline.args)
                except Exception:
                    log.exception("deadline callback %r failed", deadline.callback)
        while keys and keys[0] not in self._buckets:  # emptied by cancel()
            self._queued.discard(heapq.heappop(keys))
        if keys:
            self._arm(loop, keys[0])
