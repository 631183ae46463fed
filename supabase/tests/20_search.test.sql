-- Full-text search: ranked, highlighted, under RLS (an outsider finds nothing), served by
-- the GIN index; and the session list's filters.
begin;
set local search_path = extensions, public;
select plan(13);

do $$
begin
  perform tests.create_supabase_user('client', 'client@search.test', '{"role": "client"}');
  perform tests.create_supabase_user('reader', 'reader@search.test', '{"role": "reader"}');
  perform tests.create_supabase_user('outsider', 'outsider@search.test', '{"role": "client"}');
  perform tests.create_supabase_user('admin', 'admin@search.test', '{"role": "admin"}');
  insert into public.chat_sessions (id, participants, type, title, status, created_by, closed_at)
  values
  ('5f000000-0000-4000-8000-000000000001',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'support', 'Tarot questions', 'active', tests.uid('client'), null),
  ('5f000000-0000-4000-8000-000000000002',
   array[tests.uid('client'), tests.uid('reader')]::uuid [],
   'emergency', 'Urgent', 'closed', tests.uid('client'), now());
  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  ('3f000000-0000-4000-8000-000000000001', '5f000000-0000-4000-8000-000000000001',
   tests.uid('client'), 'The moon card came up twice <b>today</b>', now() - interval '3 minutes'),
  ('3f000000-0000-4000-8000-000000000002', '5f000000-0000-4000-8000-000000000001',
   tests.uid('reader'), 'The moon, the moon and the moon again', now() - interval '2 minutes'),
  ('3f000000-0000-4000-8000-000000000003', '5f000000-0000-4000-8000-000000000002',
   tests.uid('client'), 'Please call me about the sun', now() - interval '1 minute');
end
$$;

select ok(
  exists (
    select 1 from pg_indexes
    where indexname = 'chat_messages_content_fts' and indexdef ilike '%using gin%'
  ),
  'Message content has a GIN full-text index.'
);

reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select id from public.search_chat_messages('moon') $$,
  $$ values ('3f000000-0000-4000-8000-000000000002'::uuid), ('3f000000-0000-4000-8000-000000000001'::uuid) $$,
  'A participant finds the matching messages, the best match first.'
);
select is(
  (select snippet from public.search_chat_messages('card')),
  e'The moon \x02card\x03 came up twice <b>today</b>',
  'The snippet marks each hit between U+0002 and U+0003 (the API escapes the rest).'
);
select results_eq(
  $$ select id from public.search_chat_messages('moon', max_rows => 1, before_id => '3f000000-0000-4000-8000-000000000002') $$,
  $$ values ('3f000000-0000-4000-8000-000000000001'::uuid) $$,
  'before_id continues after a result of the same query.'
);
select is_empty(
  $$ select 1 from public.search_chat_messages('moon', in_session_id => '5f000000-0000-4000-8000-000000000002') $$,
  'The session filter keeps to one session.'
);
select throws_ok(
  $$ select * from public.search_chat_messages('   ') $$,
  '22023', 'query must be 1 to 200 characters',
  'A blank query is refused.'
);

reset role;
select tests.authenticate_as('outsider');
select is_empty(
  $$ select 1 from public.search_chat_messages('moon') $$,
  'An outsider finds nothing.'
);
select is_empty(
  $$ select 1 from public.search_chat_messages('moon', in_session_id => '5f000000-0000-4000-8000-000000000001') $$,
  'An outsider finds nothing even naming the session.'
);
reset role;
select tests.authenticate_as('admin');
select is_empty(
  $$ select 1 from public.search_chat_messages('moon') $$,
  'An admin outside the session finds nothing either.'
);

-- ---------------------------------------------------------------- session filters
reset role;
select tests.authenticate_as('client');
select results_eq(
  $$ select id from public.find_my_chat_sessions(search => 'tarot') $$,
  $$ values ('5f000000-0000-4000-8000-000000000001'::uuid) $$,
  'Text in the title finds the session.'
);
select results_eq(
  $$ select id from public.find_my_chat_sessions(search => 'sun') $$,
  $$ values ('5f000000-0000-4000-8000-000000000002'::uuid) $$,
  'A word in one of its messages finds the session.'
);
select results_eq(
  $$ select id, total_count from public.find_my_chat_sessions(session_type => 'emergency', session_status => 'closed') $$,
  $$ values ('5f000000-0000-4000-8000-000000000002'::uuid, 1::bigint) $$,
  'Type and status filter the list.'
);
reset role;
select tests.authenticate_as('outsider');
select is_empty(
  $$ select 1 from public.find_my_chat_sessions(search => 'moon') $$,
  'An outsider finds no session.'
);

select * from finish();
rollback;
