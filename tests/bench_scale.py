"""The database at scale, for scripts/bench (not collected by pytest): millions of
messages generated in SQL, then the read paths the service runs, timed as a user under RLS
and as service_role, with their plans (EXPLAIN ANALYZE, BUFFERS, nested statements).

Shape: ``users`` users, ``sessions`` two-person sessions, ``messages`` messages spread
round robin over the sessions (message i goes to session i % sessions, so every session
has about messages / sessions of them, alternating senders, 90 days of timestamps). The
first 10 users are busy readers in 1,000 sessions each; every other user is in about 20.
Each participant has a read cursor a few messages short of the end (40 % of them fully
read), as the unread counts of a live system would be.
"""

from __future__ import annotations

import random
import re
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg

HEAVY_USERS = 10
HEAVY_SESSIONS = 1_000  # sessions per heavy user

# Deterministic ids: user i, session s (uuid v4 layout, so every validator accepts them).
USER_ID = "('00000000-0000-4000-8000-' || lpad(to_hex({0}), 12, '0'))::uuid"
SESSION_ID = "('10000000-0000-4000-8000-' || lpad(to_hex({0}), 12, '0'))::uuid"


def user_id(i: int) -> uuid.UUID:
    return uuid.UUID(f"00000000-0000-4000-8000-{i:012x}")


def session_id(s: int) -> uuid.UUID:
    return uuid.UUID(f"10000000-0000-4000-8000-{s:012x}")


@dataclass
class ScaleResult:
    shape: dict[str, int]
    generate_seconds: float
    sizes: dict[str, str]
    timings: dict[str, dict[str, float]] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)


async def _generate(conn: asyncpg.Connection, users: int, sessions: int, messages: int) -> None:
    others = users - HEAVY_USERS
    heavy = HEAVY_USERS * HEAVY_SESSIONS
    assert sessions > heavy and others > 2
    await conn.execute("set session_replication_role = replica")  # no triggers, no FK checks
    await conn.execute("set maintenance_work_mem = '1GB'")
    await conn.execute("set work_mem = '256MB'")
    await conn.execute(
        f"""
        insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data)
        select {USER_ID.format("i")}, 'user' || i || '@scale.test',
          jsonb_build_object('provider', 'email',
            'role', case when i < {HEAVY_USERS} then 'reader' else 'client' end),
          jsonb_build_object('full_name', 'Scale user ' || i)
        from generate_series(0, {users - 1}) as i
        """
    )
    # Session s: a heavy reader (s < heavy) or a second ordinary user, never the same one.
    await conn.execute(
        f"""
        create temp table bench_pairs as
        select s, {SESSION_ID.format("s")} as sid,
          case when s < {heavy} then {USER_ID.format(f"s / {HEAVY_SESSIONS}")}
            else {USER_ID.format(f"{HEAVY_USERS} + (s + 1) % {others}")} end as a,
          {USER_ID.format(f"{HEAVY_USERS} + s % {others}")} as b
        from generate_series(0, {sessions - 1}) as s
        """
    )
    await conn.execute(
        f"""
        update bench_pairs set a = {USER_ID.format(f"{HEAVY_USERS} + (s + 2) % {others}")}
        where a = b
        """
    )
    await conn.execute("alter table bench_pairs add primary key (s)")
    await conn.execute(
        """
        insert into public.chat_sessions
          (id, participants, type, booking_id, status, title, created_by, created_at, updated_at)
        select sid, array[a, b],
          case when s % 3 = 0 then 'booking' else 'support' end,
          case when s % 3 = 0 then gen_random_uuid() end,
          'active', 'Consultation ' || s, b,
          now() - interval '91 days' + s * interval '1 second',
          now() - interval '91 days' + s * interval '1 second'
        from bench_pairs
        """
    )
    # Secondary indexes are rebuilt after the load (much faster than row by row).
    defs = await conn.fetch(
        """
        select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def
        from pg_index as i
        where i.indrelid = 'public.chat_messages'::regclass
          and not exists (select 1 from pg_constraint as c where c.conindid = i.indexrelid)
        """
    )
    for row in defs:
        await conn.execute(f"drop index {row['name']}")
    await conn.execute(
        f"""
        insert into public.chat_messages
          (id, seq, session_id, sender_id, type, content, metadata, created_at)
        overriding system value
        select gen_random_uuid(), i + 1, p.sid,
          case when (i / {sessions}) % 2 = 0 then p.b else p.a end,
          'text',
          'Message ' || i || ': ' || repeat('about the reading ', 1 + i % 7),
          '{{}}'::jsonb,
          now() - interval '90 days' + i * (interval '90 days' / {messages})
        from generate_series(0, {messages - 1}) as i
        join bench_pairs as p on p.s = i % {sessions}
        """
    )
    for row in defs:
        await conn.execute(row["def"])
    await conn.execute(
        "select setval(pg_get_serial_sequence('public.chat_messages', 'seq'), $1)", messages + 1
    )
    # The newest message of session s is i = s + sessions * (count - 1).
    await conn.execute(
        f"""
        update public.chat_sessions as cs
        set last_message_at = now() - interval '90 days'
          + (p.s + {sessions} * (({messages} - 1 - p.s) / {sessions}))
          * (interval '90 days' / {messages})
        from bench_pairs as p
        where cs.id = p.sid and p.s < {messages}
        """
    )
    # Read cursors: k messages short of the end (k = 0 for 40 %, else 1 to 6).
    await conn.execute(
        f"""
        insert into public.chat_read_state
          (session_id, user_id, last_read_message_id, last_read_at, last_read_seq)
        select m.session_id, r.uid, m.id, m.created_at, m.seq
        from (
          select p.s, u.uid,
            (({messages} - 1 - p.s) / {sessions})
            - case when (p.s + u.n) % 5 < 2 then 0 else 1 + (p.s * 7 + u.n) % 6 end as pos
          from bench_pairs as p
          cross join lateral (values (p.a, 0), (p.b, 1)) as u (uid, n)
          where p.s < {messages}
        ) as r
        join public.chat_messages as m on m.seq = r.pos * {sessions} + r.s + 1
        where r.pos >= 0
        """
    )
    await conn.execute("set session_replication_role = origin")
    await conn.execute("vacuum analyze auth.users")
    for table in ("chat_sessions", "chat_messages", "chat_read_state"):
        await conn.execute(f"vacuum analyze public.{table}")
    # Write the load's gigabytes out now: a spread checkpoint would otherwise be flushing
    # them during the timed queries (a database in steady state is not doing that).
    await conn.execute("checkpoint")


