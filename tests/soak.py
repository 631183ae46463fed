"""Soak (not in CI; scripts/soak): 1,000 clients in 500 two-person sessions on one relay,
a steady send rate for ten minutes (the official socket.io-client, bench/loadgen.mjs).
Checks, and prints: every message delivered, no error, and no growth of the relay's memory
once it is warm: its live Python objects (``chat_python_heap_blocks``) within 5 % and its
resident memory within 10 % of what they were at the end of the warm-up.

The warm-up is the relay's memory of delivered message ids filling (SEEN_SECONDS, two
minutes, and up to an eighth more) and one window more: 2.75 minutes. Memory is judged
only when four windows or more follow it (a run of at least five minutes); a shorter run
says so and passes on delivery alone. Resident memory also keeps the high-water mark of
every backlog: a database stall of 3 s at 200 msg/s left it 4 MB higher for good, with the
live objects back where they were (bench/results/2026-12-07-soak-memory.md). A leak raises
both, steadily; the live objects are what tells it from the disk's stalls. Within ten
minutes the 5 % rule catches a leak of one small object per few messages. The summary also
gives resident memory from the first minute, and the live blocks gained per 1,000 messages
after the warm-up, reported and not judged: in ten minutes its noise (the id sets closing
and going, a backlog's step) is about a hundred, so it resolves slower leaks only over a
longer soak (``--minutes 60``).

    scripts/soak [--minutes 10] [--rate 200] [--pairs 500] [--writer socket|sql]

``--writer sql`` sends every message the way supabase-js does (an insert as the user, in
its own transaction) and the relay delivers them through its changefeed; the summary then
also gives the rows left in the changefeed's poll table, which must stay bounded (its
rows are kept a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from workers.changefeed import SEEN_SECONDS
from workers.recent_ids import GENERATIONS

from .bench_procs import loadgen, relay, rss_bytes
from .bench_suite import arrange_pairs, metric_values

SECRET = "soak-secret-0123456789abcdef0123456789abcdef"
WINDOW = 30.0  # seconds per step of the load generator
# Warm: the memory of delivered ids full (it keeps ids up to an eighth longer than
# SEEN_SECONDS), and a window more. Memory is judged only with at least JUDGED_WINDOWS after
# the warm one: in less, a leak has no time to show.
WARM_MINUTES = (SEEN_SECONDS * (1 + 1 / GENERATIONS) + WINDOW) / 60
JUDGED_WINDOWS = 4


def _slope(rows: list[dict[str, Any]]) -> float | None:
    """Live blocks gained per 1,000 messages over ``rows`` (least squares): a leak of one
    small object per message gives 1,000."""
    if len(rows) < 2:
        return None
    xs, total = [], 0
    for r in rows:
        total += r["sent"]
        xs.append(total / 1000)
    ys = [r["heap_blocks"] for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return None
    return round(sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var, 1)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=200, help="messages per second")
    parser.add_argument("--pairs", type=int, default=500, help="sessions (two clients each)")
    parser.add_argument(
        "--writer",
        choices=("socket", "sql"),
        default="socket",
        help="send_message on the sockets, or inserts as the users (supabase-js's path)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="chat-soak-"))
    pairs = await arrange_pairs(args.database_url, "5", args.pairs, product=True)
    windows = max(2, round(args.minutes * 60 / WINDOW))
    rows: list[dict[str, Any]] = []
    with relay(
        database_url=args.database_url,
        secret=SECRET,
        data_dir=work / "data",
        log=work / "relay.log",
    ) as server:
        async with loadgen(
            url=server.url,
            secret=SECRET,
            pairs=pairs,
            workdir=work,
            log=work / "loadgen.log",
            pg_url=args.database_url,
        ) as gen:
            joined = await gen.call(600, cmd="connect", **{"from": 0, "to": 2 * args.pairs})
            print(f"connected and joined: {joined}", flush=True)
            started = time.monotonic()
            for i in range(windows):
                step = await gen.call(
                    WINDOW + 120,
                    cmd="step",
                    rate=args.rate,
                    seconds=WINDOW,
                    drain=5,
                    writer=args.writer,
                    tag=f"soak{i}",
                )
                step["rss_mb"] = rss_bytes(server.pid) / 2**20
                metrics = await asyncio.to_thread(metric_values, f"{server.url}/metrics")
                step["heap_blocks"] = metrics["chat_python_heap_blocks"]
                step["minute"] = (time.monotonic() - started) / 60
                rows.append(step)
                errors = (
                    step["ack_errors"]
                    + step["error_events"]
                    + step["disconnects"]
                    + step["send_errors"]
                )
                print(
                    f"{step['minute']:5.1f} min  sent {step['sent']:6d}  delivered "
                    f"{step['delivered']:6d}  errors {errors}  p50 {step['p50_ms']} ms  "
                    f"p99 {step['p99_ms']} ms  rss {step['rss_mb']:.1f} MB  "
                    f"heap blocks {step['heap_blocks']:.0f}",
                    flush=True,
                )
    first = rows[1]["rss_mb"] if len(rows) > 2 else rows[0]["rss_mb"]  # after the first minute
    warm_at = next((i for i, r in enumerate(rows) if r["minute"] >= WARM_MINUTES), len(rows))
    judged = len(rows) - 1 - warm_at >= JUDGED_WINDOWS
    warm_row = rows[min(warm_at, len(rows) - 1)]
    end = rows[-1]["rss_mb"]
    growth = (end - warm_row["rss_mb"]) / warm_row["rss_mb"]
    heap_growth = (rows[-1]["heap_blocks"] - warm_row["heap_blocks"]) / warm_row["heap_blocks"]
    sent = sum(r["sent"] for r in rows)
    delivered = sum(r["delivered"] for r in rows)
    errors = sum(
        r["ack_errors"] + r["error_events"] + r["disconnects"] + r["send_errors"] for r in rows
    )
    memory_ok = abs(heap_growth) <= 0.05 and abs(growth) <= 0.10
    if not judged:
        print(
            f"memory not judged: {WARM_MINUTES:.2f} min of warm-up and {JUDGED_WINDOWS} windows "
            "after it are needed",
            flush=True,
        )
    conn = await asyncpg.connect(args.database_url)
    try:
        poll_rows = await conn.fetchval("select count(*) from chat_private.changefeed_messages")
    finally:
        await conn.close()
    summary = {
        "clients": 2 * args.pairs,
        "minutes": round(rows[-1]["minute"], 1),
        "rate": args.rate,
        "writer": args.writer,
        "sent": sent,
        "delivered": delivered,
        "errors": errors,
        "memory_judged": judged,
        "warm_at_minute": round(warm_row["minute"], 1),
        "heap_blocks_warm": round(warm_row["heap_blocks"]),
        "heap_blocks_end": round(rows[-1]["heap_blocks"]),
        "heap_growth": round(heap_growth, 4) if judged else None,
        "heap_blocks_per_1000_messages": _slope(rows[warm_at:]),
        "rss_first_minute_mb": round(first, 1),
        "rss_warm_mb": round(warm_row["rss_mb"], 1),
        "rss_end_mb": round(end, 1),
        "rss_growth": round(growth, 4) if judged else None,
        "rss_growth_from_first_minute": round((end - first) / first, 4),
        "p99_ms_worst_window": max(r["p99_ms"] or 0 for r in rows),
        "changefeed_poll_rows": poll_rows,
        "ok": delivered == sent
        and errors == 0
        and (memory_ok or not judged)
        # The poll table keeps a minute of rows; 90 s of them leaves room for the trim's pace.
        and poll_rows <= args.rate * 90,
    }
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
