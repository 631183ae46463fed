"""The ids of the messages a relay's sockets have had lately, so that none is delivered twice
(the group commit's own emit, another relay's through Redis, and the changefeed's replay and
poll can all carry the same message).

Ids go into the newest of a few sets, each taking ids for an eighth of ``keep`` (or until
it holds an eighth of ``limit``); a set is dropped whole once the moment it closed is
``keep`` old, or when the ids held reach ``limit``, oldest set first. So an id is kept at
least ``keep`` seconds while fewer than ``limit`` ids arrive in ``keep`` and an eighth, and
the newest ``limit`` minus an eighth of it are always kept whatever the rate. With the
relay's two minutes and 100,000 ids: two minutes up to about 740 messages a second; at
1,000 a second, 87.5 to 100 s. Ids are dropped only when one is added, so an idle relay
keeps its last ones until traffic resumes.

Each id is stored as the 128-bit integer of its UUID, about 90 bytes an id, where an
ordered dict of ``UUID`` objects and their times cost 230 to 310: at 1,000 messages a
second, the ids kept came to some 30 MB of the relay's memory that way, and now to 9 MB.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable

GENERATIONS = 8  # sets per ``keep`` and per ``limit``


def id_key(message_id: object) -> int | None:
    """A message id (a ``UUID``, asyncpg's UUID, or its text) as the integer the sets hold;
    ``None`` for anything that is not a UUID."""
    if isinstance(message_id, uuid.UUID):
        return message_id.int
    if not isinstance(message_id, str):
        return None
    try:
        return uuid.UUID(message_id).int
    except ValueError:
        return None


class RecentIds:
    def __init__(
        self,
        *,
        keep: float,
        limit: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if keep <= 0 or limit <= 0:
            raise ValueError("keep and limit must be positive")
        self._keep = keep
        self._span = keep / GENERATIONS
        self._limit = limit
        self._per_set = max(1, limit // GENERATIONS)
        self._clock = clock
        self._current: set[int] = set()
        self._started = clock()
        # Closed sets, oldest first, each with the time it stopped taking ids; frozen, because
        # a set built whole is sized for what it holds (one that grew an id at a time has a
        # table of up to eight slots an id).
        self._closed: deque[tuple[float, frozenset[int]]] = deque()
        self._count = 0  # ids in the closed sets

    def __len__(self) -> int:
        return self._count + len(self._current)

    def __contains__(self, message_id: object) -> bool:
        key = id_key(message_id)
        if key is None:
            return False
        if key in self._current:
            return True
        return any(key in ids for _, ids in self._closed)

    def add(self, message_id: object) -> None:
        """Remember ``message_id``; anything that is not a message id is ignored."""
        key = id_key(message_id)
        if key is None:
            return
        now = self._clock()
        if now - self._started >= self._span or len(self._current) >= self._per_set:
            self._closed.append((now, frozenset(self._current)))
            self._count += len(self._current)
            self._current = set()
            self._started = now
        while self._closed and (self._closed[0][0] <= now - self._keep or len(self) >= self._limit):
            _, dropped = self._closed.popleft()
            self._count -= len(dropped)
        self._current.add(key)