async def _as(conn: asyncpg.Connection, role: str, claims: str) -> None:
    await conn.execute(
        "select set_config('role', $1, true), set_config('request.jwt.claims', $2, true)",
        role,
        claims,
    )


def _claims(user: uuid.UUID, role: str) -> str:
    import json

    return json.dumps(
        {"sub": str(user), "role": role, "aud": "authenticated", "app_metadata": {"role": "client"}}
    )


async def _time(
    conn: asyncpg.Connection,
    sql: str,
    cases: list[tuple[uuid.UUID, tuple[Any, ...]]],
    role: str,
    budget_s: float = 60.0,
) -> list[float]:
    """The cases as one role (see :func:`_time_alternating`)."""
    return (await _time_alternating(conn, sql, cases, (role,), budget_s, block=1))[role]


async def _time_alternating(
    conn: asyncpg.Connection,
    sql: str,
    cases: list[tuple[uuid.UUID, tuple[Any, ...]]],
    roles: tuple[str, ...],
    budget_s: float = 60.0,
    block: int = 25,
) -> dict[str, list[float]]:
    """Each query in its own transaction, the way the service opens one per request; only
    the query itself is timed (its round trip included). The cases go in blocks of
    ``block``, each block run as each of ``roles`` in turn. A series stops once it has
    used its budget (a slow query gets fewer runs rather than a run that never ends).

    A ratio of two roles' times then compares queries run side by side, not two series
    run one after the other, between which this machine's speed can drift by tens of per
    cent. (Not call by call: a plan made under row-level security holds for one role, so
    every change of role would replan the function's statements.)"""
    stmt = await conn.prepare(sql)
    took: dict[str, list[float]] = {role: [] for role in roles}
    deadline = time.monotonic() + budget_s * len(roles)
    for first in range(0, len(cases), block):
        if len(took[roles[0]]) >= 2 and time.monotonic() > deadline:
            break
        for role in roles:
            for user, args in cases[first : first + block]:
                async with conn.transaction():
                    await _as(conn, role, _claims(user, role))
                    started = time.perf_counter()
                    await stmt.fetch(*args)
                    took[role].append((time.perf_counter() - started) * 1000)
    return took


def _summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": ordered[-1],
    }


