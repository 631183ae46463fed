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
    first = uuid.uuid4()
    ids.add(first)
    added = clock.now
    # Ids keep arriving, one a second: the first one is known for its whole 120 s ...
    while clock.now - added < 120:
        assert first in ids, clock.now - added
        clock.now += 1
        ids.add(uuid.uuid4())
    # ... and gone within a quarter of that more.
    while first in ids:
        clock.now += 1
        ids.add(uuid.uuid4())
    assert clock.now - added <= 150
    assert 120 <= len(ids) <= 151


def test_the_limit_holds_whatever_the_rate_and_the_newest_ids_stay() -> None:
    clock = Clock()
    ids = RecentIds(keep=120, limit=1_000, clock=clock)
    added = []
    for _ in range(20_000):  # 100 a second for 200 s
        clock.now += 0.01
        message = uuid.uuid4()
        ids.add(message)
        added.append(message)
        assert len(ids) <= 1_000
    assert all(m in ids for m in added[-500:])
    # One burst larger than the whole limit, at one instant.
    for _ in range(3_000):
        ids.add(uuid.uuid4())
        assert len(ids) <= 1_000


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
