-- Messages written outside the relay (supabase-js, PostgREST, SQL) reach the relays through
-- a table the relays poll while such messages keep coming, and through NOTIFY otherwise.
--
-- Why: PostgreSQL serializes the commits of all transactions that called NOTIFY, WAL flush
-- included. A transaction that notifies takes a lock on its database at pre-commit and holds
-- it until its commit is over, so that the notification queue is in commit order. At a few
-- hundred such inserts a second the commits wait for each other one flush at a time
-- (sampled at 500 inserts/s: three quarters of the active backends waiting on Lock/object,
-- delivery p99 over 250 ms). Rows in an unlogged table take no such lock and write no WAL.
--
-- How:
-- * chat_private.changefeed_state holds one row: polling_until, the time up to which the
--   relays poll. The relays set it; nobody else can.
-- * The message trigger (chat_private.notify_message) reads it. Before that time, the new
--   message's id goes to chat_private.changefeed_messages; after it, the trigger notifies as
--   before. Either way the row carries only ids.
-- * A relay starts polling when a message notification arrives, and every poll
--   (chat_private.changefeed_poll) returns the ids written by transactions that committed
--   between its previous snapshot and this one. While polls find messages they push
--   polling_until on; when the traffic stops, it runs out and the next message notifies.
-- * While they poll, one inserting transaction at a time (the holder of an advisory lock,
--   taken without waiting) also sends a NOTIFY of kind poll, and the relays poll at once:
--   a message then waits for the next such commit or the next tick, whichever is first. As
--   only that holder notifies, notifying commits never queue behind each other.
-- * A transaction that read polling_until just before it ran out and committed after the
--   relays stopped polling is delivered by the changefeed's snapshot replay, which reads
--   public.chat_messages itself (within about a second).

create unlogged table chat_private.changefeed_state (
  id boolean primary key default true,
  polling_until timestamptz not null default '-infinity',
  constraint changefeed_state_single_row check (id)
);

comment on table chat_private.changefeed_state is
'One row: until when relays poll chat_private.changefeed_messages, so that message inserts outside the relay skip NOTIFY (unlogged: after a crash it is empty, which means not polling).';

insert into chat_private.changefeed_state (id) values (true);

create unlogged table chat_private.changefeed_messages (
  xact_id xid8 not null default pg_current_xact_id(),
  id uuid not null,
  written_at timestamptz not null default clock_timestamp()
);

comment on table chat_private.changefeed_messages is
'Ids of messages written outside the relay while relays poll (instead of a NOTIFY each); kept a minute.';

create index changefeed_messages_xact_id on chat_private.changefeed_messages (xact_id);
create index changefeed_messages_written_at on chat_private.changefeed_messages (written_at);

revoke all on chat_private.changefeed_state from public, anon, authenticated, service_role;
revoke all on chat_private.changefeed_messages from public, anon, authenticated, service_role;
alter table chat_private.changefeed_state enable row level security;
alter table chat_private.changefeed_messages enable row level security;

-- ---------------------------------------------------------------- the trigger
create or replace function chat_private.notify_message() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (
    select 1 from chat_private.changefeed_state as s
    where s.polling_until > clock_timestamp()
  ) then
    insert into chat_private.changefeed_messages (id) values (new.id);
    -- One transaction at a time also wakes the relays (a poll now rather than at the next
    -- tick): the one holding this lock until its end. The others do not wait for it.
    if pg_try_advisory_xact_lock(hashtext('chat_private.changefeed_wake')) then
      perform pg_notify('chat_events', '{"kind":"poll"}');
    end if;
  else
    perform pg_notify(
      'chat_events',
      json_build_object(
        'kind', 'message',
        'id', new.id,
        'session_id', new.session_id,
        'seq', new.seq
      )::text
    );
  end if;
  return null;
end
$$;

comment on function chat_private.notify_message() is
'A message written outside the relay: its id to chat_private.changefeed_messages while relays poll, else a NOTIFY on chat_events.';

-- ---------------------------------------------------------------- the relay's poll
-- since: the snapshot the previous poll returned (null on the first poll of a spell).
-- extend: push polling_until to now + hold (at most every half second; the row is shared).
-- Returns this poll's snapshot, the ids committed between the two snapshots, and whether to
-- go on polling: polling_until has not passed by more than a quarter of a second, so a
-- transaction that read it just before it ran out is still found by a poll.
create function chat_private.changefeed_poll(
  since text, extend boolean, hold interval default '1 second'
)
returns table (snapshot text, ids uuid[], polling boolean)
language plpgsql
security definer
set search_path = ''
as $$
declare
  _until timestamptz;
  _now timestamptz := clock_timestamp();
  _snap pg_snapshot;
  _since pg_snapshot := since::pg_snapshot;
begin
  if hold < interval '0' or hold > interval '1 minute' then
    raise exception 'hold must be between 0 and 1 minute' using errcode = '22023';
  end if;
  select s.polling_until into _until from chat_private.changefeed_state as s;
  -- The shared row is rewritten at most every half hold, whatever the number of relays.
  if extend and coalesce(_until < _now + hold / 2, true) then
    insert into chat_private.changefeed_state as s (id, polling_until)
    values (true, _now + hold)
    on conflict (id) do update
      set polling_until = greatest(s.polling_until, excluded.polling_until)
    returning s.polling_until into _until;
    -- Rows every relay has polled long since (a lagging relay's replay covers the rest).
    delete from chat_private.changefeed_messages as m
    where m.written_at < _now - interval '1 minute';
  end if;
  _snap := pg_current_snapshot();
  snapshot := _snap::text;
  if _since is null then
    ids := '{}'::uuid [];
  else
    select coalesce(array_agg(m.id order by m.xact_id, m.written_at), '{}'::uuid [])
    into ids
    from chat_private.changefeed_messages as m
    where m.xact_id >= pg_snapshot_xmin(_since)
      and m.xact_id < pg_snapshot_xmax(_snap)
      and not pg_visible_in_snapshot(m.xact_id, _since)
      and pg_visible_in_snapshot(m.xact_id, _snap);
  end if;
  polling := coalesce(_until, '-infinity'::timestamptz) > _now - interval '250 milliseconds';
  return next;
end
$$;

comment on function chat_private.changefeed_poll(text, boolean, interval) is
'The relay''s poll while messages written outside it keep coming: its snapshot, the ids committed since the previous one, and whether to go on.';

revoke all on function chat_private.changefeed_poll(text, boolean, interval) from public;
revoke all on function chat_private.notify_message() from public;