async def _explain(
    conn: asyncpg.Connection, sql: str, args: tuple[Any, ...], user: uuid.UUID, role: str
) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the call, then auto_explain's plans of the statements
    inside the function (sent to this client as notices)."""
    notices: list[str] = []

    def listen(_: Any, message: Any) -> None:
        notices.append(str(message.message))

    conn.add_log_listener(listen)
    try:
        async with conn.transaction():
            await conn.execute("load 'auto_explain'")
            for setting, value in (
                ("log_min_duration", "0"),
                ("log_analyze", "on"),
                ("log_buffers", "on"),
                ("log_nested_statements", "on"),
                ("log_level", "notice"),
            ):
                await conn.execute(f"set local auto_explain.{setting} = {value}")
            await _as(conn, role, _claims(user, role))
            top = await conn.fetch(f"explain (analyze, buffers) {sql}", *args)
        await conn.execute("select 1")  # let the last notices arrive
    finally:
        conn.remove_log_listener(listen)
    text = "\n".join(r[0] for r in top)
    nested = [n for n in notices if "explain (analyze" not in n.lower() and "set_config(" not in n]
    if nested:
        text += "\n\n-- statements inside the function (auto_explain), each distinct one once:"
        text += "".join(f"\n\n{plan}" for plan in _distinct_plans(nested))
    return text


def _distinct_plans(notices: list[str]) -> list[str]:
    """auto_explain's plans, the first of each statement, with how often it ran and its
    total time (a function looping over 1,000 sessions runs its statements 1,000 times)."""
    seen: dict[str, list[Any]] = {}
    for notice in notices:
        first, _, rest = notice.partition("\n")
        try:
            took = float(first.split()[1])  # "duration: 0.729 ms  plan:"
        except (IndexError, ValueError):
            took = 0.0
        key = re.sub(r"\d+(\.\d+)?", "#", rest)[:400]  # query text and plan shape
        if key in seen:
            seen[key][1] += 1
            seen[key][2] += took
        else:
            seen[key] = [notice, 1, took]
    return [
        f"-- ran {count:,} times, {total:,.1f} ms in all; the first:\n{plan}" if count > 1 else plan
        for plan, count, total in seen.values()
    ]


async def run(
    database_url: str,
    *,
    users: int,
    sessions: int,
    messages: int,
    samples: int,
    budget_s: float = 60.0,
    log: Any = print,
) -> ScaleResult:
    conn = await asyncpg.connect(database_url)
    try:
        log(f"  generating {messages:,} messages in {sessions:,} sessions among {users:,} users")
        started = time.perf_counter()
        await _generate(conn, users, sessions, messages)
        took = time.perf_counter() - started
        sizes = {
            r["name"]: r["size"]
            for r in await conn.fetch(
                """
                select c.relname as name, pg_size_pretty(pg_total_relation_size(c.oid)) as size
                from pg_class as c
                where c.oid in ('public.chat_messages'::regclass,
                  'public.chat_sessions'::regclass, 'public.chat_read_state'::regclass)
                """
            )
        }
        result = ScaleResult(
            shape={"users": users, "sessions": sessions, "messages": messages},
            generate_seconds=took,
            sizes=sizes,
        )
        rng = random.Random(7)
        pairs = await conn.fetch("select id, participants from public.chat_sessions order by id")
        history_cases = []
        for _ in range(samples):
            row = pairs[rng.randrange(len(pairs))]
            history_cases.append((row["participants"][rng.randrange(2)], (row["id"],)))
        heavy = [user_id(i) for i in range(HEAVY_USERS)]
        list_cases = [(heavy[i % HEAVY_USERS], ()) for i in range(max(50, samples // 5))]

        history = "select * from public.get_chat_messages($1, 50)"
        sessions_sql = "select * from public.list_my_chat_sessions(50, 0)"
        # Warm the cache and plans once, as a running service would have them.
        await _time(conn, history, history_cases, "authenticated", budget_s)
        roles = ("authenticated", "service_role")
        history_ms = await _time_alternating(conn, history, history_cases, roles, budget_s)
        user_ms, service_ms = history_ms["authenticated"], history_ms["service_role"]
        await _time(conn, sessions_sql, list_cases[:HEAVY_USERS], "authenticated", budget_s)
        list_ms = await _time(conn, sessions_sql, list_cases, "authenticated", budget_s)
        result.timings = {
            "history, as the user (RLS)": _summary(user_ms),
            "history, as service_role": _summary(service_ms),
            "session list, user in 1,000 sessions": _summary(list_ms),
        }
        user, args = history_cases[0]
        result.plans = {
            "history page as the user (RLS): get_chat_messages(session, 50)": await _explain(
                conn, history, args, user, "authenticated"
            ),
            "history page as service_role: get_chat_messages(session, 50)": await _explain(
                conn, history, args, user, "service_role"
            ),
            "session list of a user in 1,000 sessions: list_my_chat_sessions(50, 0)": (
                await _explain(conn, sessions_sql, (), heavy[0], "authenticated")
            ),
        }
        return result
    finally:
        await conn.close()
