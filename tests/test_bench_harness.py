"""The benchmark harness's own rules (scripts/bench is not run by the tests): the relay
overrides are valid settings, the summary picks its steps as documented, and the relay's
metrics the step table reads exist."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import asyncpg

from tests.bench_procs import BENCH, read_env_file
from tests.bench_scale import _distinct_plans
from tests.bench_suite import (
    DiskSyncProbe,
    Report,
    Stepper,
    _collapsed,
    run_steps,
    send_groups,
    step_table,
    summarize,
    sustained,
    take_turns,
)
from workers.config import Settings

from .conftest import Users
from .relay_helpers import Recorder, people, running_relay

MACHINE = {"cores": 2}


def _step(rate: int, *, ok: bool, p99: float = 10.0, kind: str = "step") -> dict[str, Any]:
    return {
        "kind": kind,
        "rate": rate,
        "ok": ok,
        "p99_ms": p99,
        "server_cpu_ms": 0.5,
        "pg_cpu_ms": 1.0,
    }


def _summary(relay: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    load = {"relay": {"steps": relay, "audit_p99": None}, "baseline": {"steps": baseline}}
    return summarize(load, None, None, True, MACHINE)


def test_relay_env_is_accepted_by_the_service_and_lifts_the_limits() -> None:
    env = read_env_file(BENCH / "relay.env") | {"JWT_SECRET": "s" * 40}
    settings = Settings.from_env(env)
    assert settings.message_bucket.rate == 0
    assert settings.event_bucket.rate == 0
    assert settings.typing_bucket.rate == 0


def test_p99_is_compared_at_1500_when_both_sustain_it() -> None:
    relay = [_step(r, ok=True, p99=r / 100) for r in (250, 1000, 1500, 2000, 3000)]
    baseline = [_step(r, ok=True, p99=r / 50) for r in (250, 1000, 1500, 2000)]
    result = _summary(relay, [*baseline, _step(3000, ok=False)])
    assert result["relay_p99_at_rate"] == 1500
    assert result["relay_p99_ms"] == 15.0
    assert result["baseline_p99_ms"] == 30.0
    assert result["relay_rate"] == 3000
    assert result["baseline_rate"] == 2000
    assert result["relay_rate_ratio_vs_baseline"] == 1.5


def test_p99_falls_back_to_the_highest_step_both_sustain() -> None:
    relay = [_step(250, ok=True), _step(1000, ok=False)]
    baseline = [_step(250, ok=True), _step(1000, ok=True), _step(1500, ok=True)]
    result = _summary(relay, baseline)
    assert result["relay_p99_at_rate"] == 250
    assert result["relay_rate_ratio_vs_baseline"] == 0.17


def test_warm_up_never_counts_as_a_sustained_step() -> None:
    relay = [_step(50, ok=True, kind="warm-up"), _step(250, ok=False, p99=900.0)]
    result = _summary(relay, [_step(50, ok=True, kind="warm-up"), _step(250, ok=True)])
    assert result["relay_rate"] is None
    assert result["relay_rate_ratio_vs_baseline"] == 0.0
    assert result["relay_p99_at_rate"] == 250  # nothing shared: the first step, still a figure
    assert result["relay_p99_ms"] == 900.0


def test_nested_plans_are_shown_once_per_statement_with_their_count() -> None:
    same = "duration: {} ms  plan:\nQuery Text: select 1\nResult (actual time={}..{} rows=1)"
    notices = [same.format(1.5, 0.1, 0.2), same.format(2.5, 0.3, 0.4), "duration: 3.0 ms  plan:\nX"]
    plans = _distinct_plans(notices)
    assert len(plans) == 2
    assert plans[0].startswith("-- ran 2 times, 4.0 ms in all")
    assert plans[1].endswith("X")


def test_a_rate_sustained_above_a_step_failed_on_its_p99_counts() -> None:
    # The definition: the highest offered rate with everything delivered and p99
    # within the goal. A lower step that missed on p99 (a spike) does not cap it; the same
    # rule holds for the baseline.
    relay = [_step(250, ok=False, p99=90.0), _step(500, ok=True)]
    result = _summary(relay, [_step(250, ok=True), _step(500, ok=False, p99=70.0)])
    assert result["relay_rate"] == 500
    assert result["baseline_rate"] == 250
    assert result["relay_rate_ratio_vs_baseline"] == 2.0


def _measured(**over: Any) -> dict[str, Any]:
    step = {
        "sent": 1000,
        "delivered": 1000,
        "ack_errors": 0,
        "error_events": 0,
        "disconnects": 0,
        "send_errors": 0,
        "seconds": 3.0,
        "send_seconds": 3.0,
        "p99_ms": 80.0,
    }
    return step | over


def test_stepping_goes_on_past_a_spike_and_stops_at_a_collapse() -> None:
    assert not _collapsed(_measured())  # p99 over the goal only: the next step still runs
    assert _collapsed(_measured(delivered=999))
    assert _collapsed(_measured(ack_errors=1))
    assert _collapsed(_measured(send_seconds=4.5))
    assert _collapsed(_measured(p99_ms=1500.0))
    assert _collapsed(_measured(p99_ms=None))


async def test_messages_per_group_are_read_from_the_relays_metrics(
    database_url: str, users: Users, superuser: asyncpg.Connection
) -> None:
    world = await people(users, superuser)
    async with running_relay(database_url) as (url, _relay):
        before = await send_groups(f"{url}/metrics")
        assert before is not None
        sender = Recorder("client")
        await sender.connect(url, world["tokens"]["client"])
        for text in ("one", "two"):
            ack = await sender.call(
                "send_message", {"session_id": str(world["session"]), "content": text}
            )
            assert ack["ok"], ack
        after = await send_groups(f"{url}/metrics")
        assert after is not None
        assert after[1] - before[1] == 2  # messages
        assert 1 <= after[0] - before[0] <= 2  # groups


def test_the_disk_probe_reports_its_longest_sync(tmp_path: Path) -> None:
    probe = DiskSyncProbe(str(tmp_path))
    assert probe.stop() is None  # never started: nothing measured
    probe.start()
    time.sleep(0.35)
    longest = probe.stop()
    assert probe.samples >= 3
    assert longest is not None and 0 < longest < 10_000
    assert list(tmp_path.iterdir()) == []  # its file is removed


class _Steps:
    """The load generator's answers for a series of steps (the harness's rules, not the
    generator, are under test): p99 values in the order the steps are run."""

    def __init__(self, p99s: list[float]) -> None:
        self.pid = os.getpid()
        self._p99s = p99s
        self.rates: list[int] = []

    async def call(self, _timeout: float, **command: Any) -> dict[str, Any]:
        self.rates.append(command["rate"])
        return {
            "rate": command["rate"],
            "seconds": command["seconds"],
            "send_seconds": command["seconds"],
            "sent": 10,
            "delivered": 10,
            "p50_ms": 2.0,
            "p99_ms": self._p99s.pop(0),
            "ack_errors": 0,
            "error_events": 0,
            "disconnects": 0,
            "send_errors": 0,
        }


class _Disk(DiskSyncProbe):
    """Syncs as long as given, one per step, in order."""

    longest: ClassVar[list[float]] = []

    def start(self) -> None:
        pass

    def stop(self) -> float | None:
        return self.longest.pop(0)


async def test_a_step_failed_during_a_disk_stall_is_run_once_more() -> None:
    # warm-up, 250 (fails while the disk stalls: run again, passes), 500 (fails while the
    # disk stalls, fails again: counted), 750 (fails with a 30 ms stall, too short for its
    # p99 of 90 ms: counted, and two failures in a row end the series).
    gen = _Steps([5.0, 80.0, 6.0, 90.0, 85.0, 90.0])
    _Disk.longest = [0.4, 95.0, 0.5, 80.0, 70.0, 30.0]
    steps = await run_steps(
        gen,  # type: ignore[arg-type]
        name="relay",
        server_pid=os.getpid(),
        pg_pid=None,
        rates=[250, 500, 750, 1000],
        seconds=1.0,
        probe=_Disk,
    )
    assert gen.rates == [50, 250, 250, 500, 500, 750]
    assert [(s["kind"], s["rate"], s["ok"]) for s in steps] == [
        ("warm-up", 50, True),
        ("disk stall", 250, False),
        ("step", 250, True),
        ("disk stall", 500, False),
        ("step", 500, False),
        ("step", 750, False),
    ]
    assert sustained(steps) == 250


class _Named(_Steps):
    """A stack's load generator that writes down, in one list shared with the other
    stack's, which stack ran which rate."""

    def __init__(self, name: str, p99s: list[float], calls: list[tuple[str, int]]) -> None:
        super().__init__(p99s)
        self.name, self.calls = name, calls

    async def call(self, _timeout: float, **command: Any) -> dict[str, Any]:
        self.calls.append((self.name, command["rate"]))
        return await super().call(_timeout, **command)


