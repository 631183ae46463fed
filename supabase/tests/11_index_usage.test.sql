-- Index usage at volume: message pages, unread counts and session lists stay index scans under RLS.
begin;
set local search_path = extensions, public;
select plan(13);

-- Fixtures: the chat fixture of the test helpers (tests.create_chat_fixture).
select tests.create_chat_fixture();

-- Their ids as psql variables (:'client'), for statements run under another role.
select tests.uid('client') as client \gset

-- Volume (as postgres, triggers off for speed): 5000 sessions, of which the client takes
-- part in 20 (S1001..S1020); 2000 messages in each of those 20, alternating senders.
set local session_replication_role = replica;
insert into public.chat_sessions (id, participants, type, created_at)
select
  ('5e000000-0000-4000-8001-' || lpad(i::text, 12, '0'))::uuid,
  case when i <= 20
      then array[:'client'::uuid, ('0c000000-0000-4000-8001-' || lpad(i::text, 12, '0'))::uuid]
    else array[
        ('0c000000-0000-4000-8002-' || lpad(i::text, 12, '0'))::uuid,
        ('0c000000-0000-4000-8003-' || lpad((i % 97)::text, 12, '0'))::uuid
      ]
  end,
  'support',
  now() - make_interval(hours => i)
from generate_series(1, 5000) as i;
insert into public.chat_messages (session_id, sender_id, content, created_at)
select
  ('5e000000-0000-4000-8001-' || lpad(s::text, 12, '0'))::uuid,
  case when n % 2 = 0 then :'client'::uuid
    else ('0c000000-0000-4000-8001-' || lpad(s::text, 12, '0'))::uuid
  end,
  'message ' || n,
  now() - make_interval(secs => (2000 - n) * 10 + s)
from generate_series(1, 20) as s, generate_series(1, 2000) as n;
update public.chat_sessions as s set last_message_at = m.max_at
from (select
  session_id,
  max(created_at) as max_at
from public.chat_messages
group by session_id) as m
where m.session_id = s.id and s.id::text like '5e000000-0000-4000-8001-%';
set local session_replication_role = origin;
-- What VACUUM would do for the GIN index (VACUUM cannot run in a transaction), then stats.
do $$ begin perform gin_clean_pending_list('public.chat_sessions_participants'::regclass); end $$;
analyze public.chat_sessions;
analyze public.chat_messages;
analyze public.chat_read_state;

-- The plan of a statement run as the current role (RLS included), as one text.
create function pg_temp.plan_of(query text) returns text
language plpgsql
as $$
declare
  _line text;
  _plan text := '';
begin
  for _line in execute 'explain (costs off) ' || query loop
    _plan := _plan || _line || E'\n';
  end loop;
  return _plan;
end
$$;

select tests.create_scans_during();

reset role;
select tests.authenticate_as('client');

-- ---------------------------------------------------------------- message pages
-- The statement get_chat_messages runs (RETURN QUERY), with its sentinels for no cursor.
select matches(
  pg_temp.plan_of($$
    select m.* from public.chat_messages as m
    where m.session_id = '5e000000-0000-4000-8001-000000000007'
      and m.created_at < coalesce(null::timestamptz, 'infinity'::timestamptz)
      and (m.created_at, m.seq) < ('infinity'::timestamptz, 9223372036854775807::bigint)
    order by m.created_at desc, m.seq desc
    limit 50 offset 0 $$),
  'Index Scan using chat_messages_session_created_seq on chat_messages',
  'A page of messages is read from index chat_messages_session_created_seq, in its order.'
);
select doesnt_match(
  pg_temp.plan_of($$
    select m.* from public.chat_messages as m
    where m.session_id = '5e000000-0000-4000-8001-000000000007'
      and m.created_at < coalesce(null::timestamptz, 'infinity'::timestamptz)
      and (m.created_at, m.seq) < ('infinity'::timestamptz, 9223372036854775807::bigint)
    order by m.created_at desc, m.seq desc
    limit 50 offset 0 $$),
  'Seq Scan on chat_messages|Sort',
  'A page of messages needs neither a sequential scan nor a sort.'
);
select matches(
  pg_temp.plan_of($$
    select m.* from public.chat_messages as m
    where m.session_id = '5e000000-0000-4000-8001-000000000007'
      and m.created_at < coalesce(null::timestamptz, 'infinity'::timestamptz)
      and (m.created_at, m.seq) < (now() - interval '1 hour', 1000::bigint)
    order by m.created_at desc, m.seq desc
    limit 50 offset 0 $$),
  'Index Cond: \(\(session_id = .*ROW\(created_at, seq\) < ROW\(',
  'The before_id keyset bound is an index condition, not a filter.'
);

