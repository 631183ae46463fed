-- The relays' poll (chat_private.changefeed_poll) finds the transactions that committed
-- since its previous snapshot as "at or past that snapshot's xmax, or in progress in it"
-- (pg_snapshot_xip), instead of "at or past its xmin and not visible in it". Both mean the
-- same; but a transaction that wrote and stays open (idle in transaction, a long batch)
-- holds every snapshot's xmin back, and the xmin form then read every row written since it
-- began (up to the minute of rows the table keeps) on every poll. The new form reads only
-- the rows past the previous xmax, plus those of the few transactions in progress then.

create or replace function chat_private.changefeed_poll(
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
  _open xid8 [];
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
    _open := array(select pg_snapshot_xip(_since));
    select coalesce(array_agg(m.id order by m.xact_id, m.written_at), '{}'::uuid [])
    into ids
    from chat_private.changefeed_messages as m
    where (m.xact_id >= pg_snapshot_xmax(_since) or m.xact_id = any(_open))
      and m.xact_id < pg_snapshot_xmax(_snap)
      and pg_visible_in_snapshot(m.xact_id, _snap);
  end if;
  polling := coalesce(_until, '-infinity'::timestamptz) > _now - interval '250 milliseconds';
  return next;
end
$$;

-- Whether relays are polling now: a relay that is not (it has just started, or its poll
-- failed) joins in, since no message notifies while the others poll.
create function chat_private.changefeed_polling()
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce(
    (select s.polling_until > clock_timestamp() from chat_private.changefeed_state as s), false
  )
$$;

comment on function chat_private.changefeed_polling() is
'Whether relays poll chat_private.changefeed_messages now (messages written outside the relay do not notify meanwhile).';

revoke all on function chat_private.changefeed_poll(text, boolean, interval) from public;
revoke all on function chat_private.changefeed_polling() from public;
