"""Benchmark (not collected by pytest): PostgreSQL CPU per message of the relay's group
commit, for variants of the schema side by side.

One backend and no relay: ``chat_private.send_chat_messages`` called as the relay calls it
(two-person sessions, each message with its sender's claims), in groups of ``--size``.
Each variant is a copy of the migrated database with an SQL file applied (``-`` applies
nothing: the schema as migrated); each gets its own connection, and blocks of messages
alternate between them, so the machine's drift falls on every variant alike. After each
block a second connection links the block's audit rows (``chat_private.link_audit_chain``,
as the service's background linker does), so the figures are the group's CPU, the
linker's, and their sum. The CPU is each backend's own (/proc/<pid>/schedstat: PostgreSQL
must run on this machine). For each
variant after the first it prints the median, over the blocks, of (variant / first) for
adjacent blocks (group and linker together), and the quartiles of those ratios: on a
machine whose speed drifts by tens of per cent between runs this resolves a few per cent.
A variant may be a migration not yet applied to the database given: the template then
stands for the schema before it.

    scripts/bench groups - candidate.sql                # makes the databases, then runs this
    scripts/bench groups --size 10 --blocks 40 - a.sql b.sql
    scripts/bench groups --direct - candidate.sql       # inserts as supabase-js writes them
    python -m tests.bench_groups --database-url postgresql://.../migrated_db - candidate.sql
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import urllib.parse
import uuid
from pathlib import Path

import asyncpg

from tests.bench_suite import arrange_pairs

_SEND = """
select inserted from chat_private.send_chat_messages(
  $1::text[], $2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::jsonb[], $7::text[], false
)
"""
BLOCK_MESSAGES = 500
SESSIONS = 100

Pairs = list[tuple[str, ...]]  # (session, one participant, the other)


def _backend_cpu(pid: int) -> float:
    """Seconds the process has run on a CPU, in nanoseconds' resolution (utime and stime in
    /proc/<pid>/stat count clock ticks: 10 ms, as much as the effects measured here)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def _check_backend(pid: int, database: str) -> None:
    """The backend must be a process of this machine: PostgreSQL in a container or on
    another host reports a pid that means nothing here."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        cmdline = ""
    if not cmdline.startswith("postgres:") or database not in cmdline:
        raise SystemExit(
            f"backend {pid} of {database} is not a process of this machine ({cmdline!r}): "
            "scripts/bench groups needs PostgreSQL running here"
        )


def _with_db(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _direct_insert(session: str, sender: str, client_message_id: str) -> str:
    """One message as supabase-js writes it through PostgREST: the role and the claims set
    transaction-locally, then the insert under RLS, in one round trip (the text the load
    generator's SQL writers send). Every value is a uuid or generated ASCII."""
    claims = json.dumps(
        {
            "sub": sender,
            "role": "authenticated",
            "aud": "authenticated",
            "app_metadata": {"role": "client"},
        }
    )
    return (
        "begin; select set_config('role', 'authenticated', true), "
        f"set_config('request.jwt.claims', '{claims}', true); "
        "insert into public.chat_messages "
        "(session_id, sender_id, type, content, client_message_id) "
        f"values ('{session}', '{sender}', 'text', 'a message of the benchmark', "
        f"'{client_message_id}'); "
        "commit;"
    )


async def _block(
    conn: asyncpg.Connection, pairs: Pairs, size: int, tag: str, *, direct: bool = False
) -> int:
    if direct:
        for g in range(BLOCK_MESSAGES):
            session, a, b = pairs[g % len(pairs)]
            await conn.execute(_direct_insert(session, a if g % 2 else b, f"{tag}-{g}"))
        return BLOCK_MESSAGES
    for g in range(BLOCK_MESSAGES // size):
        claims, sessions = [], []
        for k in range(size):
            session, a, b = pairs[(g * size + k) % len(pairs)]
            sender = a if g % 2 else b
            claims.append(
                json.dumps(
                    {
                        "sub": sender,
                        "role": "authenticated",
                        "aud": "authenticated",
                        "app_metadata": {"role": "client"},
                    }
                )
            )
            sessions.append(uuid.UUID(session))
        rows = await conn.fetch(
            _SEND,
            claims,
            sessions,
            ["a message of the benchmark"] * size,
            ["text"] * size,
            [None] * size,
            ["{}"] * size,
            [f"{tag}-{g}-{k}" for k in range(size)],
        )
        if not all(r["inserted"] for r in rows):
            raise SystemExit(f"a group was not stored: {rows}")
    return (BLOCK_MESSAGES // size) * size


async def _link(conn: asyncpg.Connection) -> int:
    """Link every audit row waiting, as the background linker would (batches of 5,000)."""
    total = 0
    while True:
        row = await conn.fetchrow("select * from chat_private.link_audit_chain(5000)")
        total += row["linked"]
        if row.get("scanned", row["linked"]) < 5000:
            return total


def cli() -> tuple[argparse.Namespace, list[str | None]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a migrated database (template)")
    parser.add_argument("--size", type=int, default=1, help="messages per group (1 to 256)")
    parser.add_argument("--blocks", type=int, default=30, help="blocks of 500 per variant")
    parser.add_argument(
        "--direct",
        action="store_true",
        help="messages written as supabase-js writes them (an insert as the user, one "
        "transaction each), not through the relay's group function",
    )
    parser.add_argument("variants", nargs="+", help="SQL files; '-' is the schema as migrated")
    args = parser.parse_args()
    if not 1 <= args.size <= 256 or args.blocks < 2:
        parser.error("--size must be 1 to 256 and --blocks at least 2")
    if args.direct and args.size != 1:
        parser.error("--direct writes each message in its own transaction: no --size")
    return args, [None if v == "-" else Path(v).read_text() for v in args.variants]


async def main(args: argparse.Namespace, sqls: list[str | None]) -> None:
    # Two-person sessions of their own (deterministic ids; copied into every variant).
    pairs = await arrange_pairs(args.database_url, "a", SESSIONS, product=True)
    admin = await asyncpg.connect(_with_db(args.database_url, "postgres"))
    template = urllib.parse.urlsplit(args.database_url).path.lstrip("/")
    names = [f"{template}_v{i}" for i in range(len(args.variants))]
    conns: list[asyncpg.Connection] = []
    linkers: list[asyncpg.Connection] = []
    try:
        for name, sql in zip(names, sqls, strict=True):
            await admin.execute(f'create database "{name}" template "{template}"')
            conn = await asyncpg.connect(_with_db(args.database_url, name))
            if sql is not None:
                await conn.execute(sql)
            conns.append(conn)
            linkers.append(await asyncpg.connect(_with_db(args.database_url, name)))
        pids = [await c.fetchval("select pg_backend_pid()") for c in conns]
        linker_pids = [await c.fetchval("select pg_backend_pid()") for c in linkers]
        for pid, linker_pid, name in zip(pids, linker_pids, names, strict=True):
            _check_backend(pid, name)
            _check_backend(linker_pid, name)
        for conn, linker in zip(conns, linkers, strict=True):
            # Warm the caches, then take statistics as autovacuum would have on a live
            # table (the copies start with an empty chat_messages, and autovacuum may be
            # off), so that the plans measured are the ones of a table in use; the second
            # block makes them.
            await _block(conn, pairs, args.size, "warm", direct=args.direct)
            await _link(linker)
            await conn.execute("analyze")
            await _block(conn, pairs, args.size, "warm-again", direct=args.direct)
            await _link(linker)
        group: list[list[float]] = [[] for _ in conns]
        link: list[list[float]] = [[] for _ in conns]
        for b in range(args.blocks):
            order = range(len(conns)) if b % 2 == 0 else reversed(range(len(conns)))
            for i in order:
                before = _backend_cpu(pids[i])
                n = await _block(conns[i], pairs, args.size, f"b{b}", direct=args.direct)
                group[i].append((_backend_cpu(pids[i]) - before) * 1000 / n)
                before = _backend_cpu(linker_pids[i])
                if await _link(linkers[i]) < n:
                    raise SystemExit(f"{args.variants[i]}: the linker left rows of block {b}")
                link[i].append((_backend_cpu(linker_pids[i]) - before) * 1000 / n)
    finally:
        for conn in conns + linkers:
            await conn.close()
        for name in names:
            await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
    print(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}; "
        + ("direct inserts, one transaction each" if args.direct else f"groups of {args.size}")
        + f", {args.blocks} blocks of {BLOCK_MESSAGES // args.size * args.size} messages "
        "per variant"
    )
    per_message = [
        [g + k for g, k in zip(gs, ks, strict=True)] for gs, ks in zip(group, link, strict=True)
    ]
    what = "inserts" if args.direct else "group"
    for variant, gs, ks in zip(args.variants, group, link, strict=True):
        print(
            f"{variant}: {statistics.fmean(gs) + statistics.fmean(ks):.3f} ms of backend CPU "
            f"per message ({what} {statistics.fmean(gs):.3f}, audit linker "
            f"{statistics.fmean(ks):.3f})"
        )
    for variant, values in zip(args.variants[1:], per_message[1:], strict=True):
        ratios = sorted(v / r for v, r in zip(values, per_message[0], strict=True))
        q = statistics.quantiles(ratios, n=4)
        print(
            f"{variant} / {args.variants[0]}: median block ratio {statistics.median(ratios):.3f}"
            f" (quartiles {q[0]:.3f} to {q[2]:.3f})"
        )


if __name__ == "__main__":
    asyncio.run(main(*cli()))