async def test_two_stacks_take_turns_rate_by_rate_and_one_that_stopped_drops_out() -> None:
    # The relay's 250 misses while the disk stalls: its second attempt comes at once, in
    # its own turn. The Node stack misses 500 and 750 (no stall): two failures in a row end
    # its series, and the relay goes on alone.
    calls: list[tuple[str, int]] = []
    relay_gen = _Named("relay", [5.0, 80.0, 6.0, 6.0, 6.0, 6.0], calls)
    node_gen = _Named("baseline", [5.0, 6.0, 90.0, 95.0], calls)
    _Disk.longest = [0.4, 0.4, 0.4, 95.0, 0.5, 0.4, 0.4, 0.4, 0.4, 0.4]
    common: dict[str, Any] = {
        "server_pid": os.getpid(),
        "pg_pid": None,
        "rates": [250, 500, 750, 1000],
        "seconds": 1.0,
        "probe": _Disk,
    }
    relay = Stepper(relay_gen, name="relay", **common)  # type: ignore[arg-type]
    node = Stepper(node_gen, name="baseline", **common)  # type: ignore[arg-type]
    await take_turns([relay, node])
    assert calls == [
        ("relay", 50),
        ("baseline", 50),
        ("baseline", 250),  # the first of the two alternates from rate to rate
        ("relay", 250),
        ("relay", 250),
        ("relay", 500),
        ("baseline", 500),
        ("baseline", 750),
        ("relay", 750),
        ("relay", 1000),
    ]
    assert [(s["kind"], s["rate"]) for s in relay.results] == [
        ("warm-up", 50),
        ("disk stall", 250),
        ("step", 250),
        ("step", 500),
        ("step", 750),
        ("step", 1000),
    ]
    assert sustained(relay.results) == 1000 and sustained(node.results) == 250
    assert relay.done and node.done


def test_the_step_table_lists_rates_in_order_with_a_stalled_attempt_above_its_step() -> None:
    def row(rate: int, kind: str = "step") -> dict[str, Any]:
        return {
            "rate": rate,
            "kind": kind,
            "ok": kind == "step",
            "achieved": rate,
            "delivered_pct": 100.0,
            "p50_ms": 1.0,
            "p99_ms": 2.0,
            "max_ms": 3.0,
            "ack_errors": 0,
            "error_events": 0,
            "disconnects": 0,
            "send_errors": 0,
            "server_cpu_ms": 0.5,
            "pg_cpu_ms": 1.0,
            "loadgen_cpu_ms": 0.2,
        }

    report = Report()
    relay = [row(50, "warm-up"), row(250), row(500)]
    baseline = [row(50, "warm-up"), row(250), row(500, "disk stall"), row(500)]
    step_table(report, {"relay": relay, "baseline": baseline})
    table = [line for line in report.lines if line.startswith("| ")][1:]  # after the head
    firsts = [line.split("|")[1].strip() for line in table]
    assert firsts == ["50 (warm-up)", "250", "500 (disk stall)", "500"]
