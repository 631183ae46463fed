-- create_chat_session: who may create which session, and every refusal with its SQLSTATE.
begin;
set local search_path = extensions, public;
select plan(23);

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

-- Forty-nine more users, so that a session of exactly 50 participants can be created.
do $$
begin
  perform tests.create_supabase_user(('0c000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid)
  from generate_series(100, 148) as i;
end
$$;

-- ---------------------------------------------------------------- not authenticated
reset role;
select tests.authenticate_with_claims('{"role": "authenticated"}');
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  '28000', 'not authenticated',
  'A token without a subject cannot create a session.'
);
reset role;
select tests.authenticate_as_service_role();
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  '28000', 'not authenticated',
  'The service role has no user id, so it cannot create a session through the function.'
);

-- ---------------------------------------------------------------- client
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000001');
select results_eq(
  $$ select s.participants, s.type, s.booking_id, s.status, s.title, s.created_by, s.closed_at
     from public.create_chat_session(
       array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
       'booking', 'b0000000-0000-4000-8000-000000000051', '  Evening reading  ') as s $$,
  $$ values (array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
             'booking'::text, 'b0000000-0000-4000-8000-000000000051'::uuid, 'active'::text,
             'Evening reading'::text, '0c000000-0000-4000-8000-000000000001'::uuid, null::timestamptz) $$,
  'The client creates an active booking session with the reader; the title is trimmed and the client is the creator.'
);
select results_eq(
  $$ select s.type, s.title from public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid [],
                                                             title => '   ') as s $$,
  $$ values ('support'::text, null::text) $$,
  'A session is a support session by default, and a blank title is stored as no title.'
);
select is(
  (
    select cardinality(s.participants)
    from public.create_chat_session(
        array(select ('0c000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid from generate_series(100, 148) as i)
        || '0c000000-0000-4000-8000-000000000001'::uuid
      ) as s
  ),
  50,
  'A session may have exactly 50 participants.'
);
select throws_ok(
  $$ select public.create_chat_session(null) $$,
  '22023', 'participants must list at least one user',
  'A session needs participants (null).'
);
select throws_ok(
  $$ select public.create_chat_session('{}'::uuid []) $$,
  '22023', 'participants must list at least one user',
  'A session needs participants (empty list).'
);
select throws_ok(
  $$ select public.create_chat_session(
       array(select ('0c000000-0000-4000-8000-' || lpad(i::text, 12, '0'))::uuid from generate_series(100, 149) as i)
       || '0c000000-0000-4000-8000-000000000001'::uuid) $$,
  '22023', 'participants may list at most 50 users',
  'A session may not have 51 participants.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001', null]::uuid []) $$,
  '22023', 'participants must not contain null',
  'Participants may not contain null.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002',
                                             '0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  '22023', 'participants must not repeat a user',
  'Participants may not repeat a user.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid [], 'group') $$,
  '22023', 'type must be one of booking, support, emergency',
  'A session type outside booking, support and emergency is refused.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid [], null) $$,
  '22023', 'type must be one of booking, support, emergency',
  'A null session type is refused.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
                                       'booking') $$,
  '22023', 'a booking session needs a booking_id',
  'A booking session without a booking_id is refused.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid [], title => repeat('x', 201)) $$,
  '22023', 'title may be at most 200 characters',
  'A title longer than 200 characters is refused.'
);
select lives_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid [], title => repeat('x', 200)) $$,
  'A title of exactly 200 characters is accepted.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000002', '0c000000-0000-4000-8000-000000000006']::uuid []) $$,
  '42501', 'you can only create sessions you take part in',
  'The client cannot create a session they do not take part in.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-0000000000ff']::uuid []) $$,
  '22023', 'unknown participants: 0c000000-0000-4000-8000-0000000000ff',
  'Every participant must be a user; the unknown ones are named.'
);

-- ---------------------------------------------------------------- reader
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000002');
select results_eq(
  $$ select s.type, s.created_by from public.create_chat_session(
       array['0c000000-0000-4000-8000-000000000002']::uuid [], 'emergency') as s $$,
  $$ values ('emergency'::text, '0c000000-0000-4000-8000-000000000002'::uuid) $$,
  'The reader can create an emergency session with themselves alone.'
);

-- ---------------------------------------------------------------- admin and forged admin
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000004');
select results_eq(
  $$ select s.participants, s.created_by from public.create_chat_session(
       array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid []) as s $$,
  $$ values (array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid [],
             '0c000000-0000-4000-8000-000000000004'::uuid) $$,
  'The admin can create a session between other users, and is recorded as its creator.'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-0000000000fe']::uuid []) $$,
  '22023', 'unknown participants: 0c000000-0000-4000-8000-0000000000fe',
  'Not even the admin can create a session with someone who is not a user.'
);
reset role;
select tests.authenticate_as('0c000000-0000-4000-8000-000000000005');
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002']::uuid []) $$,
  '42501', 'you can only create sessions you take part in',
  'A user whose user_metadata says admin cannot create a session between other users.'
);
reset role;
select tests.authenticate_with_claims(
  '{"sub": "0c000000-0000-4000-8000-000000000005", "role": "authenticated", "app_metadata": {}, "user_metadata": {"role": "super_admin"}}'
);
select throws_ok(
  $$ select public.create_chat_session(array['0c000000-0000-4000-8000-000000000001']::uuid []) $$,
  '42501', 'you can only create sessions you take part in',
  'A token whose user_metadata says super_admin is not an admin either.'
);

-- ---------------------------------------------------------------- the sessions exist
reset role;
select set_config('request.jwt.claims', '', true);
select results_eq(
  $$ select count(*)::int from public.chat_sessions where created_by in
       ('0c000000-0000-4000-8000-000000000001', '0c000000-0000-4000-8000-000000000002', '0c000000-0000-4000-8000-000000000004')
       and id not in ('5e000000-0000-4000-8000-000000000001', '5e000000-0000-4000-8000-000000000002') $$,
  array[6],
  'Exactly the six accepted calls created a session; no refused call left a row behind.'
);

select * from finish();
rollback;
