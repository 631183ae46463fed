"""Sampling of repetitive records: the first few per key and window are kept, the rest
counted. Refusals nobody authenticated for (a flood of bad tokens) must not become one
permanent audit row each: Prometheus counts every one; the audit log keeps samples, each
saying how many like it were skipped before it, and a periodic summary
(:meth:`Sampler.drain`) accounts for the skips no later sample reported."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

_MAX_KEYS = 10_000  # beyond, the oldest windows are forgotten (their skips still counted)


@dataclass(slots=True)
class _Window:
    started: float
    kept: int = 0
    skipped: int = 0


class Sampler:
    def __init__(
        self, *, per_window: int, window: float = 60.0, clock: Callable[[], float] | None = None
    ) -> None:
        """``per_window`` records kept per key each ``window`` seconds (0: none)."""
        self.per_window = per_window
        self.window = window
        self._clock = clock or time.monotonic
        self._windows: dict[Hashable, _Window] = {}
        self.skipped_total = 0

    def admit(self, key: Hashable) -> int | None:
        """None: skip this record. Otherwise keep it; the value is how many records of
        this key were skipped since the last one kept."""
        now = self._clock()
        state = self._windows.get(key)
        carried = 0
        if state is None or now - state.started >= self.window:
            carried = state.skipped if state is not None else 0
            state = _Window(started=now, skipped=carried)
            self._windows[key] = state
            if len(self._windows) > _MAX_KEYS:
                oldest = min(self._windows, key=lambda k: self._windows[k].started)
                del self._windows[oldest]
        if state.kept >= self.per_window:
            state.skipped += 1
            self.skipped_total += 1
            return None
        state.kept += 1
        skipped, state.skipped = state.skipped, 0
        return skipped

    def drain(self) -> dict[Hashable, int]:
        """Skips not yet reported by a kept record, per key; they are reported here and
        will not be counted again by the next kept record."""
        found = {}
        for key, state in self._windows.items():
            if state.skipped:
                found[key] = state.skipped
                state.skipped = 0
        return found
