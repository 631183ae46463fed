-- chat_user_names: display names of users who share a session with the caller, and nothing else.
begin;
set local search_path = extensions, public;
select plan(8);

-- Fixtures (as postgres): a client and a reader who share an active session (S1) and a
-- closed one (S2); an outsider in a session of their own (S3); an admin (app_metadata) who
-- takes part in neither; a user whose user_metadata (editable by the user) claims admin.
do $$
begin
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000001', 'client@chat.test', '{"role": "client"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000002', 'reader@chat.test', '{"role": "reader"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000003', 'outsider@chat.test', '{"role": "client"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000004', 'admin@chat.test', '{"role": "admin"}', '{}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000005', 'forger@chat.test', '{"role": "client"}', '{"role": "admin"}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000006', 'other-reader@chat.test', '{"role": "reader"}', '{}');

  insert into public.chat_sessions (id, participants, type, booking_id, title, created_by, status, closed_at)
  values
  ('5e000000-0000-4000-8000-000000000001',
   array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000001', 'Active consultation',
   '0c000000-0000-4000-8000-000000000001', 'active', null),
  ('5e000000-0000-4000-8000-000000000002',
   array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
   'support', null, 'Closed support chat',
   '0c000000-0000-4000-8000-000000000001', 'closed', now() - interval '1 hour'),
  ('5e000000-0000-4000-8000-000000000003',
   array['0c000000-0000-4000-8000-000000000003', '0c000000-0000-4000-8000-000000000006']::uuid [],
   'booking', 'b0000000-0000-4000-8000-000000000003', 'Outsider consultation',
   '0c000000-0000-4000-8000-000000000003', 'active', null);

  insert into public.chat_messages (id, session_id, sender_id, content, created_at)
  values
  ('3e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000001',
   '0c000000-0000-4000-8000-000000000001', 'Hello from the client', now() - interval '3 minutes'),
  ('3e000000-0000-4000-8000-000000000002', '5e000000-0000-4000-8000-000000000001',
   '0c000000-0000-4000-8000-000000000002', 'Hello from the reader', now() - interval '2 minutes'),
  ('3e000000-0000-4000-8000-000000000003', '5e000000-0000-4000-8000-000000000002',
   '0c000000-0000-4000-8000-000000000001', 'Said before closing', now() - interval '2 hours'),
  ('3e000000-0000-4000-8000-000000000004', '5e000000-0000-4000-8000-000000000003',
   '0c000000-0000-4000-8000-000000000003', 'Hello from the outsider', now() - interval '1 minute');
end
$$;

-- A user with a display name (padded) who shares S8 with the client, and one whose name is
-- far too long and who shares nothing.
do $$
begin
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000007', 'ada@chat.test', '{"role": "reader"}',
                                     '{"full_name": "  Ada Lovelace  "}');
  perform tests.create_supabase_user('0c000000-0000-4000-8000-000000000008', 'long@chat.test', '{}',
                                     jsonb_build_object('name', repeat('n', 150)));
  insert into public.chat_sessions (id, participants, type, created_by)
  values ('5e000000-0000-4000-8000-000000000008',
          array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000007']::uuid [],
          'support', '0c000000-0000-4000-8000-000000000001');
end
$$;

select is(
  pg_get_function_result('public.chat_user_names(uuid[])'::regprocedure),
  'TABLE(user_id uuid, name text)',
  'chat_user_names returns ids and display names only: no email address, no metadata.'
);

reset role;
select tests.clear_authentication();
select throws_ok(
  $$ select * from public.chat_user_names(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  '42501', 'permission denied for function chat_user_names',
  'An anonymous caller cannot look up names.'
);

reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select is_empty(
  $$ select * from public.chat_user_names(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  'A token without a subject learns no name.'
);

reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000001');
select results_eq(
  $$ select user_id, name from public.chat_user_names(array[
       '0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002',
       '0c000000-0000-4000-8000-000000000003', '0c000000-0000-4000-8000-000000000007',
       '0c000000-0000-4000-8000-000000000008', '0c000000-0000-4000-8000-0000000000ff']::uuid [])
     order by user_id $$,
  $$ values ('0c000000-0000-4000-8000-000000000001'::uuid, 'client'::text),
            ('0c000000-0000-4000-8000-000000000002'::uuid, 'reader'::text),
            ('0c000000-0000-4000-8000-000000000007'::uuid, 'Ada Lovelace'::text) $$,
  'The client learns their own name and those of the users they share a session with, and no other.'
);

reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000003');
select results_eq(
  $$ select user_id from public.chat_user_names(array[
       '0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002',
       '0c000000-0000-4000-8000-000000000003', '0c000000-0000-4000-8000-000000000006']::uuid [])
     order by user_id $$,
  $$ values ('0c000000-0000-4000-8000-000000000003'::uuid), ('0c000000-0000-4000-8000-000000000006'::uuid) $$,
  'The outsider learns the names in their own session only, not the client''s or the reader''s.'
);

reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000004');
select is_empty(
  $$ select * from public.chat_user_names(array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid []) $$,
  'The admin learns no name of users they share no session with.'
);

reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000005');
select is_empty(
  $$ select * from public.chat_user_names(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  'A user whose user_metadata says admin learns no name of others.'
);

reset role;
select tests.authenticate_as_service_role();
select results_eq(
  $$ select user_id, char_length(name) from public.chat_user_names(array[
       '0c000000-0000-4000-8000-000000000003', '0c000000-0000-4000-8000-000000000008']::uuid [])
     order by user_id $$,
  $$ values ('0c000000-0000-4000-8000-000000000003'::uuid, 8), ('0c000000-0000-4000-8000-000000000008'::uuid, 100) $$,
  'The service role learns any user''s name; a name is at most 100 characters.'
);

select * from finish();
rollback;
