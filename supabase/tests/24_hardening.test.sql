-- Hardening, SQL side: sessions inserted directly are stamped by the
-- server; a token without a role claim does not skip the guards; object names with empty,
-- '.' or '..' segments are refused; the pgTAP helpers are the test runner's alone.
begin;
set local search_path = extensions, public;
select plan(18);

do $$
begin
  perform tests.create_supabase_user('client', 'client@chat.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@chat.test', '{"role": "reader"}');
  -- S1's newest message is a minute later than any session created in this transaction.
  insert into public.chat_sessions (id, participants, type, created_by, last_message_at)
  values
  (
    '5e000000-0000-4000-8000-000000000001',
    array[tests.uid('client'), tests.uid('reader')]::uuid[],
    'support', tests.uid('client'), now() + interval '1 minute'
  ),
  (
    '5e000000-0000-4000-8000-000000000002',
    array[tests.uid('reader')]::uuid[],
    'support', tests.uid('reader'), null
  );
end
$$;

-- Their ids as psql variables (:'client'), for statements run under another role.
select
  tests.uid('client') as client,
  tests.uid('reader') as reader
\gset

-- ---------------------------------------------------------------- direct inserts are stamped
reset role;
select tests.authenticate_as('client');
insert into public.chat_sessions (
  id, participants, type, title, status, closed_at, created_at, updated_at, last_message_at
)
values (
  '5e000000-0000-4000-8000-0000000000ff',
  array[:'client', :'reader']::uuid[],
  'support', 'Forged dates', 'closed', '2001-01-01', '2001-01-01', '2001-01-01', '9999-12-31'
);

select is(
  (
    select count(*)::int from public.chat_sessions
    where id = '5e000000-0000-4000-8000-0000000000ff'
  ),
  0,
  'A session inserted directly gets a server id, not the client''s.'
);
select results_eq(
  $$ select status, closed_at, last_message_at, created_at = now(), updated_at = now()
     from public.chat_sessions where title = 'Forged dates' $$,
  $$ values ('active'::text, null::timestamptz, null::timestamptz, true, true) $$,
  'A session inserted directly is active, open, without messages, and created now.'
);
select is(
  (select id from public.list_my_chat_sessions(1, 0)),
  '5e000000-0000-4000-8000-000000000001'::uuid,
  'A directly inserted session is not pinned first in the list by a forged last_message_at.'
);

-- ---------------------------------------------------------------- claims without a role
-- Claims without a role, under the authenticated role (as a service that trusted such a
-- token would run them): the file guard and the stamps still apply.
reset role;
select tests.authenticate_with_claims(
  format('{"sub": "%s", "aud": "authenticated"}', :'client')::jsonb
);
select ok(chat_private.is_api_caller(), 'A caller without a role claim is still an API caller.');
select throws_ok(
  format($$ insert into public.chat_messages (session_id, sender_id, type, metadata)
     values ('5e000000-0000-4000-8000-000000000001', %L,
             'image', '{"storage_path": "5e000000-0000-4000-8000-000000000001/%s/none.png"}') $$, :'client', :'client'),
  '22023',
  'metadata.storage_path is not a file you uploaded to this session',
  'Without a role claim, a file message still needs a stored object.'
);
insert into public.chat_sessions (participants, type, title, created_at)
values (
  array[:'client']::uuid[], 'support', 'No role claim', '2001-01-01'
);
select is(
  (
    select created_at = now() from public.chat_sessions
    where title = 'No role claim'
  ),
  true,
  'Without a role claim, a directly inserted session is still stamped.'
);

reset role;
select tests.authenticate_as_service_role();
select ok(not chat_private.is_api_caller(), 'The service role is not an API caller.');

