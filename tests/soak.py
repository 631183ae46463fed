"""Soak (not in CI; scripts/soak): 1,000 clients in 500 two-person sessions on one relay,
a steady send rate for ten minutes (the official socket.io-client, bench/loadgen.mjs).
Checks, and prints: every message delivered, no error, and the relay's resident memory at
the end within 10 % of what it was after the warm-up minute.

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

from .bench_procs import loadgen, relay, rss_bytes
from .bench_suite import arrange_pairs

SECRET = "soak-secret-0123456789abcdef0123456789abcdef"
WINDOW = 30.0  # seconds per step of the load generator


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
                    f"p99 {step['p99_ms']} ms  rss {step['rss_mb']:.1f} MB",
                    flush=True,
                )
    warm = rows[1]["rss_mb"] if len(rows) > 2 else rows[0]["rss_mb"]  # after the first minute
    end = rows[-1]["rss_mb"]
    sent = sum(r["sent"] for r in rows)
    delivered = sum(r["delivered"] for r in rows)
    errors = sum(
        r["ack_errors"] + r["error_events"] + r["disconnects"] + r["send_errors"] for r in rows
    )
    growth = (end - warm) / warm
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
        "rss_after_warmup_mb": round(warm, 1),
        "rss_end_mb": round(end, 1),
        "rss_growth": round(growth, 4),
        "p99_ms_worst_window": max(r["p99_ms"] or 0 for r in rows),
        "changefeed_poll_rows": poll_rows,
        "ok": delivered == sent
        and errors == 0
        and abs(growth) <= 0.10
        # The poll table keeps a minute of rows; 90 s of them leaves room for the trim's pace.
        and poll_rows <= args.rate * 90,
    }
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
