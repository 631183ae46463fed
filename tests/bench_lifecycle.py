"""Benchmark (not collected by pytest): the data lifecycle at size, on the real service
(``python -m workers relay`` as a child process, configured like scripts/bench's relay).

* **Export**: a user in ``--sessions`` sessions with ``--messages`` messages in all asks
  for their archive; the time until it is ready, its size, and the relay's peak memory
  (VmHWM, reset first) against a one-session export in the same run: the memory an export
  takes must not grow with its size.
* **Retention purge beside the message path**: ``--purge-messages`` messages in expired
  closed sessions are purged (``retention.purge``, the leader's code, in batches of
  ``--batch``) while socket clients send at ``--rate`` messages a second; the send-ack
  latency (p50, p99) of the same load without the purge is measured first, in the same run.

    scripts/bench lifecycle [--quick]
    python -m tests.bench_lifecycle --database-url postgresql://.../migrated_db

The bulk data is written with session_replication_role = replica (no triggers): no audit
rows are generated for it, so the purge's audit erasure is not part of these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import socketio

from workers.auth import make_dev_token
from workers.db import Database
from workers.lifecycle import retention

from .bench_procs import relay
from .bench_uploads import _reset_peak, _status

SECRET = "bench-lifecycle-secret-0123456789abcdef-0123"
MB = 1024 * 1024


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def machine() -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


async def _user(conn: asyncpg.Connection, role: str, name: str) -> uuid.UUID:
    uid = uuid.uuid4()
    await conn.execute(
        "insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data) values "
        "($1, $2, jsonb_build_object('role', $3::text), jsonb_build_object('full_name', $4::text))",
        uid,
        f"{uid.hex[:12]}@bench.test",
        role,
        name,
    )
    return uid


async def _bulk(
    conn: asyncpg.Connection,
    *,
    owner: uuid.UUID,
    other: uuid.UUID,
    sessions: int,
    per_session: int,
    closed_days_ago: int | None,
) -> None:
    """Sessions of owner and other, each with per_session messages (alternating senders),
    written without triggers."""
    async with conn.transaction():
        await conn.execute("set local session_replication_role = replica")
        await conn.execute(
            """
            insert into public.chat_sessions (id, participants, type, status, created_by,
              created_at, closed_at, last_message_at)
            select gen_random_uuid(), array[$1, $2]::uuid[], 'support',
              case when $4::int is null then 'active' else 'closed' end, $1,
              now() - interval '800 days',
              case when $4::int is null then null else now() - make_interval(days => $4::int) end,
              now() - interval '799 days'
            from generate_series(1, $3)
            """,
            owner,
            other,
            sessions,
            closed_days_ago,
        )
        await conn.execute(
            """
            insert into public.chat_messages (session_id, sender_id, type, content, created_at)
            select s.id, case when g % 2 = 0 then $1::uuid else $2::uuid end, 'text',
              'Message ' || g || ' of a long consultation about the cards drawn today',
              s.created_at + make_interval(secs => g)
            from public.chat_sessions as s, generate_series(1, $3) as g
            where s.participants = array[$1, $2]::uuid[]
            """,
            owner,
            other,
            per_session,
        )
    await conn.execute("analyze public.chat_sessions; analyze public.chat_messages")


async def _export(http: aiohttp.ClientSession, url: str, token: str, pid: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    _reset_peak(pid)
    before = _status(pid)["VmRSS"]
    started = time.monotonic()
    async with http.post(f"{url}/api/chat/me/export", headers=headers) as r:
        assert r.status == 202, await r.text()
        export_id = (await r.json())["export"]["id"]
    while True:
        async with http.get(f"{url}/api/chat/me/export/{export_id}", headers=headers) as r:
            body = (await r.json())["export"]
        if body["status"] in ("ready", "failed"):
            break
        await asyncio.sleep(0.1)
    seconds = time.monotonic() - started
    assert body["status"] == "ready", body
    return {
        "seconds": round(seconds, 2),
        "sessions": body["sessions"],
        "messages": body["messages"],
        "archive_mb": round(body["archive_bytes"] / MB, 2),
        "rss_before_mb": round(before / MB, 1),
        "peak_growth_mb": round((_status(pid)["VmHWM"] - before) / MB, 1),
        "messages_per_s": round(body["messages"] / seconds) if seconds else None,
    }


async def arrange_export(
    args: argparse.Namespace, conn: asyncpg.Connection
) -> tuple[uuid.UUID, uuid.UUID]:
    big, small, other = (
        await _user(conn, "client", "Exporting Client"),
        await _user(conn, "client", "Small Client"),
        await _user(conn, "reader", "Busy Reader"),
    )
    per = max(1, args.messages // args.sessions)
    await _bulk(
        conn, owner=big, other=other, sessions=args.sessions, per_session=per, closed_days_ago=None
    )
    await _bulk(conn, owner=small, other=other, sessions=1, per_session=100, closed_days_ago=None)
    return big, small


async def part_export(url: str, pid: int, big: uuid.UUID, small: uuid.UUID) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        small_run = await _export(
            http, url, make_dev_token(secret=SECRET, user_id=small, role="client"), pid
        )
        big_run = await _export(
            http, url, make_dev_token(secret=SECRET, user_id=big, role="client"), pid
        )
    return {"small": small_run, "large": big_run}


async def _load(
    url: str, pairs: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]], rate: float, seconds: float
) -> list[tuple[float, float]]:
    """Each pair's first user sends to its session at rate/len(pairs) a second; returns
    (sent at, ack latency ms) for every acknowledged send."""
    clients: list[tuple[socketio.AsyncClient, uuid.UUID]] = []
    for sender, reader, session in pairs:
        for user, role in ((sender, "client"), (reader, "reader")):
            c = socketio.AsyncClient(reconnection=False)
            await c.connect(
                url,
                auth={"token": make_dev_token(secret=SECRET, user_id=user, role=role)},
                transports=["websocket"],
                wait_timeout=10,
            )
            await c.call("join_session", {"session_id": str(session)}, timeout=10)
            if user == sender:
                clients.append((c, session))
    samples: list[tuple[float, float]] = []
    interval = len(clients) / rate
    end = time.monotonic() + seconds

    async def run(c: socketio.AsyncClient, session: uuid.UUID) -> None:
        n = 0
        next_at = time.monotonic()
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            t0 = time.monotonic()
            ack = await c.call(
                "send_message",
                {
                    "session_id": str(session),
                    "content": f"live {n}",
                    "client_message_id": uuid.uuid4().hex,
                },
                timeout=30,
            )
            if isinstance(ack, dict) and ack.get("success", ack.get("ok", True)) is not False:
                samples.append((t0, (time.monotonic() - t0) * 1000))
            n += 1
            next_at += interval

    try:
        await asyncio.gather(*(run(c, s) for c, s in clients))
    finally:
        for c, _ in clients:
            await c.disconnect()
    return samples


async def arrange_purge(
    args: argparse.Namespace, conn: asyncpg.Connection
) -> list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
    owner, other = (
        await _user(conn, "client", "Old Client"),
        await _user(conn, "reader", "Old Reader"),
    )
    per = 500
    sessions = max(1, args.purge_messages // per)
    await _bulk(
        conn, owner=owner, other=other, sessions=sessions, per_session=per, closed_days_ago=400
    )
    pairs = []
    for i in range(args.pairs):
        a, b = await _user(conn, "client", f"Live {i}"), await _user(conn, "reader", f"Reader {i}")
        sid = await conn.fetchval(
            "insert into chat_sessions (participants, type, created_by) "
            "values ($1::uuid[], 'support', $2) returning id",
            [a, b],
            a,
        )
        pairs.append((a, b, sid))
    await conn.execute("checkpoint")
    return pairs


async def part_purge(
    args: argparse.Namespace,
    url: str,
    dsn: str,
    pairs: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]],
) -> dict[str, Any]:
    quiet = await _load(url, pairs, args.rate, args.seconds)
    db = Database(dsn, max_size=2, min_size=1)
    await db.open()
    purge_window: dict[str, float] = {}

    async def purge() -> retention.PurgeResult:
        purge_window["start"] = time.monotonic()
        result = await retention.purge(
            db,
            None,
            days={"support": 365.0},
            batch=args.batch,  # type: ignore[arg-type]
        )
        purge_window["end"] = time.monotonic()
        return result

    load_task = asyncio.create_task(_load(url, pairs, args.rate, args.seconds))
    await asyncio.sleep(1.0)  # the load is steady before the purge starts
    result = await purge()
    busy = await load_task
    await db.close()
    during = [ms for at, ms in busy if purge_window["start"] <= at <= purge_window["end"]]
    quiet_ms = [ms for _, ms in quiet]
    return {
        "purged_sessions": result.sessions,
        "purged_messages": result.messages,
        "batches": result.batches,
        "purge_seconds": round(purge_window["end"] - purge_window["start"], 1),
        "purge_messages_per_s": round(
            result.messages / max(1e-9, purge_window["end"] - purge_window["start"])
        ),
        "pause_ratio": args.pause_ratio,
        "rate": args.rate,
        "without_purge": {
            "sends": len(quiet_ms),
            "p50_ms": _pct(quiet_ms, 0.5),
            "p99_ms": _pct(quiet_ms, 0.99),
        },
        "during_purge": {
            "sends": len(during),
            "p50_ms": _pct(during, 0.5),
            "p99_ms": _pct(during, 0.99),
            "mean_ms": round(statistics.fmean(during), 2) if during else None,
        },
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--purge-messages", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument(
        "--pause-ratio",
        type=float,
        default=1.0,
        help="the purge rests this many times each batch's duration (RETENTION_PAUSE_RATIO)",
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="a tenth of the data, 8 s of load")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.messages, args.purge_messages, args.seconds = 100, 10_000, 100_000, 8.0
    conn = await asyncpg.connect(args.database_url)
    data_dir = Path(tempfile.mkdtemp(prefix="chat-bench-lifecycle-"))
    report: dict[str, Any] = {"machine": machine(), "postgresql": conn.get_server_version().major}
    try:
        # All data first: rows committed while the relay runs would be replayed by its
        # changefeed, and that work is not what is measured here.
        started = time.monotonic()
        big, small = await arrange_export(args, conn)
        pairs = await arrange_purge(args, conn)
        report["data_generation_seconds"] = round(time.monotonic() - started, 1)
        with relay(
            database_url=args.database_url,
            secret=SECRET,
            data_dir=data_dir,
            log=data_dir / "relay.log",
        ) as server:
            report["export"] = await part_export(server.url, server.pid, big, small)
            report["purge"] = await part_purge(args, server.url, args.database_url, pairs)
    finally:
        await conn.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
