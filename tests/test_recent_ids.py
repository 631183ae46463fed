"""The relay's memory of delivered message ids (workers/recent_ids.py): how long an id is
kept, its bound, the forms of an id it accepts, and what an id costs."""

from __future__ import annotations

import tracemalloc
import uuid

import pytest
from asyncpg.pgproto import pgproto

from workers.recent_ids import RecentIds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_id_is_known_in_every_form_it_arrives_in() -> None:
    ids = RecentIds(keep=120, limit=100)
    message = uuid.uuid4()
    ids.add(str(message))
    assert message in ids
    assert str(message).upper() in ids
    assert pgproto.UUID(message.bytes) in ids  # as asyncpg returns it
    assert uuid.uuid4() not in ids


def test_what_is_not_a_message_id_is_neither_kept_nor_known() -> None:
    ids = RecentIds(keep=120, limit=100)
    for junk in ("not-a-uuid", "", None, 12, b"\x00" * 16, {"id": 1}):
        ids.add(junk)
        assert junk not in ids
    assert len(ids) == 0


def test_an_id_is_kept_at_least_keep_seconds_and_forgotten_soon_after() -> None:
    clock = Clock()
    ids = RecentIds(keep=120, limit=1_000_000, clock=clock)
    added: list[tuple[float, uuid.UUID]] = []
    # Ids arrive ten a second for ten minutes: at every moment, each id added in the last
    # 120 s is known, and none older than 120 s plus an eighth of it.
    for _ in range(6_000):
        clock.now += 0.1
        message = uuid.uuid4()
        ids.add(message)
        added.append((clock.now, message))
        if len(added) % 97 == 0:  # a sample of moments, every id checked at each
            for at, old in added:
                age = clock.now - at
                if age <= 120:
                    assert old in ids, age
                elif age > 135.1:
                    assert old not in ids, age
    assert 1_200 <= len(ids) <= 1_351


def test_past_the_limit_the_newest_ids_stay() -> None:
    clock = Clock()
    ids = RecentIds(keep=120, limit=1_000, clock=clock)
    added = []
    for i in range(20_000):  # 100 a second for 200 s: ten times the limit in 120 s
        clock.now += 0.01
        message = uuid.uuid4()
        ids.add(message)
        added.append(message)
        assert len(ids) <= 1_000
        if i % 613 == 0:
            assert all(m in ids for m in added[-875:])  # the limit, less an eighth
    # One burst of three times the limit at one instant.
    burst = [uuid.uuid4() for _ in range(3_000)]
    for message in burst:
        ids.add(message)
        assert len(ids) <= 1_000
    assert all(m in ids for m in burst[-875:])


def test_sets_closed_by_time_count_toward_the_limit() -> None:
    """Eight a second for 200 s: 960 ids in two minutes and an eighth more than that, so
    sets closed by time (not by count) are what reach the limit."""
    clock = Clock()
    ids = RecentIds(keep=120, limit=1_000, clock=clock)
    added = []
    for _ in range(1_600):
        clock.now += 0.125
        message = uuid.uuid4()
        ids.add(message)
        added.append(message)
        assert len(ids) <= 1_000
    assert all(m in ids for m in added[-875:])


def test_after_an_idle_spell_one_add_forgets_every_closed_set() -> None:
    """The set still open when traffic stopped closes at the next add and is kept from
    then; every set closed before it goes at that add."""
    clock = Clock()
    ids = RecentIds(keep=120, limit=100_000, clock=clock)
    old = []
    for _ in range(600):  # ten a second for 60 s: three sets closed by time, one open
        clock.now += 0.1
        message = uuid.uuid4()
        ids.add(message)
        old.append(message)
    clock.now += 600
    ids.add(uuid.uuid4())
    assert not any(m in ids for m in old[:-151])  # all but the last 15 s
    assert len(ids) <= 152


def test_keep_and_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentIds(keep=0, limit=10)
    with pytest.raises(ValueError):
        RecentIds(keep=10, limit=0)


def test_an_id_costs_under_a_hundred_and_twenty_bytes() -> None:
    """24,000 ids: two minutes at 200 messages a second. The ordered dict of UUID objects
    and their times this replaced cost about 310 bytes an id."""
    clock = Clock()
    messages = [str(uuid.uuid4()) for _ in range(24_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        ids = RecentIds(keep=120, limit=100_000, clock=clock)
        for message in messages:
            clock.now += 0.005
            ids.add(message)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(ids) == 24_000
    assert held / len(ids) < 120, held / len(ids)