prepare chat_page (uuid, timestamptz, timestamptz, bigint, integer, integer) as
select m.* from public.chat_messages as m
where m.session_id = $1
  and m.created_at < coalesce($2, 'infinity'::timestamptz)
  and (m.created_at, m.seq) < ($3, $4)
order by m.created_at desc, m.seq desc
limit $5 offset $6;
set local plan_cache_mode = force_generic_plan;
select matches(
  pg_temp.plan_of($$ execute chat_page('5e000000-0000-4000-8001-000000000007', null, 'infinity', 9223372036854775807, 50, 0) $$),
  'Index Scan using chat_messages_session_created_seq on chat_messages',
  'The cached generic plan PL/pgSQL may reuse for a page still reads the index.'
);
set local plan_cache_mode = auto;
deallocate chat_page;

-- The unread count of list_my_chat_sessions, for one session and cursor.
select matches(
  pg_temp.plan_of(format($$
    select count(*) from public.chat_messages as m
    where m.session_id = '5e000000-0000-4000-8001-000000000007'
      and (m.created_at, m.seq) > (now() - interval '1 hour', 0::bigint)
      and m.sender_id is distinct from %L::uuid $$, :'client')),
  'Index Scan using chat_messages_session_created_seq on chat_messages',
  'An unread count is one range scan of chat_messages_session_created_seq.'
);

-- ---------------------------------------------------------------- session membership
-- The statement behind my_session_ids() (security definer: runs as the owner, without RLS).
reset role;
select matches(
  pg_temp.plan_of(format($$
    select s.id from public.chat_sessions as s
    where s.participants @> array[%L::uuid] $$, :'client')),
  'Bitmap Index Scan on chat_sessions_participants',
  'The sessions of a user are found through the GIN index chat_sessions_participants.'
);
reset role;
select tests.authenticate_as('client');
-- The session list as the client runs it (list_my_chat_sessions' filter plus the select policy).
select matches(
  pg_temp.plan_of($$
    select s.id from public.chat_sessions as s
    where s.participants @> array[(select auth.uid())] $$),
  'Bitmap Index Scan on chat_sessions_participants',
  'Under RLS, the client''s session list is found through the GIN index chat_sessions_participants.'
);

-- ---------------------------------------------------------------- the real functions
select results_eq(
  $$ select count(*)::int from public.get_chat_messages('5e000000-0000-4000-8001-000000000007') $$,
  array[50],
  'get_chat_messages returns a full page from a session of 2000 messages.'
);
select cmp_ok(
  pg_temp.scans_during(
    $$ select * from public.get_chat_messages('5e000000-0000-4000-8001-000000000007', 50, 0, null,
       (select id from public.chat_messages where session_id = '5e000000-0000-4000-8001-000000000007' and content = 'message 1000')) $$,
    'public.chat_messages_session_created_seq'
  ),
  '>', 0::bigint,
  'get_chat_messages with a keyset cursor scans index chat_messages_session_created_seq.'
);
select is(
  pg_temp.scans_during(
    $$ select * from public.get_chat_messages('5e000000-0000-4000-8001-000000000007', 50, 100) $$,
    'public.chat_messages'
  ),
  0::bigint,
  'get_chat_messages never scans chat_messages sequentially.'
);
select is(
  pg_temp.scans_during($$ select * from public.list_my_chat_sessions() $$, 'public.chat_messages'),
  0::bigint,
  'list_my_chat_sessions counts unread messages and finds last messages without a sequential scan of chat_messages.'
);
select is(
  pg_temp.scans_during(
    $$ select * from public.mark_chat_messages_read('5e000000-0000-4000-8001-000000000007') $$,
    'public.chat_messages'
  ),
  0::bigint,
  'mark_chat_messages_read counts what it marks without a sequential scan of chat_messages.'
);
select is(
  pg_temp.scans_during($$ select * from public.list_my_chat_sessions() $$, 'public.chat_sessions'),
  0::bigint,
  'list_my_chat_sessions finds the client''s 20 sessions among 5000 without a sequential scan of chat_sessions.'
);

select * from finish();
rollback;
