-- chat_private.send_chat_messages: the service's group commit. Each message as its own
-- sender under RLS; a bad one fails alone (isolate) or fails the group (the fast try);
-- relay-written rows neither notify nor touch their session one by one.
begin;
set local search_path = extensions, public;
select plan(29);

do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'outsider@chat.test', '{"role": "client"}');

  insert into public.chat_sessions (id, participants, type, created_by, status, closed_at, last_message_at)
  values
  ('5e000000-0000-4000-8000-000000000001',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', tests.uid('client'), 'active', null, '2001-01-01'),
  ('5e000000-0000-4000-8000-000000000002',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', tests.uid('client'), 'closed', now(), null);
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader,
  tests.uid('outsider') as outsider
\gset

create function pg_temp.claims(uid text) returns text
language sql
as $$ select json_build_object('sub', uid, 'role', 'authenticated', 'app_metadata', json_build_object('role', 'client'))::text $$;

-- A group of four: a good one, an outsider's, one to a closed session, another good one.
create temp table sent as
select * from chat_private.send_chat_messages(
    array[
      pg_temp.claims(:'client'),
      pg_temp.claims(:'outsider'),
      pg_temp.claims(:'client'),
      pg_temp.claims(:'reader')
    ],
    array[
      '5e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
      '5e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001'
    ]::uuid[],
    array['first', 'intruder', 'too late', 'second'],
    array['text', 'text', 'text', 'text'],
    array[null, null, null, null]::uuid[],
    array['{}', '{}', '{}', '{}']::jsonb[],
    array['c-1', null, null, 'r-1'],
    true
  );

select results_eq(
  $$ select ord, error_state from sent order by ord $$,
  $$ values (1, null::text), (2, 'P0002'), (3, '55000'), (4, null) $$,
  'In isolation, each bad message fails alone with its own SQLSTATE; the others are stored.'
);
select is(
  (
    select error_message from sent
    where ord = 2
  ),
  'chat session 5e000000-0000-4000-8000-000000000001 not found',
  'An outsider''s message is refused as not found, as send_chat_message refuses it (RLS).'
);
select is(
  (
    select error_message from sent
    where ord = 3
  ),
  'chat session 5e000000-0000-4000-8000-000000000002 is closed',
  'A message to a closed session is refused with its reason.'
);
select results_eq(
  $$ select sender_id, content, inserted from sent where error_state is null order by ord $$,
  format($$ values (%L::uuid, 'first', true),
            (%L::uuid, 'second', true) $$, :'client', :'reader'),
  'Each stored message carries its own sender.'
);
select is(
  (
    select count(*)::integer from public.chat_messages
    where session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  2,
  'Exactly the good messages are in the table.'
);
select is(
  (
    select last_message_at from public.chat_sessions
    where id = '5e000000-0000-4000-8000-000000000001'
  ),
  (
    select max(created_at) from sent
    where error_state is null
  ),
  'The session''s last_message_at is set once for the group.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action = 'message.created' and session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  2,
  'Each stored message is audited in the same transaction.'
);
select is(
  (
    select array_agg(actor_id order by id) from public.chat_audit_logs
    where action = 'message.created' and session_id = '5e000000-0000-4000-8000-000000000001'
  ),
  array[:'client', :'reader']::uuid[],
  'The audit names each message''s own sender.'
);
select is(current_user::text, 'postgres', 'The caller''s role is restored after the group.');
select is(
  coalesce(current_setting('chat.relay_write', true), ''), 'off',
  'The relay-write mark is cleared after the group.'
);

-- A retry in a later group returns the stored row, not a new one. (inserted means "written
-- by this transaction": here, one transaction for the whole test, it stays true; the
-- relay tests show a retry is not emitted again.)
select results_eq(
  format($$ select content, error_state from chat_private.send_chat_messages(
       array[pg_temp.claims(%L)],
       array['5e000000-0000-4000-8000-000000000001']::uuid [],
       array['first'], array['text'], array[null]::uuid [], array['{}']::jsonb [], array['c-1']
     ) $$, :'client'),
  $$ values ('first', null::text) $$,
  'A retried client_message_id returns the first message...'
);
select is(
  (
    select count(*)::integer from public.chat_messages
    where client_message_id = 'c-1'
  ),
  1,
  '... and stores nothing.'
);

-- The fast try (no isolation): one bad message fails the whole statement.
select throws_ok(
  format($$ select * from chat_private.send_chat_messages(
       array[pg_temp.claims(%L), pg_temp.claims(%L)],
       array['5e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001']::uuid [],
       array['fine', 'intruder'], array['text', 'text'], array[null, null]::uuid [],
       array['{}', '{}']::jsonb [], array[null, null]
     ) $$, :'client', :'outsider'),
  'P0002', null,
  'Without isolation a bad message fails the group (the service then retries in isolation).'
);
select is(current_user::text, 'postgres', 'A failed group leaves the caller''s role as it was.');

-- Only the service's database role may call it.
reset role;
select tests.authenticate_as('client');
select throws_ok(
  $$ select * from chat_private.send_chat_messages(
       array['{}'], array['5e000000-0000-4000-8000-000000000001']::uuid [], array['x'],
       array['text'], array[null]::uuid [], array['{}']::jsonb [], array[null]) $$,
  '42501', null,
  'A user cannot call the group function (they would choose their claims).'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ select * from chat_private.send_chat_messages(
       array['{}'], array['5e000000-0000-4000-8000-000000000001']::uuid [], array['x'],
       array['text'], array[null]::uuid [], array['{}']::jsonb [], array[null]) $$,
  '42501', null,
  'The service role cannot call it either.'
);
reset role;

-- Relay-written rows do not notify: the notify trigger skips them.
select is(
  (
    select pg_get_triggerdef(t.oid) ~ 'chat.relay_write'
    from pg_trigger as t
    where t.tgname = 'chat_messages_notify'
  ),
  true,
  'The NOTIFY trigger skips rows marked as written by a relay.'
);

-- A group's messages get the audit and Realtime rows a message sent on its own gets (the
-- group writes them in one statement each; the row triggers write a lone message's).
select tests.authenticate_as('client');
select id from public.send_chat_message(
    '5e000000-0000-4000-8000-000000000001', 'solo-ab', 'text', null, '{}', 'alone-1'
  );
reset role;
select set_config('request.jwt.claims', '', true);
create temp table grouped as
select * from chat_private.send_chat_messages(
    array[pg_temp.claims(:'client'), pg_temp.claims(:'reader')],
    array['5e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001']::uuid[],
    array['grouped', 'grouped'],
    array['text', 'text'],
    array[null, null]::uuid[],
    array['{}', '{}']::jsonb[],
    array['grouped-1', 'grouped-2']
  );

select results_eq(
  $$ select count(*)::int from public.chat_audit_logs as a
     inner join public.chat_messages as m on a.message_id = m.id
     where m.client_message_id in ('grouped-1', 'grouped-2') and a.action = 'message.created'
     group by m.id order by 1 $$,
  $$ values (1), (1) $$,
  'Each message of a group has one message.created audit row.'
);
select results_eq(
  $$ select a.actor_id, a.actor_role, a.action, a.session_id, a.details - 'seq' - 'client_message_id'
     from public.chat_audit_logs as a inner join public.chat_messages as m on a.message_id = m.id
     where m.client_message_id = 'alone-1' $$,
  $$ select a.actor_id, a.actor_role, a.action, a.session_id, a.details - 'seq' - 'client_message_id'
     from public.chat_audit_logs as a inner join public.chat_messages as m on a.message_id = m.id
     where m.client_message_id = 'grouped-1' $$,
  'A message of a group is audited as one sent on its own: same actor, action and details.'
);
select results_eq(
  $$ select count(*)::int from realtime.messages as r
     where r.payload ->> 'client_message_id' in ('grouped-1', 'grouped-2')
     group by r.payload ->> 'client_message_id' order by 1 $$,
  $$ values (1), (1) $$,
  'Each message of a group has one new_message row on its session''s Realtime topic.'
);
select results_eq(
  $$ select r.topic, r.event, r.private, r.extension,
       r.payload - 'id' - 'seq' - 'created_at' - 'content' - 'client_message_id'
     from realtime.messages as r where r.payload ->> 'client_message_id' = 'alone-1' $$,
  $$ select r.topic, r.event, r.private, r.extension,
       r.payload - 'id' - 'seq' - 'created_at' - 'content' - 'client_message_id'
     from realtime.messages as r where r.payload ->> 'client_message_id' = 'grouped-1' $$,
  'A message of a group is broadcast as one sent on its own: same topic, event and payload.'
);
select is(
  (
    select pg_get_triggerdef(t.oid) ~ 'chat.relay_write'
    from pg_trigger as t
    where t.tgname = 'chat_messages_audit'
  ),
  true,
  'The row audit trigger leaves a group''s inserts to the group...'
);
select is(
  (
    select pg_get_triggerdef(t.oid) ~ 'chat.relay_write'
    from pg_trigger as t
    where t.tgname = 'chat_messages_audit_delete'
  ),
  false,
  '... and audits every delete.'
);

-- A group across two sessions moves each session's last_message_at (the sorted loop; a
-- group within one session, above, takes the path without sorting).
insert into public.chat_sessions (id, participants, type, created_by, last_message_at)
values
(
  '5e000000-0000-4000-8000-000000000003',
  array[:'client', :'reader']::uuid[], 'support', :'client', '2001-01-01'
),
(
  '5e000000-0000-4000-8000-000000000004',
  array[:'client', :'reader']::uuid[], 'support', :'client', '2001-01-01'
);
create temp table sent_two as
select * from chat_private.send_chat_messages(
    array[pg_temp.claims(:'client'), pg_temp.claims(:'reader')],
    array[
      '5e000000-0000-4000-8000-000000000004', '5e000000-0000-4000-8000-000000000003'
    ]::uuid[],
    array['to four', 'to three'],
    array['text', 'text'],
    array[null, null]::uuid[],
    array['{}', '{}']::jsonb[],
    array[null, null]::text[]
  );
select results_eq(
  $$ select count(*)::integer from sent_two where inserted $$,
  $$ values (2) $$,
  'A group across two sessions stores both messages.'
);
select results_eq(
  $$ select s.last_message_at = t.created_at
     from public.chat_sessions as s join sent_two as t on t.session_id = s.id
     order by s.id $$,
  $$ values (true), (true) $$,
  'Each of the two sessions has its message''s time as last_message_at.'
);

-- The same message sent twice in one group (a client's retry that caught up with the
-- first attempt): stored, recorded and broadcast once; the second is a retry.
create temp table sent_twice as
select * from chat_private.send_chat_messages(
    array[pg_temp.claims(:'client'), pg_temp.claims(:'client')],
    array[
      '5e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000003'
    ]::uuid[],
    array['once', 'once'],
    array['text', 'text'],
    array[null, null]::uuid[],
    array['{}', '{}']::jsonb[],
    array['twice-1', 'twice-1']
  );
select results_eq(
  $$ select inserted, id = first_value(id) over (order by ord) from sent_twice order by ord $$,
  $$ values (true, true), (false, true) $$,
  'The second send of one message in a group returns the first''s row as a retry.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action = 'message.created'
      and message_id = (
        select s.id from sent_twice as s
        where s.ord = 1
      )
  ),
  1,
  'It has one message.created audit row.'
);
select is(
  (
    select count(*)::integer from realtime.messages
    where event = 'new_message'
      and payload ->> 'id' = (
        select s.id::text from sent_twice as s
        where s.ord = 1
      )
  ),
  1,
  'It has one Realtime row.'
);

-- The group's functions assign set_config's result instead of PERFORMing it (no query
-- per call) and switch plpgsql_check's extra warnings off for that; with the switch
-- ignored, the unread results are all it has to say.
create extension if not exists plpgsql_check;
select is(
  (
    select array_agg(distinct t.message order by t.message)
    from pg_catalog.pg_proc as p
    cross join
      lateral plpgsql_check_function_tb(
        p.oid,
        extra_warnings => true, performance_warnings => true, security_warnings => true,
        use_incomment_options => false
      ) as t
    where p.oid in (
        'chat_private.send_chat_messages(text[], uuid[], text[], text[], uuid[], jsonb[], text[], boolean)'::regprocedure,
        'chat_private.send_as(text, uuid, text, text, uuid, jsonb, text)'::regprocedure
      )
  ),
  array['never read variable "_recorded"', 'never read variable "_set"'],
  'The in-comment option of the group''s functions hides only their unread results (set_config''s and the recorded count).'
);

select * from finish();
rollback;
