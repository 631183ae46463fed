"""Typing indicators: coalesced starts, server-side timeouts.

Repeated ``typing_start`` within ``coalesce`` seconds produce one ``user_typing``; without a
new ``typing_start`` the tracker itself reports a stop after ``timeout`` seconds. Leave and
disconnect stop typing too (the relay calls :meth:`stop`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from ..tasks import spawn

Key = tuple[uuid.UUID, uuid.UUID]  # (session_id, user_id)
# (session_id, user_id, who): ``who`` is what start() was given (the relay: the principal).
OnStop = Callable[[uuid.UUID, uuid.UUID, Any], Coroutine[Any, Any, None]]


@dataclass(slots=True)
class _State:
    last_emit: float
    who: Any
    timer: asyncio.TimerHandle | None = None


class TypingTracker:
    def __init__(self, *, on_timeout: OnStop, timeout: float = 5.0, coalesce: float = 1.0) -> None:
        self._on_timeout = on_timeout
        self._timeout = timeout
        self._coalesce = coalesce
        self._states: dict[Key, _State] = {}

    def start(self, session_id: uuid.UUID, user_id: uuid.UUID, who: Any) -> bool:
        """Record a typing_start. True when a ``user_typing`` should go out now."""
        key = (session_id, user_id)
        now = time.monotonic()
        state = self._states.get(key)
        emit = state is None or now - state.last_emit >= self._coalesce
        if state is None:
            state = self._states[key] = _State(last_emit=now, who=who)
        elif emit:
            state.last_emit = now
        state.who = who
        if state.timer is not None:
            state.timer.cancel()
        loop = asyncio.get_running_loop()
        state.timer = loop.call_later(self._timeout, self._expire, key)
        return emit

    def stop(self, session_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Record a stop. True when the user was typing (a ``user_stopped_typing`` is due)."""
        state = self._states.pop((session_id, user_id), None)
        if state is None:
            return False
        if state.timer is not None:
            state.timer.cancel()
        return True

    def _expire(self, key: Key) -> None:
        state = self._states.pop(key, None)
        if state is not None:
            spawn(self._on_timeout(key[0], key[1], state.who), name="typing-timeout")

    @property
    def typing_sessions(self) -> int:
        return len({session for session, _ in self._states})

    def close(self) -> None:
        for state in self._states.values():
            if state.timer is not None:
                state.timer.cancel()
        self._states.clear()
