"""The benchmark suite (not collected by pytest), measured side by side in one run:

* relay, full path: two-person sessions, the official socket.io-client, offered rate
  stepped up; latency from `send_message` to `new_message` at the other participant;
  CPU per message of the server and of PostgreSQL; the audit linker's delay;
* baseline: the original Node stack (bench/baseline/server.mjs: Socket.IO + pg, one RLS
  transaction per message) driven by the same load generator;
* the load generator's own ceiling against a bare Socket.IO echo server;
* foreign writers: inserts through SQL as users (supabase-js's path), delivered by the relay;
* the database at scale (tests/bench_scale.py);
* idle connections: relay memory per joined websocket client.

    scripts/bench [--quick] [--record]       # sets up PostgreSQL and the databases, then this

The last line printed is one JSON object with every key (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from tests import bench_scale
from tests.bench_procs import (
    BENCH,
    NODE,
    LoadGen,
    cpu_seconds,
    cpu_tree_seconds,
    loadgen,
    node_server,
    postmaster_pid,
    relay,
    rss_tree_bytes,
)

FULL = {
    "pairs": 500,
    "steps": [250, 500, 750, 1000, 1250, 1500, 2000, 3000, 4000],
    "seconds": 10.0,
    "echo_steps": [250, 500, 1000, 2000, 4000, 6000, 8000, 12000],
    "foreign_steps": [250, 500, 1000, 1500, 2000, 3000, 4000],
    "idle_pairs": 5000,
    "scale": {
        "users": 10_000,
        "sessions": 100_000,
        "messages": 10_000_000,
        "samples": 2000,
        "budget_s": 60.0,
    },
}
QUICK = {
    "pairs": 100,
    # Steps of 250 up to 1,500: a lead of one stack over the other shows as a ratio.
    "steps": [250, 500, 750, 1000, 1250, 1500, 2000],
    "seconds": 3.0,
    "echo_steps": [250, 1000, 2000, 4000, 8000],
    "foreign_steps": [250, 500, 1000],
    "idle_pairs": 1000,
    "scale": {
        "users": 10_000,
        "sessions": 100_000,
        "messages": 1_000_000,
        "samples": 500,
        "budget_s": 15.0,
    },
}
P99_GOAL_MS = 50.0
COLLAPSE_P99_MS = 1000.0  # a step this slow is not a spike: stepping stops
# A probe sync this long means the disk stalled during the step (its median sync takes a
# third of a millisecond; this machine's stalls last 30 to 400 ms, every 10 to 30 s).
DISK_STALL_MS = 25.0
PREFERRED_RATE = 1500
FOREIGN_KEY_RATE = 500  # foreign_p99_ms is taken there
DRAIN_SECONDS = 5.0
PARTS = ("echo", "relay", "baseline", "foreign", "idle", "scale", "broadcast", "filter")


def progress(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Report:
    """What the run prints, kept for --record."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def table(self, head: list[str], rows: list[list[Any]]) -> None:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [
            max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
            for i, h in enumerate(head)
        ]
        self("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
        self("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for r in cells:
            self("| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |")
        self()


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


# ---------------------------------------------------------------------------- machine
def machine_info(pg_version: str, cluster: str) -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    node = subprocess.run([NODE, "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "cpu_model": model,
        "python": platform.python_version(),
        "node": node.lstrip("v"),
        "postgresql": pg_version,
        "postgresql_cluster": cluster,
        "kernel": platform.release(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------------- data
def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-0000-4000-8000-{i:012x}" for i in range(n)]


async def arrange_pairs(url: str, prefix: str, n: int, *, product: bool) -> list[tuple[str, ...]]:
    """n two-person sessions, each user in exactly one (ids are deterministic per prefix)."""
    users = _ids(prefix + "0000000", 2 * n)
    sessions = _ids(prefix + "1000000", n)
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "insert into auth.users (id, email, raw_app_meta_data) "
            'values ($1, $2, \'{"provider": "email", "role": "client"}\') '
            "on conflict (id) do nothing",
            [(uuid.UUID(u), f"bench-{u[:8]}-{i}@bench.test") for i, u in enumerate(users)],
        )
        insert = (
            "insert into public.chat_sessions (id, participants, type, created_by) "
            "values ($1, $2::uuid[], 'support', $3) on conflict (id) do nothing"
        )
        await conn.executemany(
            insert,
            [
                (
                    uuid.UUID(s),
                    [uuid.UUID(users[2 * k]), uuid.UUID(users[2 * k + 1])],
                    uuid.UUID(users[2 * k]),
                )
                for k, s in enumerate(sessions)
            ],
        )
        if product:
            await conn.execute("analyze public.chat_sessions")
    finally:
        await conn.close()
    return [(sessions[k], users[2 * k], users[2 * k + 1]) for k in range(n)]


# ---------------------------------------------------------------------------- steps
def _passed(step: dict[str, Any]) -> bool:
    return not _collapsed(step) and step["p99_ms"] <= P99_GOAL_MS


class DiskSyncProbe:
    """The machine's disk during a step: an 8 kB write and ``fdatasync`` every 0.1 s, from
    a thread, in a directory on the PostgreSQL cluster's file system (``BENCH_SYNC_DIR``,
    which scripts/bench sets to its own cluster's directory; else the temporary directory).
    Every commit waits for that disk to sync the WAL, so a latency spike in a step where the
    probe's longest sync is as long is the disk's, not the stack's: this machine's virtual
    disk stalls for tens of milliseconds at times, whichever stack is being measured."""

    def __init__(self, directory: str | None = None) -> None:
        self._directory = directory or os.environ.get("BENCH_SYNC_DIR") or tempfile.gettempdir()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.longest_ms = 0.0
        self.samples = 0

    def start(self) -> None:
        self._stop.clear()
        self.longest_ms, self.samples = 0.0, 0
        self._thread = threading.Thread(target=self._run, name="disk-sync-probe", daemon=True)
        self._thread.start()

    def stop(self) -> float | None:
        """The longest sync since start(), in ms (None when none completed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self.longest_ms if self.samples else None

    def _run(self) -> None:
        block = os.urandom(8192)
        fd, path = tempfile.mkstemp(prefix="bench-sync-", dir=self._directory)
        try:
            while not self._stop.is_set():
                os.pwrite(fd, block, 0)
                began = time.perf_counter()
                os.fdatasync(fd)
                took = (time.perf_counter() - began) * 1000
                self.longest_ms = max(self.longest_ms, took)
                self.samples += 1
                self._stop.wait(0.1)
        finally:
            os.close(fd)
            os.unlink(path)


class Stepper:
    """One stack's series of steps, run a rate at a time, so that two stacks can take
    turns (``take_turns``). The offered rate steps up. A step fails on its p99 alone when a
    latency spike of the machine lands in it (both stacks show them at low rates too), so
    stepping goes on past one such failure; it stops at a step that collapsed (lost
    messages, errors, could not keep the pace, p99 over a second) or after two failing
    steps in a row (never before `through`: a key measured at a given rate gets its
    figure). A step that failed on its p99 alone while the disk stalled (every commit waits
    for the disk, whichever stack is measured) is run once more; the first attempt stays in
    the table as "disk stall", not counted. With ``metrics_url`` (the relay's /metrics)
    each step also gets its messages per group commit. Before each step the harness waits
    until this stack's server, PostgreSQL and the servers in ``quiet`` are idle."""

    def __init__(
        self,
        gen: LoadGen,
        *,
        name: str,
        server_pid: int,
        pg_pid: int | None,
        rates: list[int],
        seconds: float,
        writer: str = "socket",
        through: int = 0,
        metrics_url: str | None = None,
        probe: Callable[[], DiskSyncProbe] = DiskSyncProbe,
        quiet: tuple[int, ...] = (),
    ) -> None:
        self.gen, self.name, self.server_pid, self.pg_pid = gen, name, server_pid, pg_pid
        self.writer, self.through, self.metrics_url = writer, through, metrics_url
        self.probe, self.quiet = probe, quiet
        self.results: list[dict[str, Any]] = []
        # A short warm-up (connections, plans), shown but not counted.
        self._rows = [(0, "warm-up", min(50, rates[0]), 2.0)] + [
            (i + 1, "step", r, seconds) for i, r in enumerate(rates)
        ]
        self._again: set[int] = set()  # steps already run again after a disk stall

    @property
    def done(self) -> bool:
        return not self._rows

    async def next_rate(self) -> None:
        """The next rate's step, and its second attempt if a disk stall explains a miss."""
        while self._rows and await self._run_one():
            pass

    async def _run_one(self) -> bool:
        """Run the next step; True when it is to be run once more (a disk stall)."""
        i, kind, rate, secs = self._rows.pop(0)
        gen, server_pid, pg_pid = self.gen, self.server_pid, self.pg_pid
        await settle([p for p in (server_pid, pg_pid, *self.quiet) if p])
        progress(f"{self.name}: {rate} msg/s for {secs:g} s ({self.writer})")
        before = (
            cpu_tree_seconds(server_pid),
            cpu_tree_seconds(pg_pid) if pg_pid else 0.0,
            cpu_seconds(gen.pid),
        )
        groups_before = await send_groups(self.metrics_url)
        disk = self.probe()
        disk.start()
        try:
            step = await gen.call(
                secs + DRAIN_SECONDS + 120,
                cmd="step",
                rate=rate,
                seconds=secs,
                drain=DRAIN_SECONDS,
                writer=self.writer,
                tag=f"{self.name}{i}-{uuid.uuid4().hex[:6]}",
            )
        finally:
            disk_sync_max_ms = disk.stop()
        after = (
            cpu_tree_seconds(server_pid),
            cpu_tree_seconds(pg_pid) if pg_pid else 0.0,
            cpu_seconds(gen.pid),
        )
        step["disk_sync_max_ms"] = disk_sync_max_ms
        groups_after = await send_groups(self.metrics_url)
        if groups_before and groups_after and groups_after[0] > groups_before[0]:
            step["messages_per_group"] = (groups_after[1] - groups_before[1]) / (
                groups_after[0] - groups_before[0]
            )
        n = max(1, step["sent"])
        step["server_cpu_ms"] = (after[0] - before[0]) * 1000 / n
        step["pg_cpu_ms"] = (after[1] - before[1]) * 1000 / n if pg_pid else None
        step["loadgen_cpu_ms"] = (after[2] - before[2]) * 1000 / n
        step["kind"] = kind
        step["ok"] = _passed(step)
        if kind == "step" and not step["ok"] and _stall_explains(step) and i not in self._again:
            self._again.add(i)
            step["kind"] = "disk stall"
            self.results.append(step)
            self._rows.insert(0, (i, kind, rate, secs))
            return True
        counted = [r for r in self.results if r["kind"] == "step"]
        self.results.append(step)
        if kind == "step" and not step["ok"] and rate >= self.through:
            failed_before = bool(counted) and not counted[-1]["ok"]
            if _collapsed(step) or failed_before:
                self._rows.clear()
        return False


async def run_steps(gen: LoadGen, **kwargs: Any) -> list[dict[str, Any]]:
    """One stack's whole series of steps (``Stepper``), on its own."""
    stepper = Stepper(gen, **kwargs)
    await take_turns([stepper])
    return stepper.results


async def take_turns(steppers: list[Stepper]) -> None:
    """Run the stacks' series rate by rate: each rate on every stack before the next rate,
    the stack that goes first alternating from rate to rate. A machine whose speed drifts
    over minutes (this VM's does, by tens of per cent) then weighs on both sides of the
    comparison alike, where series run one after the other would give one stack the slow
    spell. A stack whose series has stopped drops out; the others go on."""
    turn = 0
    while not all(s.done for s in steppers):
        for stepper in steppers if turn % 2 == 0 else steppers[::-1]:
            if not stepper.done:
                await stepper.next_rate()
        turn += 1


async def send_groups(metrics_url: str | None) -> tuple[float, float] | None:
    """The relay's group commits and the messages they held so far (its /metrics)."""
    if metrics_url is None:
        return None
    values = await asyncio.to_thread(metric_values, metrics_url)
    return values["chat_send_groups_total"], values["chat_send_group_messages_total"]


def metric_values(url: str) -> dict[str, float]:
    """Every sample of a /metrics page by its name (labels dropped: for unlabelled ones)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _stall_explains(step: dict[str, Any]) -> bool:
    """A miss on p99 alone that a disk stall seen during the step can account for: the
    probe's longest sync is a stall (``DISK_STALL_MS``) and at least half the gap between
    the step's p99 and p50 (a probe sync that starts during a stall sees only the rest of
    it)."""
    if _collapsed(step):
        return False
    disk = step.get("disk_sync_max_ms") or 0.0
    gap = (step["p99_ms"] or 0.0) - (step.get("p50_ms") or 0.0)
    return bool(disk >= DISK_STALL_MS and disk >= gap / 2)


def _collapsed(step: dict[str, Any]) -> bool:
    return bool(
        step["sent"] == 0
        or step["delivered"] < step["sent"]
        or _errors(step)
        or step["send_seconds"] > step["seconds"] * 1.1 + 0.5
        or step["p99_ms"] is None
        or step["p99_ms"] > COLLAPSE_P99_MS
    )


async def settle(pids: list[int], limit_s: float = 30.0) -> None:
    """Wait until every process tree given (servers, PostgreSQL) is idle, under a tenth of
    a core each, so a backlog left by the step before does not weigh on the next."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        before = [cpu_tree_seconds(p) for p in pids]
        await asyncio.sleep(0.5)
        after = [cpu_tree_seconds(p) for p in pids]
        if max((a - b for a, b in zip(after, before, strict=True)), default=0.0) < 0.05:
            return


async def at_rest(server_pid: int, pg_pid: int | None, seconds: float = 5.0) -> dict[str, float]:
    """CPU ms a second of a connected server with no traffic, and of PostgreSQL meanwhile:
    its fixed background work (timers, polls), which every step's CPU per message includes,
    and which the other stack's steps include too while the two take turns."""
    before = (cpu_tree_seconds(server_pid), cpu_tree_seconds(pg_pid) if pg_pid else 0.0)
    await asyncio.sleep(seconds)
    after = (cpu_tree_seconds(server_pid), cpu_tree_seconds(pg_pid) if pg_pid else 0.0)
    return {
        "server_ms_per_s": (after[0] - before[0]) * 1000 / seconds,
        "pg_ms_per_s": (after[1] - before[1]) * 1000 / seconds,
    }


def sustained(steps: list[dict[str, Any]]) -> int | None:
    """The highest offered rate with everything delivered and p99 within the goal (the
    issue's definition: a lower step that failed on a latency spike does not cap it)."""
    passed = [s["rate"] for s in steps if s["kind"] == "step" and s["ok"]]
    return max(passed) if passed else None


def at_rate(steps: list[dict[str, Any]], rate: int | None) -> dict[str, Any] | None:
    return next((s for s in steps if s["kind"] == "step" and s["rate"] == rate), None)


def _errors(s: dict[str, Any]) -> int:
    return int(s["ack_errors"] + s["error_events"] + s["disconnects"] + s["send_errors"])


STEP_COLUMNS = (
    ("achieved/s", lambda s: s["achieved"]),
    ("delivered %", lambda s: f"{s['delivered_pct']:.1f}"),
    ("p50 ms", lambda s: s["p50_ms"]),
    ("p99 ms", lambda s: s["p99_ms"]),
    ("max ms", lambda s: s["max_ms"]),
    # SQL writers: the insert's round trip (pool wait, transaction, commit) alone.
    ("write p99 ms", lambda s: s.get("write_p99_ms")),
    ("errors", _errors),
    ("server CPU ms/msg", lambda s: s["server_cpu_ms"]),
    ("PG CPU ms/msg", lambda s: s["pg_cpu_ms"]),
    ("loadgen CPU ms/msg", lambda s: s["loadgen_cpu_ms"]),
    ("loadgen stall ms", lambda s: s.get("loadgen_stall_ms")),
    # The machine's disk: the longest fdatasync of a probe beside PostgreSQL's data.
    ("disk sync max ms", lambda s: s.get("disk_sync_max_ms")),
    # The relay's group commits: how many messages each held on average.
    ("msgs/group", lambda s: s.get("messages_per_group")),
    ("passed", lambda s: s["kind"] if s["kind"] != "step" else ("yes" if s["ok"] else "NO")),
)


def step_table(report: Report, sides: dict[str, list[dict[str, Any]]]) -> None:
    """One row per offered rate; with two sides each cell is "first / second"."""
    names = list(sides)
    keys: list[tuple[str, int]] = []
    for steps in sides.values():
        for s in steps:
            if (s["kind"], s["rate"]) not in keys:
                keys.append((s["kind"], s["rate"]))
    # By rate, the warm-up first; a step's attempt during a disk stall just above it.
    keys.sort(key=lambda k: (k[0] != "warm-up", k[1], k[0] == "step"))
    rows = []
    for kind, rate in keys:
        row: list[Any] = [f"{rate} ({kind})" if kind != "step" else rate]
        found = [
            next((s for s in sides[n] if (s["kind"], s["rate"]) == (kind, rate)), None)
            for n in names
        ]
        for _, get in STEP_COLUMNS:
            cells = [_cell(get(s)) if s is not None else "—" for s in found]
            row.append(" / ".join(cells))
        rows.append(row)
    head = ["offered/s"] + [c for c, _ in STEP_COLUMNS]
    if len(names) > 1:
        report(f"Each cell: {' / '.join(names)}.")
        report()
    report.table(head, rows)


# ---------------------------------------------------------------------------- parts
async def audit_link_delay(url: str, since: dt.datetime) -> tuple[float | None, str]:
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("select to_regclass('chat_private.audit_links') is not null"):
            return None, "chat_private.audit_links does not exist on this branch: not measured"
        rows = """
            select a.created_at, l.linked_at
            from public.chat_audit_logs as a
            left join chat_private.audit_links as l on l.audit_id = a.id
            where a.created_at >= $1
        """
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            left = await conn.fetchval(
                f"select count(*) from ({rows}) as r where r.linked_at is null", since
            )
            if not left:
                break
            await asyncio.sleep(0.5)
        row = await conn.fetchrow(
            "select count(*) as n, count(*) filter (where r.linked_at is null) as unlinked, "
            "percentile_cont(0.99) within group (order by extract(epoch from "
            "coalesce(r.linked_at, clock_timestamp()) - r.created_at) * 1000) as p99 "
            f"from ({rows}) as r",
            since,
        )
        p99 = float(row["p99"]) if row["p99"] is not None else None
        note = f"{row['n']:,} audit rows written during the load, {row['unlinked']:,} unlinked"
        return p99, note + " after 30 s (counted at their age)" if row["unlinked"] else note
    finally:
        await conn.close()


async def part_load(
    args: argparse.Namespace, cfg: dict[str, Any], env: dict[str, Any]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    secret = env["secret"]
    pairs = env["pairs"]
    seconds = cfg["seconds"]
    pg_pid = env["pg_pid"]
    logs = env["logs"]

    if "echo" in args.parts:
        progress("echo server: the load generator's ceiling")
        with node_server(mode="echo", secret=secret, log=logs / "echo.log") as echo:
            async with loadgen(
                url=echo.url,
                secret=secret,
                pairs=env["pairs"],
                workdir=logs,
                log=logs / "loadgen.log",
            ) as gen:
                connected = await gen.call(600, cmd="connect")
                steps = await run_steps(
                    gen,
                    name="echo",
                    server_pid=echo.pid,
                    pg_pid=None,
                    rates=cfg["echo_steps"],
                    seconds=seconds,
                )
        out["echo"] = {"steps": steps, "connected": connected}

    if {"relay", "foreign"} & set(args.parts):
        progress("relay (python -m workers relay)")
        with relay(
            database_url=args.database_url,
            secret=secret,
            data_dir=logs / "data",
            log=logs / "relay.log",
        ) as server:
            async with loadgen(
                url=server.url,
                secret=secret,
                pairs=pairs,
                workdir=logs,
                log=logs / "loadgen.log",
                pg_url=args.database_url,
            ) as gen:
                connected = await gen.call(900, cmd="connect")
                progress(f"relay: {connected['ok']} clients joined in {connected['seconds']:.1f} s")
                if "relay" in args.parts:
                    await settle([server.pid, pg_pid] if pg_pid else [server.pid])
                    rest = await at_rest(server.pid, pg_pid)
                    async with contextlib.AsyncExitStack() as stack:
                        # The Node stack beside the relay, the two taking turns rate by
                        # rate. Not on the product's schema: there the relay would deliver
                        # the Node stack's messages to its own clients as well.
                        other = (
                            await _open_baseline(stack, args, env)
                            if "baseline" in args.parts and args.baseline_schema == "original"
                            else None
                        )
                        since = await _db_now(args.database_url)
                        mine = Stepper(
                            gen,
                            name="relay",
                            server_pid=server.pid,
                            pg_pid=pg_pid,
                            rates=cfg["steps"],
                            seconds=seconds,
                            metrics_url=f"{server.url}/metrics",
                            quiet=(other[0].pid,) if other else (),
                        )
                        steppers = [mine]
                        if other is not None:
                            steppers.append(
                                Stepper(
                                    other[1],
                                    name="baseline",
                                    server_pid=other[0].pid,
                                    pg_pid=pg_pid,
                                    rates=cfg["steps"],
                                    seconds=seconds,
                                    quiet=(server.pid,),
                                )
                            )
                        await take_turns(steppers)
                        if other is not None:
                            out["baseline"] = {
                                "steps": steppers[1].results,
                                "connected": other[2],
                                "turns": True,
                            }
                    delay, note = await audit_link_delay(args.database_url, since)
                    out["relay"] = {
                        "steps": mine.results,
                        "connected": connected,
                        "audit_p99": delay,
                        "audit_note": note,
                        "rest": rest,
                    }
                if "broadcast" in args.parts:
                    # The same steps with Supabase Realtime broadcasting switched off: what
                    # the broadcast of every message costs the relay's path.
                    await _set_broadcast(args.database_url, enabled=False)
                    try:
                        steps = await run_steps(
                            gen,
                            name="relay, broadcast off",
                            server_pid=server.pid,
                            pg_pid=pg_pid,
                            rates=cfg["steps"],
                            seconds=seconds,
                        )
                    finally:
                        await _set_broadcast(args.database_url, enabled=True)
                    out["relay_broadcast_off"] = {"steps": steps}
                if "filter" in args.parts:
                    # The same steps with the contact filter off (the default is flag):
                    # what scanning every message for contact details costs.
                    await _set_filter(args.database_url, "off")
                    try:
                        steps = await run_steps(
                            gen,
                            name="relay, contact filter off",
                            server_pid=server.pid,
                            pg_pid=pg_pid,
                            rates=cfg["steps"],
                            seconds=seconds,
                        )
                    finally:
                        await _set_filter(args.database_url, "flag")
                    out["relay_filter_off"] = {"steps": steps}
                if "foreign" in args.parts:
                    steps = await run_steps(
                        gen,
                        name="foreign",
                        server_pid=server.pid,
                        pg_pid=pg_pid,
                        rates=cfg["foreign_steps"],
                        seconds=seconds,
                        writer="sql",
                        through=FOREIGN_KEY_RATE,
                    )
                    out["foreign"] = {"steps": steps}

    if "baseline" in args.parts and "baseline" not in out:
        async with contextlib.AsyncExitStack() as stack:
            base, gen, connected = await _open_baseline(stack, args, env)
            steps = await run_steps(
                gen,
                name="baseline",
                server_pid=base.pid,
                pg_pid=pg_pid,
                rates=cfg["steps"],
                seconds=seconds,
            )
        out["baseline"] = {"steps": steps, "connected": connected, "turns": False}
    return out


async def _open_baseline(
    stack: contextlib.AsyncExitStack, args: argparse.Namespace, env: dict[str, Any]
) -> tuple[Any, LoadGen, dict[str, Any]]:
    """Start the original Node stack and connect its clients (both closed with ``stack``)."""
    progress("baseline: the original Node stack (socket.io + pg)")
    extra = {"TOUCH_AS": "service_role" if args.baseline_schema == "product" else "user"}
    url = args.database_url if args.baseline_schema == "product" else args.baseline_url
    base = stack.enter_context(
        node_server(
            mode="original",
            secret=env["secret"],
            log=env["logs"] / "baseline.log",
            database_url=url,
            extra=extra,
        )
    )
    gen = await stack.enter_async_context(
        loadgen(
            url=base.url,
            secret=env["secret"],
            pairs=env["pairs"],
            workdir=env["logs"],
            log=env["logs"] / "loadgen.log",
        )
    )
    connected = await gen.call(900, cmd="connect")
    progress(f"baseline: {connected['ok']} clients joined in {connected['seconds']:.1f} s")
    return base, gen, connected


async def _set_broadcast(url: str, *, enabled: bool) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("update chat_private.realtime_settings set broadcast = $1", enabled)
    finally:
        await conn.close()


async def _set_filter(url: str, mode: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("select chat_private.set_contact_filter($1, '{}')", mode)
    finally:
        await conn.close()


async def _db_now(url: str) -> dt.datetime:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("select clock_timestamp()")  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def part_idle(args: argparse.Namespace, env: dict[str, Any]) -> dict[str, Any]:
    pairs = env["idle_pairs"]
    logs = env["logs"]
    warm = 10
    progress(f"idle: {2 * len(pairs):,} joined websocket clients on one relay")
    with relay(
        database_url=args.database_url,
        secret=env["secret"],
        data_dir=logs / "data",
        log=logs / "relay-idle.log",
    ) as server:
        async with loadgen(
            url=server.url,
            secret=env["secret"],
            pairs=pairs,
            workdir=logs,
            log=logs / "loadgen.log",
        ) as gen:
            first = await gen.call(120, cmd="connect", to=warm)
            await asyncio.sleep(2)
            before = rss_tree_bytes(server.pid)
            connected = await gen.call(1800, cmd="connect", **{"from": warm})
            await asyncio.sleep(5)
            after = rss_tree_bytes(server.pid)
    joined = connected["ok"]
    return {
        "clients": 2 * len(pairs),
        "joined": joined + first["ok"],
        "connect_seconds": connected["seconds"],
        "failures": {**first["failures"], **connected["failures"]},
        "rss_before": before,
        "rss_after": after,
        "bytes_per_idle_connection": (after - before) / joined if joined else None,
    }


# ---------------------------------------------------------------------------- report
GOALS = {
    "relay_rate_ratio_vs_baseline": ">= 1.3",
    "relay_p99_ms": "<= 25",
    "foreign_p99_ms": "<= 50 at 500 msg/s",
    "history_p99_ms": "<= 2 at 10 M messages",
    "session_list_p99_ms": "<= 20",
    "rls_overhead_ratio": "<= 1.3",
    "bytes_per_idle_connection": "<= 20,000",
    "audit_link_delay_p99_ms": "<= 2,000",
}


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def summarize(
    load: dict[str, Any],
    idle: dict[str, Any] | None,
    scale: bench_scale.ScaleResult | None,
    quick: bool,
    machine: dict[str, Any],
) -> dict[str, Any]:
    relay_steps = load.get("relay", {}).get("steps", [])
    base_steps = load.get("baseline", {}).get("steps", [])
    relay_rate, base_rate = sustained(relay_steps), sustained(base_steps)
    both = {s["rate"] for s in relay_steps if s["kind"] == "step" and s["ok"]} & {
        s["rate"] for s in base_steps if s["kind"] == "step" and s["ok"]
    }
    if PREFERRED_RATE in both:
        common: int | None = PREFERRED_RATE
    elif both:
        common = max(both)
    else:  # nothing sustained by both: the first step, so a figure is still there
        first = [s["rate"] for s in relay_steps if s["kind"] == "step"]
        common = first[0] if first else None
    r_at, b_at = at_rate(relay_steps, common), at_rate(base_steps, common)
    foreign = load.get("foreign", {}).get("steps", [])
    f500 = at_rate(foreign, FOREIGN_KEY_RATE)
    echo = load.get("echo", {}).get("steps", [])
    history = service = listing = None
    if scale:
        history = scale.timings["history, as the user (RLS)"]
        service = scale.timings["history, as service_role"]
        listing = scale.timings["session list, user in 1,000 sessions"]
    return {
        "relay_rate": relay_rate,
        "baseline_rate": base_rate,
        "relay_rate_ratio_vs_baseline": _r(relay_rate / base_rate)
        if relay_rate and base_rate
        else (0.0 if base_rate and relay_steps else None),
        "relay_p99_ms": _r(r_at["p99_ms"]) if r_at else None,
        "relay_p99_at_rate": common,
        "baseline_p99_ms": _r(b_at["p99_ms"]) if b_at else None,
        "relay_cpu_ms_per_msg": _r(r_at["server_cpu_ms"], 3) if r_at else None,
        "postgres_cpu_ms_per_msg": _r(r_at["pg_cpu_ms"], 3) if r_at else None,
        "baseline_cpu_ms_per_msg": _r(b_at["server_cpu_ms"], 3) if b_at else None,
        "baseline_postgres_cpu_ms_per_msg": _r(b_at["pg_cpu_ms"], 3) if b_at else None,
        "loadgen_ceiling_rate": sustained(echo),
        "foreign_rate": sustained(foreign),
        "foreign_p99_ms": _r(f500["p99_ms"]) if f500 and f500["p99_ms"] is not None else None,
        "history_p99_ms": _r(history["p99_ms"], 3) if history else None,
        "session_list_p99_ms": _r(listing["p99_ms"], 3) if listing else None,
        "rls_overhead_ratio": _r(history["p50_ms"] / service["p50_ms"], 3)
        if history and service
        else None,
        "bytes_per_idle_connection": round(idle["bytes_per_idle_connection"])
        if idle and idle["bytes_per_idle_connection"] is not None
        else None,
        "audit_link_delay_p99_ms": _r(load.get("relay", {}).get("audit_p99")),
        "quick": quick,
        "machine": machine,
    }


def joined_note(load: dict[str, Any], parts: tuple[str, ...]) -> str:
    notes = []
    for part in parts:
        if part in load:
            c = load[part]["connected"]
            fail = f", refused: {c['failures']}" if c["failures"] else ""
            notes.append(
                f"{part}: {c['ok']:,} of {c['requested']:,} clients joined in "
                f"{c['seconds']:.1f} s{fail}"
            )
    return "; ".join(notes) + "."


def print_report(
    report: Report,
    result: dict[str, Any],
    load: dict[str, Any],
    idle: dict[str, Any] | None,
    scale: bench_scale.ScaleResult | None,
    cfg: dict[str, Any],
) -> None:
    m = result["machine"]
    report("## Machine")
    report()
    report(
        f"{m['cores']} cores ({m['cpu_model']}), {m['memory_gb']} GB, kernel {m['kernel']}; "
        f"Python {m['python']}, Node {m['node']}, PostgreSQL {m['postgresql']} "
        f"({m['postgresql_cluster']}); load average at start {m['load_avg_at_start']}"
    )
    report()
    if "relay" in load or "baseline" in load:
        report(
            f"## Relay, full path, beside the original Node stack ({2 * cfg['pairs']:,} clients in "
            f"{cfg['pairs']:,} two-person sessions, {cfg['seconds']:g} s per step)"
        )
        report()
        report(
            "Latency: `send_message` to `new_message` at the other participant. A step "
            f"passes with everything delivered, no error and p99 <= {P99_GOAL_MS:g} ms; "
            "stepping goes on past a step that missed on p99 alone and stops at a collapse (lost "
            "messages, errors, pace not kept, p99 over a second) or after two failing steps "
            "in a row; a step that missed on p99 alone while the disk stalled long enough to "
            "account for it is run once more (the first attempt shown as 'disk stall', not "
            "counted); a rate counts as sustained when its own step passed. CPU: utime + "
            "stime from /proc of the server process and of every PostgreSQL process, per "
            "message sent."
        )
        report()
        sides = {k: load[k]["steps"] for k in ("relay", "baseline") if k in load}
        report(joined_note(load, ("relay", "baseline")))
        report()
        if load.get("baseline", {}).get("turns"):
            report(
                "The two stacks ran side by side and took turns, rate by rate (each rate on "
                "both before the next, the first of the two alternating), so the machine's "
                "drift weighs on both alike."
            )
            report()
        step_table(report, sides)
        if "relay" in load:
            rest = load["relay"].get("rest")
            if rest:
                report(
                    f"The relay at rest (its clients joined, no messages): "
                    f"{rest['server_ms_per_s']:.1f} ms of CPU a second, its PostgreSQL "
                    f"{rest['pg_ms_per_s']:.1f} ms a second."
                )
                report()
            report(f"Audit link delay: {load['relay']['audit_note']}.")
        if "relay_broadcast_off" in load and "relay" in load:
            report()
            report(
                "### Supabase Realtime broadcasting (a realtime.messages row per message), "
                "on beside off, same run"
            )
            report()
            step_table(
                report,
                {
                    "broadcast on": load["relay"]["steps"],
                    "broadcast off": load["relay_broadcast_off"]["steps"],
                },
            )
            on = sustained(load["relay"]["steps"])
            off = sustained(load["relay_broadcast_off"]["steps"])
            report(f"Sustained: {on} msg/s with broadcasting, {off} msg/s without.")
        if "relay_filter_off" in load and "relay" in load:
            report()
            report("### The contact filter (flag, the default) beside off, same run")
            report()
            step_table(
                report,
                {
                    "filter flag": load["relay"]["steps"],
                    "filter off": load["relay_filter_off"]["steps"],
                },
            )
            on = sustained(load["relay"]["steps"])
            off = sustained(load["relay_filter_off"]["steps"])
            report(f"Sustained: {on} msg/s with the filter, {off} msg/s without.")
            report()
    if "foreign" in load:
        report(
            "## Foreign writers (SQL inserts as users, as supabase-js/PostgREST; the relay "
            "delivers)"
        )
        report()
        step_table(report, {"foreign": load["foreign"]["steps"]})
    if "echo" in load:
        report("## Load generator ceiling (bare Node Socket.IO echo server, no database)")
        report()
        report(joined_note(load, ("echo",)))
        report()
        step_table(report, {"echo": load["echo"]["steps"]})
    if idle:
        report("## Idle connections (one relay, each client its own user, joined)")
        report()
        report.table(
            ["clients", "joined", "connect s", "RSS before MB", "RSS after MB", "bytes/conn"],
            [
                [
                    idle["clients"],
                    idle["joined"],
                    idle["connect_seconds"],
                    idle["rss_before"] / 2**20,
                    idle["rss_after"] / 2**20,
                    idle["bytes_per_idle_connection"],
                ]
            ],
        )
        if idle["failures"]:
            report(f"connection failures: {idle['failures']}")
            report()
    if scale:
        report(
            f"## Database at scale ({scale.shape['messages']:,} messages, "
            f"{scale.shape['sessions']:,} sessions, {scale.shape['users']:,} users; "
            f"generated in {scale.generate_seconds:.0f} s; sizes "
            + ", ".join(f"{k} {v}" for k, v in scale.sizes.items())
            + ")"
        )
        report()
        report(
            f"Each query in its own transaction, as the service runs it; a series stops after "
            f"{cfg['scale']['budget_s']:g} s (the runs column), a slow query gets fewer runs."
        )
        report()
        report.table(
            ["query", "runs", "p50 ms", "p99 ms", "max ms"],
            [[k, v["n"], v["p50_ms"], v["p99_ms"], v["max_ms"]] for k, v in scale.timings.items()],
        )
        for title, plan in scale.plans.items():
            report(f"EXPLAIN (ANALYZE, BUFFERS): {title}")
            report()
            report("```text")
            report(plan)
            report("```")
            report()
    report("## Summary")
    report()
    baseline_of = {
        "relay_rate": result["baseline_rate"],
        "relay_p99_ms": result["baseline_p99_ms"],
        "relay_cpu_ms_per_msg": result["baseline_cpu_ms_per_msg"],
        "postgres_cpu_ms_per_msg": result["baseline_postgres_cpu_ms_per_msg"],
    }
    keys = [k for k in result if k not in ("quick", "machine") and not k.startswith("baseline")]
    report.table(
        ["key", "value", "baseline (original Node stack)", "goal"],
        [[k, result[k], baseline_of.get(k), GOALS.get(k)] for k in keys],
    )


# ---------------------------------------------------------------------------- main
async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="migrated database for the relay")
    parser.add_argument(
        "--baseline-url", required=True, help="database with bench/baseline/schema.sql"
    )
    parser.add_argument(
        "--scale-url", required=True, help="migrated, empty database for the scale part"
    )
    parser.add_argument(
        "--cluster", default="", help="what the PostgreSQL server is (for the report)"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--record", action="store_true", help="write bench/results/<date>.md")
    parser.add_argument("--label", default="", help="a note for the results file's title")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the servers' logs (kept anyway on failure)"
    )
    parser.add_argument(
        "--parts",
        default=",".join(p for p in PARTS if p not in ("broadcast", "filter")),
        help=f"subset of {','.join(PARTS)} (broadcast, filter: the relay's steps again with "
        "Realtime broadcasting or the contact filter off)",
    )
    parser.add_argument(
        "--baseline-schema",
        choices=("original", "product"),
        default="original",
        help="the original service's schema (default) or the product's, for the baseline",
    )
    # Development knobs (tiny runs); the defaults are the suite.
    parser.add_argument("--pairs", type=int)
    parser.add_argument("--steps", help="comma-separated offered rates")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--idle-pairs", type=int)
    parser.add_argument("--scale-messages", type=int)
    args = parser.parse_args()
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    cfg = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.pairs:
        cfg["pairs"] = args.pairs
    if args.steps:
        rates = [int(x) for x in args.steps.split(",")]
        cfg["steps"] = cfg["foreign_steps"] = cfg["echo_steps"] = rates
    if args.seconds:
        cfg["seconds"] = args.seconds
    if args.idle_pairs:
        cfg["idle_pairs"] = args.idle_pairs
    if args.scale_messages:
        cfg["scale"]["messages"] = args.scale_messages

    conn = await asyncpg.connect(args.database_url)
    try:
        pg_version = await conn.fetchval("show server_version")
        data_dir = await conn.fetchval("show data_directory")
    finally:
        await conn.close()
    pg_pid = postmaster_pid(data_dir)
    if pg_pid is None:
        progress("PostgreSQL's postmaster.pid is not readable here: no PostgreSQL CPU figures")
    machine = machine_info(pg_version, args.cluster or data_dir)

    logs = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    env: dict[str, Any] = {"secret": secrets.token_urlsafe(36), "pg_pid": pg_pid, "logs": logs}
    progress(f"logs in {logs}")
    env["pairs"] = await arrange_pairs(args.database_url, "b", cfg["pairs"], product=True)
    if args.baseline_schema == "original" and "baseline" in args.parts:
        await arrange_pairs(args.baseline_url, "b", cfg["pairs"], product=False)
    env["idle_pairs"] = (
        await arrange_pairs(args.database_url, "c", cfg["idle_pairs"], product=True)
        if "idle" in args.parts
        else []
    )

    load = await part_load(args, cfg, env)
    idle = await part_idle(args, env) if "idle" in args.parts else None
    scale = None
    if "scale" in args.parts:
        progress("database at scale")
        scale = await bench_scale.run(args.scale_url, log=progress, **cfg["scale"])

    result = summarize(load, idle, scale, args.quick, machine)
    report = Report()
    kind = "quick run (`scripts/bench --quick`)" if args.quick else "full run (`scripts/bench`)"
    title = f"# scripts/bench: {kind}, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    report(title + (f" — {args.label}" if args.label else ""))
    report()
    print_report(report, result, load, idle, scale, cfg)
    line = json.dumps(result, separators=(",", ":"))
    if args.record:
        day = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
        stem = f"{day}{'-quick' if args.quick else ''}"
        path = BENCH / "results" / f"{stem}.md"
        n = 1
        while path.exists():  # one file per run: a later run of the day gets -2, -3, ...
            n += 1
            path = BENCH / "results" / f"{stem}-{n}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(report.lines) + f"\n\n```json\n{line}\n```\n")
        progress(f"recorded in {path.relative_to(BENCH.parent)}")
    if not args.keep_logs:
        shutil.rmtree(logs, ignore_errors=True)
    print(line, flush=True)


async def _interruptible() -> None:
    """SIGTERM or SIGINT cancels the run, so every server it started is stopped."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    await main()


if __name__ == "__main__":
    try:
        asyncio.run(_interruptible())
    except asyncio.CancelledError:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
