"""The relay's deadlines (workers/relay/deadlines.py): many per-socket timers on one event
loop timer, firing never early and at most one step late."""

from __future__ import annotations

import asyncio
import logging

import pytest

from workers.relay.deadlines import Deadlines


async def test_deadlines_fire_in_order_never_early_and_at_most_a_step_late() -> None:
    loop = asyncio.get_running_loop()
    wheel = Deadlines(resolution=0.05)
    fired: list[tuple[str, float]] = []
    start = loop.time()
    for name, delay in (("c", 0.30), ("a", 0.10), ("b", 0.20), ("a2", 0.10)):
        wheel.after(delay, lambda n=name: fired.append((n, loop.time() - start)))
    assert len(wheel) == 4
    await asyncio.sleep(0.5)
    assert sorted(n for n, _ in fired[:2]) == ["a", "a2"]
    assert [n for n, _ in fired[2:]] == ["b", "c"]
    asked = {"a": 0.10, "a2": 0.10, "b": 0.20, "c": 0.30}
    for name, at in fired:
        assert at >= asked[name] - 0.002  # a loop timer may run a millisecond early
        assert at <= asked[name] + 0.05 + 0.05  # one step, and the loop's own delay
    assert len(wheel) == 0 and wheel.fired == 4


async def test_a_cancelled_deadline_never_fires_and_frees_its_slot() -> None:
    wheel = Deadlines(resolution=0.02)
    fired: list[int] = []
    kept = wheel.after(0.05, fired.append, 1)
    dropped = wheel.after(0.05, fired.append, 2)
    later = wheel.after(30, fired.append, 3)
    dropped.cancel()
    later.cancel()
    later.cancel()  # twice is harmless
    assert len(wheel) == 1
    assert not dropped.active and kept.active
    await asyncio.sleep(0.15)
    assert fired == [1]
    assert not kept.active


async def test_a_callback_may_cancel_another_of_the_same_step_or_schedule_more() -> None:
    wheel = Deadlines(resolution=0.05)
    fired: list[str] = []
    second = None

    def first() -> None:
        fired.append("first")
        if second is not None:
            second.cancel()
        wheel.after(0.05, fired.append, "again")

    wheel.after(0.05, first)
    second = wheel.after(0.05, fired.append, "second")
    await asyncio.sleep(0.3)
    # Within one step the order is not defined: "second" fired only if it came first.
    assert fired.count("first") == 1 and fired[-1] == "again"
    assert fired.count("second") <= 1


async def test_a_failing_callback_is_logged_and_the_others_still_fire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    wheel = Deadlines(resolution=0.02)
    fired: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    wheel.after(0.02, boom)
    wheel.after(0.02, fired.append, 1)
    wheel.after(0.06, fired.append, 2)
    with caplog.at_level(logging.ERROR, logger="workers.relay.deadlines"):
        await asyncio.sleep(0.2)
    assert fired == [1, 2]
    assert "deadline callback" in caplog.text


async def test_closing_forgets_every_deadline() -> None:
    wheel = Deadlines(resolution=0.02)
    fired: list[int] = []
    handles = [wheel.after(0.05, fired.append, i) for i in range(100)]
    wheel.close()
    await asyncio.sleep(0.15)
    assert fired == []
    assert len(wheel) == 0
    assert not any(h.active for h in handles)


def test_the_resolution_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Deadlines(resolution=0)
