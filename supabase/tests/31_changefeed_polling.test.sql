-- Messages written outside the relay: a NOTIFY each while relays do not poll, a row in the
-- unlogged chat_private.changefeed_messages while they do (no lock on the database at
-- commit). chat_private.changefeed_poll is the relays' poll; nobody else can call it or
-- read either table.
begin;
set local search_path = extensions, public;
select plan(26);

select tests.create_chat_fixture();

select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

create function pg_temp.claims(uid text) returns text
language sql
as $$ select json_build_object('sub', uid, 'role', 'authenticated', 'app_metadata', json_build_object('role', 'client'))::text $$;

-- ---------------------------------------------------------------- shape and privileges
select is(
  (
    select array_agg(c.relname::text || ':' || c.relpersistence::text order by c.relname)
    from pg_catalog.pg_class as c
    where c.relnamespace = 'chat_private'::regnamespace
      and c.relname in ('changefeed_state', 'changefeed_messages')
  ),
  array['changefeed_messages:u', 'changefeed_state:u'],
  'Both tables are unlogged: no WAL per message, and empty (not polling) after a crash.'
);
select table_privs_are('chat_private', 'changefeed_state', 'authenticated', '{}'::text[], 'Users cannot read or set the polling state.');
select table_privs_are('chat_private', 'changefeed_state', 'service_role', '{}'::text[], 'Nor can the service role through the API.');
select table_privs_are('chat_private', 'changefeed_messages', 'authenticated', '{}'::text[], 'Users cannot read the ids of messages in flight.');
select table_privs_are('chat_private', 'changefeed_messages', 'anon', '{}'::text[], 'Nor can anon.');
select function_privs_are(
  'chat_private', 'changefeed_poll', array['text', 'boolean', 'interval'], 'authenticated', '{}'::text[],
  'Users cannot start or stop polling.'
);
select function_privs_are(
  'chat_private', 'changefeed_poll', array['text', 'boolean', 'interval'], 'service_role', '{}'::text[],
  'Nor can the service role through the API.'
);
select function_privs_are(
  'chat_private', 'changefeed_poll', array['text', 'boolean', 'interval'], 'anon', '{}'::text[],
  'Nor can anon.'
);
select table_privs_are('chat_private', 'changefeed_state', 'anon', '{}'::text[], 'Anon cannot read or set the polling state.');
select function_privs_are(
  'chat_private', 'changefeed_polling', '{}'::name[], 'authenticated', '{}'::text[],
  'Users cannot ask whether relays poll.'
);

-- ---------------------------------------------------------------- not polling: NOTIFY
update chat_private.changefeed_state set polling_until = '-infinity';

set local role authenticated;
select set_config('request.jwt.claims', pg_temp.claims(:'client'), true);
insert into public.chat_messages (session_id, sender_id, content)
values ('5e000000-0000-4000-8000-000000000001'::uuid, :'client', 'while nobody polls');
reset role;

select is(
  (select count(*)::integer from chat_private.changefeed_messages),
  0,
  'While no relay polls, a message written outside the relay goes to no table (it notifies).'
);

-- ---------------------------------------------------------------- the first poll of a spell
create temp table first_poll as
select * from chat_private.changefeed_poll(null, true);

select is((select polling from first_poll), true, 'The first poll of a spell starts polling.');
select is((select ids from first_poll), '{}'::uuid[], 'With no earlier snapshot it returns no ids.');
select ok(
  (select polling_until from chat_private.changefeed_state)
  between clock_timestamp() + interval '500 milliseconds' and clock_timestamp() + interval '1 second',
  'It holds polling for a second (the default hold).'
);

-- ---------------------------------------------------------------- polling: a row, no NOTIFY
set local role authenticated;
select set_config('request.jwt.claims', pg_temp.claims(:'reader'), true);
insert into public.chat_messages (session_id, sender_id, content)
values ('5e000000-0000-4000-8000-000000000001'::uuid, :'reader', 'while relays poll');
reset role;