-- ---------------------------------------------------------------- object names
reset role;
select tests.authenticate_as('client');
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('chat-files',
             '5e000000-0000-4000-8000-000000000001/%s/../../5e000000-0000-4000-8000-000000000002/%s/x.txt',
             %L, '{"mimetype": "text/plain", "size": 1}') $$, :'client', :'client', :'client'),
  '42501',
  'new row violates row-level security policy for table "objects"',
  'An object name with .. segments is refused by the upload policy.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('chat-files',
             '5e000000-0000-4000-8000-000000000001/%s/./x.txt',
             %L, '{"mimetype": "text/plain", "size": 1}') $$, :'client', :'client'),
  '42501',
  'new row violates row-level security policy for table "objects"',
  'An object name with a . segment is refused by the upload policy.'
);
select throws_ok(
  format($$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('chat-files',
             '5e000000-0000-4000-8000-000000000001/%s//x.txt',
             %L, '{"mimetype": "text/plain", "size": 1}') $$, :'client', :'client'),
  '42501',
  'new row violates row-level security policy for table "objects"',
  'An object name with an empty segment is refused by the upload policy.'
);
select lives_ok(
  format($$ insert into storage.objects (bucket_id, name, owner_id, metadata)
     values ('chat-files',
             '5e000000-0000-4000-8000-000000000001/%s/x.txt',
             %L, '{"mimetype": "text/plain", "size": 1}') $$, :'client', :'client'),
  'A clean object name in the caller''s own folder is accepted.'
);

-- The owner stored an object under an unclean name (as the service role could): the
-- guard still refuses a message pointing at it, and participants cannot read it.
reset role;
insert into storage.objects (bucket_id, name, owner_id, metadata)
values (
  'chat-files',
  '5e000000-0000-4000-8000-000000000001/' || :'client' || '/../../5e000000-0000-4000-8000-000000000002/'
  || :'client' || '/y.txt',
  :'client', '{"mimetype": "text/plain", "size": 1}'
);
select tests.authenticate_as('client');
select throws_ok(
  format($$ insert into public.chat_messages (session_id, sender_id, type, metadata)
     values ('5e000000-0000-4000-8000-000000000001', %L,
             'file', '{"storage_path": "5e000000-0000-4000-8000-000000000001/%s/../../5e000000-0000-4000-8000-000000000002/%s/y.txt"}') $$, :'client', :'client', :'client'),
  '22023',
  'metadata.storage_path is not a file you uploaded to this session',
  'The file guard refuses a storage path with .. segments.'
);
select is(
  (
    select count(*)::int from storage.objects
    where name like '%/../%'
  ),
  0,
  'An object with an unclean name is not readable through the policies.'
);

-- ---------------------------------------------------------------- sessions created per hour
-- The client created three sessions this hour (one as fixture); with a limit of four, one
-- more.
reset role;
select set_config('chat.session_create_limit', '4', true);
select tests.authenticate_as('client');
select lives_ok(
  format($$ insert into public.chat_sessions (participants, type)
     values (array[%L]::uuid[], 'support') $$, :'client'),
  'A user may create sessions up to the hourly limit.'
);
select throws_ok(
  format($$ select public.create_chat_session(array[%L]::uuid[]) $$, :'client'),
  'PT429',
  'too many sessions created in the last hour (at most 4)',
  'Past the hourly limit, creating a session is refused on every path (PostgREST: 429).'
);

-- ---------------------------------------------------------------- the test helpers
reset role;
select ok(
  not has_function_privilege('anon', 'tests.user_claims(uuid)', 'execute')
  and not has_function_privilege('authenticated', 'tests.create_supabase_user(uuid, text, jsonb, jsonb)', 'execute')
  and not has_function_privilege('service_role', 'tests.authenticate_as(uuid)', 'execute')
  and not has_schema_privilege('anon', 'tests', 'usage')
  and not has_schema_privilege('authenticated', 'tests', 'usage'),
  'The test helpers are not executable by anon, authenticated or service_role.'
);
select is(
  (
    select count(*)::int
    from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname = 'tests'
      and not coalesce(p.proconfig, '{}') && array['search_path=""', 'search_path=extensions, pg_catalog']
  ),
  0,
  'Every test helper has a fixed search_path.'
);
select is(
  (
    select count(*)::int
    from pg_catalog.pg_proc as p
    inner join pg_catalog.pg_namespace as n on p.pronamespace = n.oid
    where n.nspname = 'tests' and p.prosecdef
  ),
  0,
  'No test helper is security definer.'
);

select * from finish();
rollback;
