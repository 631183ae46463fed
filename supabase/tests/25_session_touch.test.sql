-- The session touch of a message written outside the relay skips the audit diff (it has
-- nothing to record) but still moves last_message_at; every other session update is still
-- diffed and audited, a forged chat.session_touch flag included; the participants check's
-- helper keeps its answers.
begin;
set local search_path = extensions, public;
select plan(16);

do $$
begin
  perform tests.create_supabase_user('client', 'client@touch.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@touch.test', '{"role": "reader"}');
  insert into public.chat_sessions (id, participants, type, created_by)
  values (
    '5d000000-0000-4000-8000-000000000001',
    array[tests.uid('client'), tests.uid('reader')]::uuid [],
    'support', tests.uid('client')
  );
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

-- A message as the user, through the API role (supabase-js's path).
select tests.authenticate_as('client');
insert into public.chat_messages (session_id, sender_id, content)
values ('5d000000-0000-4000-8000-000000000001', :'client', 'Hi');
reset role;

select is(
  (
    select last_message_at from public.chat_sessions
    where id = '5d000000-0000-4000-8000-000000000001'
  ),
  (
    select max(created_at) from public.chat_messages
    where session_id = '5d000000-0000-4000-8000-000000000001'
  ),
  'The message moved its session''s last_message_at.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action like 'session.%' and action <> 'session.created'
      and session_id = '5d000000-0000-4000-8000-000000000001'
  ),
  0,
  'The touch wrote no session audit row.'
);
select is(
  (
    select count(*)::integer from public.chat_audit_logs
    where action = 'message.created'
  ),
  1,
  'The message itself is audited.'
);

-- A forged flag on a direct update: still diffed and audited (it is not a trigger's).
select tests.authenticate_as_service_role();
select set_config('chat.session_touch', 'on', true);
update public.chat_sessions set title = 'Renamed'
where id = '5d000000-0000-4000-8000-000000000001';
select set_config('chat.session_touch', 'off', true);
reset role;
select is(
  (
    select details -> 'title' ->> 'to' from public.chat_audit_logs
    where action = 'session.updated' and session_id = '5d000000-0000-4000-8000-000000000001'
    order by id desc limit 1
  ),
  'Renamed',
  'A session update with a forged chat.session_touch flag is still audited.'
);

-- The participants check's helper: same answers as the query it replaces.
select is(chat_private.has_distinct_elements(array[]::uuid[]), true, 'An empty array is distinct.');
select is(
  chat_private.has_distinct_elements(array[:'client']::uuid[]),
  true, 'One element is distinct.'
);
select is(
  chat_private.has_distinct_elements(
    array[:'client', :'reader']::uuid[]
  ),
  true, 'Two different elements are distinct.'
);
select is(
  chat_private.has_distinct_elements(
    array[
      :'client', :'reader',
      :'client'
    ]::uuid[]
  ),
  false, 'A repeated element is not distinct.'
);
select is(
  chat_private.has_distinct_elements(array[:'client', null]::uuid[]),
  false, 'A NULL element is not distinct (as count(*) = count(distinct) said).'
);
select is(
  chat_private.has_distinct_elements('[0:1]={0d000000-0000-4000-8000-000000000001,0d000000-0000-4000-8000-000000000001}'::uuid[]),
  false, 'Bounds other than 1 are followed.'
);
select is(
  chat_private.has_distinct_elements(array(select gen_random_uuid() from generate_series(1, 100))),
  true, 'A large array of distinct elements (the query path).'
);
select is(
  chat_private.has_distinct_elements(
    array(select gen_random_uuid() from generate_series(1, 100))
    || :'client'::uuid || :'client'::uuid
  ),
  false, 'A large array with a repeat (the query path).'
);
select is(
  chat_private.has_distinct_elements('{{0d000000-0000-4000-8000-000000000001},{0d000000-0000-4000-8000-000000000001}}'::uuid[]),
  false, 'A two-dimensional array is checked whole.'
);
select throws_ok(
  format($$insert into public.chat_sessions (participants, type, created_by)
    values (array[%L, %L]::uuid [],
            'support', %L)$$, :'client', :'client', :'client'),
  '23514', null, 'The participants check still refuses a repeated participant.'
);

-- The audit trigger's condition names the columns a touch may not change. A column added
-- to chat_sessions must be named there too (as old.column and new.column), or a forged
-- touch flag could change it unaudited. A missing trigger lists every column.
select is(
  (
    select coalesce(array_agg(a.attname::text order by a.attnum), '{}')
    from pg_catalog.pg_attribute as a
    where a.attrelid = 'public.chat_sessions'::regclass
      and a.attnum > 0
      and not a.attisdropped
      and a.attname not in ('last_message_at', 'updated_at')
      and not (
        coalesce(pg_get_triggerdef(
          (
            select t.oid from pg_catalog.pg_trigger as t
            where t.tgrelid = 'public.chat_sessions'::regclass
              and t.tgname = 'chat_sessions_audit_update'
          )
        ), '') ~ ('old\.' || a.attname || '\M.*new\.' || a.attname || '\M')
      )
  ),
  '{}'::text[],
  'Every session column but last_message_at and updated_at is compared by the audit trigger.'
);
select is(
  chat_private.record_group_messages('{}'::public.chat_messages[], '{}'::text[]),
  0,
  'An empty group records nothing.'
);

select * from finish();
rollback;