select results_eq(
  $$ select q.id, q.xact_id from chat_private.changefeed_messages as q $$,
  $$ select m.id, pg_current_xact_id() from public.chat_messages as m where m.content = 'while relays poll' $$,
  'While relays poll, the message''s id goes to the table, stamped with its transaction.'
);

select is(
  (
    select count(*)::integer from pg_catalog.pg_locks as l
    where l.locktype = 'advisory' and l.pid = pg_backend_pid() and l.granted
  ),
  1,
  'That transaction took the wake-up lock (it, and no other until it ends, wakes the relays).'
);

select chat_private.send_chat_messages(
  array[pg_temp.claims(:'client')], array['5e000000-0000-4000-8000-000000000001'::uuid], array['sent by a relay'],
  array['text'], array[null]::uuid[], array['{}'::jsonb], array[null]::text[]
);
select is(
  (select count(*)::integer from chat_private.changefeed_messages),
  1,
  'A message the relay writes never goes to the table: the relay emits it itself.'
);

-- ---------------------------------------------------------------- extending the hold
select is(
  (select polling from chat_private.changefeed_poll(null, true, interval '10 seconds')),
  true,
  'A poll that found messages pushes the hold on.'
);
select ok(
  (select polling_until from chat_private.changefeed_state) > clock_timestamp() + interval '9 seconds',
  'The hold runs from that poll.'
);
select chat_private.changefeed_poll(null, true, interval '1 second');
select ok(
  (select polling_until from chat_private.changefeed_state) > clock_timestamp() + interval '9 seconds',
  'A poll does not rewrite the row while it still holds for more than half the hold.'
);
select throws_ok(
  $$ select chat_private.changefeed_poll(null, true, interval '2 minutes') $$,
  '22023', 'hold must be between 0 and 1 minute',
  'A hold over a minute is refused.'
);

-- ---------------------------------------------------------------- what a poll returns
-- Rows stamped with transactions that ended long ago: one visible in the earlier snapshot
-- (delivered by an earlier poll) and one that committed after it.
create temp table xids as
select
  (pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 2)::text::xid8 as old,
  (pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1)::text::xid8 as new;
insert into chat_private.changefeed_messages (xact_id, id)
select
  x.old,
  '0a000000-0000-4000-8000-000000000001'::uuid
from xids as x
union all
select
  x.new,
  '0a000000-0000-4000-8000-000000000002'::uuid
from xids as x;

select is(
  (
    select p.ids from xids as x,
      chat_private.changefeed_poll(x.new::text || ':' || x.new::text || ':', false) as p
  ),
  array['0a000000-0000-4000-8000-000000000002']::uuid[],
  'A poll returns the ids of transactions that committed after the previous snapshot, not before.'
);
select is(
  (
    select p.ids from xids as x,
      chat_private.changefeed_poll(x.old::text || ':' || x.old::text || ':', false) as p
  ),
  array['0a000000-0000-4000-8000-000000000001', '0a000000-0000-4000-8000-000000000002']::uuid[],
  'Looking back further returns both, oldest transaction first.'
);
select is(
  (
    select p.ids from xids as x,
      chat_private.changefeed_poll(
        x.old::text || ':' || (x.new::text::bigint + 1)::text || ':' || x.old::text, false
      ) as p
  ),
  array['0a000000-0000-4000-8000-000000000001']::uuid[],
  'A transaction in progress at the previous snapshot is returned once it has committed; one that had committed then is not.'
);

-- ---------------------------------------------------------------- trimming and the end
insert into chat_private.changefeed_messages (id, written_at)
values ('0a000000-0000-4000-8000-000000000003', clock_timestamp() - interval '2 minutes');
update chat_private.changefeed_state set polling_until = clock_timestamp();
select chat_private.changefeed_poll(null, true);
select is(
  (
    select count(*)::integer from chat_private.changefeed_messages
    where id = '0a000000-0000-4000-8000-000000000003'
  ),
  0,
  'A poll that extends the hold drops rows older than a minute.'
);

update chat_private.changefeed_state set polling_until = clock_timestamp() - interval '1 second';
select is(
  (select polling from chat_private.changefeed_poll(null, false)),
  false,
  'A quarter of a second after polling_until, polls stop.'
);

select * from finish();
rollback;
